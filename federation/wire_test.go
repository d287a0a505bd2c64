package federation_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/mls"
)

// The tests build their messages from a real MLS group (a commit adding two
// members, its Welcome, GroupInfo and tree, proposals, an application
// message), so the MIMI bodies carry what they will carry in production.

type wireValue interface {
	mls.Marshaler
	mls.Unmarshaler
}

// canon returns v after an encode/decode cycle: the form a decoder produces
// (for instance empty rather than nil slices inside mls types), so that test
// values compare equal to decoded ones.
func canon[T any, PT interface {
	*T
	wireValue
}](t testing.TB, v PT) T {
	t.Helper()
	var out T
	if err := mls.Unmarshal(mls.Marshal(v), PT(&out)); err != nil {
		t.Fatalf("canon %T: %v", v, err)
	}
	return out
}

type fixture struct {
	suite     *mls.Suite
	key       *mls.SignaturePrivateKey // alice's
	cred      mls.Credential
	kp        mls.KeyPackage
	caps      mls.Capabilities
	proposal  mls.MLSMessage // PublicMessage Add
	proposal2 mls.MLSMessage // PublicMessage Add
	commit    mls.MLSMessage // PublicMessage commit
	welcome   mls.Welcome
	welcomeM  mls.MLSMessage
	groupInfo mls.GroupInfo // without the tree
	groupInfM mls.MLSMessage
	tree      mls.TreeNodes
	app       mls.MLSMessage // PrivateMessage application
}

var (
	fixOnce sync.Once
	fix     *fixture
	fixErr  error
)

func getFixture(t testing.TB) *fixture {
	t.Helper()
	fixOnce.Do(func() { fix, fixErr = buildFixture(t) })
	if fixErr != nil {
		t.Fatal(fixErr)
	}
	return fix
}

func buildFixture(t testing.TB) (*fixture, error) {
	s, err := mls.SuiteFor(mls.X25519AES128GCMSHA256Ed25519)
	if err != nil {
		return nil, err
	}
	key, err := s.GenerateSignatureKey()
	if err != nil {
		return nil, err
	}
	cred := mls.Credential{Type: mls.CredentialBasic, Identity: []byte("mimi://a.example/d/alice/phone")}
	g, err := mls.CreateGroup(s, []byte("mimi://a.example/g/clubhouse"), mls.Identity{Signer: key, Credential: cred}, nil, mls.GroupConfig{})
	if err != nil {
		return nil, err
	}
	newKP := func(name string) (*mls.KeyPackage, error) {
		k, err := s.GenerateSignatureKey()
		if err != nil {
			return nil, err
		}
		kp, err := mls.NewKeyPackage(s, k, mls.Credential{Type: mls.CredentialBasic, Identity: []byte(name)}, mls.KeyPackageOptions{})
		if err != nil {
			return nil, err
		}
		return kp.KeyPackage, nil
	}
	bob, err := newKP("mimi://b.example/d/bob/laptop")
	if err != nil {
		return nil, err
	}
	cathy, err := newKP("mimi://c.example/d/cathy/phone")
	if err != nil {
		return nil, err
	}
	app, err := g.Encrypt([]byte("hello"), nil)
	if err != nil {
		return nil, err
	}
	p1, _, err := g.Propose(&mls.Proposal{Type: mls.ProposalAdd, Add: bob}, nil)
	if err != nil {
		return nil, err
	}
	p2, _, err := g.Propose(&mls.Proposal{Type: mls.ProposalAdd, Add: cathy}, nil)
	if err != nil {
		return nil, err
	}
	res, err := g.Commit(mls.CommitOptions{})
	if err != nil {
		return nil, err
	}
	if res.Welcome == nil {
		return nil, fmt.Errorf("commit adding two members made no Welcome")
	}
	f := &fixture{suite: s, key: key, cred: canon(t, &cred)}
	f.kp = canon(t, bob)
	caps := mls.DefaultCapabilities()
	f.caps = canon(t, &caps)
	f.proposal = canon(t, p1)
	f.proposal2 = canon(t, p2)
	f.commit = canon(t, res.Commit)
	f.welcomeM = canon(t, res.Welcome)
	f.welcome = *f.welcomeM.Welcome
	f.groupInfM = canon(t, res.GroupInfo)
	f.groupInfo = *f.groupInfM.GroupInfo
	f.tree = canon(t, &res.RatchetTree)
	f.app = canon(t, app)
	return f, nil
}

func (f *fixture) frank() *federation.Frank {
	fr := &federation.Frank{FrankingSignatureCiphersuite: f.suite.ID, FrankingIntegritySignature: []byte("integrity")}
	copy(fr.ServerFrank[:], bytes.Repeat([]byte{0xab}, 32))
	return fr
}

func (f *fixture) keyMaterialRequest(t testing.TB) *federation.KeyMaterialRequest {
	m := &federation.KeyMaterialRequest{
		Protocol:               federation.ProtocolMLS10,
		RequestingUser:         "mimi://a.example/u/alice",
		TargetUser:             "mimi://b.example/u/bob",
		RoomID:                 "mimi://a.example/r/clubhouse",
		AcceptableCiphersuites: []mls.CipherSuite{f.suite.ID, mls.P256AES128GCMSHA256P256},
		RequiredCapabilities: mls.RequiredCapabilities{
			Extensions:  []mls.ExtensionType{mls.ExtLastResort},
			Credentials: []mls.CredentialType{mls.CredentialX509},
		},
		RequesterCredential: f.cred,
	}
	if err := m.Sign(f.suite, f.key); err != nil {
		t.Fatal(err)
	}
	return m
}

func (f *fixture) groupInfoResponse(t testing.TB) (*federation.GroupInfoResponse, mls.HPKEPrivateKey, *federation.GroupInfoRatchetTreeTBE) {
	priv, pub, err := f.suite.GenerateHPKEKey()
	if err != nil {
		t.Fatal(err)
	}
	tbe := &federation.GroupInfoRatchetTreeTBE{
		GroupInfo:   f.groupInfo,
		RatchetTree: federation.FullRatchetTree(f.tree),
		PendingProposals: []federation.PendingProposal{
			{Proposal: f.proposal, HubAcceptedTime: 1700000000123},
		},
	}
	room := federation.IdentifierURI("mimi://a.example/r/clubhouse")
	ct, err := federation.SealGroupInfo(f.suite, pub, room, tbe)
	if err != nil {
		t.Fatal(err)
	}
	m := &federation.GroupInfoResponse{
		Protocol:                  federation.ProtocolMLS10,
		RoomID:                    room,
		Status:                    federation.GroupInfoSuccess,
		CipherSuite:               f.suite.ID,
		HubSender:                 mls.ExternalSender{Credential: mls.Credential{Type: mls.CredentialBasic, Identity: []byte("mimi://a.example")}},
		EncryptedGroupInfoAndTree: ct,
	}
	if err := m.Sign(f.suite, f.key); err != nil {
		t.Fatal(err)
	}
	return m, priv, tbe
}

type namedValue struct {
	name string
	v    wireValue
}

// values returns one or more values of every message type, covering each
// branch of every select.
func values(t testing.TB) []namedValue {
	f := getFixture(t)
	gir := &federation.GroupInfoRequest{
		Protocol:             federation.ProtocolMLS10,
		CipherSuite:          f.suite.ID,
		RequestingCredential: f.cred,
		GroupInfoPublicKey:   []byte("an HPKE public key"),
		JoiningCode:          []byte("join-1234"),
	}
	if err := gir.Sign(f.suite, f.key); err != nil {
		t.Fatal(err)
	}
	girNoCode := *gir
	girNoCode.JoiningCode = nil
	if err := girNoCode.Sign(f.suite, f.key); err != nil {
		t.Fatal(err)
	}
	giResp, _, tbe := f.groupInfoResponse(t)
	ext := federation.AppDataDictionary{{ID: 1, Data: []byte("one")}, {ID: 0x10000, Data: nil}}
	return []namedValue{
		{"KeyMaterialRequest", f.keyMaterialRequest(t)},
		{"KeyMaterialRequest/no room", func() wireValue {
			m := f.keyMaterialRequest(t)
			m.RoomID = ""
			m.RequiredCapabilities = mls.RequiredCapabilities{}
			return m
		}()},
		{"KeyMaterialResponse/success", &federation.KeyMaterialResponse{
			Protocol: federation.ProtocolMLS10, UserStatus: federation.KeyMaterialPartialSuccess,
			UserURI: "mimi://b.example/u/bob",
			Clients: []federation.ClientKeyMaterial{
				{ClientStatus: federation.ClientKeyMaterialSuccess, ClientURI: "mimi://b.example/d/bob/laptop", KeyPackage: &f.kp},
				{ClientStatus: federation.ClientKeyMaterialExhausted, ClientURI: "mimi://b.example/d/bob/phone"},
				{ClientStatus: federation.ClientNothingCompatible, ClientURI: "mimi://b.example/d/bob/tv", ClientCapabilities: &f.caps},
				{ClientStatus: federation.ClientNothingCompatible, ClientURI: "mimi://b.example/d/bob/watch"},
			},
		}},
		{"KeyMaterialResponse/noConsent", &federation.KeyMaterialResponse{
			Protocol: federation.ProtocolMLS10, UserStatus: federation.KeyMaterialNoConsent, UserURI: "mimi://b.example/u/bob",
		}},
		{"ClientKeyMaterial", &federation.ClientKeyMaterial{ClientStatus: federation.ClientKeyMaterialSuccess, ClientURI: "mimi://b.example/d/bob/laptop", KeyPackage: &f.kp}},
		{"UpdateRequest/commit", &federation.UpdateRequest{Bundle: federation.HandshakeBundle{
			ProposalOrCommit: f.commit, Welcome: &f.welcome,
			GroupInfo: federation.FullGroupInfo(f.groupInfo), RatchetTree: federation.FullRatchetTree(f.tree),
		}}},
		{"UpdateRequest/commit without Welcome", &federation.UpdateRequest{Bundle: federation.HandshakeBundle{
			ProposalOrCommit: f.commit,
			GroupInfo:        federation.FullGroupInfo(f.groupInfo), RatchetTree: federation.FullRatchetTree(f.tree),
		}}},
		{"UpdateRequest/proposals", &federation.UpdateRequest{Bundle: federation.HandshakeBundle{
			ProposalOrCommit: f.proposal, MoreProposals: []mls.MLSMessage{f.proposal2},
		}}},
		{"UpdateRequest/one proposal", &federation.UpdateRequest{Bundle: federation.HandshakeBundle{ProposalOrCommit: f.proposal}}},
		{"UpdateRoomResponse/success", &federation.UpdateRoomResponse{ResponseCode: federation.UpdateSuccess, AcceptedTimestamp: 1700000000123}},
		{"UpdateRoomResponse/wrongEpoch", &federation.UpdateRoomResponse{ResponseCode: federation.UpdateWrongEpoch, ErrorDescription: "epoch 7 is over", CurrentEpoch: 8}},
		{"UpdateRoomResponse/notAllowed", &federation.UpdateRoomResponse{ResponseCode: federation.UpdateNotAllowed, ErrorDescription: "bob may not add — café"}},
		{"UpdateRoomResponse/invalidProposal", &federation.UpdateRoomResponse{ResponseCode: federation.UpdateInvalidProposal, InvalidProposals: [][]byte{[]byte("ref-1"), []byte("ref-2")}}},
		{"SubmitMessageRequest", &federation.SubmitMessageRequest{Protocol: federation.ProtocolMLS10, AppMessage: f.app, SendingURI: "mimi://c.example/u/cathy"}},
		{"SubmitMessageResponse/accepted", &federation.SubmitMessageResponse{Protocol: federation.ProtocolMLS10, StatusCode: federation.SubmitAccepted, AcceptedTimestamp: 42, Frank: f.frank()}},
		{"SubmitMessageResponse/accepted no frank", &federation.SubmitMessageResponse{Protocol: federation.ProtocolMLS10, StatusCode: federation.SubmitAccepted, AcceptedTimestamp: 42}},
		{"SubmitMessageResponse/notAllowed", &federation.SubmitMessageResponse{Protocol: federation.ProtocolMLS10, StatusCode: federation.SubmitNotAllowed}},
		{"SubmitMessageResponse/epochTooOld", &federation.SubmitMessageResponse{Protocol: federation.ProtocolMLS10, StatusCode: federation.SubmitEpochTooOld, CurrentEpoch: 9}},
		{"FanoutMessage/application", &federation.FanoutMessage{Timestamp: 1, Message: f.app, Frank: f.frank()}},
		{"FanoutMessage/application no frank", &federation.FanoutMessage{Timestamp: 2, Message: f.app}},
		{"FanoutMessage/welcome", &federation.FanoutMessage{Timestamp: 3, Message: f.welcomeM, RatchetTree: federation.FullRatchetTree(f.tree)}},
		{"FanoutMessage/proposal", &federation.FanoutMessage{Timestamp: 4, Message: f.proposal, MoreProposals: []mls.MLSMessage{f.proposal2}}},
		{"FanoutMessage/commit", &federation.FanoutMessage{Timestamp: 5, Message: f.commit, ExternalProposals: []mls.MLSMessage{f.proposal, f.proposal2}}},
		{"FanoutMessage/commit alone", &federation.FanoutMessage{Timestamp: 6, Message: f.commit}},
		{"GroupInfoRequest", gir},
		{"GroupInfoRequest/no joining code", &girNoCode},
		{"GroupInfoResponse/success", giResp},
		{"GroupInfoResponse/notAuthorized", &federation.GroupInfoResponse{Protocol: federation.ProtocolMLS10, RoomID: "mimi://a.example/r/clubhouse", Status: federation.GroupInfoNotAuthorized}},
		{"GroupInfoResponse/noSuchRoom", &federation.GroupInfoResponse{Protocol: federation.ProtocolMLS10, RoomID: "mimi://a.example/r/nope", Status: federation.GroupInfoNoSuchRoom}},
		{"GroupInfoRatchetTreeTBE", tbe},
		{"ConsentEntry/request", &federation.ConsentEntry{ConsentOperation: federation.ConsentRequest, RequesterURI: "mimi://a.example/u/alice", TargetURI: "mimi://b.example/u/bob", RoomID: "mimi://a.example/r/clubhouse"}},
		{"ConsentEntry/cancel", &federation.ConsentEntry{ConsentOperation: federation.ConsentCancel, RequesterURI: "mimi://a.example/u/alice", TargetURI: "mimi://b.example/u/bob", ConsentExtensions: ext}},
		{"ConsentEntry/grant", &federation.ConsentEntry{ConsentOperation: federation.ConsentGrant, RequesterURI: "mimi://a.example/u/alice", TargetURI: "mimi://b.example/u/bob", ClientKeyPackages: []mls.KeyPackage{f.kp}}},
		{"ConsentEntry/grant no KeyPackages", &federation.ConsentEntry{ConsentOperation: federation.ConsentGrant, RequesterURI: "mimi://a.example/u/alice", TargetURI: "mimi://b.example/u/bob"}},
		{"ConsentEntry/revoke", &federation.ConsentEntry{ConsentOperation: federation.ConsentRevoke, RequesterURI: "mimi://a.example/u/alice", TargetURI: "mimi://b.example/u/bob", RoomID: "mimi://a.example/r/x"}},
		{"ConsentScope", &federation.ConsentScope{RequesterURI: "mimi://a.example/u/alice", TargetURI: "mimi://b.example/u/bob", RoomID: "mimi://a.example/r/clubhouse"}},
		{"IdentifierRequest", &federation.IdentifierRequest{
			QueryElements: []federation.QueryElement{
				{SearchType: federation.SearchHandle, SearchValue: "im:alice.smith@a.example"},
				{SearchType: federation.SearchOIDCStdClaim, Field: "given_name", SearchValue: "Zoë"},
				{SearchType: federation.SearchVCardField, Field: "ORG", SearchValue: "Example"},
			},
			IDRequestExtensions: ext,
		}},
		{"IdentifierResponse", &federation.IdentifierResponse{
			ResponseCode: federation.IdentifierSuccess,
			URIs:         []federation.IdentifierURI{"mimi://b.example/u/bob", "mimi://b.example/u/bob2"},
			FoundProfiles: []federation.UserProfile{{
				StableURI: "mimi://b.example/u/bob",
				Fields: []federation.ProfileField{
					{FieldSource: federation.FieldOIDCStdClaim, FieldName: "given_name", FieldValue: []byte("Bob")},
					{FieldSource: federation.FieldVCardField, FieldName: "ORG", FieldValue: []byte("B Corp")},
				},
			}},
		}},
		{"IdentifierResponse/notFound", &federation.IdentifierResponse{ResponseCode: federation.IdentifierNotFound}},
		{"AbuseReport", &federation.AbuseReport{
			ReportingUser: "mimi://b.example/u/bob", AllegedAbuserURI: "mimi://c.example/u/cathy",
			Note: "spam, again",
			Messages: []federation.AbusiveMessage{
				{MessageContent: []byte("buy now"), Frank: *f.frank(), AcceptedTimestamp: 77},
			},
			AbuseExtensions: ext,
		}},
		{"AbuseReport/anonymous", &federation.AbuseReport{AllegedAbuserURI: "mimi://c.example/u/cathy"}},
		{"BatchRequest", &federation.BatchRequest{Entries: []federation.BatchEntry{
			{Path: "/notify/mimi%3A%2F%2Fa.example%2Fr%2Fclub", DeliveryID: "club/7",
				Headers: []federation.HeaderField{{Name: "Mimi-Recipients", Value: "mimi://b.example/d/bob/phone"}, {Name: "Mimi-Room-Seq", Value: "7"}},
				Body:    mls.Marshal(&federation.FanoutMessage{Timestamp: 1, Message: f.app})},
			{Path: "/updateConsent/mimi%3A%2F%2Fb.example%2Fu%2Fbob", DeliveryID: "consent-1"},
		}}},
		{"BatchResponse", &federation.BatchResponse{Results: []federation.BatchResult{
			{Status: 201},
			{Status: 400, Headers: []federation.HeaderField{{Name: "Content-Type", Value: "application/json"}, {Name: "X-Request-Id", Value: "r1"}},
				Body: []byte(`{"error": {"code": "bad_request", "message": "no"}}`)},
			{Status: 429, Headers: []federation.HeaderField{{Name: "Retry-After", Value: "2"}}},
		}}},
	}
}

func fresh(v wireValue) wireValue {
	return reflect.New(reflect.TypeOf(v).Elem()).Interface().(wireValue)
}

func TestRoundTrip(t *testing.T) {
	for _, c := range values(t) {
		t.Run(c.name, func(t *testing.T) {
			b := mls.Marshal(c.v)
			got := fresh(c.v)
			if err := mls.Unmarshal(b, got); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, c.v) {
				t.Errorf("decoded value differs:\n got  %+v\n want %+v", got, c.v)
			}
			if again := mls.Marshal(got); !bytes.Equal(again, b) {
				t.Errorf("re-encoding differs:\n got  %x\n want %x", again, b)
			}
		})
	}
}

func TestTruncatedAndTrailing(t *testing.T) {
	for _, c := range values(t) {
		t.Run(c.name, func(t *testing.T) {
			b := mls.Marshal(c.v)
			for i := range len(b) {
				if err := mls.Unmarshal(b[:i], fresh(c.v)); err == nil {
					t.Fatalf("a %d-byte prefix of %d bytes decoded", i, len(b))
				}
			}
			if err := mls.Unmarshal(append(bytes.Clone(b), 0), fresh(c.v)); !errors.Is(err, mls.ErrTrailingData) {
				t.Fatalf("trailing byte: got %v, want ErrTrailingData", err)
			}
		})
	}
}

// with returns a copy of b with b[i] = v.
func with(b []byte, i int, v byte) []byte {
	b = bytes.Clone(b)
	b[i] = v
	return b
}

func TestRefusesUnknownEnums(t *testing.T) {
	f := getFixture(t)
	enc := func(v mls.Marshaler) []byte { return mls.Marshal(v) }
	kmReq := enc(f.keyMaterialRequest(t))
	kmResp := enc(&federation.KeyMaterialResponse{Protocol: federation.ProtocolMLS10, UserStatus: federation.KeyMaterialUserUnknown})
	ckm := enc(&federation.ClientKeyMaterial{ClientStatus: federation.ClientKeyMaterialExhausted})
	upd := enc(&federation.UpdateRoomResponse{ResponseCode: federation.UpdateNotAllowed})
	subReq := enc(&federation.SubmitMessageRequest{Protocol: federation.ProtocolMLS10, AppMessage: f.app})
	subResp := enc(&federation.SubmitMessageResponse{Protocol: federation.ProtocolMLS10, StatusCode: federation.SubmitNotAllowed})
	giReq := enc(&federation.GroupInfoRequest{Protocol: federation.ProtocolMLS10})
	giResp := enc(&federation.GroupInfoResponse{Protocol: federation.ProtocolMLS10, Status: federation.GroupInfoNoSuchRoom}) // empty room: status at 2
	consent := enc(&federation.ConsentEntry{ConsentOperation: federation.ConsentRequest})
	query := enc(&federation.QueryElement{SearchType: federation.SearchNick, SearchValue: "bob"})
	idResp := enc(&federation.IdentifierResponse{ResponseCode: federation.IdentifierAmbiguous})
	field := enc(&federation.ProfileField{FieldSource: federation.FieldVCardField})
	abuse := enc(&federation.AbuseReport{}) // empty URIs: reason code at 2
	tree := federation.FullRatchetTree(f.tree)
	treeOpt := enc(&tree)
	gio := federation.FullGroupInfo(f.groupInfo)
	giOpt := enc(&gio)

	cases := []struct {
		name string
		in   []byte
		v    wireValue
		want error
	}{
		{"KeyMaterialRequest protocol 0", with(kmReq, 0, 0), new(federation.KeyMaterialRequest), federation.ErrUnknownValue},
		{"KeyMaterialRequest protocol 2", with(kmReq, 0, 2), new(federation.KeyMaterialRequest), federation.ErrUnknownValue},
		{"KeyMaterialResponse protocol", with(kmResp, 0, 7), new(federation.KeyMaterialResponse), federation.ErrUnknownValue},
		{"KeyMaterialUserCode 8", with(kmResp, 1, 8), new(federation.KeyMaterialResponse), federation.ErrUnknownValue},
		{"KeyMaterialClientCode 3", with(ckm, 0, 3), new(federation.ClientKeyMaterial), federation.ErrUnknownValue},
		{"UpdateResponseCode 4", with(upd, 0, 4), new(federation.UpdateRoomResponse), federation.ErrUnknownValue},
		{"SubmitMessageRequest protocol", with(subReq, 0, 255), new(federation.SubmitMessageRequest), federation.ErrUnknownValue},
		{"SubmitResponseCode 3", with(subResp, 1, 3), new(federation.SubmitMessageResponse), federation.ErrUnknownValue},
		{"GroupInfoRequest protocol", with(giReq, 0, 0), new(federation.GroupInfoRequest), federation.ErrUnknownValue},
		{"GroupInfoCode 0", with(giResp, 2, 0), new(federation.GroupInfoResponse), federation.ErrUnknownValue},
		{"GroupInfoCode 4", with(giResp, 2, 4), new(federation.GroupInfoResponse), federation.ErrUnknownValue},
		{"ConsentOperation 4", with(consent, 0, 4), new(federation.ConsentEntry), federation.ErrUnknownValue},
		{"SearchIdentifierType 0", with(query, 0, 0), new(federation.QueryElement), federation.ErrUnknownValue},
		{"SearchIdentifierType 9", with(query, 0, 9), new(federation.QueryElement), federation.ErrUnknownValue},
		{"IdentifierQueryCode 5", with(idResp, 0, 5), new(federation.IdentifierResponse), federation.ErrUnknownValue},
		{"FieldSource 1", with(field, 0, 1), new(federation.ProfileField), federation.ErrUnknownValue},
		{"AbuseType 1", with(abuse, 2, 1), new(federation.AbuseReport), federation.ErrUnknownValue},
		{"RatchetTreeRepresentation 0", with(treeOpt, 0, 0), new(federation.RatchetTreeOption), federation.ErrUnknownValue},
		{"RatchetTreeRepresentation 2 (httpsUri)", with(treeOpt, 0, 2), new(federation.RatchetTreeOption), federation.ErrUnsupported},
		{"RatchetTreeRepresentation 200", with(treeOpt, 0, 200), new(federation.RatchetTreeOption), federation.ErrUnknownValue},
		{"GroupInfoRepresentation 0", with(giOpt, 0, 0), new(federation.GroupInfoOption), federation.ErrUnknownValue},
		{"GroupInfoRepresentation partial", with(giOpt, 0, 2), new(federation.GroupInfoOption), federation.ErrUnsupported},
		{"GroupInfoRepresentation 3", with(giOpt, 0, 3), new(federation.GroupInfoOption), federation.ErrUnknownValue},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := mls.Unmarshal(c.in, c.v)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			t.Log(err)
		})
	}
}

func TestRefusesWhatTheDraftForbids(t *testing.T) {
	f := getFixture(t)
	enc := func(v mls.Marshaler) []byte { return mls.Marshal(v) }
	// Messages of the wrong kind are built by hand: the encoders write them,
	// only the decoders judge.
	appAsHandshake := enc(&f.app)
	badSuites := f.keyMaterialRequest(t)
	badSuites.AcceptableCiphersuites = nil
	unsorted := federation.AppDataDictionary{{ID: 2}, {ID: 1}}
	duplicate := federation.AppDataDictionary{{ID: 2}, {ID: 2}}
	emptyRoom := append(enc(&federation.ConsentScope{RequesterURI: "a", TargetURI: "b"})[:4], 1, 0)

	cases := []struct {
		name string
		in   []byte
		v    wireValue
		want error
	}{
		{"handshake bundle of an application message", appAsHandshake, new(federation.UpdateRequest), federation.ErrUnsupported},
		{"handshake bundle of a GroupInfo", enc(&f.groupInfM), new(federation.UpdateRequest), federation.ErrInvalidMessage},
		{"moreProposals holding a commit", enc(&federation.UpdateRequest{Bundle: federation.HandshakeBundle{
			ProposalOrCommit: f.proposal, MoreProposals: []mls.MLSMessage{f.commit}}}), new(federation.UpdateRequest), federation.ErrInvalidMessage},
		{"moreProposals holding an application message", enc(&federation.UpdateRequest{Bundle: federation.HandshakeBundle{
			ProposalOrCommit: f.proposal, MoreProposals: []mls.MLSMessage{f.app}}}), new(federation.UpdateRequest), federation.ErrUnsupported},
		{"submitted proposal", enc(&federation.SubmitMessageRequest{Protocol: federation.ProtocolMLS10, AppMessage: f.proposal}), new(federation.SubmitMessageRequest), federation.ErrInvalidMessage},
		{"fanout of a GroupInfo", enc(&federation.FanoutMessage{Message: f.groupInfM}), new(federation.FanoutMessage), federation.ErrInvalidMessage},
		{"externalProposals holding a Welcome", enc(&federation.FanoutMessage{Message: f.commit, ExternalProposals: []mls.MLSMessage{f.welcomeM}}), new(federation.FanoutMessage), federation.ErrInvalidMessage},
		{"clients listed with userUnknown", enc(&federation.KeyMaterialResponse{Protocol: federation.ProtocolMLS10, UserStatus: federation.KeyMaterialUserUnknown,
			Clients: []federation.ClientKeyMaterial{{ClientStatus: federation.ClientKeyMaterialExhausted}}}), new(federation.KeyMaterialResponse), federation.ErrInvalidMessage},
		{"no acceptable suite", enc(badSuites), new(federation.KeyMaterialRequest), federation.ErrInvalidMessage},
		{"unsorted AppDataDictionary", enc(unsorted), new(federation.AppDataDictionary), federation.ErrInvalidMessage},
		{"repeated AppDataDictionary ID", enc(duplicate), new(federation.AppDataDictionary), federation.ErrInvalidMessage},
		{"present but empty roomId", emptyRoom, new(federation.ConsentScope), federation.ErrInvalidMessage},
		{"note not UTF-8", enc(&federation.AbuseReport{Note: "\xff\xfe"}), new(federation.AbuseReport), federation.ErrInvalidMessage},
		{"errorDescription not UTF-8", enc(&federation.UpdateRoomResponse{ResponseCode: federation.UpdateNotAllowed, ErrorDescription: "\xc3"}), new(federation.UpdateRoomResponse), federation.ErrInvalidMessage},
		{"searchValue not UTF-8", enc(&federation.QueryElement{SearchType: federation.SearchNick, SearchValue: "\x80"}), new(federation.QueryElement), federation.ErrInvalidMessage},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := mls.Unmarshal(c.in, c.v)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			t.Log(err)
		})
	}
}

func TestKeyMaterialRequestSignature(t *testing.T) {
	for _, id := range []mls.CipherSuite{mls.X25519AES128GCMSHA256Ed25519, mls.P256AES128GCMSHA256P256, mls.P384AES256GCMSHA384P384} {
		t.Run(id.String(), func(t *testing.T) {
			s, err := mls.SuiteFor(id)
			if err != nil {
				t.Fatal(err)
			}
			key, err := s.GenerateSignatureKey()
			if err != nil {
				t.Fatal(err)
			}
			newRequest := func() *federation.KeyMaterialRequest {
				return &federation.KeyMaterialRequest{
					Protocol:               federation.ProtocolMLS10,
					RequestingUser:         "mimi://a.example/u/alice",
					TargetUser:             "mimi://b.example/u/bob",
					RoomID:                 "mimi://a.example/r/clubhouse",
					AcceptableCiphersuites: []mls.CipherSuite{id},
					RequesterCredential:    mls.Credential{Type: mls.CredentialBasic, Identity: []byte("alice")},
				}
			}
			m := newRequest()
			if err := m.Sign(s, key); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(m.RequesterSignatureKey, key.PublicKey()) {
				t.Fatal("Sign did not fill in the signature key")
			}
			if err := m.Verify(); err != nil {
				t.Fatalf("fresh signature: %v", err)
			}
			var decoded federation.KeyMaterialRequest
			if err := mls.Unmarshal(mls.Marshal(m), &decoded); err != nil {
				t.Fatal(err)
			}
			if err := decoded.Verify(); err != nil {
				t.Fatalf("decoded request: %v", err)
			}

			// Every signed field is covered.
			tamper := map[string]func(m *federation.KeyMaterialRequest){
				"requestingUser": func(m *federation.KeyMaterialRequest) { m.RequestingUser = "mimi://a.example/u/mallory" },
				"targetUser":     func(m *federation.KeyMaterialRequest) { m.TargetUser = "mimi://b.example/u/carol" },
				"roomId":         func(m *federation.KeyMaterialRequest) { m.RoomID = "" },
				"ciphersuites": func(m *federation.KeyMaterialRequest) {
					m.AcceptableCiphersuites = append(m.AcceptableCiphersuites, mls.X25519ChaCha20Poly1305SHA256Ed25519)
				},
				"requiredCapabilities": func(m *federation.KeyMaterialRequest) {
					m.RequiredCapabilities.Proposals = []mls.ProposalType{0x0a0a}
				},
				"credential": func(m *federation.KeyMaterialRequest) { m.RequesterCredential.Identity = []byte("mallory") },
				"signature":  func(m *federation.KeyMaterialRequest) { m.Signature[len(m.Signature)-1] ^= 1 },
			}
			for name, edit := range tamper {
				c := decoded
				c.AcceptableCiphersuites = append([]mls.CipherSuite{}, decoded.AcceptableCiphersuites...)
				c.Signature = bytes.Clone(decoded.Signature)
				c.RequesterCredential.Identity = bytes.Clone(decoded.RequesterCredential.Identity)
				edit(&c)
				if err := c.Verify(); !errors.Is(err, mls.ErrCrypto) {
					t.Errorf("tampered %s: Verify = %v, want a signature failure", name, err)
				}
			}

			// A forger signs with its own key but claims the requester's.
			forger, err := s.GenerateSignatureKey()
			if err != nil {
				t.Fatal(err)
			}
			forged := newRequest()
			if err := forged.Sign(s, forger); err != nil {
				t.Fatal(err)
			}
			forged.RequesterSignatureKey = key.PublicKey()
			if err := forged.Verify(); !errors.Is(err, mls.ErrCrypto) {
				t.Errorf("forged signature: Verify = %v", err)
			}
			// Sign refuses a key that is not the named one, and a suite
			// other than the first acceptable one.
			if err := m.Sign(s, forger); !errors.Is(err, federation.ErrInvalidMessage) {
				t.Errorf("Sign with another key than requesterSignatureKey: %v", err)
			}
			other, _ := mls.SuiteFor(mls.X25519ChaCha20Poly1305SHA256Ed25519)
			if err := newRequest().Sign(other, key); !errors.Is(err, federation.ErrInvalidMessage) {
				t.Errorf("Sign with a suite not first in the list: %v", err)
			}
		})
	}
}

func TestGroupInfoSignaturesAndSealing(t *testing.T) {
	f := getFixture(t)
	resp, priv, tbe := f.groupInfoResponse(t)
	var decoded federation.GroupInfoResponse
	if err := mls.Unmarshal(mls.Marshal(resp), &decoded); err != nil {
		t.Fatal(err)
	}
	if err := decoded.Verify(); err != nil {
		t.Fatalf("response signature: %v", err)
	}
	opened, err := federation.OpenGroupInfo(f.suite, priv, decoded.RoomID, decoded.EncryptedGroupInfoAndTree)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(opened, tbe) {
		t.Fatal("opened GroupInfo differs from the sealed one")
	}
	if _, err := federation.OpenGroupInfo(f.suite, priv, "mimi://a.example/r/other", decoded.EncryptedGroupInfoAndTree); err == nil {
		t.Fatal("opened under another room ID")
	}
	decoded.RoomID = "mimi://a.example/r/other"
	if err := decoded.Verify(); !errors.Is(err, mls.ErrCrypto) {
		t.Fatalf("response with changed room: Verify = %v", err)
	}

	req := &federation.GroupInfoRequest{Protocol: federation.ProtocolMLS10, CipherSuite: f.suite.ID,
		RequestingCredential: f.cred, GroupInfoPublicKey: []byte("pk")}
	if err := req.Sign(f.suite, f.key); err != nil {
		t.Fatal(err)
	}
	if err := req.Verify(); err != nil {
		t.Fatal(err)
	}
	req.JoiningCode = []byte("guess")
	if err := req.Verify(); !errors.Is(err, mls.ErrCrypto) {
		t.Fatalf("request with added joining code: Verify = %v", err)
	}
}

func TestFanoutConcatenation(t *testing.T) {
	f := getFixture(t)
	msgs := []federation.FanoutMessage{
		{Timestamp: 10, Message: f.commit, ExternalProposals: []mls.MLSMessage{f.proposal}},
		{Timestamp: 10, Message: f.welcomeM, RatchetTree: federation.FullRatchetTree(f.tree)},
		{Timestamp: 11, Message: f.app, Frank: f.frank()},
	}
	body := federation.MarshalFanout(msgs...)
	got, err := federation.SplitFanout(body)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, msgs) {
		t.Fatal("split messages differ from the joined ones")
	}
	if _, err := federation.SplitFanout(nil); !errors.Is(err, federation.ErrInvalidMessage) {
		t.Fatalf("empty body: %v", err)
	}
	if _, err := federation.SplitFanout(append(bytes.Clone(body), 0, 0, 0)); !errors.Is(err, mls.ErrTruncated) {
		t.Fatalf("body with a torn last message: %v", err)
	}
	if !strings.Contains(fmt.Sprint(mustErr(federation.SplitFanout(append(bytes.Clone(body), 0, 0, 0)))), "fanout message 3") {
		t.Fatal("error does not say which message is bad")
	}
}

func mustErr(_ any, err error) error { return err }

func TestDirectory(t *testing.T) {
	d, err := federation.NewDirectory("https://mimi.example.com/v1/")
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]string
	if err := json.Unmarshal(js, &fields); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"keyMaterial":     "https://mimi.example.com/v1/keyMaterial/{targetUser}",
		"update":          "https://mimi.example.com/v1/update/{roomId}",
		"notify":          "https://mimi.example.com/v1/notify/{roomId}",
		"submitMessage":   "https://mimi.example.com/v1/submitMessage/{roomId}",
		"groupInfo":       "https://mimi.example.com/v1/groupInfo/{roomId}",
		"requestConsent":  "https://mimi.example.com/v1/requestConsent/{targetUser}",
		"updateConsent":   "https://mimi.example.com/v1/updateConsent/{requesterUser}",
		"identifierQuery": "https://mimi.example.com/v1/identifierQuery/{domain}",
		"reportAbuse":     "https://mimi.example.com/v1/reportAbuse/{roomId}",
		"proxyDownload":   "https://mimi.example.com/v1/proxyDownload/{downloadUrl}",
		"batch":           "https://mimi.example.com/v1/batch",
	}
	if !reflect.DeepEqual(fields, want) {
		t.Fatalf("directory JSON:\n got  %v\n want %v", fields, want)
	}
	parsed, err := federation.ParseDirectory(js)
	if err != nil || !reflect.DeepEqual(parsed, d) {
		t.Fatalf("ParseDirectory of our own: %v", err)
	}

	room := federation.IdentifierURI("mimi://a.example/r/club house?#%")
	u, err := d.NotifyURL(room)
	if err != nil {
		t.Fatal(err)
	}
	if want := "https://mimi.example.com/v1/notify/mimi%3A%2F%2Fa.example%2Fr%2Fclub%20house%3F%23%25"; u != want {
		t.Fatalf("NotifyURL = %s, want %s", u, want)
	}
	// A ServeMux pattern gets the URI back whole.
	mux := http.NewServeMux()
	var got string
	mux.HandleFunc("POST /v1/notify/{roomId}", func(w http.ResponseWriter, r *http.Request) { got = r.PathValue("roomId") })
	mux.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", u, nil))
	if got != string(room) {
		t.Fatalf("ServeMux PathValue = %q, want %q", got, room)
	}

	// A peer's template may name the domain instead of the user.
	peer := &federation.Directory{RequestConsent: "https://b.example/mimi/requestConsent/{targetDomain}"}
	if u, err := peer.RequestConsentURL("mimi://b.example/u/bob"); err != nil || u != "https://b.example/mimi/requestConsent/b.example" {
		t.Fatalf("RequestConsentURL = %q, %v", u, err)
	}
	if u, err := d.RequestConsentURL("mimi://b.example/u/bob"); err != nil || u != "https://mimi.example.com/v1/requestConsent/mimi%3A%2F%2Fb.example%2Fu%2Fbob" {
		t.Fatalf("RequestConsentURL = %q, %v", u, err)
	}
	if _, err := peer.KeyMaterialURL("mimi://b.example/u/bob"); !errors.Is(err, federation.ErrDirectory) {
		t.Fatalf("missing endpoint: %v", err)
	}

	// The draft's example, its missing colon restored; its "update{roomId}"
	// is odd but a valid https template.
	example := `{
  "keyMaterial": "https://mimi.example.com/v1/keyMaterial/{targetUser}",
  "update": "https://mimi.example.com/v1/update{roomId}",
  "notify": "https://mimi.example.com/v1/notify/{roomId}",
  "submitMessage": "https://mimi.example.com/v1/submitMessage/{roomId}",
  "groupInfo": "https://mimi.example.com/v1/groupInfo/{roomId}",
  "requestConsent": "https://mimi.example.com/v1/requestConsent/{targetUser}",
  "updateConsent": "https://mimi.example.com/v1/updateConsent/{requesterUser}",
  "identifierQuery": "https://mimi.example.com/v1/identifierQuery/{domain}",
  "reportAbuse": "https://mimi.example.com/v1/reportAbuse/{roomId}",
  "proxyDownload": "https://mimi.example.com/v1/proxyDownload/{downloadUrl}",
  "somethingNew": "https://mimi.example.com/v1/new"
}`
	if _, err := federation.ParseDirectory([]byte(example)); err != nil {
		t.Fatalf("the draft's example: %v", err)
	}

	for _, bad := range []string{
		`{"notify": "http://mimi.example.com/notify/{roomId}"}`,
		`{"notify": "https://mimi.example.com/notify/{roomId"}`,
		`{"notify": "https://mimi.example.com/notify/roomId}"}`,
		`{"notify": "https://mimi.example.com/notify/{}"}`,
		`{"notify": "https://mimi.example.com/notify/{room id}"}`,
		`{"notify": "/notify/{roomId}"}`,
		`{"notify": 7}`,
	} {
		if _, err := federation.ParseDirectory([]byte(bad)); !errors.Is(err, federation.ErrDirectory) {
			t.Errorf("ParseDirectory(%s) = %v, want ErrDirectory", bad, err)
		}
	}
	for _, base := range []string{"http://mimi.example.com", "https://mimi.example.com/v1?x=1", "mimi.example.com", "https:///v1"} {
		if _, err := federation.NewDirectory(base); !errors.Is(err, federation.ErrDirectory) {
			t.Errorf("NewDirectory(%q) = %v, want ErrDirectory", base, err)
		}
	}
	if _, err := federation.Expand("https://x.example/{a}/{b}", map[string]string{"a": "1"}); !errors.Is(err, federation.ErrDirectory) {
		t.Errorf("Expand with a missing variable: %v", err)
	}
}

func TestEnumStrings(t *testing.T) {
	for v, want := range map[fmt.Stringer]string{
		federation.ProtocolMLS10:                   "mls10",
		federation.KeyMaterialNoConsentForThisRoom: "noConsentForThisRoom",
		federation.KeyMaterialUserCode(9):          "KeyMaterialUserCode(9)",
		federation.SubmitAccepted:                  "accepted",
		federation.FieldVCardField:                 "vcardField",
		federation.FieldSource(3):                  "FieldSource(3)",
		federation.GroupInfoSuccess:                "success",
	} {
		if got := v.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", v, got, want)
		}
	}
}

// A batch body that breaks the rules of docs/federation.md ("Batches") is
// refused whole, with ErrInvalidMessage.
func TestBatchBodyRefusals(t *testing.T) {
	entry := func(edit func(e *federation.BatchEntry)) []byte {
		e := federation.BatchEntry{Path: "/notify/x", DeliveryID: "x/1", Headers: []federation.HeaderField{{Name: "Mimi-Room-Seq", Value: "1"}}}
		edit(&e)
		return mls.Marshal(&federation.BatchRequest{Entries: []federation.BatchEntry{e}})
	}
	result := func(edit func(r *federation.BatchResult)) []byte {
		r := federation.BatchResult{Status: 201}
		edit(&r)
		return mls.Marshal(&federation.BatchResponse{Results: []federation.BatchResult{r}})
	}
	hdr := func(kv ...string) []federation.HeaderField {
		var out []federation.HeaderField
		for i := 0; i < len(kv); i += 2 {
			out = append(out, federation.HeaderField{Name: kv[i], Value: kv[i+1]})
		}
		return out
	}
	for _, c := range []struct {
		name string
		in   []byte
		v    wireValue
	}{
		{"no entries", mls.Marshal(&federation.BatchRequest{}), new(federation.BatchRequest)},
		{"relative path", entry(func(e *federation.BatchEntry) { e.Path = "notify/x" }), new(federation.BatchRequest)},
		{"another host", entry(func(e *federation.BatchEntry) { e.Path = "//evil.example/notify/x" }), new(federation.BatchRequest)},
		{"unescaped path", entry(func(e *federation.BatchEntry) { e.Path = "/notify/a b" }), new(federation.BatchRequest)},
		{"no delivery ID", entry(func(e *federation.BatchEntry) { e.DeliveryID = "" }), new(federation.BatchRequest)},
		{"delivery ID with a space", entry(func(e *federation.BatchEntry) { e.DeliveryID = "a b" }), new(federation.BatchRequest)},
		{"headers out of order", entry(func(e *federation.BatchEntry) { e.Headers = hdr("Mimi-Sender", "s", "Mimi-Room-Seq", "1") }), new(federation.BatchRequest)},
		{"a header twice", entry(func(e *federation.BatchEntry) { e.Headers = hdr("Mimi-Room-Seq", "1", "Mimi-Room-Seq", "2") }), new(federation.BatchRequest)},
		{"not canonical", entry(func(e *federation.BatchEntry) { e.Headers = hdr("mimi-room-seq", "1") }), new(federation.BatchRequest)},
		{"not a token", entry(func(e *federation.BatchEntry) { e.Headers = hdr("Mimi Room", "1") }), new(federation.BatchRequest)},
		{"the batch's own header", entry(func(e *federation.BatchEntry) { e.Headers = hdr("From", "mimi@a.example") }), new(federation.BatchRequest)},
		{"a delivery ID header", entry(func(e *federation.BatchEntry) { e.Headers = hdr("Mimi-Delivery-Id", "y/2") }), new(federation.BatchRequest)},
		{"a line break in a value", entry(func(e *federation.BatchEntry) { e.Headers = hdr("Mimi-Sender", "a\r\nFrom: x") }), new(federation.BatchRequest)},
		{"no results", mls.Marshal(&federation.BatchResponse{}), new(federation.BatchResponse)},
		{"status 0", result(func(r *federation.BatchResult) { r.Status = 0 }), new(federation.BatchResponse)},
		{"status 100", result(func(r *federation.BatchResult) { r.Status = 100 }), new(federation.BatchResponse)},
		{"status 600", result(func(r *federation.BatchResult) { r.Status = 600 }), new(federation.BatchResponse)},
		{"answer header out of order", result(func(r *federation.BatchResult) { r.Headers = hdr("Retry-After", "1", "Content-Type", "x") }), new(federation.BatchResponse)},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := mls.Unmarshal(c.in, c.v); !errors.Is(err, federation.ErrInvalidMessage) {
				t.Fatalf("got %v, want ErrInvalidMessage", err)
			}
		})
	}
}
