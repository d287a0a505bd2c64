package node_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/content"
	"github.com/switchboard-chat/switchboard/conversations"
	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/store"
)

// Message franking and abuse reports (docs/abuse.md): a message the hub
// franked can be reported by its recipient; the reporter's provider, the
// hub and the sender's provider each verify that exactly this message was
// sent by that sender in that room before they queue the report; a report
// with a changed body is refused everywhere and leaves nothing behind.

// messenger opens a Messenger on a person's client (its history in dir),
// so that it sends MIMI content as an app would.
func messenger(t *testing.T, p *person, dir string) *conversations.Messenger {
	t.Helper()
	m, err := conversations.Open(p.c, dir, conversations.Options{NoTyping: true})
	must(t, p.name+" opening a messenger", err)
	t.Cleanup(func() { m.Close() })
	return m
}

// received waits until p has read a message in room whose text is want,
// and returns it.
func (p *person) received(room client.RoomID, want string) *client.Message {
	p.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		p.read()
		p.mu.Lock()
		for _, e := range p.seen {
			if m, ok := e.(*client.Message); ok && m.Room == room {
				if c, err := content.Decode(m.Body); err == nil && c.Text() == want {
					p.mu.Unlock()
					return m
				}
			}
		}
		p.mu.Unlock()
		if time.Now().After(deadline) {
			p.t.Fatalf("%s never read %q in room %s", p.name, want, room)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// reports is a provider's report queue.
func (h *harness) reports(domain string) []store.Report {
	h.t.Helper()
	rs, err := h.node(domain).Store.Reports(context.Background())
	must(h.t, domain+": reports", err)
	return rs
}

// awaitReports waits until a provider has n reports queued.
func (h *harness) awaitReports(domain string, n int) []store.Report {
	h.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		rs := h.reports(domain)
		if len(rs) == n {
			return rs
		}
		if len(rs) > n || time.Now().After(deadline) {
			h.t.Fatalf("%s has %d reports, want %d: %+v", domain, len(rs), n, rs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// forged is the content of m with its text changed, and its salt and
// sender and room extensions kept: what a reporter who wants to put words
// in the sender's mouth would send with the real frank.
func forged(t *testing.T, body []byte, text string) []byte {
	t.Helper()
	orig, err := content.Decode(body)
	must(t, "decoding the received content", err)
	f := content.Text(text)
	f.Salt = orig.Salt
	f.Extensions = orig.Extensions
	out, err := f.Encode()
	must(t, "encoding the forgery", err)
	return out
}

func evidence(m *client.Message) []client.ReportedMessage {
	return []client.ReportedMessage{{Content: m.Body, Frank: *m.Frank}}
}

func TestFrankedMessageIsReportedAndVerifiedByEveryProvider(t *testing.T) {
	h := startHarness(t, "green.test", "blue.test", "red.test")
	alice, aliceDir := h.enroll("green.test", "alice", "phone", client.Options{})
	bob, _ := h.enroll("blue.test", "bob", "phone", client.Options{})
	carol, _ := h.enroll("red.test", "carol", "phone", client.Options{})
	ctx := context.Background()
	aliceM := messenger(t, alice, aliceDir)

	// Alice's room, hosted by green; Bob follows it from blue.
	room, err := alice.c.CreateRoom(ctx)
	must(t, "alice creates a room", err)
	must(t, "alice invites bob", alice.c.Invite(ctx, room, "bob@blue.test"))
	_, err = aliceM.Send(ctx, room, "you will regret this")
	must(t, "alice sends", err)
	got := bob.received(room, "you will regret this")
	if got.Frank == nil {
		t.Fatal("bob's message came without the hub's frank")
	}
	h.settle("green.test", room)

	// The hub's log and blue's copy keep the same frank and time.
	hubMsg, err := h.node("green.test").Store.MessageByFrank(ctx, string(room), got.Frank.Frank)
	must(t, "green finds the franked message", err)
	copyMsg, err := h.node("blue.test").Store.MessageByFrank(ctx, string(room), got.Frank.Frank)
	must(t, "blue finds the franked message", err)
	if hubMsg.Seq != got.Seq || copyMsg.Seq != got.Seq || hubMsg.Accepted != copyMsg.Accepted ||
		uint64(hubMsg.Accepted) != got.Frank.AcceptedTimestamp {
		t.Fatalf("hub %+v, copy %+v, device %+v disagree", hubMsg, copyMsg, got.Frank)
	}

	t.Run("AForgedReportIsRefusedAndNothingIsQueued", func(t *testing.T) {
		h := h.with(t)
		fake := forged(t, got.Body, "I confess to everything")
		_, err := bob.c.Report(ctx, room, client.AbuseReport{AllegedAbuser: "alice@green.test",
			Messages: []client.ReportedMessage{{Content: fake, Frank: *got.Frank}}})
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Code != "frank_invalid" || ae.Status != http.StatusUnprocessableEntity {
			t.Fatalf("forged report: %v, want 422 frank_invalid", err)
		}
		// Right body, wrong sender: the hub's signature names alice.
		_, err = bob.c.Report(ctx, room, client.AbuseReport{AllegedAbuser: "carol@red.test", Messages: evidence(got)})
		if !errors.As(err, &ae) || ae.Code != "frank_invalid" {
			t.Fatalf("report naming the wrong sender: %v, want frank_invalid", err)
		}
		// Right body, another time: the signature covers the time.
		moved := *got.Frank
		moved.AcceptedTimestamp++
		_, err = bob.c.Report(ctx, room, client.AbuseReport{AllegedAbuser: "alice@green.test",
			Messages: []client.ReportedMessage{{Content: got.Body, Frank: moved}}})
		if !errors.As(err, &ae) || ae.Code != "frank_invalid" {
			t.Fatalf("report with a changed time: %v, want frank_invalid", err)
		}
		time.Sleep(100 * time.Millisecond) // whatever might have been sent on would be there by now
		for _, d := range h.domains {
			if rs := h.reports(d); len(rs) != 0 {
				t.Errorf("%s queued %d reports: %+v", d, len(rs), rs)
			}
		}
	})

	t.Run("AForgedFederationReportToTheHubIsRefused", func(t *testing.T) {
		h := h.with(t)
		rep := federation.AbuseReport{ReportingUser: "mimi://blue.test/u/bob", AllegedAbuserURI: "mimi://green.test/u/alice",
			Messages: []federation.AbusiveMessage{{MessageContent: forged(t, got.Body, "I confess"), AcceptedTimestamp: got.Frank.AcceptedTimestamp}}}
		f, err := federation.ParseFrank(got.Frank.Frank)
		must(t, "parsing the frank", err)
		rep.Messages[0].Frank = *f
		path := pathOf(partnerPaths.ReportAbuseURL(roomURI("green.test", room)))
		a, err := h.partner("blue.test", "green.test").post(path, mls.Marshal(&rep), nil)
		must(t, "posting the forged report", err)
		if a.Status != http.StatusUnprocessableEntity || a.Code != "frank_invalid" {
			t.Fatalf("forged reportAbuse: %d %s %s, want 422 frank_invalid", a.Status, a.Code, a.Body)
		}
		// Red does not speak for bob.
		rep.Messages[0].MessageContent = got.Body
		a, err = h.partner("red.test", "green.test").post(path, mls.Marshal(&rep), nil)
		must(t, "posting as red for bob", err)
		if a.Status != http.StatusForbidden {
			t.Fatalf("red reporting for bob: %d %s, want 403", a.Status, a.Code)
		}
		if rs := h.reports("green.test"); len(rs) != 0 {
			t.Fatalf("green queued %+v", rs)
		}
	})

	t.Run("TheRealReportIsQueuedByTheReportersProviderAndTheHub", func(t *testing.T) {
		h := h.with(t)
		id, err := bob.c.Report(ctx, room, client.AbuseReport{AllegedAbuser: "alice@green.test", Note: "threats", Messages: evidence(got)})
		must(t, "bob reports alice", err)
		blue := h.awaitReports("blue.test", 1)
		if blue[0].ID != id || blue[0].From != "local" || blue[0].AllegedAbuser != "mimi://green.test/u/alice" ||
			blue[0].Reporter != "mimi://blue.test/u/bob" || blue[0].Note != "threats" || blue[0].State != store.ReportOpen {
			t.Fatalf("blue's report: %+v", blue[0])
		}
		if strings.Contains(blue[0].VerifiedBy, "hub_key") {
			t.Errorf("blue, not the hub, claims to have checked the hub_key: %q", blue[0].VerifiedBy)
		}
		green := h.awaitReports("green.test", 1)
		if green[0].From != "blue.test" || !strings.Contains(green[0].VerifiedBy, "hub_key") || !bytes.Equal(green[0].Body, blue[0].Body) {
			t.Fatalf("green's report: %+v", green[0])
		}
		h.settle("green.test", room)
		if rs := h.reports("red.test"); len(rs) != 0 {
			t.Fatalf("red, not in this room, got %+v", rs)
		}
	})

	t.Run("APartnersRetriedReportIsQueuedOnce", func(t *testing.T) {
		h := h.with(t)
		before := len(h.reports("green.test"))
		f, err := federation.ParseFrank(got.Frank.Frank)
		must(t, "parsing the frank", err)
		rep := federation.AbuseReport{ReportingUser: "mimi://blue.test/u/bob", AllegedAbuserURI: "mimi://green.test/u/alice",
			Messages: []federation.AbusiveMessage{{MessageContent: got.Body, Frank: *f, AcceptedTimestamp: got.Frank.AcceptedTimestamp}}}
		path := pathOf(partnerPaths.ReportAbuseURL(roomURI("green.test", room)))
		for range 2 {
			a, err := h.partner("blue.test", "green.test").post(path, mls.Marshal(&rep), http.Header{federation.HeaderDeliveryID: {"report/retried"}})
			must(t, "posting the report", err)
			if a.Status != http.StatusCreated {
				t.Fatalf("reportAbuse: %d %s %s", a.Status, a.Code, a.Body)
			}
		}
		if n := len(h.reports("green.test")); n != before+1 {
			t.Fatalf("green queued %d reports for one delivery sent twice", n-before)
		}
	})

	t.Run("SendersProviderHubAndReportersProviderAreThreeProviders", func(t *testing.T) {
		h := h.with(t)
		// Carol's room, hosted by red, with alice (green) and bob (blue).
		room2, err := carol.c.CreateRoom(ctx)
		must(t, "carol creates a room", err)
		must(t, "carol invites alice", carol.c.Invite(ctx, room2, "alice@green.test"))
		must(t, "carol invites bob", carol.c.Invite(ctx, room2, "bob@blue.test"))
		// Alice's device learns of the room before she writes in it.
		deadline := time.Now().Add(15 * time.Second)
		for {
			must(t, "alice syncs", aliceM.Sync(ctx))
			if _, err := aliceM.Send(ctx, room2, "nobody likes you"); err == nil {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("alice cannot write in carol's room: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		m := bob.received(room2, "nobody likes you")
		if m.Frank == nil {
			t.Fatal("no frank on a message of a room hosted by red")
		}
		before := map[string]int{}
		for _, d := range h.domains {
			before[d] = len(h.reports(d))
		}
		_, err = bob.c.Report(ctx, room2, client.AbuseReport{AllegedAbuser: "alice@green.test", Messages: evidence(m)})
		must(t, "bob reports alice in carol's room", err)
		// Blue (reporter's), red (hub, with its hub_key) and green
		// (alice's provider, from its copy of red's room) all verify.
		h.awaitReports("blue.test", before["blue.test"]+1)
		red := h.awaitReports("red.test", before["red.test"]+1)
		green := h.awaitReports("green.test", before["green.test"]+1)
		if last := red[len(red)-1]; last.From != "blue.test" || !strings.Contains(last.VerifiedBy, "hub_key") || last.Room != string(roomURI("red.test", room2)) {
			t.Fatalf("red's report: %+v", last)
		}
		if last := green[len(green)-1]; last.From != "blue.test" || strings.Contains(last.VerifiedBy, "hub_key") || last.Room != string(roomURI("red.test", room2)) {
			t.Fatalf("green's report: %+v", last)
		}
	})
}

// A follower's device reports to its own provider, which is also the hub:
// here bob on blue hosts the room and alice on green sends.
func TestReportAtTheHubOfAPartnersMessage(t *testing.T) {
	h := startHarness(t, "green.test", "blue.test")
	alice, aliceDir := h.enroll("green.test", "alice", "phone", client.Options{})
	bob, _ := h.enroll("blue.test", "bob", "phone", client.Options{})
	ctx := context.Background()
	aliceM := messenger(t, alice, aliceDir)
	room, err := bob.c.CreateRoom(ctx)
	must(t, "bob creates a room", err)
	must(t, "bob invites alice", bob.c.Invite(ctx, room, "alice@green.test"))
	deadline := time.Now().Add(15 * time.Second)
	for {
		must(t, "alice syncs", aliceM.Sync(ctx))
		if _, err := aliceM.Send(ctx, room, "spam spam spam"); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("alice cannot write in bob's room: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	m := bob.received(room, "spam spam spam")
	if m.Frank == nil {
		t.Fatal("no frank")
	}
	_, err = bob.c.Report(ctx, room, client.AbuseReport{AllegedAbuser: "alice@green.test", Messages: evidence(m)})
	must(t, "bob reports", err)
	blue := h.awaitReports("blue.test", 1)
	if !strings.Contains(blue[0].VerifiedBy, "hub_key") {
		t.Fatalf("blue hosts the room and should have checked its hub_key: %+v", blue[0])
	}
	// Green, alice's provider, verifies from its copy of blue's room.
	green := h.awaitReports("green.test", 1)
	if green[0].From != "blue.test" {
		t.Fatalf("green's report: %+v", green[0])
	}
}
