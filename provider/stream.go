package provider

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-chat/switchboard/store"
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
	// running counts the open streams, which http.Server.Shutdown does
	// not wait for (their connections are hijacked).
	running sync.WaitGroup
}

// conn is one open stream. An idle stream costs one goroutine, parked in
// a read of its socket, and small buffers: the provider is meant to hold
// a great many of them. Writing is done by a goroutine started when there
// is something to write (flush) and gone when there is not, and the ping
// is a timer, not a goroutine.
type conn struct {
	s      *Server
	ws     *websocket.Conn
	device int64
	user   int64
	// ctx ends with the stream; store calls made for it use it.
	ctx    context.Context
	cancel context.CancelFunc
	ping   *time.Timer
	// sends are the device's messages sent over the stream and not yet
	// answered.
	sends *streamSends

	mu       sync.Mutex
	after    int64   // the cursor of the last entry sent; only flush uses it
	notices  []event // waiting to be sent, at most maxNotices
	flushing bool    // a flush goroutine is running
	again    bool    // woken while flushing: read the queue once more
	ended    bool
	opened   time.Time
	who      *caller   // the sender, read for sends only (sender)
	checked  time.Time // when who was read
}

// maxNotices bounds the notices waiting for a slow stream; beyond it they
// are dropped, as notices are hints.
const maxNotices = 16

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
	// A device has little use for more than one stream (a few while an
	// old one is not yet known dead); past the bound its oldest ends, so
	// that one signed-in device cannot hold the provider's memory with
	// streams.
	var live []*conn
	for o := range st.open[device] {
		if !o.isEnded() {
			live = append(live, o)
		}
	}
	if len(live) >= maxStreamsPerDevice {
		oldest := live[0]
		for _, o := range live[1:] {
			if o.opened.Before(oldest.opened) {
				oldest = o
			}
		}
		oldest.end(websocket.StatusPolicyViolation, "too many streams for this device: the oldest is closed")
	}
	st.open[device][c] = struct{}{}
	st.running.Add(1)
	return true
}

// maxStreamsPerDevice bounds a device's open streams on one replica.
const maxStreamsPerDevice = 8

// remove is called as the stream ends, its sends answered.
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
			c.wake()
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
			c.wake()
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
		c.notice(e)
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
		c.end(websocket.StatusPolicyViolation, "signed out")
	}
}

func (st *streams) closeAll() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.closed = true
	for _, cs := range st.open {
		for c := range cs {
			c.end(websocket.StatusGoingAway, "provider shutting down")
		}
	}
}

const streamBatch = 200

// streamPing is how often a stream pings its device and re-reads its
// queue without being woken: the bound on a lost wake-up's delay.
const streamPing = 30 * time.Second

// streamWriteTimeout bounds one frame's write: a device that stops
// reading loses its stream rather than holding a goroutine.
const streamWriteTimeout = 30 * time.Second

// streamBuffer is the size of a stream's read and write buffers. A
// delivery frame of a chat message fits in one; larger ones take a
// second write call. net/http's own buffers (4 KiB each) would be most of
// an idle stream's memory.
const streamBuffer = 1024

func (s *Server) stream(w http.ResponseWriter, r *http.Request) error {
	c := callerOf(r)
	after, err := cursorParam(r)
	if err != nil {
		return err
	}
	ws, err := websocket.Accept(smallBuffers{w}, r, nil)
	if err != nil {
		return nil // Accept has answered the client
	}
	// A send frame carries what a POST body would: a commit up to
	// MaxCommitBytes, anything else up to MaxBodyBytes (submitTo).
	ws.SetReadLimit(max(s.cfg.MaxBodyBytes, s.cfg.MaxCommitBytes))
	// The stream outlives this handler: its context is not the request's.
	ctx, cancel := context.WithCancel(context.Background())
	cn := &conn{s: s, ws: ws, device: c.device.ID, user: c.user.ID, ctx: ctx, cancel: cancel, after: after,
		sends: newStreamSends(streamSendsInFlight), opened: time.Now()}
	if !s.streams.add(cn.device, cn) {
		cancel()
		ws.Close(websocket.StatusGoingAway, "provider shutting down") // #nosec G104 -- the stream never started; the client reconnects
		return nil
	}
	s.metrics.streams.Inc()
	cn.ping = time.AfterFunc(streamPing, cn.pingNow)
	cn.wake() // send what is queued
	// The handler returns, and with it net/http's goroutine for the
	// connection: the stream goes on in read.
	go cn.read() // #nosec G118 -- read ends when the connection does; Close and server shutdown close it
	return nil
}

// read takes the device's frames until the stream ends: acks, and
// messages to submit, each submitted concurrently with the others (as
// concurrent POSTs would be). It is the stream's one long-lived
// goroutine, and cleans up after it.
func (c *conn) read() {
	defer func() {
		c.end(websocket.StatusGoingAway, "connection lost")
		// Every send taken in is answered (or finds the socket gone, and
		// the device sends it again with the same client_id) before the
		// stream counts as ended.
		c.sends.stopAndWait()
		c.ping.Stop()
		c.s.streams.remove(c.device, c)
		c.s.metrics.streams.Dec()
	}()
	for {
		// Reading is not tied to ctx: ending the stream closes the socket
		// with a close frame (end), once the sends in flight are
		// answered, which ends this read too.
		data, err := c.readFrame()
		if err != nil {
			if errors.Is(err, websocket.ErrMessageTooBig) {
				// coder/websocket has closed the socket already.
				c.s.log.Info("stream frame over the size limit", "device", c.device)
			}
			return
		}
		f, err := parseStreamFrame(data)
		if err != nil {
			c.end(websocket.StatusUnsupportedData, err.Error())
			return
		}
		switch f.Type {
		case "ack":
			if err := c.s.store.Ack(c.ctx, c.device, f.Cursor); err != nil {
				if errors.Is(err, store.ErrStorageFull) {
					// The acknowledgement is lost, not the stream: what
					// it covered is delivered again later, which the
					// device ignores, and reads go on while the disk
					// is full.
					c.s.log.Warn("ack not stored: storage full", "device", c.device)
					continue
				}
				if c.ctx.Err() == nil {
					c.s.log.Error("ack failed", "device", c.device, "err", err)
					c.end(websocket.StatusInternalError, "store error")
				}
				return
			}
		case "send":
			c.submit(f)
		}
	}
}

// readFrame waits for the device's next frame as long as it takes, then
// gives the frame BodyTimeout to arrive whole, as a POST's body has: a
// device that starts a frame and sends the rest a byte at a time would
// otherwise hold the stream, and up to a send frame's size in memory,
// for as long as it liked. Past the time the socket is closed.
func (c *conn) readFrame() ([]byte, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, r, err := c.ws.Reader(ctx)
	if err != nil {
		return nil, err
	}
	slow := time.AfterFunc(c.s.cfg.BodyTimeout, func() {
		c.s.log.Info("stream frame not received in time: closing the stream", "device", c.device)
		cancel() // coder/websocket closes the connection
	})
	defer slow.Stop()
	return io.ReadAll(r)
}

// submit runs a send frame's message through the same checks as a POST,
// in a goroutine of its own, and answers it once it is stored.
func (c *conn) submit(f streamFrame) {
	if f.Err != nil {
		c.s.answerSend(c.ws, c.device, f, acceptance{}, f.Err)
		return
	}
	// Beyond streamSendsInFlight this waits: the device's frames stay
	// unread, which is the backpressure it feels.
	if !c.sends.start() {
		c.s.answerSend(c.ws, c.device, f, acceptance{}, errUnavailable("the provider is shutting down"))
		return
	}
	go func() {
		defer c.sends.done()
		var res acceptance
		err := error(errUnavailable("the provider is shutting down"))
		if !c.s.isDraining() {
			// Not the stream's context: a message taken in is stored and
			// answered even while a drain closes the stream.
			ctx := context.Background()
			var who *caller
			if who, err = c.sender(ctx); err == nil {
				res, err = c.s.submitTo(ctx, who, f.Room, f.Req, f.Size)
			}
		}
		c.s.answerSend(c.ws, c.device, f, res, err)
	}()
}

// sender returns the device and user a send is made as. An idle stream
// keeps only their IDs; a sending one reads them again once they are
// older than the session cache's bound (SessionCacheTTL): an operator's
// suspension, made from another process, stops a stream's sends as soon
// as it stops a POST's.
func (c *conn) sender(ctx context.Context) (*caller, error) {
	now := time.Now()
	c.mu.Lock()
	who, checked := c.who, c.checked
	c.mu.Unlock()
	if who != nil && now.Sub(checked) < c.s.cfg.SessionCacheTTL {
		return who, nil
	}
	d, err := c.s.store.DeviceByID(ctx, c.device)
	if errors.Is(err, store.ErrNotFound) {
		c.end(websocket.StatusPolicyViolation, "device removed")
		return nil, errUnauthenticated("the device was removed")
	} else if err != nil {
		return nil, err
	}
	u, err := c.s.store.UserByID(ctx, c.user)
	if err != nil {
		return nil, err
	}
	if u.Suspended {
		c.end(websocket.StatusPolicyViolation, "account suspended")
		return nil, errSuspended(u.Handle)
	}
	who = &caller{device: d, user: u}
	c.mu.Lock()
	c.who, c.checked = who, now
	c.mu.Unlock()
	return who, nil
}

// isEnded reports whether the stream is closing or closed.
func (c *conn) isEnded() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ended
}

// end closes the stream once, with a close frame saying why.
func (c *conn) end(code websocket.StatusCode, reason string) {
	c.mu.Lock()
	ended := c.ended
	c.ended = true
	c.mu.Unlock()
	if ended {
		return
	}
	c.cancel()
	// The sends in flight are answered first; Close then waits for the
	// device's close frame (up to 5 s): not here.
	go func() {
		c.sends.stopAndWait()
		c.ws.Close(code, reason) // #nosec G104 -- the connection is ending either way
	}()
}

// wake makes the stream read its queue: at once, or once more after the
// flush in progress if there is one.
func (c *conn) wake() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return
	}
	if c.flushing {
		c.again = true
		return
	}
	c.flushing = true
	go c.flush()
}

// notice queues a notice for the stream and wakes it.
func (c *conn) notice(e event) {
	c.mu.Lock()
	if len(c.notices) < maxNotices {
		c.notices = append(c.notices, e)
	}
	c.mu.Unlock()
	c.wake()
}

// flush sends the notices waiting and everything queued after the
// cursor, until neither has anything more.
func (c *conn) flush() {
	for {
		c.mu.Lock()
		notices := c.notices
		c.notices = nil
		c.again = false
		c.mu.Unlock()
		for _, e := range notices {
			if !c.send(e) {
				return
			}
		}
		if !c.sendQueue() {
			return
		}
		c.mu.Lock()
		if !c.again && len(c.notices) == 0 || c.ended {
			c.flushing = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
	}
}

// sendQueue sends what is queued after the cursor, in pages.
func (c *conn) sendQueue() bool {
	for {
		ds, err := c.s.store.Deliveries(c.ctx, c.device, c.after, streamBatch)
		if err != nil {
			if c.ctx.Err() == nil {
				c.s.log.Error("stream: reading the queue", "device", c.device, "err", err)
			}
			c.end(websocket.StatusInternalError, "store error")
			return false
		}
		for _, d := range ds {
			m := c.s.messageJSON(c.ctx, d.Message)
			if !c.send(event{Type: "message", Cursor: d.Cursor, Message: &m}) {
				return false
			}
			c.s.metrics.deliveries.Inc()
			c.after = d.Cursor
		}
		if len(ds) < streamBatch {
			return true
		}
	}
}

// send writes one frame; a failed write ends the stream.
func (c *conn) send(e event) bool {
	data, _ := json.Marshal(e)
	wctx, cancel := context.WithTimeout(c.ctx, streamWriteTimeout)
	defer cancel()
	if err := c.ws.Write(wctx, websocket.MessageText, data); err != nil {
		c.end(websocket.StatusGoingAway, "write failed")
		return false
	}
	return true
}

// pingNow runs every streamPing: it ends the stream of a user suspended
// meanwhile (the operator may have done it from another process, so no
// event reaches the stream), pings the device, and reads the queue in
// case a wake-up was lost.
func (c *conn) pingNow() {
	if c.ctx.Err() != nil {
		return
	}
	if u, err := c.s.store.UserByID(c.ctx, c.user); err == nil && u.Suspended {
		c.end(websocket.StatusPolicyViolation, "account suspended")
		return
	}
	pctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	err := c.ws.Ping(pctx)
	cancel()
	if err != nil {
		c.end(websocket.StatusGoingAway, "ping unanswered")
		return
	}
	c.wake()
	c.ping.Reset(streamPing)
}

// smallBuffers hands websocket.Accept the hijacked connection with
// buffers of streamBuffer bytes instead of net/http's 4 KiB ones.
type smallBuffers struct{ http.ResponseWriter }

func (w smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("the connection cannot be taken over")
	}
	nc, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	// Bytes the device sent right after its request may already be in
	// net/http's buffer: they move into the new one.
	n := brw.Reader.Buffered()
	var src io.Reader = nc
	if n > 0 {
		early, _ := brw.Reader.Peek(n)
		src = io.MultiReader(bytes.NewReader(bytes.Clone(early)), nc)
	}
	br := bufio.NewReaderSize(src, max(streamBuffer, n))
	if n > 0 {
		br.Peek(n) // #nosec G104 -- fills the buffer; a short read shows on the next Read
	}
	return nc, bufio.NewReadWriter(br, bufio.NewWriterSize(nc, streamBuffer)), nil
}

// streamSendsInFlight bounds the sends one stream submits at once.
const streamSendsInFlight = 64

// answerSend answers a send frame with sent or send_error, and counts it
// as the submit handler counts a POST, under stream_submit.
func (s *Server) answerSend(ws *websocket.Conn, device int64, f streamFrame, res acceptance, err error) {
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
		s.log.Log(context.Background(), level, "stream send failed", "request_id", id, "device", device,
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
		s.log.Debug("stream answer not sent", "device", device, "id", f.ID, "err", err)
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
	Size   int64 // the frame's, in bytes
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
		f := streamFrame{Type: "send", ID: id, Size: int64(len(data))}
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
