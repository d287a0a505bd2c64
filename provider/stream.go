package provider

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Delivery to devices. Every device has a durable queue in the store; the
// stream sends it from the device's cursor, then whatever is queued later,
// woken by notify. A device acknowledges by cursor once it has durably
// processed the entries; only then are they removed. So a device that
// drops off catches up from where it acknowledged, and nothing is lost.
//
// Wake-ups come through the bus (package bus): in-process for a provider
// run as one process, over NATS from the other replicas otherwise. They
// are hints: besides them the stream re-reads its queue at every ping
// (streamPing), so a lost wake-up (NATS down or restarting) delays a
// delivery by at most that long.

// event is a stream frame.
type event struct {
	Type        string       `json:"type"`
	Cursor      int64        `json:"cursor,omitempty"`
	Message     *messageJSON `json:"message,omitempty"`
	Device      string       `json:"device,omitempty"`
	CipherSuite uint16       `json:"cipher_suite,omitempty"`
	Available   int          `json:"available,omitempty"`
}

// streams wakes the open streams of devices when their queues grow, and
// passes them notices that are not queue entries.
type streams struct {
	mu     sync.Mutex
	open   map[int64]map[*conn]struct{}
	closed bool // after closeAll, no stream may open
}

type conn struct {
	wake    chan struct{}
	notices chan event
	close   context.CancelFunc
}

func newStreams() *streams { return &streams{open: map[int64]map[*conn]struct{}{}} }

// add registers a stream; it reports false once closeAll has run, for a
// stream that passed the drain check before Drain but reached here after
// closeAll would otherwise stay open through the shutdown.
func (st *streams) add(device int64, c *conn) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return false
	}
	if st.open[device] == nil {
		st.open[device] = map[*conn]struct{}{}
	}
	st.open[device][c] = struct{}{}
	return true
}

func (st *streams) remove(device int64, c *conn) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.open[device], c)
	if len(st.open[device]) == 0 {
		delete(st.open, device)
	}
}

// notifyAll wakes the streams of the given devices.
func (st *streams) notifyAll(devices []int64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, d := range devices {
		for c := range st.open[d] {
			select {
			case c.wake <- struct{}{}:
			default: // already woken
			}
		}
	}
}

// wakeAll wakes every open stream, so that each reads its queue: what
// the bus would have woken it for may have been lost.
func (st *streams) wakeAll() {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, cs := range st.open {
		for c := range cs {
			select {
			case c.wake <- struct{}{}:
			default:
			}
		}
	}
}

// notify sends a notice to a device's open streams. Notices are hints (a
// device also learns its KeyPackage stock and devices by asking), so a
// device that is offline or slow may miss them.
func (st *streams) notify(device int64, e event) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for c := range st.open[device] {
		select {
		case c.notices <- e:
		default:
		}
	}
}

// deviceNotice is what the provider tells a device's streams through the
// bus, so that it reaches them on whichever replica they are open: an
// event to pass on, or that the streams must close (the device signed
// out).
type deviceNotice struct {
	Event *event `json:"event,omitempty"`
	Close bool   `json:"close,omitempty"`
}

// tell sends a notice to the device's streams on every replica.
func (s *Server) tell(device int64, n deviceNotice) {
	data, err := json.Marshal(n)
	if err != nil {
		s.log.Error("device notice not encoded", "device", device, "err", err)
		return
	}
	s.bus.Tell(device, data)
}

// onTell is the bus's hand-off of a notice to this replica's streams.
// Only other replicas of this provider publish on the bus, yet a notice
// that does not read as one is dropped with a warning.
func (s *Server) onTell(device int64, data []byte) {
	var n deviceNotice
	if err := json.Unmarshal(data, &n); err != nil || (n.Event == nil && !n.Close) {
		s.log.Warn("ignoring a device notice from the bus", "device", device, "err", err)
		return
	}
	if n.Close {
		s.streams.closeDevice(device)
	}
	if n.Event != nil {
		s.streams.notify(device, *n.Event)
	}
}

// closeDevice ends the device's open streams, as when it signs out.
func (st *streams) closeDevice(device int64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for c := range st.open[device] {
		c.close()
	}
}

func (st *streams) closeAll() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.closed = true
	for _, cs := range st.open {
		for c := range cs {
			c.close()
		}
	}
}

const streamBatch = 200

// streamPing is how often a stream pings its device and re-reads its
// queue without being woken: the bound on a lost wake-up's delay.
const streamPing = 30 * time.Second

func (s *Server) stream(w http.ResponseWriter, r *http.Request) error {
	c := callerOf(r)
	after, err := cursorParam(r)
	if err != nil {
		return err
	}
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return nil // Accept has answered the client
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	cn := &conn{wake: make(chan struct{}, 1), notices: make(chan event, 16), close: cancel}
	if !s.streams.add(c.device.ID, cn) {
		ws.Close(websocket.StatusGoingAway, "provider shutting down")
		return nil
	}
	defer s.streams.remove(c.device.ID, cn)
	s.metrics.streams.Inc()
	defer s.metrics.streams.Dec()

	// Acknowledgements come in on the same socket.
	go func() {
		defer cancel()
		for {
			_, data, err := ws.Read(ctx)
			if err != nil {
				return
			}
			var in struct {
				Type   string `json:"type"`
				Cursor int64  `json:"cursor"`
			}
			if json.Unmarshal(data, &in) != nil || in.Type != "ack" {
				ws.Close(websocket.StatusUnsupportedData, "send {\"type\":\"ack\",\"cursor\":N}")
				return
			}
			if err := s.store.Ack(ctx, c.device.ID, in.Cursor); err != nil {
				s.log.Error("ack failed", "device", c.device.ID, "err", err)
				return
			}
		}
	}()

	send := func(e event) error {
		data, _ := json.Marshal(e)
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return ws.Write(wctx, websocket.MessageText, data)
	}
	ping := time.NewTicker(streamPing)
	defer ping.Stop()
	for {
		// Send everything queued after the cursor, in pages.
		for {
			ds, err := s.store.Deliveries(ctx, c.device.ID, after, streamBatch)
			if err != nil {
				ws.Close(websocket.StatusInternalError, "store error")
				return nil
			}
			for _, d := range ds {
				m := s.messageJSON(ctx, d.Message)
				if err := send(event{Type: "message", Cursor: d.Cursor, Message: &m}); err != nil {
					return nil
				}
				s.metrics.deliveries.Inc()
				after = d.Cursor
			}
			if len(ds) < streamBatch {
				break
			}
		}
		select {
		case <-ctx.Done():
			ws.Close(websocket.StatusGoingAway, "provider shutting down or connection lost")
			return nil
		case <-cn.wake:
		case e := <-cn.notices:
			if err := send(e); err != nil {
				return nil
			}
		case <-ping.C:
			// The operator may have suspended the user since the stream
			// opened (from another process: no event reaches us).
			if u, err := s.store.UserByID(ctx, c.user.ID); err == nil && u.Suspended {
				ws.Close(websocket.StatusPolicyViolation, "account suspended")
				return nil
			}
			pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
			err := ws.Ping(pctx)
			pcancel()
			if err != nil {
				return nil
			}
		}
	}
}

func cursorParam(r *http.Request) (int64, error) {
	v := r.URL.Query().Get("after")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, errBadRequest("after must be a cursor (a non-negative integer)")
	}
	return n, nil
}

func (s *Server) inbox(w http.ResponseWriter, r *http.Request) error {
	c := callerOf(r)
	after, err := cursorParam(r)
	if err != nil {
		return err
	}
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 || limit > 1000 {
		limit = streamBatch
	}
	ds, err := s.store.Deliveries(r.Context(), c.device.ID, after, limit)
	if err != nil {
		return err
	}
	type entry struct {
		Cursor  int64       `json:"cursor"`
		Message messageJSON `json:"message"`
	}
	out := make([]entry, 0, len(ds))
	for _, d := range ds {
		out = append(out, entry{Cursor: d.Cursor, Message: s.messageJSON(r.Context(), d.Message)})
	}
	s.metrics.deliveries.Add(float64(len(out)))
	writeJSON(w, http.StatusOK, map[string]any{"entries": out})
	return nil
}

func (s *Server) ack(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Cursor int64 `json:"cursor"`
	}
	if err := s.readJSON(r, &req); err != nil {
		return err
	}
	if req.Cursor < 0 {
		return errBadRequest("cursor must not be negative")
	}
	if err := s.store.Ack(r.Context(), callerOf(r).device.ID, req.Cursor); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
