package provider

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/store/sqlite"
)

// apiCodes are the stable error codes of docs/api.md: a refusal of the
// client API must carry one of them.
var apiCodes = map[string]bool{
	"bad_request": true, "invalid_message": true, "unauthenticated": true, "forbidden": true,
	"not_found": true, "conflict": true, "wrong_epoch": true, "gone": true, "too_large": true,
	"unsupported_media_type": true, "no_key_packages": true, "key_package_used": true,
	"suspended": true, "frank_invalid": true, "unavailable": true, "rate_limited": true,
}

// bodyEndpoint is one request of the client API that carries a JSON body.
type bodyEndpoint struct {
	method, path string
	authed       bool
}

// apiFuzzEnv is alice, signed in on a real green.example (SQLite store,
// its real handler), in a room of her own, and bob with KeyPackages.
type apiFuzzEnv struct {
	srv       *Server
	h         http.Handler
	dbPath    string
	token     string
	endpoints []bodyEndpoint
	seeds     map[int][][]byte // valid bodies, by endpoint
	roomURI   string           // alice's room, hosted here
	fanout    []byte           // a notify body of an application message of the room
}

func newAPIFuzzEnv(f *testing.F) *apiFuzzEnv {
	ctx := context.Background()
	dir := f.TempDir()
	e := &apiFuzzEnv{dbPath: filepath.Join(dir, "provider.db"), seeds: map[int][][]byte{}}
	st, err := sqlite.Open(e.dbPath)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	ca, err := identity.NewCA("green.example")
	if err != nil {
		f.Fatal(err)
	}
	// No rate limits: the fuzzer sends far more than any person would,
	// and a 429 for everything would hide the decoders behind it.
	off := RateLimit{Every: -1, Burst: -1}
	e.srv, err = New(Config{Domain: "green.example", UserMessageLimit: off, RoomLimit: off, UserDiscoveryLimit: off}, st, ca, nil)
	if err != nil {
		f.Fatal(err)
	}
	e.h = e.srv.Handler()
	fn := &fedNode{domain: "green.example", ca: ca, st: st, srv: e.srv}
	fn.addDevice(f, "bob", "+49 30 901821", "phone", 3, true)

	// alice registers and signs in through the API, as her client would.
	_, code, err := AddUser(ctx, st, "alice", "+41 44 668 18 01", 0)
	if err != nil {
		f.Fatal(err)
	}
	authPub, authKey, _ := ed25519.GenerateKey(rand.Reader)
	second, _, _ := ed25519.GenerateKey(rand.Reader)
	e.call(f, "POST", "/v1/devices", "", map[string]any{"enrollment_code": code, "device_name": "laptop", "auth_key": authPub}, nil)
	var ch struct{ Challenge []byte }
	e.call(f, "POST", "/v1/auth/challenge", "", map[string]any{"auth_key": authPub}, &ch)
	var sess struct{ Token string }
	e.call(f, "POST", "/v1/auth/session", "", map[string]any{"auth_key": authPub, "challenge": ch.Challenge,
		"signature": ed25519.Sign(authKey, SignInMessage("green.example", ch.Challenge))}, &sess)
	e.token = sess.Token

	suite, err := mls.SuiteFor(mls.X25519AES128GCMSHA256Ed25519)
	if err != nil {
		f.Fatal(err)
	}
	signer, err := suite.GenerateSignatureKey()
	if err != nil {
		f.Fatal(err)
	}
	credReq := map[string]any{"cipher_suite": uint16(suite.ID), "signature_key": signer.PublicKey()}
	var credResp struct{ Credential []byte }
	e.call(f, "POST", "/v1/me/credentials", e.token, credReq, &credResp)
	var cred mls.Credential
	if err := mls.Unmarshal(credResp.Credential, &cred); err != nil {
		f.Fatal(err)
	}
	kp, err := mls.NewKeyPackage(suite, signer, cred, mls.KeyPackageOptions{})
	if err != nil {
		f.Fatal(err)
	}
	kpMsg := mls.Marshal(&mls.MLSMessage{Version: mls.MLS10, WireFormat: mls.WireFormatKeyPackage, KeyPackage: kp.KeyPackage})
	g, err := mls.CreateGroup(suite, []byte("fuzz-room-of-alice"), mls.Identity{Signer: signer, Credential: cred}, nil, mls.GroupConfig{})
	if err != nil {
		f.Fatal(err)
	}
	info, err := g.GroupInfo(false, true)
	if err != nil {
		f.Fatal(err)
	}
	createReq := map[string]any{"group_info": mls.Marshal(info), "ratchet_tree": g.MarshalTree()}
	e.call(f, "POST", "/v1/rooms", e.token, createReq, nil)
	room := roomID(g.GroupID())
	e.roomURI = "mimi://green.example/r/" + room
	app, err := g.Encrypt([]byte("hello"), nil)
	if err != nil {
		f.Fatal(err)
	}
	e.fanout = federation.MarshalFanout(federation.FanoutMessage{Timestamp: 1, Message: *app})
	// A second group, not yet a room, whose creation the fuzzer may vary.
	g2, err := mls.CreateGroup(suite, []byte("fuzz-room-two"), mls.Identity{Signer: signer, Credential: cred}, nil, mls.GroupConfig{})
	if err != nil {
		f.Fatal(err)
	}
	info2, err := g2.GroupInfo(false, true)
	if err != nil {
		f.Fatal(err)
	}

	bob := identity.UserURI("green.example", "bob").String()
	e.endpoints = []bodyEndpoint{
		{"POST", "/v1/devices", false},
		{"POST", "/v1/auth/challenge", false},
		{"POST", "/v1/auth/session", false},
		{"PUT", "/v1/me/discovery", true},
		{"PUT", "/v1/me/reachability", true},
		{"POST", "/v1/discovery", true},
		{"POST", "/v1/requests/accept", true},
		{"POST", "/v1/requests/decline", true},
		{"PUT", "/v1/contacts/" + strings.ReplaceAll(bob, "/", "%2F"), true},
		{"POST", "/v1/me/credentials", true},
		{"POST", "/v1/me/keypackages", true},
		{"POST", "/v1/users/bob/keypackages", true},
		{"POST", "/v1/rooms", true},
		{"POST", "/v1/rooms/" + room + "/messages", true},
		{"POST", "/v1/rooms/" + room + "/reports", true},
		{"POST", "/v1/inbox/ack", true},
	}
	add := func(i int, v any) {
		b, err := json.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		e.seeds[i] = append(e.seeds[i], b)
	}
	add(0, map[string]any{"enrollment_code": "ABCD-EFGH", "device_name": "phone", "auth_key": second})
	add(1, map[string]any{"auth_key": second})
	add(2, map[string]any{"auth_key": authPub, "challenge": []byte("stale"), "signature": make([]byte, 64)})
	add(3, map[string]any{"by_handle": true, "by_phone": false})
	add(4, map[string]any{"mode": "partners", "partners": []string{"blue.example"}})
	add(5, map[string]any{"handle": "bob", "domain": "green.example"})
	add(5, map[string]any{"phone": "+49 30 901821"})
	add(6, map[string]any{"peer": bob, "room": room})
	add(7, map[string]any{"peer": bob, "room": room})
	add(8, map[string]any{"state": "blocked"})
	add(8, map[string]any{"state": "none"})
	add(9, credReq)
	add(10, map[string]any{"key_packages": [][]byte{kpMsg}})
	add(11, map[string]any{"cipher_suite": uint16(suite.ID)})
	add(12, map[string]any{"group_info": mls.Marshal(info2), "ratchet_tree": g2.MarshalTree()})
	add(13, map[string]any{"client_id": "cid-fuzz-0001", "message": mls.Marshal(app)})
	add(14, map[string]any{"alleged_abuser": bob, "messages": []map[string]any{{"content": []byte{0x87}, "frank": []byte{0, 1}}}})
	add(15, map[string]any{"cursor": 0})
	return e
}

// call makes one request that must succeed; out, if not nil, gets the
// answer.
func (e *apiFuzzEnv) call(f *testing.F, method, path, token string, in, out any) {
	f.Helper()
	body, _ := json.Marshal(in)
	w := e.do(method, path, token, body)
	if w.Code >= 300 {
		f.Fatalf("%s %s: %d %s", method, path, w.Code, w.Body)
	}
	if out != nil {
		if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
			f.Fatal(err)
		}
	}
}

func (e *apiFuzzEnv) do(method, path, token string, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

// dump renders every row of every table, read by a connection of its own.
func (e *apiFuzzEnv) dump(t *testing.T) string {
	db, err := sql.Open("sqlite", "file:"+e.dbPath+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var tables []string
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	var out strings.Builder
	for _, table := range tables {
		rows, err := db.Query(`SELECT * FROM "` + table + `"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		out.WriteString(table + "\n")
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for _, v := range vals {
				if b, ok := v.([]byte); ok {
					v = hex.EncodeToString(b)
				}
				fmt.Fprintf(&out, "%v|", v)
			}
			out.WriteByte('\n')
		}
		rows.Close()
	}
	return out.String()
}

// FuzzClientAPI sends whatever body a device (or anyone, for the requests
// that come before sign-in) could send to every request of the client API
// that reads a JSON body, through the provider's real handler. The
// provider must never fail inside (500); a refusal must be a JSON error
// with one of the stable codes and a request ID; and a refused request
// must leave every row of the database as it was.
func FuzzClientAPI(f *testing.F) {
	e := newAPIFuzzEnv(f)
	for i := range e.endpoints {
		for _, b := range e.seeds[i] {
			f.Add(uint8(i), b)
		}
		f.Add(uint8(i), []byte(`{}`))
		f.Add(uint8(i), []byte(`{"unknown": 1}`))
		f.Add(uint8(i), []byte(`[`))
	}
	f.Add(uint8(13), []byte(`{"client_id":"cid-x","message":"AAEAAg=="}{"trailing":true}`))
	f.Add(uint8(10), []byte(`{"key_packages":["AAEABQ=="],"last_resort":"AAE="}`))
	f.Add(uint8(3), []byte(`{"by_handle":true,"by_phone":false}}`))
	f.Add(uint8(12), []byte(`{"group_info":"AAEABA==","ratchet_tree":"AAAA"}`))
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		ep := e.endpoints[int(which)%len(e.endpoints)]
		token := ""
		if ep.authed {
			token = e.token
		}
		before := e.dump(t)
		w := e.do(ep.method, ep.path, token, body)
		if w.Code < 400 {
			return
		}
		if w.Code >= 500 && w.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s %s failed inside: %d %s", ep.method, ep.path, w.Code, w.Body)
		}
		var eb errorBody
		if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil || !apiCodes[eb.Error.Code] || eb.Error.RequestID == "" {
			t.Fatalf("%s %s: refusal %d is not an API error with a stable code: %s", ep.method, ep.path, w.Code, w.Body)
		}
		if after := e.dump(t); after != before {
			t.Fatalf("%s %s: the refusal %s changed the database", ep.method, ep.path, w.Body)
		}
	})
}

// A body with anything after its JSON object, even a lone closing brace
// (which json.Decoder.More lets pass), is refused: found by fuzzing the
// trust file, whose reader had the same check.
func TestTrailingDataIsRefused(t *testing.T) {
	s := newTestServer(t)
	for _, body := range []string{`{"cursor":1}}`, `{"cursor":1}]`, `{"cursor":1} {}`, `{"cursor":1} x`} {
		var v struct {
			Cursor int64 `json:"cursor"`
		}
		r := httptest.NewRequest(http.MethodPost, "/v1/inbox/ack", strings.NewReader(body))
		err := s.readJSON(r, &v)
		if e, ok := err.(*Error); !ok || e.Code != "bad_request" {
			t.Errorf("%q: %v, want bad_request", body, err)
		}
	}
	var v struct{ Cursor int64 }
	if err := s.readJSON(httptest.NewRequest(http.MethodPost, "/v1/inbox/ack", strings.NewReader("{\"cursor\":1}\n\t ")), &v); err != nil || v.Cursor != 1 {
		t.Errorf("a body with trailing white space: %v", err)
	}
}
