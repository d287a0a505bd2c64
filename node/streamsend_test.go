package node_test

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// requests reads a node's switchboard_requests_total for a handler and
// result code.
func requests(t *testing.T, clientURL, handler, code string) float64 {
	t.Helper()
	resp, err := http.Get(clientURL + "/metrics")
	must(t, "metrics", err)
	defer resp.Body.Close()
	want := `switchboard_requests_total{code="` + code + `",handler="` + handler + `"} `
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), want); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// TestSendOverTheStreamToAPartnersRoom: Bob (blue) streams and writes in
// a room Alice's provider (green) hosts. His messages go over his stream
// to blue, which forwards them to green as it does a POST's, and Alice
// reads them.
func TestSendOverTheStreamToAPartnersRoom(t *testing.T) {
	l := startLocal(t, "green.test", "blue.test")
	alice := newPerson(t, l, 0, "alice")
	bob := newPerson(t, l, 1, "bob")
	ctx := context.Background()
	room, err := alice.c.CreateRoom(ctx)
	must(t, "alice creates a room", err)
	must(t, "alice invites bob", alice.c.Invite(ctx, room, "bob@blue.test"))
	bob.stream()
	bob.joined(room)
	// Once bob's stream has brought alice's message, it is up.
	alice.send(room, "hello Bob")
	bob.expect(room, "alice@green.test: hello Bob")

	blue := l.Node(1).ClientURL
	posted, streamed := requests(t, blue, "submit", "ok"), requests(t, blue, "stream_submit", "ok")
	bob.send(room, "hi Alice, over my stream")
	bob.send(room, "and again")
	alice.expect(room, "bob@blue.test: hi Alice, over my stream", "bob@blue.test: and again")
	if n := requests(t, blue, "submit", "ok") - posted; n != 0 {
		t.Errorf("blue took %v POSTs from bob while he streamed", n)
	}
	if n := requests(t, blue, "stream_submit", "ok") - streamed; n != 2 {
		t.Errorf("blue took %v messages over bob's stream, want 2", n)
	}
}
