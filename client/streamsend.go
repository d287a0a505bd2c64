package client

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Sending over the stream. While Run holds a WebSocket, a message goes to
// the provider as a send frame on it instead of a POST: no request, no
// connection per message in flight. The answer (sent or send_error) comes
// back on the same socket, matched by the send's ID. If the stream goes
// before answering, the message is posted over HTTP with the same
// client_id, and the provider answers a retry of a stored message with its
// first answer.

// postBody is a message to a room: the body of POST
// /v1/rooms/{id}/messages, and the fields of a send frame.
type postBody struct {
	ClientID    string `json:"client_id"`
	Message     []byte `json:"message"`
	Welcome     []byte `json:"welcome,omitempty"`
	GroupInfo   []byte `json:"group_info,omitempty"`
	RatchetTree []byte `json:"ratchet_tree,omitempty"`
}

// sendAnswer is the provider's answer to a send frame.
type sendAnswer struct {
	Type       string `json:"type"` // sent or send_error
	ID         string `json:"id"`
	Seq        int64  `json:"seq"`
	Epoch      uint64 `json:"epoch"`
	Status     int    `json:"status"`
	Code       string `json:"code"`
	Message    string `json:"message"`
	RequestID  string `json:"request_id"`
	RetryAfter int64  `json:"retry_after"`
}

// err is the answer's refusal as the HTTP answer would have given it.
func (a *sendAnswer) err() error {
	if a.Type == "sent" {
		return nil
	}
	e := &APIError{Status: a.Status, Code: a.Code, Message: a.Message, RequestID: a.RequestID}
	if a.RetryAfter > 0 {
		e.RetryAfter = time.Duration(min(a.RetryAfter, 3600)) * time.Second
	}
	if e.Code == "" {
		e.Code = statusCode(e.Status)
	}
	return e
}

// streamSender sends over one stream and hands each answer to the send
// waiting for it.
type streamSender struct {
	conn *websocket.Conn

	mu      sync.Mutex
	next    uint64
	waiting map[string]chan sendAnswer
	gone    bool
	// started is signalled when a send begins to wait, so that a reader
	// holding back (its backlog full) reads on to find the answer.
	started chan struct{}
}

func newStreamSender(conn *websocket.Conn) *streamSender {
	return &streamSender{conn: conn, waiting: map[string]chan sendAnswer{}, started: make(chan struct{}, 1)}
}

// sendWriteTimeout bounds the write of a send frame. The write does not
// follow the caller's context: coder/websocket closes the socket when a
// write's context ends, which would end the stream for everyone.
const sendWriteTimeout = 30 * time.Second

// send sends the message to the room and waits for the answer. ok is
// false when the stream went (or was going) before answering: the caller
// then posts over HTTP. err is only ctx's.
func (ss *streamSender) send(ctx context.Context, room RoomID, body postBody) (ans sendAnswer, ok bool, err error) {
	ss.mu.Lock()
	if ss.gone {
		ss.mu.Unlock()
		return sendAnswer{}, false, nil
	}
	ss.next++
	id := strconv.FormatUint(ss.next, 10)
	ch := make(chan sendAnswer, 1)
	ss.waiting[id] = ch
	ss.mu.Unlock()
	select {
	case ss.started <- struct{}{}:
	default:
	}
	frame, err := json.Marshal(struct {
		Type string `json:"type"`
		ID   string `json:"id"`
		Room RoomID `json:"room"`
		postBody
	}{"send", id, room, body})
	if err != nil {
		ss.forget(id)
		return sendAnswer{}, false, err
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sendWriteTimeout)
	werr := ss.conn.Write(wctx, websocket.MessageText, frame)
	cancel()
	if werr != nil {
		ss.forget(id)
		return sendAnswer{}, false, nil
	}
	t := time.NewTimer(sendAnswerTimeout)
	defer t.Stop()
	select {
	case a, open := <-ch:
		return a, open, nil
	case <-t.C:
		// As a POST would time out: the caller sends it again over HTTP.
		ss.forget(id)
		return sendAnswer{}, false, nil
	case <-ctx.Done():
		ss.forget(id)
		return sendAnswer{}, false, ctx.Err()
	}
}

// sendAnswerTimeout is how long a send waits for its answer before it is
// posted instead: the HTTP client's own timeout.
const sendAnswerTimeout = 60 * time.Second

func (ss *streamSender) forget(id string) {
	ss.mu.Lock()
	delete(ss.waiting, id)
	ss.mu.Unlock()
}

// busy reports whether a send waits for its answer.
func (ss *streamSender) busy() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return len(ss.waiting) > 0
}

// answered hands an answer to its send; one nobody waits for any more is
// dropped.
func (ss *streamSender) answered(a sendAnswer) {
	ss.mu.Lock()
	ch, ok := ss.waiting[a.ID]
	delete(ss.waiting, a.ID)
	ss.mu.Unlock()
	if ok {
		ch <- a
	}
}

// close ends the stream's sends: those waiting learn it is gone.
func (ss *streamSender) close() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.gone = true
	for id, ch := range ss.waiting {
		close(ch)
		delete(ss.waiting, id)
	}
}

// inbound holds the frames the stream's reader has read and the loop has
// not yet taken. The reader holds back at streamBatch of them, so that a
// device catching up is not flooded (the provider waits meanwhile), except
// while a send waits for its answer: a send is made with the client's
// lock held, which the loop needs, and the answer may be behind.
type inbound struct {
	mu     sync.Mutex
	frames []frame
	done   bool
	err    error
	more   chan struct{} // frames were added, or the reader ended
	taken  chan struct{} // frames were taken
}

func newInbound() *inbound {
	return &inbound{more: make(chan struct{}, 1), taken: make(chan struct{}, 1)}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// add appends a frame and reports how many are held.
func (in *inbound) add(f frame) int {
	in.mu.Lock()
	in.frames = append(in.frames, f)
	n := len(in.frames)
	in.mu.Unlock()
	signal(in.more)
	return n
}

func (in *inbound) held() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.frames)
}

// end records that the reader stopped, and why.
func (in *inbound) end(err error) {
	in.mu.Lock()
	in.done, in.err = true, err
	in.mu.Unlock()
	signal(in.more)
}

// take returns up to n frames, ending after the first that is not a
// message (a control frame is acted on after the messages before it);
// done is set once the reader has stopped and nothing is left.
func (in *inbound) take(n int) (batch []frame, done bool, err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for len(batch) < n && len(in.frames) > 0 {
		f := in.frames[0]
		in.frames[0] = frame{}
		in.frames = in.frames[1:]
		batch = append(batch, f)
		if f.Message == nil {
			break
		}
	}
	if len(in.frames) > 0 || in.done {
		// More to take, or the end to report: the reader's own signal
		// may have been the one this take answered.
		signal(in.more)
	}
	if len(batch) > 0 {
		signal(in.taken)
	}
	return batch, in.done && len(in.frames) == 0 && len(batch) == 0, in.err
}
