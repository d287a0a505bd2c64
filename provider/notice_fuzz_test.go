package provider

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/store/sqlite"
)

// FuzzDeviceNotice hands a replica whatever could arrive on the bus as a
// notice for a device's streams. Handing it over never panics, and a
// notice that reads as one writes back to JSON that reads as the same
// notice, so that what one replica tells another arrives unchanged.
func FuzzDeviceNotice(f *testing.F) {
	for _, n := range []deviceNotice{
		{Close: true},
		{Event: &event{Type: "device.added", Device: "laptop"}},
		{Event: &event{Type: "key_packages.low"}},
	} {
		b, _ := json.Marshal(n)
		f.Add(b)
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"event":null,"close":false}`))
	f.Add([]byte(`{"event":{"type":1}}`))
	f.Add([]byte(`[`))
	st, err := sqlite.Open(f.TempDir() + "/provider.db")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	ca, err := identity.NewCA("green.test")
	if err != nil {
		f.Fatal(err)
	}
	s, err := New(Config{Domain: "green.test"}, st, ca, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s.onTell(7, data)
		var n deviceNotice
		if json.Unmarshal(data, &n) != nil {
			return
		}
		again, err := json.Marshal(n)
		if err != nil {
			t.Fatalf("a notice that reads does not encode: %v", err)
		}
		var back deviceNotice
		if err := json.Unmarshal(again, &back); err != nil || !reflect.DeepEqual(back, n) {
			t.Fatalf("notice %+v reads back as %+v (%v)", n, back, err)
		}
	})
}
