package provider

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/mls"
)

// FuzzFederationNotify feeds the follower's notify endpoint arbitrary
// bodies and headers, as a hostile or broken hub could send them. It must
// never panic or fail inside (5xx), and whatever it refuses must leave the
// store as it was.
func FuzzFederationNotify(f *testing.F) {
	n := newFedNode(f, "blue.example")
	green := newFedNode(f, "green.example")
	n.addDevice(f, "bob", "", "phone", 1, false)
	suite, signer, cred := green.credential(f, "alice", "phone")
	g, err := mls.CreateGroup(suite, []byte("fuzz-room-0123456"), mls.Identity{Signer: signer, Credential: cred}, nil, mls.GroupConfig{})
	if err != nil {
		f.Fatal(err)
	}
	app, err := g.Encrypt([]byte("hello"), nil)
	if err != nil {
		f.Fatal(err)
	}
	body := federation.MarshalFanout(federation.FanoutMessage{Timestamp: 1, Message: *app})
	room := roomID(g.GroupID())
	f.Add(body, "1", "0", "mimi://green.example/d/alice/phone", "mimi://blue.example/d/bob/phone", "mimi://green.example/r/"+room)
	f.Add(body, "2", "0", "mimi://green.example/d/alice/phone", "-", "mimi://green.example/r/"+room)
	f.Add([]byte{0, 1, 2}, "x", "", "", "mimi://red.example/d/carol/phone", "mimi://red.example/r/x")
	h := n.srv.federated("fed_notify", nil, n.srv.fedNotify)
	f.Fuzz(func(t *testing.T, body []byte, seq, epoch, sender, recipients, roomURI string) {
		before := n.srv.dumpFollowerState(t)
		r := httptest.NewRequest(http.MethodPost, "/notify/x", bytes.NewReader(body))
		r.SetPathValue("roomId", roomURI)
		for k, v := range map[string]string{HeaderRoomSeq: seq, HeaderRoomEpoch: epoch, HeaderSender: sender, HeaderRecipients: recipients} {
			r.Header.Set(k, v)
		}
		r = r.WithContext(federation.ContextWithPeer(r.Context(), "green.example"))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		switch {
		case w.Code >= 500:
			t.Fatalf("notify failed inside: %d %s", w.Code, w.Body)
		case w.Code >= 400 && n.srv.dumpFollowerState(t) != before:
			t.Fatalf("a refused notify (%d %s) changed the store", w.Code, w.Body)
		}
	})
}

// dumpFollowerState summarises what a notify can change: every room's
// log length and every device's queue length.
func (s *Server) dumpFollowerState(t *testing.T) string {
	ctx := context.Background()
	var b bytes.Buffer
	u, err := s.store.UserByHandle(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	ds, _ := s.store.DevicesOfUser(ctx, u.ID)
	for _, d := range ds {
		q, _ := s.store.Deliveries(ctx, d.ID, 0, 1000)
		b.WriteString(d.Name)
		b.WriteByte(byte(len(q)))
	}
	return b.String()
}
