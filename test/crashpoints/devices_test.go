package crashpoints_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/test/chatsim"
	"github.com/switchboard-chat/switchboard/test/proctest"
)

// device is a person's app on one device with its stream open
// (client.Run), recording what it receives.
type device = chatsim.Device

// register registers name (handle@domain/device) on its provider of p.
func register(t *testing.T, p *proctest.Pair, name string) *device {
	t.Helper()
	user, devName, _ := strings.Cut(name, "/")
	_, domain, _ := strings.Cut(user, "@")
	// Reachable from the partner provider (a new user is not).
	return chatsim.Register(t, chatsim.Config{URL: p.URL[strings.TrimSuffix(domain, ".test")], Code: p.Codes[name],
		User: user, Device: devName, Name: name, Reachable: true})
}

// send sends text once (the SDK retries a send cut off with its
// client_id, for about 1.5 s) and records the outcome; to are the
// devices that must get it.
func send(ctx context.Context, log *chatsim.SendLog, from *device, room client.RoomID, text string, to ...*device) chatsim.Sent {
	s := chatsim.Send(ctx, from, room, text, 20*time.Second)
	s.To = to
	log.Add(s)
	return s
}

// missing lists, per device, the messages it must have and lacks.
func missing(devices []*device, sends []chatsim.Sent) map[*device][]string {
	return chatsim.Missing(devices, nil, sends)
}

// checkDeliveries checks what every device received (chatsim.Check) and
// returns the deliveries checked.
func checkDeliveries(t *testing.T, devices []*device, sends []chatsim.Sent) int {
	t.Helper()
	checked, _ := chatsim.Check(t, devices, sends)
	return checked
}

// cleanRefusal reports whether a failed send was refused as something to
// retry: the provider unreachable, or unavailable (draining, or its hub
// unreachable). Anything else (a fault, a refusal) during a graceful stop
// is a bug.
func cleanRefusal(err error) bool {
	var ae *client.APIError
	if errors.As(err, &ae) {
		return ae.Status == 503
	}
	return errors.Is(err, client.ErrUnavailable) || strings.Contains(err.Error(), "client: network:")
}

func readFile(name string) (string, error) {
	data, err := os.ReadFile(name)
	return string(data), err
}
