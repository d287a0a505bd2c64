package inbox_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/conversations"
	"github.com/switchboard-chat/switchboard/inbox"
)

// TestCustomersOnTwoProviders: Bob writes from blue, Alice from green;
// the shop sees one list with each conversation's provider, greets each
// once, and its agent answers with canned text, a file, a note the
// customer never sees, labels and a read mark; Bob's app decrypts all of
// it. Search finds messages across the conversations.
func TestCustomersOnTwoProviders(t *testing.T) {
	s := newShop(t)
	ctx := context.Background()
	ok(t, "settings", s.desk.SetSettings(ctx, inbox.Settings{Greeting: "Welcome to the shop! An agent will be with you shortly."}))
	ann := s.agent("ann", inbox.RoleAgent)
	ok(t, "canned", s.desk.SetCanned(ctx, "thanks", "Thank you for your patience."))

	bob := s.newCustomer(1, "bob", "")
	alice := s.newCustomer(0, "alice", "")
	events, stop := s.desk.Subscribe()
	defer stop()
	bobID := bob.write("Hi, where is my order?")
	// The console hears of it live.
	waitFor(t, "an event about bob's conversation", func() bool {
		for {
			select {
			case e := <-events:
				if e.Kind == "conversation" && e.Conversation == bobID {
					return true
				}
			default:
				return false
			}
		}
	})
	bob.receive("Welcome to the shop!")
	bob.write("It is order 42.")
	s.clock.advance(time.Minute)
	aliceID := alice.write("Do you ship to Lyon?")
	alice.receive("Welcome to the shop!")

	b := s.conv(bobID)
	if b.Customer != "bob@blue.test" || b.Provider != "blue.test" || b.Status != inbox.StatusOpen || b.Unread != 2 ||
		b.WaitingSince == nil || b.Assignee != 0 || b.Last == nil {
		t.Fatalf("bob's conversation: %+v", b)
	}
	if a := s.conv(aliceID); a.Customer != "alice" || a.Provider != "green.test" {
		t.Fatalf("alice's conversation: customer %q provider %q", a.Customer, a.Provider)
	}
	if all := s.list(inbox.Filter{Status: inbox.StatusOpen}); len(all) != 2 || all[0].ID != bobID {
		t.Errorf("the open list is not bob's (waiting longest) then alice's: %+v", all)
	}

	// The agent answers with a canned response; Bob's app decrypts it.
	reply, err := s.desk.Reply(ctx, bobID, ann.ID, "/thanks Your parcel left today.")
	ok(t, "ann replies", err)
	if reply.Text != "Thank you for your patience. Your parcel left today." {
		t.Errorf("the canned code was not expanded: %q", reply.Text)
	}
	got := bob.receive("Your parcel left today.")
	if got.Sender != "shop@green.test" {
		t.Errorf("bob got the reply from %q", got.Sender)
	}
	if greetings := countContaining(bob.fromShop(), "Welcome"); greetings != 1 {
		t.Errorf("bob was greeted %d times, want once", greetings)
	}
	b = s.conv(bobID)
	if b.FirstResponse == nil || b.WaitingSince != nil || b.Assignee != ann.ID {
		t.Errorf("after the reply: first response %v, waiting since %v, assignee %d", b.FirstResponse, b.WaitingSince, b.Assignee)
	}

	// Reading sends Bob a read mark.
	ok(t, "ann reads", s.desk.MarkRead(ctx, bobID, ann.ID))
	if u := s.conv(bobID).Unread; u != 0 {
		t.Errorf("after reading, %d unread", u)
	}
	waitFor(t, "bob to see his messages read", func() bool {
		ok(t, "sync", bob.m.Sync(ctx))
		h, _ := bob.m.History(ctx, bob.room, 0, 100)
		for _, e := range h {
			if e.Own && e.Status != conversations.StatusRead {
				return false
			}
		}
		return true
	})

	// Files both ways, end to end encrypted.
	invoice := bytes.Repeat([]byte("invoice line\n"), 300)
	fe, err := s.desk.ReplyFile(ctx, bobID, ann.ID, bytes.NewReader(invoice), "invoice.txt", "text/plain")
	ok(t, "ann sends a file", err)
	bob.receive("invoice.txt")
	data, _, err := bob.m.SaveFile(ctx, bob.room, fe.ID)
	if err != nil || !bytes.Equal(data, invoice) {
		t.Errorf("bob saved %d bytes (%v)", len(data), err)
	}
	photo := []byte("\x89PNG not really")
	pe, err := bob.m.SendFile(ctx, bob.room, bytes.NewReader(photo), "parcel.png", "image/png")
	ok(t, "bob sends a photo", err)
	waitFor(t, "the photo at the desk", func() bool {
		data, att, err := s.desk.File(ctx, bobID, pe.ID)
		return err == nil && bytes.Equal(data, photo) && att.Filename == "parcel.png"
	})
	if _, _, err := s.desk.File(ctx, bobID, reply.ID); !errors.Is(err, inbox.ErrNotFound) {
		t.Errorf("the file of a text message: %v, want not found", err)
	}

	// Bob reacts to the reply: the desk's history shows it.
	ok(t, "bob reacts", bob.m.React(ctx, bob.room, reply.ID, "🙏"))
	waitFor(t, "the reaction at the desk", func() bool {
		h, err := s.desk.History(ctx, bobID, 0, 50)
		ok(t, "history", err)
		for _, e := range h {
			if e.ID == reply.ID {
				return slices.Equal(e.Reactions["🙏"], []string{"bob@blue.test"})
			}
		}
		return false
	})

	// A private note and labels; the note never reaches Bob.
	_, err = s.desk.AddNote(ctx, bobID, ann.ID, "Customer is upset about delays")
	ok(t, "note", err)
	notes, err := s.desk.Notes(ctx, bobID)
	if err != nil || len(notes) != 1 || notes[0].AgentName != "Ann" {
		t.Errorf("notes %+v (%v)", notes, err)
	}
	ok(t, "labels", s.desk.SetLabels(ctx, bobID, ann.ID, []string{"shipping", " vip ", "shipping"}))
	if got := s.conv(bobID).Labels; !slices.Equal(got, []string{"shipping", "vip"}) {
		t.Errorf("labels %q", got)
	}
	if l := s.list(inbox.Filter{Label: "vip"}); len(l) != 1 || l[0].ID != bobID {
		t.Errorf("filtered by label: %+v", l)
	}
	if err := s.desk.SetLabels(ctx, bobID, ann.ID, []string{""}); !errors.Is(err, inbox.ErrInvalid) {
		t.Errorf("an empty label: %v", err)
	}
	time.Sleep(200 * time.Millisecond)
	if n := countContaining(bob.fromShop(), "upset"); n != 0 {
		t.Error("the private note reached the customer")
	}

	// Search across conversations, newest first.
	hits, err := s.desk.Search(ctx, "order", 10)
	ok(t, "search", err)
	if len(hits) != 2 || hits[0].Entry.Text != "It is order 42." || hits[0].Customer != "bob@blue.test" || hits[0].Conversation != bobID {
		t.Errorf("search for order: %+v", hits)
	}
	hits, err = s.desk.Search(ctx, "lyon", 10)
	if err != nil || len(hits) != 1 || hits[0].Conversation != aliceID {
		t.Errorf("search for lyon: %+v (%v)", hits, err)
	}
	if _, err := s.desk.Search(ctx, "  ", 10); !errors.Is(err, inbox.ErrInvalid) {
		t.Errorf("an empty search: %v", err)
	}

	// Mistakes are refused with a stable error, changing nothing.
	if _, err := s.desk.Reply(ctx, 999, ann.ID, "hello"); !errors.Is(err, inbox.ErrNotFound) {
		t.Errorf("a reply to no conversation: %v", err)
	}
	if _, err := s.desk.Reply(ctx, bobID, 999, "hello"); !errors.Is(err, inbox.ErrForbidden) {
		t.Errorf("a reply by no agent: %v", err)
	}
	if _, err := s.desk.Reply(ctx, bobID, ann.ID, "   "); !errors.Is(err, inbox.ErrInvalid) {
		t.Errorf("an empty reply: %v", err)
	}
	if _, err := s.desk.List(ctx, inbox.Filter{Status: "lost"}); !errors.Is(err, inbox.ErrInvalid) {
		t.Errorf("a bad status filter: %v", err)
	}
}

func countContaining(texts []string, sub string) int {
	n := 0
	for _, t := range texts {
		if strings.Contains(t, sub) {
			n++
		}
	}
	return n
}

// TestRoundRobinWithCapacity: conversations go in turn to the online
// agents below their capacity; one nobody can take waits until a
// resolution frees a place, or an agent comes online; transfers and
// removals are in the audit trail.
func TestRoundRobinWithCapacity(t *testing.T) {
	s := newShop(t)
	ctx := context.Background()
	ok(t, "settings", s.desk.SetSettings(ctx, inbox.Settings{AutoAssign: true}))
	ann, ben, cat := s.agent("ann", inbox.RoleAdmin), s.agent("ben", inbox.RoleAgent), s.agent("cat", inbox.RoleAgent)
	for _, a := range []inbox.Agent{ann, ben} {
		ok(t, "capacity", s.desk.SetAgentCapacity(ctx, a.ID, 1))
		ok(t, "online", s.desk.SetOnline(ctx, a.ID, true))
	}
	// Cat is offline: she gets nothing.
	c1 := s.newCustomer(1, "c1", "").write("first")
	c2 := s.newCustomer(0, "c2", "").write("second")
	c3 := s.newCustomer(1, "c3", "").write("third")
	if a1, a2 := s.conv(c1).Assignee, s.conv(c2).Assignee; a1 != ann.ID || a2 != ben.ID {
		t.Fatalf("the first two went to %d and %d, want ann %d then ben %d", a1, a2, ann.ID, ben.ID)
	}
	if a3 := s.conv(c3).Assignee; a3 != 0 {
		t.Fatalf("the third went to %d though everyone online is full", a3)
	}
	if l := s.list(inbox.Filter{Assignee: -1}); len(l) != 1 || l[0].ID != c3 {
		t.Errorf("unassigned: %+v", l)
	}
	// Pending conversations do not count: a conversation waiting on the
	// customer frees its agent.
	ok(t, "ann resolves the first", s.desk.SetStatus(ctx, c1, ann.ID, inbox.StatusResolved))
	if a3 := s.conv(c3).Assignee; a3 != ann.ID {
		t.Fatalf("after ann resolved hers, the waiting one went to %d, want ann", a3)
	}
	if got := s.audit(c3); !slices.Contains(got, "system assigned to Ann (round robin)") {
		t.Errorf("c3's audit: %q", got)
	}
	// Cat comes online with room for more: the next goes to her, after
	// ann in turn, ben being full.
	ok(t, "cat online", s.desk.SetOnline(ctx, cat.ID, true))
	c4 := s.newCustomer(0, "c4", "").write("fourth")
	if a4 := s.conv(c4).Assignee; a4 != cat.ID {
		t.Fatalf("the fourth went to %d, want cat %d", a4, cat.ID)
	}
	// A capacity raised takes the waiting at once.
	ok(t, "ben pends his", s.desk.SetStatus(ctx, c2, ben.ID, inbox.StatusPending))
	ok(t, "cat's capacity", s.desk.SetAgentCapacity(ctx, cat.ID, 1))
	c5 := s.newCustomer(1, "c5", "").write("fifth")
	if a5 := s.conv(c5).Assignee; a5 != ben.ID {
		t.Errorf("the fifth went to %d, want ben (his other one is pending)", a5)
	}

	// Transfers: to an agent, then to a team, whose online agent takes it.
	billing, err := s.desk.AddTeam(ctx, "Billing", 0, 0)
	ok(t, "team", err)
	dan := s.agent("dan", inbox.RoleAgent)
	ok(t, "dan's team", s.desk.SetAgentTeams(ctx, dan.ID, []int64{billing.ID}))
	ok(t, "dan online", s.desk.SetOnline(ctx, dan.ID, true))
	ok(t, "ben transfers to cat", s.desk.Transfer(ctx, c5, ben.ID, cat.ID, 0))
	if a := s.conv(c5).Assignee; a != cat.ID {
		t.Errorf("after the transfer, assignee %d", a)
	}
	ok(t, "cat transfers to billing", s.desk.Transfer(ctx, c5, cat.ID, 0, billing.ID))
	if c := s.conv(c5); c.Assignee != dan.ID || c.Team != billing.ID {
		t.Errorf("after the transfer to billing: assignee %d team %d, want dan in billing", c.Assignee, c.Team)
	}
	if err := s.desk.Transfer(ctx, c5, cat.ID, 0, 0); !errors.Is(err, inbox.ErrInvalid) {
		t.Errorf("a transfer to nobody: %v", err)
	}
	if err := s.desk.Transfer(ctx, c5, cat.ID, 0, 999); !errors.Is(err, inbox.ErrNotFound) {
		t.Errorf("a transfer to no team: %v", err)
	}
	// Dan leaves: his conversation is unassigned, audited, and his
	// session ends; with nobody else in billing online, it waits.
	token, _, err := s.desk.NewSession(ctx, dan.ID)
	ok(t, "dan's session", err)
	ok(t, "removing dan", s.desk.RemoveAgent(ctx, dan.ID))
	if _, err := s.desk.SessionAgent(ctx, token); !errors.Is(err, inbox.ErrNotFound) {
		t.Errorf("a removed agent's session: %v", err)
	}
	if c := s.conv(c5); c.Assignee != 0 {
		t.Errorf("dan's conversation is still assigned to %d", c.Assignee)
	}
	want := []string{
		"system created from c5@blue.test on blue.test",
		"system assigned to Ben (round robin)",
		"Ben transferred to Cat",
		"Cat transferred to team Billing",
		"system assigned to Dan (round robin)",
		"system unassigned Dan was removed",
	}
	if got := s.audit(c5); !slices.Equal(got, want) {
		t.Errorf("c5's audit trail:\n%q\nwant\n%q", got, want)
	}
	// Manual assignment ignores capacity.
	ok(t, "ann assigns to ben", s.desk.Assign(ctx, c5, ann.ID, ben.ID))
	if c := s.conv(c5); c.Assignee != ben.ID {
		t.Errorf("manually assigned to %d", c.Assignee)
	}
}

// TestServiceLevels: a team's first-response and resolution targets
// start with the customer's first message; the time due is shown, a
// breach is recorded once (by the Run loop, or when read), a reopened
// conversation runs a new resolution clock, and the report counts it all.
func TestServiceLevels(t *testing.T) {
	s := newShop(t)
	ctx := context.Background()
	support, err := s.desk.AddTeam(ctx, "Support", 10*time.Minute, time.Hour)
	ok(t, "team", err)
	ok(t, "settings", s.desk.SetSettings(ctx, inbox.Settings{DefaultTeam: support.ID}))
	ann := s.agent("ann", inbox.RoleAgent)
	t0 := s.clock.Now()

	bob := s.newCustomer(1, "bob", "")
	bobID := bob.write("My parcel is damaged")
	b := s.conv(bobID)
	if b.Team != support.ID || b.SLA.FirstResponseDue == nil || !b.SLA.FirstResponseDue.Equal(t0.Add(10*time.Minute)) ||
		b.SLA.ResolutionDue == nil || !b.SLA.ResolutionDue.Equal(t0.Add(time.Hour)) || b.SLA.FirstResponseBreached {
		t.Fatalf("bob's SLA: %+v (team %d)", b.SLA, b.Team)
	}

	// Eleven minutes without an answer: the Run loop records the breach.
	s.clock.advance(11 * time.Minute)
	waitFor(t, "the breach to be recorded", func() bool {
		return slices.Contains(s.audit(bobID), "system breach first_response target missed")
	})
	if b := s.conv(bobID); !b.SLA.FirstResponseBreached || b.SLA.FirstResponseDue == nil {
		t.Errorf("after the deadline: %+v", b.SLA)
	}
	alice := s.newCustomer(0, "alice", "")
	aliceID := alice.write("Is the blue one in stock?")
	_, err = s.desk.Reply(ctx, bobID, ann.ID, "Sorry! We send a new one.")
	ok(t, "reply to bob", err)
	if b := s.conv(bobID); b.SLA.FirstResponseDue != nil || !b.SLA.FirstResponseBreached || b.FirstResponse == nil {
		t.Errorf("after the late answer: %+v", b.SLA)
	}
	s.clock.advance(4 * time.Minute)
	_, err = s.desk.Reply(ctx, aliceID, ann.ID, "Yes, it is.")
	ok(t, "reply to alice", err)
	if a := s.conv(aliceID); a.SLA.FirstResponseBreached || a.SLA.FirstResponseDue != nil {
		t.Errorf("alice answered in 4 minutes: %+v", a.SLA)
	}

	// Resolved in 30 minutes, within the target; reopened 10 minutes
	// later, a new resolution clock runs, and is missed.
	s.clock.set(t0.Add(30 * time.Minute))
	ok(t, "resolve bob", s.desk.SetStatus(ctx, bobID, ann.ID, inbox.StatusResolved))
	if b := s.conv(bobID); b.SLA.ResolutionDue != nil || b.SLA.ResolutionBreached || b.Resolved == nil {
		t.Errorf("resolved in time: %+v", b)
	}
	s.clock.set(t0.Add(40 * time.Minute))
	bob.write("The new one is damaged too")
	b = s.conv(bobID)
	if b.Status != inbox.StatusOpen || b.SLA.ResolutionDue == nil || !b.SLA.ResolutionDue.Equal(t0.Add(100*time.Minute)) || b.Resolved != nil {
		t.Errorf("reopened: status %s, resolution due %v", b.Status, b.SLA.ResolutionDue)
	}
	if got := s.audit(bobID); !slices.Contains(got, "Ann status open → resolved") {
		t.Errorf("the resolution is not audited from open to resolved: %q", got)
	}
	if got := s.audit(bobID); !slices.Contains(got, "system status resolved → open (the customer wrote)") {
		t.Errorf("the reopening is not audited: %q", got)
	}
	s.clock.set(t0.Add(2 * time.Hour))
	if b := s.conv(bobID); !b.SLA.ResolutionBreached {
		t.Errorf("two hours on, the second resolution clock is not breached: %+v", b.SLA)
	}

	// The report: two conversations, one per provider; first responses
	// of 11 and 4 minutes; one resolution of 30 minutes; one
	// first-response breach and two resolution breaches (bob's second
	// clock, alice's still open).
	rep, err := s.desk.Report(ctx, t0.Add(-time.Hour), t0.Add(24*time.Hour))
	ok(t, "report", err)
	if rep.PerProvider["blue.test"] != 1 || rep.PerProvider["green.test"] != 1 || len(rep.PerProvider) != 2 {
		t.Errorf("per provider: %v", rep.PerProvider)
	}
	if rep.MedianFirstResponse != 7*time.Minute+30*time.Second || rep.MedianResolution != 30*time.Minute {
		t.Errorf("medians: first response %v, resolution %v", rep.MedianFirstResponse, rep.MedianResolution)
	}
	if rep.FirstResponseBreaches != 1 || rep.ResolutionBreaches != 2 {
		t.Errorf("breaches: first response %d, resolution %d", rep.FirstResponseBreaches, rep.ResolutionBreaches)
	}
	if len(rep.Days) != 2 || rep.Days[0].Conversations != 2 || rep.Days[0].Resolved != 1 || rep.Days[0].Breaches != 3 ||
		rep.Days[1].Conversations != 0 || !rep.Days[1].Day.Equal(time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("days: %+v", rep.Days)
	}
	// Another period sees none of it.
	rep, err = s.desk.Report(ctx, t0.Add(48*time.Hour), t0.Add(72*time.Hour))
	if err != nil || len(rep.PerProvider) != 0 || rep.FirstResponseBreaches+rep.ResolutionBreaches != 0 || rep.MedianFirstResponse != 0 {
		t.Errorf("a later period: %+v (%v)", rep, err)
	}
	if _, err := s.desk.Report(ctx, t0, t0.Add(-time.Hour)); !errors.Is(err, inbox.ErrInvalid) {
		t.Errorf("a backward period: %v", err)
	}
}

// TestBusinessHours: outside the hours, a customer gets the away reply
// once per closed period, and the greeting once for good.
func TestBusinessHours(t *testing.T) {
	s := newShop(t)
	ctx := context.Background()
	week := inbox.Hours{Zone: "Europe/Paris"}
	for d := time.Monday; d <= time.Friday; d++ {
		week.Days[d] = []inbox.Span{{From: "09:00", To: "12:30"}, {From: "13:30", To: "17:00"}}
	}
	ok(t, "settings", s.desk.SetSettings(ctx, inbox.Settings{Hours: week, Greeting: "Hello from the shop!",
		AwayMessage: "We are closed; we answer from 9:00 on weekdays."}))
	paris := mustZone("Europe/Paris")
	for _, c := range []struct {
		at   time.Time
		open bool
	}{
		{time.Date(2026, 12, 2, 10, 0, 0, 0, paris), true},
		{time.Date(2026, 12, 2, 8, 59, 0, 0, paris), false},
		{time.Date(2026, 12, 2, 12, 45, 0, 0, paris), false},
		{time.Date(2026, 12, 2, 16, 0, 0, 0, time.UTC), false}, // 17:00 in Paris
		{time.Date(2026, 12, 2, 15, 59, 0, 0, time.UTC), true},
		{time.Date(2026, 12, 5, 11, 0, 0, 0, paris), false}, // Saturday
	} {
		if got := s.desk.Open(c.at); got != c.open {
			t.Errorf("open at %v: %v, want %v", c.at, got, c.open)
		}
	}

	// Saturday: greeting and away reply, once for two messages.
	s.clock.set(time.Date(2026, 12, 5, 11, 0, 0, 0, paris))
	bob := s.newCustomer(1, "bob", "")
	bob.write("Are you open?")
	bob.receive("We are closed")
	bob.write("Hello?")
	time.Sleep(300 * time.Millisecond)
	got := bob.fromShop()
	if countContaining(got, "We are closed") != 1 || countContaining(got, "Hello from the shop") != 1 {
		t.Fatalf("on Saturday bob got %q", got)
	}
	// Monday morning, open: nothing automatic.
	s.clock.set(time.Date(2026, 12, 7, 10, 0, 0, 0, paris))
	bob.write("Anyone there now?")
	time.Sleep(300 * time.Millisecond)
	if got := bob.fromShop(); len(got) != 2 {
		t.Errorf("while open bob got %q", got)
	}
	// Monday at lunch: a new closed period, a new away reply; no
	// second greeting.
	s.clock.set(time.Date(2026, 12, 7, 12, 45, 0, 0, paris))
	bob.write("Lunch break?")
	waitFor(t, "the second away reply", func() bool { return countContaining(bob.fromShop(), "We are closed") == 2 })
	if got := bob.fromShop(); countContaining(got, "Hello from the shop") != 1 {
		t.Errorf("bob was greeted again: %q", got)
	}

	for _, bad := range []inbox.Settings{
		{Hours: inbox.Hours{Zone: "Mars/Olympus_Mons"}},
		{Hours: inbox.Hours{Days: [7][]inbox.Span{1: {{From: "17:00", To: "09:00"}}}}},
		{Hours: inbox.Hours{Days: [7][]inbox.Span{1: {{From: "9:00", To: "17:00"}}}}},
		{Hours: inbox.Hours{Days: [7][]inbox.Span{1: {{From: "09:00", To: "24:30"}}}}},
		{DefaultTeam: 42},
	} {
		if err := s.desk.SetSettings(ctx, bad); !errors.Is(err, inbox.ErrInvalid) {
			t.Errorf("settings %+v: %v, want invalid", bad, err)
		}
	}
	if set, _ := s.desk.Settings(ctx); set.Hours.Zone != "Europe/Paris" || set.Greeting == "" {
		t.Errorf("refused settings changed them: %+v", set)
	}
}

// TestSatisfaction: resolving asks the customer; a bare digit within a
// week is the answer and reopens nothing; anything else reopens.
func TestSatisfaction(t *testing.T) {
	s := newShop(t)
	ctx := context.Background()
	ok(t, "settings", s.desk.SetSettings(ctx, inbox.Settings{CSAT: true}))
	ann := s.agent("ann", inbox.RoleAgent)
	bob := s.newCustomer(1, "bob", "")
	id := bob.write("Can I change my address?")
	_, err := s.desk.Reply(ctx, id, ann.ID, "Done.")
	ok(t, "reply", err)
	ok(t, "resolve", s.desk.SetStatus(ctx, id, ann.ID, inbox.StatusResolved))
	bob.receive(inbox.DefaultCSATQuestion)
	s.clock.advance(time.Hour)
	bob.write(" 4 ")
	c := s.conv(id)
	if c.CSAT == nil || *c.CSAT != 4 || c.Status != inbox.StatusResolved || c.WaitingSince != nil {
		t.Fatalf("after the answer: csat %v, status %s, waiting %v", c.CSAT, c.Status, c.WaitingSince)
	}
	// Another message is a new question: it reopens.
	bob.write("Also, can I pay by card?")
	if c := s.conv(id); c.Status != inbox.StatusOpen || *c.CSAT != 4 {
		t.Errorf("after a new question: %s, csat %d", c.Status, *c.CSAT)
	}
	// Asked again, answered too late: the digit is a message.
	ok(t, "resolve again", s.desk.SetStatus(ctx, id, ann.ID, inbox.StatusResolved))
	s.clock.advance(8 * 24 * time.Hour)
	bob.write("5")
	if c := s.conv(id); c.Status != inbox.StatusOpen || *c.CSAT != 4 {
		t.Errorf("a late digit: %s, csat %d", c.Status, *c.CSAT)
	}
}

// TestContacts: the same verified phone number on two providers is one
// contact; a number the customer does not share joins nothing; Unlink
// separates a conversation for good.
func TestContacts(t *testing.T) {
	s := newShop(t)
	ctx := context.Background()
	onBlue := s.newCustomer(1, "bob", "+33 6 12 34 56 78").findableByPhone()
	onGreen := s.newCustomer(0, "robert", "+33612345678").findableByPhone()
	// Carol has a verified number but does not share it.
	private := s.newCustomer(1, "carol", "+33698765432")
	blueID, greenID, privateID := onBlue.write("hi from blue"), onGreen.write("hi from green"), private.write("hi")
	b, g := s.conv(blueID), s.conv(greenID)
	if b.Contact.ID != g.Contact.ID || b.Contact.Phone != "+33612345678" || b.Contact.Name != "bob" ||
		!slices.Equal(b.Contact.Addresses, []string{"bob@blue.test", "robert"}) {
		t.Fatalf("the same verified phone on two providers: %+v and %+v", b.Contact, g.Contact)
	}
	if p := s.conv(privateID).Contact; p.ID == b.Contact.ID || p.Phone != "" {
		t.Errorf("a number not shared joined bob's contact: %+v", p)
	}
	ok(t, "unlink", s.desk.Unlink(ctx, greenID))
	b, g = s.conv(blueID), s.conv(greenID)
	if b.Contact.ID == g.Contact.ID || !slices.Equal(g.Contact.Addresses, []string{"robert"}) ||
		!slices.Equal(b.Contact.Addresses, []string{"bob@blue.test"}) || g.Contact.Phone != "+33612345678" {
		t.Errorf("after unlinking: %+v and %+v", b.Contact, g.Contact)
	}
	if got := s.audit(greenID); !slices.Contains(got, "system unlinked a contact of its own") {
		t.Errorf("the unlinking is not audited: %q", got)
	}
	// It stays unlinked as messages come, and a later conversation with
	// the number joins the linked contact, not the unlinked one.
	onGreen.write("still me")
	if s.conv(greenID).Contact.ID != g.Contact.ID {
		t.Error("the unlinked conversation was linked again")
	}
	again := &customer{t: t, s: s, name: "bob", m: onBlue.m}
	if c := s.conv(again.write("a new question")).Contact; c.ID != b.Contact.ID {
		t.Errorf("a new conversation with the number got contact %+v, want bob's %d", c, b.Contact.ID)
	}
	if err := s.desk.Unlink(ctx, 999); !errors.Is(err, inbox.ErrNotFound) {
		t.Errorf("unlinking no conversation: %v", err)
	}
}

// TestAgentsAndSessions: passwords, sessions and their end.
func TestAgentsAndSessions(t *testing.T) {
	s := newShop(t)
	ctx := context.Background()
	ann, err := s.desk.AddAgent(ctx, "ann", "Ann Smith", "a long passphrase", inbox.RoleAdmin)
	ok(t, "ann", err)
	for _, bad := range []struct{ login, password string }{
		{"Ann", "a long passphrase"}, {"", "a long passphrase"}, {"a b", "a long passphrase"}, {"ben", "short"},
	} {
		if _, err := s.desk.AddAgent(ctx, bad.login, "", bad.password, inbox.RoleAgent); !errors.Is(err, inbox.ErrInvalid) {
			t.Errorf("agent %q with password %q: %v", bad.login, bad.password, err)
		}
	}
	if _, err := s.desk.AddAgent(ctx, "ann", "Other Ann", "another passphrase", inbox.RoleAgent); !errors.Is(err, inbox.ErrExists) {
		t.Errorf("a second ann: %v", err)
	}
	if _, err := s.desk.Login(ctx, "ann", "a wrong passphrase"); !errors.Is(err, inbox.ErrBadLogin) {
		t.Errorf("a wrong password: %v", err)
	}
	if _, err := s.desk.Login(ctx, "nobody", "a long passphrase"); !errors.Is(err, inbox.ErrBadLogin) {
		t.Errorf("an unknown login: %v", err)
	}
	a, err := s.desk.Login(ctx, "ann", "a long passphrase")
	if err != nil || a.ID != ann.ID || a.Role != inbox.RoleAdmin || a.Capacity != inbox.DefaultCapacity {
		t.Fatalf("login: %+v (%v)", a, err)
	}
	ok(t, "new password", s.desk.SetPassword(ctx, ann.ID, "a newer passphrase"))
	if _, err := s.desk.Login(ctx, "ann", "a long passphrase"); !errors.Is(err, inbox.ErrBadLogin) {
		t.Errorf("the old password still works: %v", err)
	}
	token, expires, err := s.desk.NewSession(ctx, ann.ID)
	ok(t, "session", err)
	if !expires.Equal(s.clock.Now().Add(12 * time.Hour)) {
		t.Errorf("the session expires at %v", expires)
	}
	if a, err := s.desk.SessionAgent(ctx, token); err != nil || a.ID != ann.ID {
		t.Errorf("the session's agent: %+v (%v)", a, err)
	}
	if _, err := s.desk.SessionAgent(ctx, token+"x"); !errors.Is(err, inbox.ErrNotFound) {
		t.Errorf("a wrong token: %v", err)
	}
	s.clock.advance(12*time.Hour + time.Second)
	if _, err := s.desk.SessionAgent(ctx, token); !errors.Is(err, inbox.ErrNotFound) {
		t.Errorf("an expired session: %v", err)
	}
	token, _, err = s.desk.NewSession(ctx, ann.ID)
	ok(t, "another session", err)
	ok(t, "logout", s.desk.EndSession(ctx, token))
	if _, err := s.desk.SessionAgent(ctx, token); !errors.Is(err, inbox.ErrNotFound) {
		t.Errorf("a session after logout: %v", err)
	}
	ok(t, "capacity", s.desk.SetAgentCapacity(ctx, ann.ID, 3))
	if err := s.desk.SetAgentCapacity(ctx, ann.ID, -1); !errors.Is(err, inbox.ErrInvalid) {
		t.Errorf("a negative capacity: %v", err)
	}
	if err := s.desk.SetAgentTeams(ctx, ann.ID, []int64{77}); !errors.Is(err, inbox.ErrNotFound) {
		t.Errorf("an unknown team: %v", err)
	}
	if err := s.desk.RemoveAgent(ctx, 999); !errors.Is(err, inbox.ErrNotFound) {
		t.Errorf("removing nobody: %v", err)
	}
	as, err := s.desk.Agents(ctx)
	if err != nil || len(as) != 1 || as[0].Capacity != 3 || as[0].Name != "Ann Smith" {
		t.Errorf("agents %+v (%v)", as, err)
	}

	// Events reach a subscriber; a slow one loses the oldest, never
	// blocking the desk.
	ch, stop := s.desk.Subscribe()
	defer stop()
	for range 1000 {
		ok(t, "online", s.desk.SetOnline(ctx, ann.ID, true))
	}
	if e := <-ch; e.Kind != "agents" {
		t.Errorf("event %+v", e)
	}
}

// TestRestart: the desk keeps its state across a restart, and takes in
// what customers wrote while it was down.
func TestRestart(t *testing.T) {
	s := newShop(t)
	ctx := context.Background()
	ok(t, "settings", s.desk.SetSettings(ctx, inbox.Settings{Greeting: "Hello!", AutoAssign: true}))
	ann := s.agent("ann", inbox.RoleAgent)
	ok(t, "online", s.desk.SetOnline(ctx, ann.ID, true))
	bob := s.newCustomer(1, "bob", "")
	id := bob.write("first")
	bob.receive("Hello!")
	ok(t, "labels", s.desk.SetLabels(ctx, id, ann.ID, []string{"returns"}))

	s.stop()
	_, err := bob.m.Send(ctx, bob.room, "written while the shop was down")
	ok(t, "bob writes", err)
	s.start()
	waitFor(t, "the message written during the downtime", func() bool { return s.conv(id).Unread == 2 })
	c := s.conv(id)
	if c.Assignee != ann.ID || !slices.Equal(c.Labels, []string{"returns"}) {
		t.Errorf("after the restart: %+v", c)
	}
	if set, _ := s.desk.Settings(ctx); set.Greeting != "Hello!" || !set.AutoAssign {
		t.Errorf("settings after the restart: %+v", set)
	}
	time.Sleep(200 * time.Millisecond)
	if n := countContaining(bob.fromShop(), "Hello!"); n != 1 {
		t.Errorf("bob was greeted %d times", n)
	}
	if _, err := s.desk.Login(ctx, "ann", "correct horse battery"); err != nil {
		t.Errorf("ann's login after the restart: %v", err)
	}
}
