package crashpoints_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/test/chatsim"
	"github.com/switchboard-chat/switchboard/test/proctest"
)

// drainTimeout is the providers' drain_timeout_seconds in this test.
const drainTimeout = 10 * time.Second

// TestGracefulShutdownUnderLoad: Alice and Carol are on green, Bob and
// Dave on blue; green hosts one room of all four and blue another. All
// four send steadily, in turn to each room, while green and then blue are
// stopped with SIGTERM, as a service manager stops them, and started
// again. Each must exit by itself within its drain timeout, having
// answered what it took in; a send it refused meanwhile must have been
// refused as something to retry (unreachable, or unavailable), never as
// a fault or a definite refusal; and afterwards every acknowledged message
// is on every other member's device once, at its seq, in order.
func TestGracefulShutdownUnderLoad(t *testing.T) {
	t.Parallel()
	began := time.Now()

	people := []string{"alice@green.test/phone", "carol@green.test/phone", "bob@blue.test/phone", "dave@blue.test/phone"}
	pair := proctest.NewPair(t, bin, people, map[string]any{"drain_timeout_seconds": int(drainTimeout / time.Second)})
	pair.Start(t, "green")
	pair.Start(t, "blue")
	var everyone []*device
	for _, p := range people {
		everyone = append(everyone, register(t, pair, p))
	}
	alice, bob := everyone[0], everyone[2]
	ctx := context.Background()
	room := func(host *device, others ...string) client.RoomID {
		t.Helper()
		id, err := host.Client().CreateRoom(ctx)
		if err != nil {
			t.Fatalf("%s creates a room: %v", host.Name, err)
		}
		if err := host.Client().InviteAll(ctx, id, others); err != nil {
			t.Fatalf("%s invites %v: %v", host.Name, others, err)
		}
		epoch, _ := host.Client().Epoch(id)
		deadline := time.Now().Add(bound)
		for _, d := range everyone {
			for e, err := d.Client().Epoch(id); err != nil || e != epoch; e, err = d.Client().Epoch(id) {
				if time.Now().After(deadline) {
					t.Fatalf("%s never joined room %s at epoch %d", d.Name, id, epoch)
				}
				time.Sleep(25 * time.Millisecond)
			}
		}
		return id
	}
	greenRoom := room(alice, "carol", "bob@blue.test", "dave@blue.test")
	blueRoom := room(bob, "dave", "alice@green.test", "carol@green.test")
	t.Logf("rooms ready after %v", time.Since(began).Round(time.Millisecond))

	sends := &chatsim.SendLog{}
	loadCtx, stopLoad := context.WithCancel(ctx)
	var senders sync.WaitGroup
	t.Cleanup(func() { stopLoad(); senders.Wait() })
	for _, d := range everyone {
		var others []*device
		for _, o := range everyone {
			if o != d {
				others = append(others, o)
			}
		}
		senders.Go(func() {
			for i := 0; loadCtx.Err() == nil; i++ {
				r := []client.RoomID{greenRoom, blueRoom}[i%2]
				s := send(loadCtx, sends, d, r, fmt.Sprintf("%s #%d", d.Name, i), others...)
				if s.Err != nil && loadCtx.Err() == nil {
					// The SDK tried for about 1.5 s: the provider is
					// still down. Try the next message a little later.
					time.Sleep(100 * time.Millisecond)
				}
				select {
				case <-loadCtx.Done():
				case <-time.After(20 * time.Millisecond):
				}
			}
		})
	}

	// Each provider in turn: SIGTERM under load, down for a moment, then
	// started again while the load goes on.
	var drains []string
	for _, name := range []string{"green", "blue"} {
		time.Sleep(1500 * time.Millisecond)
		before := len(sends.All())
		p := pair.Proc(name)
		// The process gets its drain timeout and a few seconds more to
		// stop the outbox and close the store; past that it is killed.
		took, exited := p.Terminate(drainTimeout + 5*time.Second)
		if !exited {
			t.Fatalf("%s did not exit within %v of SIGTERM (drain timeout %v)", name, drainTimeout+5*time.Second, drainTimeout)
		}
		if code := p.State().ExitCode(); code != 0 {
			t.Errorf("%s exited with status %d: its drain did not finish cleanly within %v", name, code, drainTimeout)
		}
		drained := drainTook(t, p.LogFile())
		drains = append(drains, fmt.Sprintf("%s %v (drain %s) at %d sends", name, took.Round(time.Millisecond), drained, before))
		time.Sleep(500 * time.Millisecond)
		pair.Start(t, name)
	}
	time.Sleep(1500 * time.Millisecond)
	stopLoad()
	senders.Wait()

	all := sends.All()
	acked, refused := 0, 0
	kinds := map[string]int{} // the refusals, by what the device was told
	for _, s := range all {
		switch {
		case s.Err == nil:
			acked++
		case strings.Contains(s.Err.Error(), "context canceled"):
			// Cut off by the end of the load, not by a provider.
		case !cleanRefusal(s.Err):
			t.Errorf("%s's %q was refused uncleanly during a drain: %v", s.From.Name, s.Text, s.Err)
		default:
			refused++
			var ae *client.APIError
			if errors.As(s.Err, &ae) {
				kinds[ae.Code]++
			} else {
				kinds["unreachable"]++
			}
		}
	}
	checked := chatsim.Verify(t, chatsim.VerifyOptions{Devices: everyone, Sends: all, DrainBound: bound}).Checked
	t.Logf("stopped with SIGTERM and exited: %s; %d messages sent, %d acknowledged, %d refused as retryable %v, %d deliveries checked; %v in all",
		strings.Join(drains, "; "), len(all), acked, refused, kinds, checked, time.Since(began).Round(time.Millisecond))
}

var drainLine = regexp.MustCompile(`"msg":"stopped","drain_took":(\d+)`)

// drainTook reads how long Close took from a provider's last log line.
func drainTook(t *testing.T, logFile string) string {
	data, err := readFile(logFile)
	if err != nil {
		return "?"
	}
	m := drainLine.FindAllStringSubmatch(data, -1)
	if m == nil {
		t.Errorf("%s does not say how long its drain took", logFile)
		return "?"
	}
	var ns int64
	fmt.Sscan(m[len(m)-1][1], &ns)
	return time.Duration(ns).Round(time.Millisecond).String()
}
