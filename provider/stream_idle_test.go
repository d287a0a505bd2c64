package provider_test

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/switchboard-chat/switchboard/provider"
)

// A provider is meant to hold a great many idle streams: each must cost
// one goroutine (parked in a read of its socket), not one for reading and
// one for writing, and none once it is closed.
func TestIdleStreamsHoldOneGoroutineEach(t *testing.T) {
	p := newProvider(t, provider.Config{})
	var devices []*rawDevice
	for _, name := range []string{"alice", "bob", "carol", "dave", "erin"} {
		devices = append(devices, p.newRawDevice(name, "phone"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	settle := func() int {
		runtime.GC()
		time.Sleep(100 * time.Millisecond)
		return runtime.NumGoroutine()
	}
	before := settle()
	const streams = 40
	var conns []*websocket.Conn
	for i := range streams {
		ws, _, err := websocket.Dial(ctx, "ws://"+p.addr+"/v1/stream?after=0", &websocket.DialOptions{
			HTTPHeader: http.Header{"Authorization": {"Bearer " + devices[i%len(devices)].token}},
		})
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, ws)
	}
	eventually(t, fmt.Sprintf("%d streams open", streams), func() bool {
		n, _ := p.metric("switchboard_streams_open")
		return n == streams
	})
	// The devices' ends are in this process too, without goroutines of
	// their own (nothing reads them); a few stray ones are allowed.
	if grew := settle() - before; grew > streams+streams/4 {
		t.Fatalf("%d open streams added %d goroutines: more than one each", streams, grew)
	}

	for _, ws := range conns {
		ws.CloseNow()
	}
	eventually(t, "every stream closed", func() bool {
		n, _ := p.metric("switchboard_streams_open")
		return n == 0
	})
	eventually(t, "the streams' goroutines gone", func() bool { return settle() <= before+streams/4 })
}

// One device opening stream after stream (a bug, or an attack with a
// stolen token) keeps at most a few: each new one past the bound closes
// its oldest.
func TestADeviceHoldsABoundedNumberOfStreams(t *testing.T) {
	p := newProvider(t, provider.Config{})
	alice := p.newRawDevice("alice", "phone")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var conns []*websocket.Conn
	for range 20 {
		ws, _, err := websocket.Dial(ctx, "ws://"+p.addr+"/v1/stream?after=0", &websocket.DialOptions{
			HTTPHeader: http.Header{"Authorization": {"Bearer " + alice.token}},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		conns = append(conns, ws)
	}
	eventually(t, "alice's device down to 8 streams", func() bool {
		n, _ := p.metric("switchboard_streams_open")
		return n == 8
	})
	// The first was closed, saying why.
	_, _, err := conns[0].Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Fatalf("the oldest stream: %v", err)
	}
}
