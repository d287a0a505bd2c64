package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/content"
)

// The join workload: one room of --members devices over three providers,
// built as the group workload builds it; then --joins times, one after
// another, a member (the committer: the room's creator, on green) invites
// one new device, and the bench measures from the Invite call
//
//   - commit: until Invite returns, i.e. the hub accepted the commit and
//     the committer merged it;
//   - welcome: until the new device has processed its Welcome (the SDK's
//     RoomJoined);
//   - joined and sent: until the new device's first message, sent right
//     after it joined, is acknowledged by the provider;
//   - all members: until the last of the members already in the room has
//     processed the commit (its group is in the new epoch: the SDK reports
//     the new user in a MembersChanged once it has saved the state);
//   - each member: the same for every member, one sample each per join.
//
// Each join waits for every member before the next begins, so each is
// measured on a settled room; the new device is a member for the next.

// JoinFigures are a join run's measurements. Every latency runs from the
// committer's Invite call.
type JoinFigures struct {
	// Members is the room's size before the first join; Joins the joins
	// measured (the room ends with Members+Joins devices).
	Members int `json:"members"`
	Joins   int `json:"joins"`
	// Commit: the committer's commit accepted and merged (Invite
	// returned). Welcome: the new device joined. JoinedAndSent: its
	// first message acknowledged. AllMembers: the last existing member
	// processed the commit (one sample per join). EachMember: every
	// existing member processed it (one sample per member per join).
	Commit        Latency `json:"commit"`
	Welcome       Latency `json:"welcome"`
	JoinedAndSent Latency `json:"joined_and_sent"`
	AllMembers    Latency `json:"all_members"`
	EachMember    Latency `json:"each_member"`
	// MembersExpected is, over all joins, how many existing members were
	// to process a commit (the committer excluded); MembersReached how
	// many did.
	MembersExpected int `json:"members_expected"`
	MembersReached  int `json:"members_reached"`
	// PerJoin is each join in order.
	PerJoin []JoinSample `json:"per_join"`
}

// JoinSample is one join: the room's size before it and its latencies.
type JoinSample struct {
	Join          int     `json:"join"`
	RoomSize      int     `json:"room_size"`
	Epoch         uint64  `json:"epoch"`
	CommitMs      float64 `json:"commit_ms"`
	WelcomeMs     float64 `json:"welcome_ms"`
	JoinedSentMs  float64 `json:"joined_and_sent_ms"`
	AllMembersMs  float64 `json:"all_members_ms"`
	MembersWaited int     `json:"members_waited"`
}

// joinStepTimeout bounds each step of one join to a room of n (the
// commit, the Welcome, the first message, every member's processing: n
// devices' work on this machine's cores).
func joinStepTimeout(n int) time.Duration {
	return 2*time.Minute + time.Duration(n)*200*time.Millisecond
}

// epochWatch learns when the members of a room reach an epoch.
type epochWatch struct {
	mu      sync.Mutex
	target  uint64
	start   time.Time
	waiting map[int]bool // members not yet in the target epoch
	each    *hdrhistogram.Histogram
	last    time.Duration
	done    chan struct{}
}

// expect starts waiting for members to reach target; start is when the
// commit that makes it was begun.
func (w *epochWatch) expect(target uint64, members []*member, start time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.target, w.start, w.last = target, start, 0
	w.waiting = map[int]bool{}
	for _, m := range members {
		w.waiting[m.idx] = true
	}
	w.done = make(chan struct{})
	if len(w.waiting) == 0 {
		close(w.done)
	}
}

// reached notes that member idx is in epoch at the given time.
func (w *epochWatch) reached(idx int, epoch uint64, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.waiting[idx] || epoch < w.target {
		return
	}
	delete(w.waiting, idx)
	d := at.Sub(w.start)
	recordHist(w.each, d)
	if len(w.waiting) == 0 {
		w.last = d
		close(w.done)
	}
}

// giveUp stops waiting and returns how many members had not reached
// the target.
func (w *epochWatch) giveUp() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(w.waiting)
	w.waiting = map[int]bool{}
	return n
}

// outstanding is how many members have not reached the target.
func (w *epochWatch) outstanding() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.waiting)
}

// watchMember reads a member's SDK events: RoomJoined means it is in;
// after every MembersChanged (a commit processed and saved) its epoch is
// reported to w.
func watchMember(ctx context.Context, m *member, w *epochWatch, fail func(string)) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-m.dev.sdk.Events():
			if !ok {
				return
			}
			at := time.Now()
			switch ev := ev.(type) {
			case *client.RoomJoined, *client.MembersChanged:
				if ev.EventRoom() != m.room.id {
					continue
				}
				if _, ok := ev.(*client.RoomJoined); ok {
					m.markJoined()
				}
				if ep, err := m.dev.sdk.Epoch(m.room.id); err == nil {
					w.reached(m.idx, ep, at)
				}
			case *client.DeliveryFailed:
				fail("receive:delivery_failed")
			}
		}
	}
}

// runJoin runs the join workload.
func runJoin(ctx context.Context, s *Settings, dir string, p *progress) (*Result, error) {
	setupStart := time.Now()
	p.line("join: starting providers and setting up a room of %d and %d devices to join it", s.Members, s.Joins)
	e, err := startEnv(ctx, s, s.providers(), dir)
	if err != nil {
		return nil, err
	}
	defer e.close()

	var errMu sync.Mutex
	errs := map[string]int{}
	fail := func(code string) {
		errMu.Lock()
		errs[code]++
		errMu.Unlock()
	}
	w := &epochWatch{each: newHist()}
	rctx, cancel := context.WithCancel(ctx)
	var wg, runs sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		waitRuns(&runs)
	}()
	// run starts a member's stream and its event watcher.
	run := func(m *member) {
		wg.Add(1)
		runs.Add(1)
		go func() {
			defer runs.Done()
			m.dev.sdk.Run(rctx) // #nosec G104 -- Run returns ctx's error when the run ends
		}()
		go func() {
			defer wg.Done()
			watchMember(rctx, m, w, fail)
		}()
	}
	idx := 0
	newMember := func(r *room, d *device) *member {
		m := &member{idx: idx, dev: d, room: r, joined: make(chan struct{})}
		idx++
		return m
	}
	r, err := setupGroup(ctx, s.Members, e, func(r *room, d *device) *member {
		m := newMember(r, d)
		r.members = append(r.members, m)
		return m
	})
	if err != nil {
		return nil, err
	}
	// The devices that will join are registered and connected now, so that
	// a join measures the invitation, not a device's first connection.
	joiners := make([]*member, s.Joins)
	err = parallel(ctx, s.Joins, setupWorkers, func(ctx context.Context, k int) error {
		i := s.Members + k
		d, err := e.newSDKDevice(ctx, e.provs[i%len(e.provs)], "j"+strconv.Itoa(k), true)
		if err != nil {
			return err
		}
		joiners[k] = &member{dev: d, room: r, joined: make(chan struct{})}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, m := range joiners {
		m.idx = idx
		idx++
	}
	// Members invited early process the later batches' commits after
	// their Welcome: the joins start once every member is in the room's
	// current epoch.
	w.expect(r.epoch, r.members[1:], time.Now())
	for _, m := range r.members {
		run(m)
	}
	for _, m := range joiners {
		run(m)
	}
	if err := waitJoined(ctx, []*room{r}, joinTimeout(len(r.members)+len(joiners))); err != nil {
		return nil, err
	}
	if err := waitFor1(ctx, w.done, joinTimeout(len(r.members)+len(joiners))); err != nil {
		return nil, fmt.Errorf("bench: %d members did not reach the room's epoch %d: %w", w.outstanding(), r.epoch, err)
	}
	w.each.Reset()

	res := &Result{Workload: WorkloadJoin, Payload: PayloadE2EE, Devices: s.Members + s.Joins,
		SetupSeconds: time.Since(setupStart).Seconds()}
	for _, pr := range e.provs {
		res.Providers = append(res.Providers, pr.domain)
	}
	f := &JoinFigures{Members: s.Members}
	commit, welcome, sent, all := newHist(), newHist(), newHist(), newHist()
	committer := r.members[0]
	fill := make([]byte, s.Size)
	rand.Read(fill)

	smp := newSampler(e)
	smp.start()
	p.line("join: set up in %.1fs; %d joins", res.SetupSeconds, s.Joins)
	finish := func() {
		res.Server = smp.finish()
		f.Commit, f.Welcome, f.JoinedAndSent = summarize(commit), summarize(welcome), summarize(sent)
		f.AllMembers, f.EachMember = summarize(all), summarize(w.each)
		res.Join = f
		errMu.Lock()
		res.Errors = errs
		errMu.Unlock()
	}

	for k, nm := range joiners {
		before, err := committer.dev.sdk.Epoch(r.id)
		if err != nil {
			finish()
			return res, err
		}
		waitFor := r.members[1:]
		t0 := time.Now()
		w.expect(before+1, waitFor, t0)
		sample := JoinSample{Join: k + 1, RoomSize: len(r.members), Epoch: before + 1, MembersWaited: len(waitFor)}
		f.MembersExpected += len(waitFor)

		stepErr := func(what string, err error) (*Result, error) {
			// Members still processing are no longer counted, so that
			// the count and the latencies agree.
			f.MembersReached += len(waitFor) - w.giveUp()
			finish()
			return res, fmt.Errorf("bench: join %d of %s (room of %d): %s: %w", k+1, nm.dev.handle, len(r.members), what, err)
		}
		ictx, icancel := context.WithTimeout(ctx, joinStepTimeout(len(r.members)))
		err = committer.dev.sdk.Invite(ictx, r.id, nm.dev.address(committer.dev.p))
		icancel()
		if err != nil {
			fail("join:" + errorCode(err))
			return stepErr("the invitation", err)
		}
		d := time.Since(t0)
		recordHist(commit, d)
		sample.CommitMs = msOf(d)

		if err := waitFor1(ctx, nm.joined, joinStepTimeout(len(r.members))); err != nil {
			return stepErr("the Welcome", err)
		}
		d = time.Since(t0)
		recordHist(welcome, d)
		sample.WelcomeMs = msOf(d)

		body := slices.Clone(fill)
		header{sender: uint32(nm.idx), num: 0, at: d}.put(body) // #nosec G115 -- a device index, below the device count
		enc, err := content.New(content.InlinePart("application/octet-stream", body)).Encode()
		if err != nil {
			return stepErr("the first message", err)
		}
		sctx, scancel := context.WithTimeout(ctx, joinStepTimeout(len(r.members)))
		_, err = nm.dev.sdk.Send(sctx, r.id, enc)
		scancel()
		if err != nil {
			fail("send:" + errorCode(err))
			return stepErr("the first message", err)
		}
		d = time.Since(t0)
		recordHist(sent, d)
		sample.JoinedSentMs = msOf(d)

		w.mu.Lock()
		done := w.done
		w.mu.Unlock()
		if err := waitFor1(ctx, done, joinStepTimeout(len(r.members))); err != nil {
			return stepErr(fmt.Sprintf("%d of %d members processing the commit", w.outstanding(), len(waitFor)), err)
		}
		w.mu.Lock()
		d = w.last
		w.mu.Unlock()
		recordHist(all, d)
		sample.AllMembersMs = msOf(d)
		f.MembersReached += len(waitFor)
		f.Joins++
		f.PerJoin = append(f.PerJoin, sample)
		r.members = append(r.members, nm)
		p.line("join %d of %d: room of %d; commit %s, joined and sent %s, all members %s", k+1, s.Joins,
			sample.RoomSize, fmtMs(sample.CommitMs), fmtMs(sample.JoinedSentMs), fmtMs(sample.AllMembersMs))
	}
	finish()
	return res, ctx.Err()
}

// waitFor1 waits until ch is closed, or the timeout or ctx ends.
func waitFor1(ctx context.Context, ch <-chan struct{}, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ch:
		return nil
	case <-t.C:
		return fmt.Errorf("not within %s", timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// runStopWait bounds the wait for the SDK's Run to return once its
// context is cancelled.
const runStopWait = 5 * time.Second

// waitRuns waits for the devices' Client.Run calls to return, at most
// runStopWait, so that a bench run ends however a device's stream is
// doing; goroutines left behind go with the process.
func waitRuns(runs *sync.WaitGroup) {
	done := make(chan struct{})
	go func() {
		runs.Wait()
		close(done)
	}()
	t := time.NewTimer(runStopWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}
