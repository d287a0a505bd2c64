package mlsinterop

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/mlsinterop/pb"
)

// Client serves the interop framework's MLSClient service on package mls.
// It keeps every group state, pending KeyPackage ("transaction"), pending
// reinitialization and external signer under a numeric handle, as the
// service expects. It is safe for concurrent use: one lock serialises the
// requests, which the framework sends one at a time anyway.
type Client struct {
	pb.UnimplementedMLSClientServer

	mu      sync.Mutex
	next    uint32
	groups  map[uint32]*groupState
	pending map[uint32]*transaction
	reinits map[uint32]*reinitState
	signers map[uint32]*externalSigner
}

// groupState is one member's group and what the service needs around it.
type groupState struct {
	g    *mls.Group
	psks *mls.PSKMap
	// sent maps the bytes of this member's own proposal messages to their
	// references, so a commit can name them.
	sent map[string][]byte
}

// transaction is a KeyPackage waiting for its Welcome.
type transaction struct {
	kp   *mls.KeyPackagePrivate
	psks *mls.PSKMap
}

// reinitState is a member between a committed ReInit and the new group.
type reinitState struct {
	old      *groupState
	identity mls.Identity
	kp       *mls.KeyPackagePrivate
}

type externalSigner struct {
	suite  *mls.Suite
	signer *mls.SignaturePrivateKey
}

// NewClient returns a client with no state.
func NewClient() *Client {
	return &Client{
		groups:  map[uint32]*groupState{},
		pending: map[uint32]*transaction{},
		reinits: map[uint32]*reinitState{},
		signers: map[uint32]*externalSigner{},
	}
}

// NewServer returns a gRPC server serving c. A panic in a handler becomes an
// Internal error for that request instead of ending the process.
//
// A connection has handshakeTimeout to send HTTP/2's preface, and one
// left without a call for idleTimeout is closed, so that a client that
// connects and says nothing cannot hold it for good.
func NewServer(c *Client) *grpc.Server {
	s := grpc.NewServer(grpc.UnaryInterceptor(recoverPanics), grpc.ConnectionTimeout(handshakeTimeout),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: idleTimeout}))
	pb.RegisterMLSClientServer(s, c)
	return s
}

// The server's timeouts (variables so that a test can shorten them).
var (
	handshakeTimeout = 10 * time.Second
	idleTimeout      = 5 * time.Minute
)

func recoverPanics(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = status.Errorf(codes.Internal, "%s: internal error: %v", info.FullMethod, p)
		}
	}()
	return handler(ctx, req)
}

func (c *Client) id() uint32 {
	c.next++
	return c.next
}

// Errors. Requests that name no known handle get NotFound; malformed or
// refused input gets InvalidArgument with the mls error's text.

func notFound(kind string, id uint32) error {
	return status.Errorf(codes.NotFound, "no %s with id %d (never created, or freed)", kind, id)
}

func invalid(what string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok && status.Code(err) != codes.Unknown {
		return err
	}
	return status.Errorf(codes.InvalidArgument, "%s: %v", what, err)
}

func (c *Client) group(id uint32) (*groupState, error) {
	gs, ok := c.groups[id]
	if !ok {
		return nil, notFound("group state", id)
	}
	return gs, nil
}

func suiteOf(id uint32) (*mls.Suite, error) {
	if id > 0xffff {
		return nil, status.Errorf(codes.InvalidArgument, "cipher suite %d is not a uint16", id)
	}
	s, err := mls.SuiteFor(mls.CipherSuite(id))
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	return s, nil
}

func newIdentity(s *mls.Suite, name []byte) (mls.Identity, error) {
	sig, err := s.GenerateSignatureKey()
	if err != nil {
		return mls.Identity{}, err
	}
	return mls.Identity{Signer: sig, Credential: mls.Credential{Type: mls.CredentialBasic, Identity: append([]byte{}, name...)}}, nil
}

func newKeyPackage(s *mls.Suite, name []byte) (*mls.KeyPackagePrivate, error) {
	id, err := newIdentity(s, name)
	if err != nil {
		return nil, err
	}
	return mls.NewKeyPackage(s, id.Signer, id.Credential, mls.KeyPackageOptions{})
}

// privateKeys returns a KeyPackage's private keys in the framework's raw forms.
func privateKeys(kp *mls.KeyPackagePrivate) (initPriv, encPriv, sigPriv []byte, err error) {
	if initPriv, err = kp.InitKey.Bytes(); err != nil {
		return nil, nil, nil, err
	}
	if encPriv, err = kp.EncryptionKey.Bytes(); err != nil {
		return nil, nil, nil, err
	}
	return initPriv, encPriv, kp.SignatureKey.Bytes(), nil
}

func wrapKeyPackage(kp *mls.KeyPackage) []byte {
	return mls.Marshal(&mls.MLSMessage{Version: mls.MLS10, WireFormat: mls.WireFormatKeyPackage, KeyPackage: kp})
}

// parseMessage decodes an MLSMessage of the expected wire format.
func parseMessage(what string, data []byte, want mls.WireFormat) (*mls.MLSMessage, error) {
	m, err := mls.ParseMLSMessage(data)
	if err != nil {
		return nil, invalid(what, err)
	}
	if m.WireFormat != want {
		return nil, status.Errorf(codes.InvalidArgument, "%s: wire format %d, want %d", what, m.WireFormat, want)
	}
	return m, nil
}

// parseKeyPackage accepts a KeyPackage inside an MLSMessage or bare.
func parseKeyPackage(data []byte) (*mls.KeyPackage, error) {
	if m, err := mls.ParseMLSMessage(data); err == nil && m.KeyPackage != nil {
		return m.KeyPackage, nil
	}
	var kp mls.KeyPackage
	if err := mls.Unmarshal(data, &kp); err != nil {
		return nil, invalid("key package", err)
	}
	return &kp, nil
}

// parseTree decodes an optional out-of-band ratchet tree.
func parseTree(data []byte) (mls.TreeNodes, error) {
	if len(data) == 0 {
		return nil, nil
	}
	var t mls.TreeNodes
	if err := mls.Unmarshal(data, &t); err != nil {
		return nil, invalid("ratchet tree", err)
	}
	return t, nil
}

func extensions(in []*pb.Extension) (mls.Extensions, error) {
	var out mls.Extensions
	for _, e := range in {
		if e.ExtensionType > 0xffff {
			return nil, status.Errorf(codes.InvalidArgument, "extension type %d is not a uint16", e.ExtensionType)
		}
		out = append(out, mls.Extension{Type: mls.ExtensionType(e.ExtensionType), Data: e.ExtensionData})
	}
	return out, nil
}

// leafOf finds the member whose basic credential names identity.
func leafOf(tree *mls.RatchetTree, identity []byte) (mls.LeafIndex, error) {
	for _, l := range tree.Members() {
		if bytes.Equal(tree.Leaf(l).Credential.Identity, identity) {
			return l, nil
		}
	}
	return 0, status.Errorf(codes.InvalidArgument, "no member with identity %q", identity)
}

func (c *Client) Name(context.Context, *pb.NameRequest) (*pb.NameResponse, error) {
	return &pb.NameResponse{Name: "Switchboard"}, nil
}

func (c *Client) SupportedCiphersuites(context.Context, *pb.SupportedCiphersuitesRequest) (*pb.SupportedCiphersuitesResponse, error) {
	var out []uint32
	for _, s := range mls.SupportedSuites {
		out = append(out, uint32(s))
	}
	return &pb.SupportedCiphersuitesResponse{Ciphersuites: out}, nil
}

func config(encrypt bool, psks *mls.PSKMap) mls.GroupConfig {
	return mls.GroupConfig{EncryptHandshake: encrypt, PSKs: psks}
}

func (c *Client) CreateGroup(_ context.Context, r *pb.CreateGroupRequest) (*pb.CreateGroupResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, err := suiteOf(r.CipherSuite)
	if err != nil {
		return nil, err
	}
	id, err := newIdentity(s, r.Identity)
	if err != nil {
		return nil, invalid("identity", err)
	}
	psks := &mls.PSKMap{}
	g, err := mls.CreateGroup(s, r.GroupId, id, nil, config(r.EncryptHandshake, psks))
	if err != nil {
		return nil, invalid("create group", err)
	}
	sid := c.id()
	c.groups[sid] = &groupState{g: g, psks: psks, sent: map[string][]byte{}}
	return &pb.CreateGroupResponse{StateId: sid}, nil
}

func (c *Client) CreateKeyPackage(_ context.Context, r *pb.CreateKeyPackageRequest) (*pb.CreateKeyPackageResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, err := suiteOf(r.CipherSuite)
	if err != nil {
		return nil, err
	}
	kp, err := newKeyPackage(s, r.Identity)
	if err != nil {
		return nil, invalid("key package", err)
	}
	initPriv, encPriv, sigPriv, err := privateKeys(kp)
	if err != nil {
		return nil, invalid("key package", err)
	}
	tid := c.id()
	c.pending[tid] = &transaction{kp: kp, psks: &mls.PSKMap{}}
	return &pb.CreateKeyPackageResponse{TransactionId: tid, KeyPackage: wrapKeyPackage(kp.KeyPackage),
		InitPriv: initPriv, EncryptionPriv: encPriv, SignaturePriv: sigPriv}, nil
}

func (c *Client) JoinGroup(_ context.Context, r *pb.JoinGroupRequest) (*pb.JoinGroupResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	tx, ok := c.pending[r.TransactionId]
	if !ok {
		return nil, notFound("transaction", r.TransactionId)
	}
	return c.join(r.TransactionId, tx.kp, tx.psks, r.Welcome, r.RatchetTree, r.EncryptHandshake)
}

// join joins from a Welcome and stores the group under a new handle.
func (c *Client) join(txID uint32, kp *mls.KeyPackagePrivate, psks *mls.PSKMap, welcome, tree []byte, encrypt bool) (*pb.JoinGroupResponse, error) {
	w, err := parseMessage("welcome", welcome, mls.WireFormatWelcome)
	if err != nil {
		return nil, err
	}
	nodes, err := parseTree(tree)
	if err != nil {
		return nil, err
	}
	g, err := mls.JoinFromWelcome(w.Welcome, kp, nodes, config(encrypt, psks))
	if err != nil {
		return nil, invalid("join", err)
	}
	delete(c.pending, txID)
	sid := c.id()
	c.groups[sid] = &groupState{g: g, psks: psks, sent: map[string][]byte{}}
	return &pb.JoinGroupResponse{StateId: sid, EpochAuthenticator: g.EpochAuthenticator()}, nil
}

func (c *Client) ExternalJoin(_ context.Context, r *pb.ExternalJoinRequest) (*pb.ExternalJoinResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, err := parseMessage("group info", r.GroupInfo, mls.WireFormatGroupInfo)
	if err != nil {
		return nil, err
	}
	s, err := suiteOf(uint32(m.GroupInfo.GroupContext.CipherSuite))
	if err != nil {
		return nil, err
	}
	nodes, err := parseTree(r.RatchetTree)
	if err != nil {
		return nil, err
	}
	id, err := newIdentity(s, r.Identity)
	if err != nil {
		return nil, invalid("identity", err)
	}
	psks := &mls.PSKMap{}
	opts := mls.ExternalJoinOptions{Tree: nodes}
	for _, p := range r.Psks {
		psks.AddExternal(p.PskId, p.PskSecret)
		opts.PSKs = append(opts.PSKs, mls.NewExternalPSKID(s, p.PskId))
	}
	if r.RemovePrior {
		tree := nodes
		if data, ok := m.GroupInfo.Extensions.Find(mls.ExtRatchetTree); ok {
			if err := mls.Unmarshal(data, &tree); err != nil {
				return nil, invalid("ratchet tree extension", err)
			}
		}
		rt, err := mls.NewRatchetTree(s, tree)
		if err != nil {
			return nil, invalid("ratchet tree", err)
		}
		prior, err := leafOf(rt, r.Identity)
		if err != nil {
			return nil, err
		}
		opts.Resync = &prior
	}
	g, commit, err := mls.JoinExternal(m.GroupInfo, id, opts, config(r.EncryptHandshake, psks))
	if err != nil {
		return nil, invalid("external join", err)
	}
	sid := c.id()
	c.groups[sid] = &groupState{g: g, psks: psks, sent: map[string][]byte{}}
	return &pb.ExternalJoinResponse{StateId: sid, Commit: mls.Marshal(commit), EpochAuthenticator: g.EpochAuthenticator()}, nil
}

func (c *Client) GroupInfo(_ context.Context, r *pb.GroupInfoRequest) (*pb.GroupInfoResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gs, err := c.group(r.StateId)
	if err != nil {
		return nil, err
	}
	info, err := gs.g.GroupInfo(!r.ExternalTree, true)
	if err != nil {
		return nil, invalid("group info", err)
	}
	resp := &pb.GroupInfoResponse{GroupInfo: mls.Marshal(info)}
	if r.ExternalTree {
		resp.RatchetTree = mls.Marshal(gs.g.Tree().TreeNodes())
	}
	return resp, nil
}

func (c *Client) StateAuth(_ context.Context, r *pb.StateAuthRequest) (*pb.StateAuthResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gs, err := c.group(r.StateId)
	if err != nil {
		return nil, err
	}
	return &pb.StateAuthResponse{StateAuthSecret: gs.g.EpochAuthenticator()}, nil
}

func (c *Client) Export(_ context.Context, r *pb.ExportRequest) (*pb.ExportResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gs, err := c.group(r.StateId)
	if err != nil {
		return nil, err
	}
	if r.KeyLength > 1<<16 {
		return nil, status.Errorf(codes.InvalidArgument, "export length %d is too long", r.KeyLength)
	}
	out, err := gs.g.Export(r.Label, r.Context, int(r.KeyLength))
	if err != nil {
		return nil, invalid("export", err)
	}
	return &pb.ExportResponse{ExportedSecret: out}, nil
}

func (c *Client) Protect(_ context.Context, r *pb.ProtectRequest) (*pb.ProtectResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gs, err := c.group(r.StateId)
	if err != nil {
		return nil, err
	}
	m, err := gs.g.Encrypt(r.Plaintext, r.AuthenticatedData)
	if err != nil {
		return nil, invalid("protect", err)
	}
	return &pb.ProtectResponse{Ciphertext: mls.Marshal(m)}, nil
}

func (c *Client) Unprotect(_ context.Context, r *pb.UnprotectRequest) (*pb.UnprotectResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gs, err := c.group(r.StateId)
	if err != nil {
		return nil, err
	}
	m, err := parseMessage("ciphertext", r.Ciphertext, mls.WireFormatPrivateMessage)
	if err != nil {
		return nil, err
	}
	got, err := gs.g.ProcessMessage(m)
	if err != nil {
		return nil, invalid("unprotect", err)
	}
	if got.ContentType != mls.ContentApplication {
		return nil, status.Errorf(codes.InvalidArgument, "unprotect: the message holds a %v, not application data", got.ContentType)
	}
	return &pb.UnprotectResponse{AuthenticatedData: got.AuthenticatedData, Plaintext: got.ApplicationData}, nil
}

func (c *Client) StorePSK(_ context.Context, r *pb.StorePSKRequest) (*pb.StorePSKResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.groups[r.StateOrTransactionId] != nil:
		c.groups[r.StateOrTransactionId].psks.AddExternal(r.PskId, r.PskSecret)
	case c.pending[r.StateOrTransactionId] != nil:
		c.pending[r.StateOrTransactionId].psks.AddExternal(r.PskId, r.PskSecret)
	default:
		return nil, notFound("group state or transaction", r.StateOrTransactionId)
	}
	return &pb.StorePSKResponse{}, nil
}

// propose sends a proposal of this member's and remembers its bytes.
func (c *Client) propose(id uint32, build func(gs *groupState) (*mls.Proposal, error)) (*pb.ProposalResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gs, err := c.group(id)
	if err != nil {
		return nil, err
	}
	p, err := build(gs)
	if err != nil {
		return nil, err
	}
	m, ref, err := gs.g.Propose(p, nil)
	if err != nil {
		return nil, invalid("proposal", err)
	}
	data := mls.Marshal(m)
	gs.sent[string(data)] = ref
	return &pb.ProposalResponse{Proposal: data}, nil
}

// proposeDescribed sends the proposal a framework description names; the
// single-proposal RPCs are descriptions with one field set.
func (c *Client) proposeDescribed(id uint32, d *pb.ProposalDescription) (*pb.ProposalResponse, error) {
	return c.propose(id, func(gs *groupState) (*mls.Proposal, error) {
		return describe(gs.g.Suite(), d, gs.g.Tree(), gs.g.GroupID())
	})
}

func (c *Client) AddProposal(_ context.Context, r *pb.AddProposalRequest) (*pb.ProposalResponse, error) {
	return c.proposeDescribed(r.StateId, &pb.ProposalDescription{ProposalType: []byte("add"), KeyPackage: r.KeyPackage})
}

func (c *Client) UpdateProposal(_ context.Context, r *pb.UpdateProposalRequest) (*pb.ProposalResponse, error) {
	return c.propose(r.StateId, func(gs *groupState) (*mls.Proposal, error) {
		p, err := gs.g.NewUpdateProposal(nil, nil)
		return p, invalid("update", err)
	})
}

func (c *Client) RemoveProposal(_ context.Context, r *pb.RemoveProposalRequest) (*pb.ProposalResponse, error) {
	return c.proposeDescribed(r.StateId, &pb.ProposalDescription{ProposalType: []byte("remove"), RemovedId: r.RemovedId})
}

func (c *Client) ExternalPSKProposal(_ context.Context, r *pb.ExternalPSKProposalRequest) (*pb.ProposalResponse, error) {
	return c.proposeDescribed(r.StateId, &pb.ProposalDescription{ProposalType: []byte("externalPSK"), PskId: r.PskId})
}

func (c *Client) ResumptionPSKProposal(_ context.Context, r *pb.ResumptionPSKProposalRequest) (*pb.ProposalResponse, error) {
	return c.proposeDescribed(r.StateId, &pb.ProposalDescription{ProposalType: []byte("resumptionPSK"), EpochId: r.EpochId})
}

func (c *Client) GroupContextExtensionsProposal(_ context.Context, r *pb.GroupContextExtensionsProposalRequest) (*pb.ProposalResponse, error) {
	return c.proposeDescribed(r.StateId, &pb.ProposalDescription{ProposalType: []byte("groupContextExtensions"), Extensions: r.Extensions})
}

func (c *Client) ReInitProposal(_ context.Context, r *pb.ReInitProposalRequest) (*pb.ProposalResponse, error) {
	return c.proposeDescribed(r.StateId, &pb.ProposalDescription{ProposalType: []byte("reinit"), GroupId: r.GroupId, CipherSuite: r.CipherSuite, Extensions: r.Extensions})
}

func reinitProposal(groupID []byte, suite uint32, exts []*pb.Extension) (*mls.Proposal, error) {
	if _, err := suiteOf(suite); err != nil {
		return nil, err
	}
	e, err := extensions(exts)
	if err != nil {
		return nil, err
	}
	return &mls.Proposal{Type: mls.ProposalReInit, ReInit: &mls.ReInit{GroupID: groupID, Version: mls.MLS10, CipherSuite: mls.CipherSuite(suite), Extensions: e}}, nil // #nosec G115 -- suiteOf above accepts only suites this library has
}

// describe turns a framework proposal description into a proposal. tree
// resolves identities for removes; groupID names this group for
// resumption PSKs.
func describe(s *mls.Suite, d *pb.ProposalDescription, tree *mls.RatchetTree, groupID []byte) (*mls.Proposal, error) {
	if d == nil {
		return nil, status.Error(codes.InvalidArgument, "missing proposal description")
	}
	switch string(d.ProposalType) {
	case "add":
		kp, err := parseKeyPackage(d.KeyPackage)
		if err != nil {
			return nil, err
		}
		return &mls.Proposal{Type: mls.ProposalAdd, Add: kp}, nil
	case "remove":
		l, err := leafOf(tree, d.RemovedId)
		if err != nil {
			return nil, err
		}
		return &mls.Proposal{Type: mls.ProposalRemove, Remove: l}, nil
	case "externalPSK":
		id := mls.NewExternalPSKID(s, d.PskId)
		return &mls.Proposal{Type: mls.ProposalPSK, PSK: &id}, nil
	case "resumptionPSK":
		id := mls.NewResumptionPSKID(s, mls.ResumptionApplication, groupID, d.EpochId)
		return &mls.Proposal{Type: mls.ProposalPSK, PSK: &id}, nil
	case "groupContextExtensions":
		exts, err := extensions(d.Extensions)
		if err != nil {
			return nil, err
		}
		return &mls.Proposal{Type: mls.ProposalGroupContextExtensions, Extensions: exts}, nil
	case "reinit":
		return reinitProposal(d.GroupId, d.CipherSuite, d.Extensions)
	}
	return nil, status.Errorf(codes.InvalidArgument, "unknown proposal type %q", d.ProposalType)
}

// takeProposals makes the member know each proposal message: its own by
// the bytes it sent, others' by processing them. It returns their refs.
func takeProposals(gs *groupState, msgs [][]byte) ([][]byte, error) {
	refs := make([][]byte, 0, len(msgs))
	for i, data := range msgs {
		if ref, ok := gs.sent[string(data)]; ok {
			refs = append(refs, ref)
			continue
		}
		m, err := mls.ParseMLSMessage(data)
		if err != nil {
			return nil, invalid(fmt.Sprintf("proposal %d", i), err)
		}
		got, err := gs.g.ProcessMessage(m)
		if err != nil {
			return nil, invalid(fmt.Sprintf("proposal %d", i), err)
		}
		if got.ContentType != mls.ContentProposal {
			return nil, status.Errorf(codes.InvalidArgument, "proposal %d holds a %v", i, got.ContentType)
		}
		refs = append(refs, got.ProposalRef)
	}
	return refs, nil
}

func (c *Client) Commit(_ context.Context, r *pb.CommitRequest) (*pb.CommitResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gs, err := c.group(r.StateId)
	if err != nil {
		return nil, err
	}
	refs, err := takeProposals(gs, r.ByReference)
	if err != nil {
		return nil, err
	}
	opts := mls.CommitOptions{ProposalRefs: refs, ForcePath: r.ForcePath, InlineTree: !r.ExternalTree}
	for _, d := range r.ByValue {
		p, err := describe(gs.g.Suite(), d, gs.g.Tree(), gs.g.GroupID())
		if err != nil {
			return nil, err
		}
		opts.Proposals = append(opts.Proposals, p)
	}
	res, err := gs.g.Commit(opts)
	if err != nil {
		return nil, invalid("commit", err)
	}
	resp := &pb.CommitResponse{Commit: mls.Marshal(res.Commit)}
	if res.Welcome != nil {
		resp.Welcome = mls.Marshal(res.Welcome)
	}
	if r.ExternalTree {
		resp.RatchetTree = mls.Marshal(res.RatchetTree)
	}
	return resp, nil
}

func (c *Client) ReInitCommit(ctx context.Context, r *pb.CommitRequest) (*pb.CommitResponse, error) {
	return c.Commit(ctx, r)
}

// handleCommit processes the proposals a commit refers to, then the commit.
func (c *Client) handleCommit(r *pb.HandleCommitRequest) (*groupState, error) {
	gs, err := c.group(r.StateId)
	if err != nil {
		return nil, err
	}
	if _, err := takeProposals(gs, r.Proposal); err != nil {
		return nil, err
	}
	m, err := mls.ParseMLSMessage(r.Commit)
	if err != nil {
		return nil, invalid("commit", err)
	}
	got, err := gs.g.ProcessMessage(m)
	if err != nil {
		return nil, invalid("commit", err)
	}
	if got.Commit == nil {
		return nil, status.Errorf(codes.InvalidArgument, "commit: the message holds a %v", got.ContentType)
	}
	return gs, nil
}

func (c *Client) HandleCommit(_ context.Context, r *pb.HandleCommitRequest) (*pb.HandleCommitResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gs, err := c.handleCommit(r)
	if err != nil {
		return nil, err
	}
	return &pb.HandleCommitResponse{StateId: r.StateId, EpochAuthenticator: gs.g.EpochAuthenticator()}, nil
}

func (c *Client) HandlePendingCommit(_ context.Context, r *pb.HandlePendingCommitRequest) (*pb.HandleCommitResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gs, err := c.group(r.StateId)
	if err != nil {
		return nil, err
	}
	if _, err := gs.g.MergePendingCommit(); err != nil {
		return nil, invalid("pending commit", err)
	}
	return &pb.HandleCommitResponse{StateId: r.StateId, EpochAuthenticator: gs.g.EpochAuthenticator()}, nil
}

// startReInit records a member whose group committed a ReInit and makes its
// KeyPackage for the new group.
func (c *Client) startReInit(gs *groupState) (*pb.HandleReInitCommitResponse, error) {
	r := gs.g.PendingReInit()
	if r == nil {
		return nil, status.Error(codes.InvalidArgument, "the commit holds no ReInit proposal")
	}
	s, err := suiteOf(uint32(r.CipherSuite))
	if err != nil {
		return nil, err
	}
	leaf := gs.g.Tree().Leaf(gs.g.OwnLeaf())
	id, err := newIdentity(s, leaf.Credential.Identity)
	if err != nil {
		return nil, invalid("identity", err)
	}
	kp, err := mls.NewKeyPackage(s, id.Signer, id.Credential, mls.KeyPackageOptions{})
	if err != nil {
		return nil, invalid("key package", err)
	}
	rid := c.id()
	c.reinits[rid] = &reinitState{old: gs, identity: id, kp: kp}
	return &pb.HandleReInitCommitResponse{ReinitId: rid, KeyPackage: wrapKeyPackage(kp.KeyPackage), EpochAuthenticator: gs.g.EpochAuthenticator()}, nil
}

func (c *Client) HandlePendingReInitCommit(_ context.Context, r *pb.HandlePendingCommitRequest) (*pb.HandleReInitCommitResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gs, err := c.group(r.StateId)
	if err != nil {
		return nil, err
	}
	if _, err := gs.g.MergePendingCommit(); err != nil {
		return nil, invalid("pending commit", err)
	}
	return c.startReInit(gs)
}

func (c *Client) HandleReInitCommit(_ context.Context, r *pb.HandleCommitRequest) (*pb.HandleReInitCommitResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gs, err := c.handleCommit(r)
	if err != nil {
		return nil, err
	}
	return c.startReInit(gs)
}

func (c *Client) ReInitWelcome(_ context.Context, r *pb.ReInitWelcomeRequest) (*pb.CreateSubgroupResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ri, ok := c.reinits[r.ReinitId]
	if !ok {
		return nil, notFound("reinit", r.ReinitId)
	}
	kps, err := keyPackages(r.KeyPackage)
	if err != nil {
		return nil, err
	}
	g, res, err := ri.old.g.ReInitSuccessor(ri.identity, kps, mls.CommitOptions{ForcePath: r.ForcePath, InlineTree: !r.ExternalTree})
	if err != nil {
		return nil, invalid("reinit", err)
	}
	delete(c.reinits, r.ReinitId)
	return c.subgroup(g, ri.old, res, r.ExternalTree), nil
}

func keyPackages(data [][]byte) ([]*mls.KeyPackage, error) {
	out := make([]*mls.KeyPackage, len(data))
	for i, d := range data {
		kp, err := parseKeyPackage(d)
		if err != nil {
			return nil, err
		}
		out[i] = kp
	}
	return out, nil
}

// subgroup stores a new reinitialized or branched group.
func (c *Client) subgroup(g *mls.Group, old *groupState, res *mls.CommitResult, externalTree bool) *pb.CreateSubgroupResponse {
	sid := c.id()
	c.groups[sid] = &groupState{g: g, psks: old.psks, sent: map[string][]byte{}}
	resp := &pb.CreateSubgroupResponse{StateId: sid, EpochAuthenticator: g.EpochAuthenticator()}
	if res.Welcome != nil {
		resp.Welcome = mls.Marshal(res.Welcome)
	}
	if externalTree {
		resp.RatchetTree = mls.Marshal(res.RatchetTree)
	}
	return resp
}

// resumptionStore gives a joiner the old group's current resumption PSK.
func resumptionStore(old *groupState) (*mls.PSKMap, error) {
	psks := &mls.PSKMap{External: old.psks.External}
	psk, ok := old.g.ResumptionPSKOf(old.g.Epoch())
	if !ok {
		return nil, status.Error(codes.Internal, "no resumption PSK kept for the current epoch")
	}
	psks.AddResumption(old.g.GroupID(), old.g.Epoch(), psk)
	return psks, nil
}

func (c *Client) HandleReInitWelcome(_ context.Context, r *pb.HandleReInitWelcomeRequest) (*pb.JoinGroupResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ri, ok := c.reinits[r.ReinitId]
	if !ok {
		return nil, notFound("reinit", r.ReinitId)
	}
	psks, err := resumptionStore(ri.old)
	if err != nil {
		return nil, err
	}
	resp, err := c.join(0, ri.kp, psks, r.Welcome, r.RatchetTree, ri.old.g.Config().EncryptHandshake)
	if err != nil {
		return nil, err
	}
	delete(c.reinits, r.ReinitId)
	return resp, nil
}

func (c *Client) CreateBranch(_ context.Context, r *pb.CreateBranchRequest) (*pb.CreateSubgroupResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gs, err := c.group(r.StateId)
	if err != nil {
		return nil, err
	}
	exts, err := extensions(r.Extensions)
	if err != nil {
		return nil, err
	}
	kps, err := keyPackages(r.KeyPackages)
	if err != nil {
		return nil, err
	}
	g, res, err := gs.g.Branch(r.GroupId, exts, kps, mls.CommitOptions{ForcePath: r.ForcePath, InlineTree: !r.ExternalTree})
	if err != nil {
		return nil, invalid("branch", err)
	}
	return c.subgroup(g, gs, res, r.ExternalTree), nil
}

func (c *Client) HandleBranch(_ context.Context, r *pb.HandleBranchRequest) (*pb.HandleBranchResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gs, err := c.group(r.StateId)
	if err != nil {
		return nil, err
	}
	tx, ok := c.pending[r.TransactionId]
	if !ok {
		return nil, notFound("transaction", r.TransactionId)
	}
	psks, err := resumptionStore(gs)
	if err != nil {
		return nil, err
	}
	resp, err := c.join(r.TransactionId, tx.kp, psks, r.Welcome, r.RatchetTree, gs.g.Config().EncryptHandshake)
	if err != nil {
		return nil, err
	}
	return &pb.HandleBranchResponse{StateId: resp.StateId, EpochAuthenticator: resp.EpochAuthenticator}, nil
}

func (c *Client) NewMemberAddProposal(_ context.Context, r *pb.NewMemberAddProposalRequest) (*pb.NewMemberAddProposalResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, err := parseMessage("group info", r.GroupInfo, mls.WireFormatGroupInfo)
	if err != nil {
		return nil, err
	}
	gc := &m.GroupInfo.GroupContext
	s, err := suiteOf(uint32(gc.CipherSuite))
	if err != nil {
		return nil, err
	}
	kp, err := newKeyPackage(s, r.Identity)
	if err != nil {
		return nil, invalid("key package", err)
	}
	msg, err := mls.NewMemberAddProposal(s, gc.GroupID, gc.Epoch, kp, nil)
	if err != nil {
		return nil, invalid("proposal", err)
	}
	initPriv, encPriv, sigPriv, err := privateKeys(kp)
	if err != nil {
		return nil, invalid("key package", err)
	}
	tid := c.id()
	c.pending[tid] = &transaction{kp: kp, psks: &mls.PSKMap{}}
	return &pb.NewMemberAddProposalResponse{TransactionId: tid, Proposal: mls.Marshal(msg),
		InitPriv: initPriv, EncryptionPriv: encPriv, SignaturePriv: sigPriv}, nil
}

func (c *Client) CreateExternalSigner(_ context.Context, r *pb.CreateExternalSignerRequest) (*pb.CreateExternalSignerResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, err := suiteOf(r.CipherSuite)
	if err != nil {
		return nil, err
	}
	id, err := newIdentity(s, r.Identity)
	if err != nil {
		return nil, invalid("identity", err)
	}
	sid := c.id()
	c.signers[sid] = &externalSigner{suite: s, signer: id.Signer}
	sender := mls.ExternalSender{SignatureKey: id.Signer.PublicKey(), Credential: id.Credential}
	w := mls.NewWriter(128)
	w.Opaque(sender.SignatureKey)
	sender.Credential.MarshalMLS(w)
	return &pb.CreateExternalSignerResponse{SignerId: sid, ExternalSender: w.Bytes()}, nil
}

func (c *Client) AddExternalSigner(_ context.Context, r *pb.AddExternalSignerRequest) (*pb.ProposalResponse, error) {
	return c.propose(r.StateId, func(gs *groupState) (*mls.Proposal, error) {
		var sender mls.ExternalSender
		rd := mls.NewReader(r.ExternalSender)
		sender.SignatureKey = rd.OpaqueCopy()
		sender.Credential.UnmarshalMLS(rd)
		if err := rd.Finish(); err != nil {
			return nil, invalid("external sender", err)
		}
		ctx := gs.g.Context()
		var senders mls.ExternalSenders
		var exts mls.Extensions
		for _, e := range ctx.Extensions {
			if e.Type == mls.ExtExternalSenders {
				if err := mls.Unmarshal(e.Data, &senders); err != nil {
					return nil, invalid("external_senders extension", err)
				}
				continue
			}
			exts = append(exts, e)
		}
		senders = append(senders, sender)
		exts = append(exts, mls.Extension{Type: mls.ExtExternalSenders, Data: mls.Marshal(senders)})
		return &mls.Proposal{Type: mls.ProposalGroupContextExtensions, Extensions: exts}, nil
	})
}

func (c *Client) ExternalSignerProposal(_ context.Context, r *pb.ExternalSignerProposalRequest) (*pb.ProposalResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	es, ok := c.signers[r.SignerId]
	if !ok {
		return nil, notFound("external signer", r.SignerId)
	}
	m, err := parseMessage("group info", r.GroupInfo, mls.WireFormatGroupInfo)
	if err != nil {
		return nil, err
	}
	gc := &m.GroupInfo.GroupContext
	// The signer finds its own index in the group's external_senders.
	var senders mls.ExternalSenders
	if data, ok := gc.Extensions.Find(mls.ExtExternalSenders); ok {
		if err := mls.Unmarshal(data, &senders); err != nil {
			return nil, invalid("external_senders extension", err)
		}
	}
	index := -1
	for i, s := range senders {
		if bytes.Equal(s.SignatureKey, es.signer.PublicKey()) {
			index = i
		}
	}
	if index < 0 {
		return nil, status.Error(codes.FailedPrecondition, "this signer is not in the group's external_senders")
	}
	nodes, err := parseTree(r.RatchetTree)
	if err != nil {
		return nil, err
	}
	if data, ok := m.GroupInfo.Extensions.Find(mls.ExtRatchetTree); ok && nodes == nil {
		if err := mls.Unmarshal(data, &nodes); err != nil {
			return nil, invalid("ratchet tree extension", err)
		}
	}
	var tree *mls.RatchetTree
	if nodes != nil {
		if tree, err = mls.NewRatchetTree(es.suite, nodes); err != nil {
			return nil, invalid("ratchet tree", err)
		}
	}
	if tree == nil && string(r.Description.GetProposalType()) == "remove" {
		return nil, status.Error(codes.InvalidArgument, "a remove needs the ratchet tree")
	}
	p, err := describe(es.suite, r.Description, tree, gc.GroupID)
	if err != nil {
		return nil, err
	}
	msg, err := mls.ExternalProposal(es.suite, gc.GroupID, gc.Epoch, uint32(index), es.signer, p, nil)
	if err != nil {
		return nil, invalid("external proposal", err)
	}
	return &pb.ProposalResponse{Proposal: mls.Marshal(msg)}, nil
}

func (c *Client) Free(_ context.Context, r *pb.FreeRequest) (*pb.FreeResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.groups[r.StateId]; !ok {
		return nil, notFound("group state", r.StateId)
	}
	delete(c.groups, r.StateId)
	return &pb.FreeResponse{}, nil
}
