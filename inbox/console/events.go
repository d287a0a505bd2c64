package console

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/switchboard-chat/switchboard/inbox"
)

// heartbeat is how often an idle event stream gets a comment line, which
// keeps proxies from closing it and notices a session that ended.
const heartbeat = 20 * time.Second

// presence counts each agent's open event streams: an agent is online
// while at least one is open.
type presence struct {
	desk *inbox.Desk
	mu   sync.Mutex
	open map[int64]int
}

func newPresence(d *inbox.Desk) *presence { return &presence{desk: d, open: map[int64]int{}} }

// join counts a stream of agent's; the first one sets them online.
func (p *presence) join(ctx context.Context, agent int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.open[agent]++
	if p.open[agent] == 1 {
		return p.desk.SetOnline(ctx, agent, true)
	}
	return nil
}

// leave uncounts a stream; the last one sets the agent offline.
func (p *presence) leave(ctx context.Context, agent int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.open[agent]--
	if p.open[agent] > 0 {
		return nil
	}
	delete(p.open, agent)
	return p.desk.SetOnline(ctx, agent, false)
}

// events is the Server-Sent Events stream of the Desk's changes: each
// event is `event: KIND` with `{"conversation": ID}` as its data. The
// stream ends when the client goes, or at a heartbeat after the session
// ended (logout, expiry, the agent removed).
func (s *server) events(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	a := agentOf(ctx)
	rc := http.NewResponseController(w)
	// The stream outlives the server's write timeout, if it has one.
	_ = rc.SetWriteDeadline(time.Time{})
	ch, stop := s.desk.Subscribe()
	defer stop()
	if err := s.online.join(ctx, a.ID); err != nil {
		s.log.Error("setting an agent online", "agent", a.ID, "err", err)
	}
	defer func() {
		// The request's context is done by now; the Desk still needs to hear.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := s.online.leave(ctx, a.ID); err != nil {
			s.log.Error("setting an agent offline", "agent", a.ID, "err", err)
		}
	}()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// The retry hint, and a first line so the browser sees the stream open.
	fmt.Fprint(w, "retry: 3000\n: hello\n\n")
	if err := rc.Flush(); err != nil {
		return
	}
	tick := time.NewTicker(s.heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if _, ok := s.session(r); !ok {
				fmt.Fprint(w, "event: signedout\ndata: {}\n\n")
				rc.Flush() // #nosec G104 -- the client may be gone; the handler returns either way
				return
			}
			fmt.Fprint(w, ": ping\n\n")
		case e, ok := <-ch:
			if !ok {
				return
			}
			data, _ := json.Marshal(map[string]any{"conversation": e.Conversation})
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", eventName(e.Kind), data)
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// eventName keeps an event's kind to the letters an SSE field may hold.
func eventName(kind string) string {
	for _, c := range kind {
		if !(c >= 'a' && c <= 'z' || c == '_' || c == '-') {
			return "change"
		}
	}
	if kind == "" {
		return "change"
	}
	return kind
}
