package clockskew_test

import (
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/test/chatsim"
)

// device is a person's app on one device, its stream open, recording what
// it receives; its clock may be skewed away from the real one.
type device = chatsim.Device

// register registers a device whose clock is skew away from the real
// one, reachable from every provider and listed in discovery.
func register(t *testing.T, user, deviceName, url, code string, skew time.Duration) *device {
	t.Helper()
	return chatsim.Register(t, chatsim.Config{URL: url, Code: code, User: user, Device: deviceName,
		Reachable: true, Discoverable: true, Skew: skew, Timeout: 60 * time.Second})
}
