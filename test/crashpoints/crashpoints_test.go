package crashpoints_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/crashpoint"
	"github.com/switchboard-chat/switchboard/test/chatsim"
	"github.com/switchboard-chat/switchboard/test/proctest"
)

// bound is how long any step may wait for the others to catch up: far
// more than they need, even on a loaded machine.
const bound = 45 * time.Second

// The crashes: which provider is armed with which point (NAME@N: the Nth
// time it is reached), and the step of the script where that happens.
// green hosts the room; blue is the provider of the members added from
// the other side (Bob, then Dave).
var crashes = []struct {
	victim, point, step, when string
}{
	{"green", crashpoint.HubWelcomeStored + "@1", "add Bob", "commit and Welcome stored, Alice not answered"},
	{"green", crashpoint.HubCommitStored + "@3", "remove Dave", "the commit stored, Alice not answered"},
	{"green", crashpoint.OutboxSent + "@1", "add Bob", "blue accepted the commit and Welcome, green has not deleted them"},
	{"green", crashpoint.HubMessageStored + "@2", "round 1", "Bob's message, forwarded by blue, stored, blue not answered"},
	{"blue", crashpoint.FollowerCommitStored + "@1", "add Bob", "blue stored the commit, green not answered"},
	{"blue", crashpoint.FollowerWelcomeStored + "@2", "add Dave", "blue stored Dave's Welcome, green not answered"},
	{"blue", crashpoint.FollowerMessageStored + "@1", "round 1", "blue stored Alice's message, green not answered"},
	{"blue", crashpoint.ForwardAccepted + "@1", "round 1", "green accepted Bob's message, Bob not answered"},
	{"blue", crashpoint.ForwardAccepted + "@4", "add Bob's laptop", "green accepted the commit blue forwarded, Bob's phone not answered"},
	{"green", crashpoint.HubWelcomeStored + "@3", "add Bob's laptop", "green stored the forwarded commit and Welcome, blue not answered"},
	{"green", crashpoint.OutboxFailureRecorded + "@1", "blue away", "green recorded a failed notify, the retry pending"},
	{"green", crashpoint.OutboxRetrySent + "@1", "blue away", "blue, back, accepted green's retry, green has not deleted it"},
}

// TestCrashAtChosenPoints runs the script once per crash point, the armed
// provider killing itself there and started again at once without it.
// Every run starts from new providers and devices.
func TestCrashAtChosenPoints(t *testing.T) {

	for _, c := range crashes {
		t.Run(c.victim+"_"+c.point, func(t *testing.T) {
			t.Parallel()
			s := newScript(t, c.victim, c.point)
			s.run()
			// Both stopped at once, not one after the other by the
			// cleanups: each stop drains for up to a second or so.
			var stops sync.WaitGroup
			for _, name := range []string{"green", "blue"} {
				p := s.pair.Proc(name)
				stops.Go(func() { p.Terminate(bound) })
			}
			stops.Wait()
			// The crash is seen in its step, or, for one whose step
			// went on without waiting for the victim, in the next.
			if i := slices.Index(s.steps, c.step); i < 0 || s.crashStep < i || s.crashStep > i+1 {
				t.Errorf("%s reached %s in step %q, not in %q", c.victim, c.point, s.steps[s.crashStep], c.step)
			}
			t.Logf("%s crashed at %s in step %q (%s); %d messages sent (%d acknowledged), %d deliveries checked, in %v",
				c.victim, c.point, c.step, c.when, len(s.sends.All()), s.sends.Acked(), s.checked, time.Since(s.began).Round(time.Millisecond))
		})
	}
}

// script is one run: the providers, the people, and what they sent.
type script struct {
	t                  *testing.T
	pair               *proctest.Pair
	victim, point      string
	crashed, restarted bool
	steps              []string // the script's steps so far
	crashStep          int      // the step in which the crash was seen
	began              time.Time
	ctx                context.Context

	alice, bob, dave *device
	bobLaptop        *device // registered half-way
	room             client.RoomID
	sends            *chatsim.SendLog
	checked          int
}

func newScript(t *testing.T, victim, point string) *script {
	s := &script{t: t, victim: victim, point: point, began: time.Now(), ctx: context.Background(), sends: &chatsim.SendLog{}}
	s.pair = proctest.NewPair(t, bin, []string{"alice@green.test/phone", "bob@blue.test/phone", "bob@blue.test/laptop", "dave@blue.test/phone"}, nil)
	for _, name := range []string{"green", "blue"} {
		var env []string
		if name == victim {
			env = []string{crashpoint.EnvVar + "=" + point}
		}
		s.pair.Start(t, name, env...)
	}
	s.alice = register(t, s.pair, "alice@green.test/phone")
	s.bob = register(t, s.pair, "bob@blue.test/phone")
	s.dave = register(t, s.pair, "dave@blue.test/phone")
	return s
}

// tick restarts the armed provider once it has died, after checking that
// it died by SIGKILL at its crash point. Every wait of the script ticks.
func (s *script) tick() {
	if s.restarted {
		return
	}
	p := s.pair.Proc(s.victim)
	if !p.Exited() {
		return
	}
	s.crashed, s.crashStep = true, len(s.steps)-1
	name, _, _ := strings.Cut(s.point, "@")
	if !p.Killed() {
		s.t.Fatalf("%s exited (%v), not killed by its crash point %s", s.victim, p.State(), s.point)
	}
	if n := proctest.LogCount(s.pair.Dir, s.victim, "crashpoint: "+name+" reached"); n != 1 {
		s.t.Fatalf("%s was killed, and its logs say %d times that it reached %s", s.victim, n, name)
	}
	s.t.Logf("%s killed itself at %s %v into the run, in step %q; starting it again", s.victim, s.point, time.Since(s.began).Round(time.Millisecond), s.steps[s.crashStep])
	s.pair.Start(s.t, s.victim)
	s.restarted = true
}

// until waits, ticking, for ok; what says what it waits for.
func (s *script) until(what string, ok func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(bound)
	for !ok() {
		s.tick()
		if time.Now().After(deadline) {
			s.t.Fatalf("%v later, still waiting for %s", bound, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
	s.tick()
}

// retry does an operation the way a person would: again after a failure
// (the provider they use may be down for a moment), ticking meanwhile.
// Only operations that are safe to repeat come here: a commit's retry is
// settled by the SDK with its client_id first.
func (s *script) retry(what string, op func() error) {
	s.t.Helper()
	deadline := time.Now().Add(bound)
	for {
		err := op()
		if err == nil {
			return
		}
		s.t.Logf("%s failed (tried again): %v", what, err)
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: %v", what, err)
		}
		s.until("the providers to serve again", func() bool { return true })
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *script) run() {
	t := s.t
	// Alice makes a room (hosted by green) and adds Bob, on blue: a
	// commit and a Welcome that goes to blue.
	s.step("add Bob")
	s.retry("Alice creates a room", func() (err error) { s.room, err = s.alice.Client().CreateRoom(s.ctx); return err })
	s.retry("Alice adds Bob", func() error { return s.alice.Client().Invite(s.ctx, s.room, "bob@blue.test") })
	s.inStep(s.alice, s.bob)
	s.step("round 1")
	s.exchange("1", s.dave)

	// Dave joins, hears a round, and is removed.
	s.step("add Dave")
	s.retry("Alice adds Dave", func() error { return s.alice.Client().Invite(s.ctx, s.room, "dave@blue.test") })
	s.inStep(s.alice, s.bob, s.dave)
	s.step("round 2")
	s.exchange("2", nil)
	s.step("remove Dave")
	first := true
	s.retry("Alice removes Dave", func() error {
		err := s.alice.Client().Remove(s.ctx, s.room, "dave@blue.test")
		if !first && errors.Is(err, client.ErrNotMember) {
			// The try the crash cut off removed him: the wish is met.
			return nil
		}
		first = false
		return err
	})
	s.until("Dave to hear he was removed", func() bool { _, r := s.dave.Counts(s.room); return r > 0 })
	s.inStep(s.alice, s.bob)
	s.step("round 3")
	s.exchange("3", s.dave)

	// Bob registers his laptop; his phone adds it to the room (the SDK
	// does, on hearing of the new device): a commit from blue's side,
	// forwarded to green, with a Welcome for a device on blue.
	s.step("add Bob's laptop")
	s.bobLaptop = register(t, s.pair, "bob@blue.test/laptop")
	s.inStep(s.alice, s.bob, s.bobLaptop)
	s.step("round 4")
	s.exchange("4", s.dave)

	// For the outbox's points: blue goes away for a moment (stopped as
	// an operator does) while Alice writes, so that green's outbox fails,
	// records it, and retries once blue is back.
	if strings.HasPrefix(s.point, crashpoint.OutboxFailureRecorded) || strings.HasPrefix(s.point, crashpoint.OutboxRetrySent) {
		s.outage()
	}

	// Whatever happened, the point must have been reached, and the room
	// must work both ways afterwards.
	s.step("last round")
	s.until(s.victim+" to reach "+s.point, func() bool { return s.restarted })
	s.inStep(s.alice, s.bob, s.bobLaptop)
	s.exchange("after", s.dave)
	s.verify()
}

// step marks the start of a step of the script.
func (s *script) step(name string) { s.tick(); s.steps = append(s.steps, name) }

// outage stops blue while Alice writes, until green's outbox has failed
// to reach it, and starts it again.
func (s *script) outage() {
	t := s.t
	s.step("blue away")
	failedBefore := proctest.LogCount(s.pair.Dir, "green", "outbox: delivery failed")
	took, ok := s.pair.Proc("blue").Terminate(bound)
	if !ok {
		t.Fatalf("blue did not stop within %v of SIGTERM", bound)
	}
	t.Logf("blue stopped in %v", took.Round(time.Millisecond))
	send(s.ctx, s.sends, s.alice, s.room, "alice: while blue is away", s.bob, s.bobLaptop)
	s.until("green's outbox to fail to reach blue", func() bool {
		return proctest.LogCount(s.pair.Dir, "green", "outbox: delivery failed") > failedBefore
	})
	s.pair.Start(t, "blue")
	s.step("round 5")
	s.exchange("5", s.dave)
}

// inStep waits until every device in the room is at the same epoch, with
// the same members.
func (s *script) inStep(ds ...*device) {
	s.t.Helper()
	s.until("the room's members to reach the same epoch", func() bool {
		e0, err0 := ds[0].Client().Epoch(s.room)
		m0, _ := ds[0].Client().Members(s.room)
		for _, d := range ds[1:] {
			e, err := d.Client().Epoch(s.room)
			m, _ := d.Client().Members(s.room)
			if err0 != nil || err != nil || e != e0 || len(m) != len(m0) {
				return false
			}
		}
		return true
	})
}

// exchange: Alice writes, then Bob; each must get the other's message
// (if it was acknowledged), and so must Dave unless he is away (outside).
func (s *script) exchange(tag string, outside *device) {
	s.t.Helper()
	to := func(ds ...*device) []*device {
		var out []*device
		for _, d := range ds {
			if d != outside && d != nil {
				out = append(out, d)
			}
		}
		return out
	}
	send(s.ctx, s.sends, s.alice, s.room, "alice: "+tag, to(s.bob, s.bobLaptop, s.dave)...)
	send(s.ctx, s.sends, s.bob, s.room, "bob: "+tag, to(s.alice, s.bobLaptop, s.dave)...)
	s.until("round "+tag+" to arrive", func() bool { return len(missing(s.everyone(), s.sends.All())) == 0 })
}

func (s *script) everyone() []*device {
	if s.bobLaptop == nil {
		return []*device{s.alice, s.bob, s.dave}
	}
	return []*device{s.alice, s.bob, s.bobLaptop, s.dave}
}

// verify checks the end state: one epoch and one member list for the
// room's members, each joiner joined once, every message where it must
// be, once, in order.
func (s *script) verify() {
	t := s.t
	if !s.crashed {
		t.Fatalf("%s never reached %s", s.victim, s.point)
	}
	ea, _ := s.alice.Client().Epoch(s.room)
	eb, _ := s.bob.Client().Epoch(s.room)
	ma, _ := s.alice.Client().Members(s.room)
	mb, _ := s.bob.Client().Members(s.room)
	slices.Sort(ma)
	slices.Sort(mb)
	if ea != eb {
		t.Errorf("Alice is at epoch %d, Bob at %d", ea, eb)
	}
	// Four commits: Bob added, Dave added, Dave removed, Bob's laptop
	// added.
	if el, _ := s.bobLaptop.Client().Epoch(s.room); ea != 4 || el != ea {
		t.Errorf("the room is at epoch %d (Bob's laptop: %d) after four commits", ea, el)
	}
	// Each names the users of its own provider by handle.
	if want := []string{"alice", "bob@blue.test"}; !slices.Equal(ma, want) {
		t.Errorf("Alice sees the room's members as %v, want %v", ma, want)
	}
	if want := []string{"alice@green.test", "bob"}; !slices.Equal(mb, want) {
		t.Errorf("Bob sees the room's members as %v, want %v", mb, want)
	}
	for _, d := range []*device{s.bob, s.bobLaptop, s.dave} {
		if j, _ := d.Counts(s.room); j != 1 {
			t.Errorf("%s joined the room %d times", d.Name, j)
		}
	}
	if _, r := s.dave.Counts(s.room); r != 1 {
		t.Errorf("Dave was told %d times that he was removed", r)
	}
	if m := missing(s.everyone(), s.sends.All()); len(m) > 0 {
		for d, list := range m {
			t.Errorf("%s lacks %s", d.Name, strings.Join(list, ", "))
		}
	}
	s.checked = checkDeliveries(t, s.everyone(), s.sends.All())
	for _, m := range s.sends.All() {
		if m.Err != nil {
			t.Logf("%s's %q failed (outcome unknown to her or him): %v", m.From.Name, m.Text, m.Err)
		}
	}
}
