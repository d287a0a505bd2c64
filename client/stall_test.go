package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/switchboard-chat/switchboard/client"
)

// Members who stream (Run) while users are invited one at a time, with a
// burst of messages in between that fills their streams' backlog: every
// member sees every join (its MembersChanged) and ends in the room's
// epoch, as switchboard bench join expects of a room's members.
func TestStreamingMembersProcessEveryJoin(t *testing.T) {
	e := newEnv(t)
	alice := e.register("alice", "phone")
	room, err := alice.CreateRoom(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var members []*device
	var handles []string
	for i := range 6 {
		h := fmt.Sprintf("member%d", i)
		members = append(members, e.register(h, "phone"))
		handles = append(handles, h)
	}
	if err := alice.InviteAll(e.ctx, room, handles); err != nil {
		t.Fatal(err)
	}

	ctx, stop := context.WithCancel(e.ctx)
	var runs sync.WaitGroup
	run := func(d *device) {
		runs.Add(1)
		go func() {
			defer runs.Done()
			if err := d.Run(ctx); !errors.Is(err, context.Canceled) {
				t.Errorf("%s: Run returned %v", d.name(), err)
			}
		}()
	}
	for _, d := range members {
		run(d)
	}
	for _, d := range members {
		eventually(t, d.name()+" to join", func() bool { return d.has(joined(room)) })
	}

	added := func(d *device, user string) bool {
		return d.has(func(ev client.Event) bool {
			mc, ok := ev.(*client.MembersChanged)
			return ok && mc.Room == room && slices.Contains(mc.Added, user)
		})
	}
	for j := range 2 {
		// More than a stream holds back at once (200 frames) before
		// the commit.
		for i := range 210 {
			alice.send(e.ctx, room, fmt.Sprintf("burst %d.%d", j, i))
		}
		h := fmt.Sprintf("joiner%d", j)
		nd := e.register(h, "phone")
		run(nd)
		if err := alice.Invite(e.ctx, room, h); err != nil {
			t.Fatal(err)
		}
		eventually(t, h+" to join", func() bool { return nd.has(joined(room)) })
		nd.send(e.ctx, room, "hello from "+h)
		for _, d := range members {
			eventually(t, fmt.Sprintf("%s to see %s join", d.name(), h), func() bool { return added(d, h) })
		}
		members = append(members, nd)
	}
	epoch, _ := alice.Epoch(room)
	for _, d := range members {
		if ep, _ := d.Epoch(room); ep != epoch {
			t.Errorf("%s in epoch %d, the committer in %d", d.name(), ep, epoch)
		}
		if f := d.failures(); len(f) > 0 {
			t.Errorf("%s: %d delivery failures, the first: %v", d.name(), len(f), f[0].Err)
		}
	}
	stop()
	runs.Wait()
}
