package node_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/provider"
)

// TestNewDeviceOnAnotherReplicaJoinsAtOnce: Alice's phone holds its
// stream on replica 1 of green.test. She signs in on a new laptop, whose
// registration replica 2 handles. The provider's "device added" notice
// must reach the phone's stream on replica 1 through the bus, so that the
// phone adds the laptop to their rooms at once (without the notice the
// phone would only notice at its next housekeeping, ten minutes later),
// and the laptop reads what Bob says next.
func TestNewDeviceOnAnotherReplicaJoinsAtOnce(t *testing.T) {
	cl := startCluster(t)
	ctx := context.Background()
	phone, bob := cl.device(0, "alice"), cl.device(2, "bob")

	room, err := phone.c.CreateRoom(ctx)
	must(t, "alice creates a room", err)
	must(t, "alice invites bob", phone.c.Invite(ctx, room, "bob@green.test"))
	phone.send(room, "hi Bob")
	bob.expect(room, "alice@green.test: hi Bob")

	user, err := cl.replicas[0].Store.UserByHandle(ctx, "alice")
	must(t, "finding alice", err)
	code, err := provider.AddEnrollment(ctx, cl.replicas[0].Store, user.ID, time.Hour)
	must(t, "an enrollment code for alice's laptop", err)
	laptop := &person{t: t, name: "alice@green.test", dir: t.TempDir()}
	laptop.c, err = client.Register(ctx, cl.replicas[1].ClientURL, code, "laptop", laptop.dir, client.Options{})
	must(t, "registering the laptop on replica 2", err)
	t.Cleanup(laptop.close)
	laptop.stream()

	// The phone's commit adding the laptop gives the laptop a Welcome;
	// Bob's next message must reach both of Alice's devices.
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(laptop.c.Rooms(), room) {
		if time.Now().After(deadline) {
			t.Fatal("the laptop was not added to Alice's room within 10 s: the device-added notice did not reach the phone's replica")
		}
		time.Sleep(20 * time.Millisecond)
	}
	bob.send(room, "hello Alice, on both devices")
	phone.expect(room, "bob@green.test: hello Alice, on both devices")
	laptop.expect(room, "bob@green.test: hello Alice, on both devices")
}
