package diskfull_test

import (
	"testing"

	"github.com/switchboard-chat/switchboard/test/chatsim"
)

// device is a person's app on one device, its stream open (client.Run),
// keeping every message it receives across the times it is opened.
type device = chatsim.Device

func register(t *testing.T, name, url, code, deviceName string) *device {
	t.Helper()
	return registerIn(t, t.TempDir(), name, url, code, deviceName)
}

// registerIn registers a device that keeps its state in dir.
func registerIn(t *testing.T, dir, name, url, code, deviceName string) *device {
	t.Helper()
	return chatsim.Register(t, chatsim.Config{URL: url, Code: code, Device: deviceName, Name: name, Dir: dir})
}
