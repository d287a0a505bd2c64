package provider_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/provider"
	"github.com/switchboard-chat/switchboard/store"
)

// The hot paths of one provider, measured through its client API on a
// loopback socket and its SQLite store (synchronous=FULL) in a temporary
// directory, with the rate limits off. The HTTP and WebSocket clients run
// in the same process, so the allocations per op are both ends'.
// docs/performance.md ("Profile findings") has figures.

// noLimits is a provider configuration without rate limits: the
// benchmarks measure capacity.
func noLimits() provider.Config {
	off := provider.RateLimit{Every: -1, Burst: -1}
	return provider.Config{UserMessageLimit: off, RoomLimit: off, PartnerLimit: off}
}

// benchRoom makes a room of n devices, each its own user's: the first
// created the room and added the others in one commit. It returns the
// first device, its group and the room, and the other devices.
func benchRoom(b *testing.B, p *testProvider, n int) (*rawDevice, *mls.Group, string, []*rawDevice) {
	b.Helper()
	sender := p.newRawDevice("sender", "phone")
	g, room := sender.createRoom()
	var others []*rawDevice
	var adds []*mls.Proposal
	for i := 1; i < n; i++ {
		d := p.newRawDevice(fmt.Sprintf("member%03d", i), "phone")
		d.uploadKeyPackages(1)
		others = append(others, d)
		adds = append(adds, &mls.Proposal{Type: mls.ProposalAdd, Add: sender.claim(fmt.Sprintf("member%03d", i))[0]})
	}
	if len(adds) > 0 {
		res, err := g.Commit(mls.CommitOptions{Proposals: adds, InlineTree: true})
		if err != nil {
			b.Fatal(err)
		}
		p.call("POST", "/v1/rooms/"+room+"/messages", sender.token, map[string]any{
			"client_id": "add-members", "message": mls.Marshal(res.Commit), "welcome": mls.Marshal(res.Welcome)}, nil)
		if _, err := g.MergePendingCommit(); err != nil {
			b.Fatal(err)
		}
	}
	return sender, g, room, others
}

// BenchmarkAcceptApplication: one device posts application messages
// (200 bytes of ciphertext, framed as a device frames them) to a room of
// N devices; each op is one message accepted by the hub (framing checks,
// consent, store, queued for the N-1 others, woken) and answered after
// its COMMIT. serial waits for each answer before the next post (one
// COMMIT per message); window=16 keeps 16 posts waiting, as the bench's
// saturation does, so the room's messages share COMMITs.
func BenchmarkAcceptApplication(b *testing.B) {
	for _, n := range []int{2, 10, 50} {
		for _, window := range []int{1, 16} {
			name := fmt.Sprintf("members=%d/serial", n)
			if window > 1 {
				name = fmt.Sprintf("members=%d/window=%d", n, window)
			}
			b.Run(name, func(b *testing.B) { benchAccept(b, n, window) })
		}
	}
}

func benchAccept(b *testing.B, members, window int) {
	p := newProvider(b, noLimits())
	sender, g, room, _ := benchRoom(b, p, members)
	ct := make([]byte, 200)
	rand.Read(ct)
	msg, err := g.Encrypt(ct, nil)
	if err != nil {
		b.Fatal(err)
	}
	// The hub cannot decrypt: one message posted again under fresh
	// client IDs is, to it, a new message each time.
	raw := mls.Marshal(msg)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: window}}
	defer hc.CloseIdleConnections()
	post := func(i int64) error {
		body, _ := json.Marshal(map[string]any{"client_id": fmt.Sprintf("bench-%010d", i), "message": raw})
		req, _ := http.NewRequest("POST", p.url+"/v1/rooms/"+room+"/messages", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+sender.token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var out struct {
			Seq int64 `json:"seq"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 || out.Seq == 0 {
			return fmt.Errorf("post %d: %d %v", i, resp.StatusCode, err)
		}
		return nil
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	for range window {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if err := post(i); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/msg")
}

// processCPU is the CPU time the process has used, user and system: on a
// shared machine it varies less with the load than the time per op does.
// The process is both ends: the provider and the posting client.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkStreamDelivery: a device's queue holds b.N application
// messages (200 bytes); each op is one of them delivered over the
// device's WebSocket stream: read from the store in pages, encoded,
// written as a frame, read and decoded by the device, which acknowledges
// each run of frames it has, as the SDK does.
func BenchmarkStreamDelivery(b *testing.B) {
	p := newProvider(b, noLimits())
	_, _, room, others := benchRoom(b, p, 2)
	ctx := context.Background()
	devOf := func(handle string) int64 {
		u, err := p.st.UserByHandle(ctx, handle)
		if err != nil {
			b.Fatal(err)
		}
		ds, err := p.st.DevicesOfUser(ctx, u.ID)
		if err != nil || len(ds) != 1 {
			b.Fatalf("%s's devices: %v %v", handle, ds, err)
		}
		return ds[0].ID
	}
	from, to := devOf("sender"), devOf("member001")
	payload := make([]byte, 200)
	rand.Read(payload)

	// The queue is filled straight through the store, 64 at a time so
	// that they share COMMITs: only the delivery is measured.
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				_, err := p.st.Submit(ctx, store.Submission{RoomID: room, ClientID: fmt.Sprintf("fill-%010d", i), SenderDevice: from,
					Sender: "mimi://" + domain + "/d/sender/phone", Kind: store.KindApplication, Payload: payload, Recipients: []int64{to}})
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}

	b.ReportAllocs()
	b.ResetTimer()
	ws, _, err := websocket.Dial(ctx, "ws://"+p.addr+"/v1/stream?after=0", &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + others[0].token}},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 20)
	got, cursor := 0, int64(0)
	for got < b.N {
		_, data, err := ws.Read(ctx)
		if err != nil {
			b.Fatal(err)
		}
		var ev struct {
			Type    string `json:"type"`
			Cursor  int64  `json:"cursor"`
			Message struct {
				Kind    string `json:"kind"`
				Payload []byte `json:"payload"`
			} `json:"message"`
		}
		if err := json.Unmarshal(data, &ev); err != nil {
			b.Fatal(err)
		}
		if ev.Type != "message" || ev.Message.Kind != "application" {
			continue // the Welcome that made the device a member
		}
		if !bytes.Equal(ev.Message.Payload, payload) {
			b.Fatalf("frame %d: another payload", got)
		}
		got, cursor = got+1, ev.Cursor
		// One ack for each page, as the SDK acknowledges what it has.
		if got%200 == 0 || got == b.N {
			ack, _ := json.Marshal(map[string]any{"type": "ack", "cursor": cursor})
			if err := ws.Write(ctx, websocket.MessageText, ack); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
