package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
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
	// running counts the stream handlers, which http.Server.Shutdown
	// does not wait for (their connections are hijacked).
	running sync.WaitGroup
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
	st.running.Add(1)
	return true
}

// remove is called as the stream's handler ends, its socket closed.
func (st *streams) remove(device int64, c *conn) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.open[device], c)
	if len(st.open[device]) == 0 {
		delete(st.open, device)
	}
	st.running.Done()
}

// StreamsDone waits, after Drain, until every stream has ended: the
// messages its device sent over it in flight at the drain stored and
// answered, its socket closed. It returns ctx's error if ctx ends first.
func (s *Server) StreamsDone(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.streams.running.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
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
	// A send frame carries what a POST body would.
	ws.SetReadLimit(s.cfg.MaxBodyBytes)
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

	sends := newStreamSends(streamSendsInFlight)
	bye := make(chan closeReason, 1)
	go s.readStream(ctx, cancel, ws, c, sends, bye)
	why := s.deliver(ctx, ws, c, cn, after)
	// Every send taken in is answered (or finds the socket gone, and the
	// device sends it again over HTTP with the same client_id) before the
	// socket closes.
	sends.stopAndWait()
	select {
	case why = <-bye:
	default:
	}
	if why.code == 0 {
		ws.CloseNow()
	} else {
		ws.Close(why.code, why.text)
	}
	return nil
}

// closeReason is how a stream ends; code 0 drops the connection (it is
// broken already).
type closeReason struct {
	code websocket.StatusCode
	text string
}

// deliver sends the device's queue until the stream ends, and says why it
// ended.
func (s *Server) deliver(ctx context.Context, ws *websocket.Conn, c *caller, cn *conn, after int64) closeReason {
	send := func(e event) error {
		data, _ := json.Marshal(e)
		wctx, cancel := context.WithTimeout(ctx, streamWriteTimeout)
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
				if ctx.Err() != nil {
					break
				}
				return closeReason{websocket.StatusInternalError, "store error"}
			}
			for _, d := range ds {
				m := s.messageJSON(ctx, d.Message)
				if err := send(event{Type: "message", Cursor: d.Cursor, Message: &m}); err != nil {
					return closeReason{}
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
			return closeReason{websocket.StatusGoingAway, "provider shutting down or connection lost"}
		case <-cn.wake:
		case e := <-cn.notices:
			if err := send(e); err != nil {
				return closeReason{}
			}
		case <-ping.C:
			// The operator may have suspended the user since the stream
			// opened (from another process: no event reaches us).
			if u, err := s.store.UserByID(ctx, c.user.ID); err == nil && u.Suspended {
				return closeReason{websocket.StatusPolicyViolation, "account suspended"}
			}
			pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
			err := ws.Ping(pctx)
			pcancel()
			if err != nil {
				return closeReason{}
			}
		}
	}
}

// streamWriteTimeout bounds one frame's write: a device that reads
// nothing for that long loses its stream (coder/websocket closes a
// connection whose write timed out), and catches up when it comes back.
const streamWriteTimeout = 30 * time.Second

// readStream reads the device's frames until the socket closes: acks,
// and messages to submit, each submitted concurrently with the others
// (as concurrent POSTs would be). A frame that is not one ends the stream,
// with the reason sent on bye.
func (s *Server) readStream(ctx context.Context, cancel context.CancelFunc, ws *websocket.Conn, c *caller, sends *streamSends, bye chan<- closeReason) {
	defer cancel()
	// Reading must outlive ctx: coder/websocket closes the socket when a
	// read's context ends, and the answers to sends in flight at a drain
	// still have to go out. The socket's close ends the reads.
	rctx := context.WithoutCancel(ctx)
	for {
		_, data, err := ws.Read(rctx)
		if err != nil {
			if errors.Is(err, websocket.ErrMessageTooBig) {
				// coder/websocket has closed the socket already.
				s.log.Info("stream frame over the size limit", "device", c.device.ID)
			}
			return
		}
		f, err := parseStreamFrame(data)
		if err != nil {
			bye <- closeReason{websocket.StatusUnsupportedData, err.Error()}
			return
		}
		switch f.Type {
		case "ack":
			if err := s.store.Ack(rctx, c.device.ID, f.Cursor); err != nil {
				s.log.Error("ack failed", "device", c.device.ID, "err", err)
				bye <- closeReason{websocket.StatusInternalError, "store error"}
				return
			}
		case "send":
			if f.Err != nil {
				s.answerSend(ws, c, f, acceptance{}, f.Err)
				continue
			}
			// Beyond streamSendsInFlight this waits: the device's frames
			// stay unread, which is the backpressure it feels.
			if !sends.start() {
				s.answerSend(ws, c, f, acceptance{}, errUnavailable("the provider is shutting down"))
				continue
			}
			go func() {
				defer sends.done()
				var res acceptance
				err := error(errUnavailable("the provider is shutting down"))
				if !s.isDraining() {
					res, err = s.submitTo(rctx, c, f.Room, f.Req)
				}
				s.answerSend(ws, c, f, res, err)
			}()
		}
	}
}

// streamSendsInFlight bounds the sends one stream submits at once.
const streamSendsInFlight = 64

// answerSend answers a send frame with sent or send_error, and counts it
// as the submit handler counts a POST, under stream_submit.
func (s *Server) answerSend(ws *websocket.Conn, c *caller, f streamFrame, res acceptance, err error) {
	var out map[string]any
	if err == nil {
		s.metrics.requests.WithLabelValues("stream_submit", "ok").Inc()
		out = res.answer()
		out["type"] = "sent"
	} else {
		e := apiError(err)
		id := newRequestID()
		s.metrics.requests.WithLabelValues("stream_submit", e.Code).Inc()
		level := slog.LevelInfo
		if e.Status >= 500 {
			level = slog.LevelError
		}
		s.log.Log(context.Background(), level, "stream send failed", "request_id", id, "device", c.device.ID,
			"code", e.Code, "message", e.Message, "cause", e.cause)
		out = map[string]any{"type": "send_error", "status": e.Status, "code": e.Code, "message": e.Message, "request_id": id}
		if e.retryAfter > 0 {
			out["retry_after"] = e.retryAfter
		}
	}
	out["id"] = f.ID
	data, _ := json.Marshal(out)
	// Not the stream's context: an answer still goes out while a drain
	// closes the stream.
	wctx, cancel := context.WithTimeout(context.Background(), streamWriteTimeout)
	defer cancel()
	if err := ws.Write(wctx, websocket.MessageText, data); err != nil {
		// The device learns nothing and sends again, over HTTP or a new
		// stream, with the same client_id: the duplicate gets this answer.
		s.log.Debug("stream answer not sent", "device", c.device.ID, "id", f.ID, "err", err)
	}
}

// streamSends counts a stream's sends in flight, at most a bound at once,
// so that the stream closes only once each is answered.
type streamSends struct {
	slots   chan struct{}
	mu      sync.Mutex
	stopped bool
	wg      sync.WaitGroup
}

func newStreamSends(n int) *streamSends { return &streamSends{slots: make(chan struct{}, n)} }

// start takes a slot, waiting for one if all are taken; false once the
// stream is closing.
func (ss *streamSends) start() bool {
	ss.slots <- struct{}{}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.stopped {
		<-ss.slots
		return false
	}
	ss.wg.Add(1)
	return true
}

func (ss *streamSends) done() {
	<-ss.slots
	ss.wg.Done()
}

// stopAndWait refuses new sends and waits for those in flight.
func (ss *streamSends) stopAndWait() {
	ss.mu.Lock()
	ss.stopped = true
	ss.mu.Unlock()
	ss.wg.Wait()
}

// streamFrame is a frame from the device: an ack, or a send (a message to
// submit, as the body of POST /v1/rooms/{id}/messages, with the room and
// the device's ID for the answer).
type streamFrame struct {
	Type   string
	Cursor int64
	ID     string
	Room   string
	Req    submitRequest
	// Err is set for a send whose ID is usable but whose other fields are
	// not: it is answered with send_error instead of closing the stream.
	Err *Error
}

// maxSendID bounds a send's ID, which the device chooses.
const maxSendID = 64

// parseStreamFrame reads one frame from the device. An error means the
// frame is not one the stream can answer; its text is the close reason
// (at most 123 bytes, as WebSocket allows).
func parseStreamFrame(data []byte) (streamFrame, error) {
	var head struct {
		Type   string          `json:"type"`
		Cursor json.RawMessage `json:"cursor"`
		ID     json.RawMessage `json:"id"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return streamFrame{}, errors.New("frames are JSON objects: ack or send")
	}
	switch head.Type {
	case "ack":
		var cursor int64
		if json.Unmarshal(head.Cursor, &cursor) != nil || cursor < 0 {
			return streamFrame{}, errors.New(`send {"type":"ack","cursor":N} with N >= 0`)
		}
		return streamFrame{Type: "ack", Cursor: cursor}, nil
	case "send":
		var id string
		if json.Unmarshal(head.ID, &id) != nil || !validSendID(id) {
			return streamFrame{}, errors.New("a send needs an id of 1 to 64 printable ASCII characters")
		}
		f := streamFrame{Type: "send", ID: id}
		var in struct {
			Type string `json:"type"`
			ID   string `json:"id"`
			Room string `json:"room"`
			submitRequest
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		switch err := dec.Decode(&in); {
		case err != nil:
			f.Err = errBadRequest("malformed send frame: %v", err)
		case in.Room == "":
			f.Err = errBadRequest("a send needs its room")
		default:
			f.Room, f.Req = in.Room, in.submitRequest
		}
		return f, nil
	}
	return streamFrame{}, errors.New(`frames are {"type":"ack",...} or {"type":"send",...}`)
}

// validSendID reports whether a send's ID is 1 to 64 printable ASCII
// characters, which the answer can carry back as they are.
func validSendID(id string) bool {
	if len(id) == 0 || len(id) > maxSendID {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x20 || id[i] > 0x7e {
			return false
		}
	}
	return true
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
