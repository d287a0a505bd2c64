package chaos_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/test/chatsim"
)

// device is a person's app on one device (chatsim.Device) whose sender
// may be asked to close it across a crash.
type device struct {
	*chatsim.Device
	// away asks the device's sender to close the app, and keep it closed
	// until away is false again; awayTimes counts the times it did.
	away      atomic.Bool
	awayTimes atomic.Int32
}

func register(t *testing.T, user, deviceName, url, code string) *device {
	t.Helper()
	// Reachable from the partner provider (a new user is not).
	return &device{Device: chatsim.Register(t, chatsim.Config{URL: url, Code: code, User: user, Device: deviceName, Reachable: true})}
}

// goAway closes the app while away is set (and ctx lasts), then opens it
// again from its data directory.
func (d *device) goAway(ctx context.Context) error {
	d.Close()
	d.awayTimes.Add(1)
	for d.away.Load() && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	// Opened again even if the load has ended: it must catch up. The
	// provider may be down at this moment: try until it answers.
	deadline := time.Now().Add(30 * time.Second)
	for {
		octx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := d.Open(octx, d.URL)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: opening the app again: %w", d.Name, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// sendLoop sends numbered messages to rooms in turn until ctx ends,
// pausing sendPause after each answer. A send is one client.Send, which
// retries what a crash cut off as an app would; one that still fails is
// recorded as such and the next message is a new one.
func (d *device) sendLoop(ctx context.Context, rooms []client.RoomID, log *chatsim.SendLog) error {
	for i := 0; ctx.Err() == nil; i++ {
		if d.away.Load() {
			if err := d.goAway(ctx); err != nil {
				return err
			}
			continue
		}
		s := chatsim.Send(ctx, d.Device, rooms[i%len(rooms)], fmt.Sprintf("%s #%d", d.Name, i), 20*time.Second)
		log.Add(s)
		if s.Stopped {
			return nil // the load ended during this send: its outcome is unknown
		}
		select {
		case <-ctx.Done():
		case <-time.After(sendPause):
		}
	}
	return nil
}
