package client_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/mls"
)

// fakeProvider is a small in-memory provider that speaks docs/api.md well
// enough to drive the SDK through real scenarios before (and alongside)
// the real server. It is a hub that orders messages, accepts one commit
// per epoch (and, strictly, only messages of the current epoch), routes
// Welcomes by KeyPackageRef and keeps per-device queues.
//
// Simplifications: no room policy; a room's fan-out set is every device
// that was ever welcomed into it (removed devices drop what they get,
// which also exercises that path).
type fakeProvider struct {
	t      testing.TB
	domain string
	srv    *httptest.Server
	ca     *identity.CA
	caDER  []byte

	mu          sync.Mutex
	users       map[string]*fakeUser   // by handle
	enrollments map[string]string      // code → handle
	authKeys    map[string]*fakeDevice // by hex auth key
	challenges  map[string]bool
	sessions    map[string]*fakeDevice
	rooms       map[string]*fakeRoom
	kpOwner     map[string]*fakeDevice // hex KeyPackageRef → device
	nextDevice  int64

	// failAfterStore makes the next room POSTs store the message and then
	// answer 503, as a provider that crashed before replying would, to
	// test that retries with the same client_id store nothing twice.
	failAfterStore int
	// wrongEpochs counts the messages refused for their epoch.
	wrongEpochs int
}

type fakeUser struct {
	handle  string
	devices []*fakeDevice
}

type fakeDevice struct {
	id         int64
	name       string
	user       *fakeUser
	authKey    ed25519.PublicKey
	kps        [][]byte // MLSMessage KeyPackages, fresh
	lastResort []byte
	queue      []fakeEntry
	nextCursor int64
	wake       chan struct{}
	// notices are hints for open streams only, as in the real provider:
	// a device without a stream misses them.
	streams int
	notices []fakeEntry
}

type fakeEntry struct {
	Type        string       `json:"type,omitempty"`
	Cursor      int64        `json:"cursor,omitempty"`
	Message     *fakeMessage `json:"message,omitempty"`
	CipherSuite uint16       `json:"cipher_suite,omitempty"`
	Available   int          `json:"available,omitempty"`
	Device      string       `json:"device,omitempty"`
}

type fakeMessage struct {
	ID      string     `json:"id"`
	Room    string     `json:"room"`
	Seq     int64      `json:"seq"`
	Kind    string     `json:"kind"`
	Epoch   uint64     `json:"epoch"`
	Sender  fakeSender `json:"sender"`
	Payload []byte     `json:"payload"`
	Created time.Time  `json:"created"`

	clientID string
	to       []*fakeDevice // welcome recipients
}

type fakeSender struct {
	User   string `json:"user"`
	Device string `json:"device"`
}

type fakeRoom struct {
	id      string
	epoch   uint64
	log     []*fakeMessage
	members map[*fakeDevice]bool
	byID    map[string]*fakeMessage // client_id → message
}

const lowWatermark = 10

func newFakeProvider(t testing.TB) *fakeProvider {
	p := &fakeProvider{
		t:           t,
		domain:      "green.test",
		users:       map[string]*fakeUser{},
		enrollments: map[string]string{},
		authKeys:    map[string]*fakeDevice{},
		challenges:  map[string]bool{},
		sessions:    map[string]*fakeDevice{},
		rooms:       map[string]*fakeRoom{},
		kpOwner:     map[string]*fakeDevice{},
	}
	ca, err := identity.NewCA(p.domain)
	if err != nil {
		t.Fatal(err)
	}
	p.ca, p.caDER = ca, ca.Certificate().Raw

	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/provider", p.provider)
	mux.HandleFunc("POST /v1/devices", p.register)
	mux.HandleFunc("POST /v1/auth/challenge", p.challenge)
	mux.HandleFunc("POST /v1/auth/session", p.session)
	mux.HandleFunc("GET /v1/me", p.auth(p.me))
	mux.HandleFunc("GET /v1/me/devices", p.auth(p.myDevices))
	mux.HandleFunc("POST /v1/me/credentials", p.auth(p.credentials))
	mux.HandleFunc("POST /v1/me/keypackages", p.auth(p.uploadKPs))
	mux.HandleFunc("GET /v1/me/keypackages", p.auth(p.stockKPs))
	mux.HandleFunc("POST /v1/users/{handle}/keypackages", p.auth(p.claimKPs))
	mux.HandleFunc("POST /v1/rooms", p.auth(p.createRoom))
	mux.HandleFunc("POST /v1/rooms/{id}/messages", p.auth(p.postMessage))
	mux.HandleFunc("GET /v1/rooms/{id}/messages", p.auth(p.roomLog))
	mux.HandleFunc("GET /v1/inbox", p.auth(p.inbox))
	mux.HandleFunc("POST /v1/inbox/ack", p.auth(p.ack))
	mux.HandleFunc("GET /v1/stream", p.auth(p.stream))
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *fakeProvider) URL() string { return p.srv.URL }

// Enroll makes the user if needed and returns a one-time enrollment code.
func (p *fakeProvider) Enroll(handle string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.users[handle] == nil {
		p.users[handle] = &fakeUser{handle: handle}
	}
	code := hex.EncodeToString(mls.RandomBytes(8))
	p.enrollments[code] = handle
	return code
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg, "request_id": "fake-" + strconv.Itoa(status)}})
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		apiError(w, 400, "bad_request", err.Error())
		return false
	}
	return true
}

func (p *fakeProvider) provider(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, 200, map[string]any{"domain": p.domain, "ca_certificate": p.caDER, "cipher_suites": []int{1, 2, 3, 5, 7}})
}

func (p *fakeProvider) register(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Code    string `json:"enrollment_code"`
		Name    string `json:"device_name"`
		AuthKey []byte `json:"auth_key"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	handle, ok := p.enrollments[req.Code]
	if !ok {
		apiError(w, 410, "gone", "enrollment code used or unknown")
		return
	}
	u := p.users[handle]
	for _, d := range u.devices {
		if d.name == req.Name {
			apiError(w, 409, "conflict", "device name taken")
			return
		}
	}
	delete(p.enrollments, req.Code)
	p.nextDevice++
	d := &fakeDevice{id: p.nextDevice, name: req.Name, user: u, authKey: req.AuthKey, wake: make(chan struct{}, 1)}
	for _, other := range u.devices {
		other.notice(fakeEntry{Type: "device.added", Device: d.name})
	}
	u.devices = append(u.devices, d)
	p.authKeys[hex.EncodeToString(req.AuthKey)] = d
	writeJSON(w, 201, map[string]any{"user": map[string]string{"handle": handle}, "device": map[string]any{"id": d.id, "name": d.name}})
}

// enqueue appends to the device's queue; p.mu must be held.
func (d *fakeDevice) enqueue(e fakeEntry) {
	d.nextCursor++
	e.Cursor = d.nextCursor
	d.queue = append(d.queue, e)
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// notice sends a hint to the device's open streams; p.mu must be held.
func (d *fakeDevice) notice(e fakeEntry) {
	if d.streams == 0 {
		return
	}
	d.notices = append(d.notices, e)
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (p *fakeProvider) myDevices(w http.ResponseWriter, r *http.Request, d *fakeDevice) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := []map[string]any{}
	for _, o := range d.user.devices {
		out = append(out, map[string]any{"id": o.id, "name": o.name})
	}
	writeJSON(w, 200, map[string]any{"devices": out})
}

func (p *fakeProvider) challenge(w http.ResponseWriter, r *http.Request) {
	ch := mls.RandomBytes(32)
	p.mu.Lock()
	p.challenges[string(ch)] = true
	p.mu.Unlock()
	writeJSON(w, 200, map[string]any{"challenge": ch, "expires": time.Now().Add(2 * time.Minute)})
}

func (p *fakeProvider) session(w http.ResponseWriter, r *http.Request) {
	var req struct {
		AuthKey   []byte `json:"auth_key"`
		Challenge []byte `json:"challenge"`
		Signature []byte `json:"signature"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.authKeys[hex.EncodeToString(req.AuthKey)]
	if d == nil || !p.challenges[string(req.Challenge)] {
		apiError(w, 401, "unauthenticated", "unknown key or challenge")
		return
	}
	delete(p.challenges, string(req.Challenge))
	// The exact input of docs/api.md, spelled out independently of the
	// client's own helper.
	msg := []byte("switchboard auth v1\n" + p.domain + "\n" + string(req.Challenge))
	if !ed25519.Verify(d.authKey, msg, req.Signature) {
		apiError(w, 401, "unauthenticated", "bad signature")
		return
	}
	tok := hex.EncodeToString(mls.RandomBytes(16))
	p.sessions[tok] = d
	writeJSON(w, 200, map[string]any{"token": tok, "expires": time.Now().Add(time.Hour)})
}

func (p *fakeProvider) auth(h func(http.ResponseWriter, *http.Request, *fakeDevice)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		p.mu.Lock()
		d := p.sessions[tok]
		p.mu.Unlock()
		if !ok || d == nil {
			apiError(w, 401, "unauthenticated", "no session")
			return
		}
		h(w, r, d)
	}
}

func (p *fakeProvider) me(w http.ResponseWriter, r *http.Request, d *fakeDevice) {
	writeJSON(w, 200, map[string]any{"user": map[string]string{"handle": d.user.handle}, "device": map[string]any{"id": d.id, "name": d.name}, "domain": p.domain})
}

func (p *fakeProvider) credentials(w http.ResponseWriter, r *http.Request, d *fakeDevice) {
	var req struct {
		Suite uint16 `json:"cipher_suite"`
		Key   []byte `json:"signature_key"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	if req.Suite != 1 || len(req.Key) != ed25519.PublicKeySize {
		apiError(w, 400, "bad_request", "this fake issues Ed25519 credentials only")
		return
	}
	suite, _ := mls.SuiteFor(1)
	cred, err := p.ca.IssueDevice(suite, req.Key, d.user.handle, d.name, time.Now().Add(24*time.Hour))
	if err != nil {
		apiError(w, 400, "bad_request", err.Error())
		return
	}
	devURI := identity.DeviceURI(p.domain, d.user.handle, d.name)
	userURI := devURI.UserOf()
	writeJSON(w, 201, map[string]any{"credential": mls.Marshal(&cred), "device_uri": devURI.String(), "user_uri": userURI.String()})
}

func (p *fakeProvider) uploadKPs(w http.ResponseWriter, r *http.Request, d *fakeDevice) {
	var req struct {
		KPs        [][]byte `json:"key_packages"`
		LastResort []byte   `json:"last_resort"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	s, _ := mls.SuiteFor(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, data := range append(append([][]byte{}, req.KPs...), req.LastResort) {
		if data == nil {
			continue
		}
		m, err := mls.ParseMLSMessage(data)
		if err != nil || m.KeyPackage == nil || mls.ValidateKeyPackage(s, m.KeyPackage, 0) != nil {
			apiError(w, 400, "invalid_message", "bad key package")
			return
		}
		p.kpOwner[hex.EncodeToString(m.KeyPackage.Ref(s))] = d
	}
	d.kps = append(d.kps, req.KPs...)
	if req.LastResort != nil {
		d.lastResort = req.LastResort
	}
	writeJSON(w, 201, map[string]any{"stored": len(req.KPs), "available": map[string]int{"1": len(d.kps)}})
}

func (p *fakeProvider) stockKPs(w http.ResponseWriter, r *http.Request, d *fakeDevice) {
	p.mu.Lock()
	defer p.mu.Unlock()
	writeJSON(w, 200, map[string]any{"available": map[string]int{"1": len(d.kps)}, "low_watermark": lowWatermark})
}

func (p *fakeProvider) claimKPs(w http.ResponseWriter, r *http.Request, _ *fakeDevice) {
	p.mu.Lock()
	defer p.mu.Unlock()
	u := p.users[r.PathValue("handle")]
	if u == nil {
		apiError(w, 404, "not_found", "no such user")
		return
	}
	type entry struct {
		Device     string `json:"device"`
		KeyPackage []byte `json:"key_package"`
	}
	var out []entry
	for _, d := range u.devices {
		var kp []byte
		if len(d.kps) > 0 {
			kp, d.kps = d.kps[0], d.kps[1:]
			if len(d.kps) == lowWatermark-1 {
				d.notice(fakeEntry{Type: "keypackages.low", CipherSuite: 1, Available: len(d.kps)})
			}
		} else {
			kp = d.lastResort
		}
		if kp != nil {
			out = append(out, entry{d.name, kp})
		}
	}
	if len(out) == 0 {
		apiError(w, 409, "no_key_packages", "none left")
		return
	}
	writeJSON(w, 200, map[string]any{"key_packages": out})
}

func (p *fakeProvider) createRoom(w http.ResponseWriter, r *http.Request, d *fakeDevice) {
	var req struct {
		GroupInfo []byte `json:"group_info"`
		Tree      []byte `json:"ratchet_tree"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	m, err := mls.ParseMLSMessage(req.GroupInfo)
	if err != nil || m.GroupInfo == nil {
		apiError(w, 400, "invalid_message", "not a GroupInfo")
		return
	}
	id := base64.RawURLEncoding.EncodeToString(m.GroupInfo.GroupContext.GroupID)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rooms[id] = &fakeRoom{id: id, epoch: m.GroupInfo.GroupContext.Epoch, members: map[*fakeDevice]bool{d: true}, byID: map[string]*fakeMessage{}}
	writeJSON(w, 201, map[string]any{"room": map[string]any{"id": id, "epoch": 0}})
}

func (p *fakeProvider) postMessage(w http.ResponseWriter, r *http.Request, d *fakeDevice) {
	var req struct {
		ClientID string `json:"client_id"`
		Message  []byte `json:"message"`
		Welcome  []byte `json:"welcome"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	room := p.rooms[r.PathValue("id")]
	if room == nil || !room.members[d] {
		apiError(w, 404, "not_found", "no such room")
		return
	}
	if prev := room.byID[req.ClientID]; prev != nil {
		if p.failAfterStore > 0 {
			p.failAfterStore--
			apiError(w, 503, "unavailable", "simulated fault")
			return
		}
		writeJSON(w, 200, map[string]any{"seq": prev.Seq, "epoch": room.epoch})
		return
	}
	m, err := mls.ParseMLSMessage(req.Message)
	if err != nil {
		apiError(w, 400, "invalid_message", err.Error())
		return
	}
	var epoch uint64
	kind := ""
	switch {
	case m.Public != nil:
		epoch = m.Public.Content.Epoch
		if m.Public.Content.ContentType == mls.ContentCommit {
			kind = "commit"
		} else if m.Public.Content.ContentType == mls.ContentProposal {
			kind = "proposal"
		} else {
			apiError(w, 400, "invalid_message", "public application message")
			return
		}
	case m.Private != nil:
		epoch = m.Private.Epoch
		kind = "application"
	default:
		apiError(w, 400, "invalid_message", "wire format")
		return
	}
	if epoch != room.epoch {
		p.wrongEpochs++
		apiError(w, 409, "wrong_epoch", fmt.Sprintf("message for epoch %d, the room is in epoch %d", epoch, room.epoch))
		return
	}
	if kind == "commit" {
		room.epoch++
	}
	msg := room.append(kind, epoch, d, req.Message)
	msg.clientID = req.ClientID
	room.byID[req.ClientID] = msg
	for dev := range room.members {
		dev.enqueue(fakeEntry{Message: msg})
	}
	if req.Welcome != nil {
		wm, err := mls.ParseMLSMessage(req.Welcome)
		if err == nil && wm.Welcome != nil {
			wmsg := room.append("welcome", room.epoch, d, req.Welcome)
			for _, s := range wm.Welcome.Secrets {
				if to := p.kpOwner[hex.EncodeToString(s.NewMember)]; to != nil {
					room.members[to] = true
					to.enqueue(fakeEntry{Message: wmsg})
				}
			}
		}
	}
	if p.failAfterStore > 0 {
		p.failAfterStore--
		apiError(w, 503, "unavailable", "simulated fault after storing")
		return
	}
	writeJSON(w, 200, map[string]any{"seq": msg.Seq, "epoch": room.epoch})
}

func (room *fakeRoom) append(kind string, epoch uint64, d *fakeDevice, payload []byte) *fakeMessage {
	seq := int64(len(room.log) + 1)
	m := &fakeMessage{
		ID: fmt.Sprintf("%s/%d", room.id, seq), Room: room.id, Seq: seq, Kind: kind, Epoch: epoch,
		Sender: fakeSender{User: d.user.handle, Device: d.name}, Payload: payload, Created: time.Now().UTC(),
	}
	room.log = append(room.log, m)
	return m
}

func (p *fakeProvider) roomLog(w http.ResponseWriter, r *http.Request, d *fakeDevice) {
	after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 {
		limit = 100
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	room := p.rooms[r.PathValue("id")]
	if room == nil || !room.members[d] {
		apiError(w, 404, "not_found", "no such room")
		return
	}
	out := []*fakeMessage{}
	for _, m := range room.log {
		if m.Seq > after && len(out) < limit {
			out = append(out, m)
		}
	}
	writeJSON(w, 200, map[string]any{"messages": out})
}

func (p *fakeProvider) inbox(w http.ResponseWriter, r *http.Request, d *fakeDevice) {
	after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 {
		limit = 100
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	out := []fakeEntry{}
	for _, e := range d.queue {
		if e.Cursor > after && len(out) < limit {
			out = append(out, e)
		}
	}
	writeJSON(w, 200, map[string]any{"entries": out})
}

func (p *fakeProvider) ack(w http.ResponseWriter, r *http.Request, d *fakeDevice) {
	var req struct {
		Cursor int64 `json:"cursor"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	p.mu.Lock()
	d.ackLocked(req.Cursor)
	p.mu.Unlock()
	w.WriteHeader(204)
}

func (d *fakeDevice) ackLocked(cursor int64) {
	i := 0
	for i < len(d.queue) && d.queue[i].Cursor <= cursor {
		i++
	}
	d.queue = d.queue[i:]
}

// queueLen returns how many entries wait for a device of a user.
func (p *fakeProvider) queueLen(handle, device string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range p.users[handle].devices {
		if d.name == device {
			return len(d.queue)
		}
	}
	return -1
}

func (p *fakeProvider) stream(w http.ResponseWriter, r *http.Request, d *fakeDevice) {
	after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer conn.CloseNow()
	ctx := r.Context()
	p.mu.Lock()
	d.streams++
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		d.streams--
		p.mu.Unlock()
	}()
	// Acks arrive on the same connection.
	go func() {
		for {
			_, data, err := conn.Read(ctx)
			if err != nil {
				return
			}
			var a struct {
				Type   string `json:"type"`
				Cursor int64  `json:"cursor"`
			}
			if json.Unmarshal(data, &a) == nil && a.Type == "ack" {
				p.mu.Lock()
				d.ackLocked(a.Cursor)
				p.mu.Unlock()
			}
		}
	}()
	sent := after
	for {
		p.mu.Lock()
		todo := d.notices
		d.notices = nil
		for _, e := range d.queue {
			if e.Cursor > sent {
				todo = append(todo, e)
			}
		}
		p.mu.Unlock()
		for _, e := range todo {
			if e.Message != nil {
				e.Type = "message"
			}
			data, _ := json.Marshal(e)
			if err := conn.Write(ctx, websocket.MessageText, data); err != nil {
				return
			}
			sent = max(sent, e.Cursor)
		}
		select {
		case <-d.wake:
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return
		}
	}
}
