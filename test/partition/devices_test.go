package partition_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/test/chatsim"
)

// device is a person's app on one device, recording every message it
// receives and when.
type device = chatsim.Device

func register(t *testing.T, user, deviceName, url, code string) *device {
	t.Helper()
	// Reachable from the partner providers (a new user is not).
	return chatsim.Register(t, chatsim.Config{URL: url, Code: code, User: user, Device: deviceName, Reachable: true})
}

// sendLoop sends numbered messages from d to rooms in turn until ctx
// ends, pausing sendPause after each answer. A send is one client.Send,
// which retries what a fault cut off as an app would; one that still
// fails is recorded as such and the next message is a new one.
func sendLoop(ctx context.Context, d *device, rooms []client.RoomID, log *chatsim.SendLog) {
	for i := 0; ctx.Err() == nil; i++ {
		log.Add(chatsim.Send(ctx, d, rooms[i%len(rooms)], fmt.Sprintf("%s #%d", d.Name, i), sendBound))
		select {
		case <-ctx.Done():
		case <-time.After(sendPause):
		}
	}
}

// key names a message: its room and its text, which holds its sender's
// ID for it.
type key struct {
	room client.RoomID
	text string
}
