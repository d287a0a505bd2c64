package bench

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// A raw session speaks the client API (docs/api.md) directly: sign-in,
// posting an MLS message as it is, and the WebSocket stream with its
// acknowledgements, with none of the SDK's MLS or disk work.

type rawSession struct {
	p     *prov
	token string
	hc    *http.Client
	tr    *http.Transport
	// overStream makes post send over the session's stream while it is
	// open (--submit stream), as send frames; sends is that stream's.
	overStream bool
	sends      atomic.Pointer[rawSends]
}

// apiError is a provider's error answer (or a failure to get one).
type apiError struct {
	Status int
	Code   string
	Msg    string
}

func (e *apiError) Error() string { return fmt.Sprintf("%s (%d): %s", e.Code, e.Status, e.Msg) }

// errorCode is the stable code an error is counted under in the report.
func errorCode(err error) string {
	var ae *apiError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &ae):
		return ae.Code
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "timeout"
	}
	// The SDK's errors carry the provider's code too.
	if c := sdkCode(err); c != "" {
		return c
	}
	return "network"
}

func newTransport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// Open-loop sends overlap: keep their connections rather than open and
	// close one per request.
	tr.MaxIdleConnsPerHost = 64
	return tr
}

func newRawSession(p *prov) *rawSession {
	tr := newTransport()
	return &rawSession{p: p, tr: tr, hc: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

func (r *rawSession) close() { r.tr.CloseIdleConnections() }

// registerRaw registers a new device with an enrollment code and signs in.
func registerRaw(ctx context.Context, p *prov, code string) (*rawSession, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	r := newRawSession(p)
	req := map[string]any{"enrollment_code": code, "device_name": "bench", "auth_key": []byte(pub)}
	if err := r.do(ctx, http.MethodPost, "/v1/devices", req, nil); err != nil {
		r.close()
		return nil, err
	}
	if err := r.signIn(ctx, priv); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

// signInRaw signs in with a device's Ed25519 auth key seed.
func signInRaw(ctx context.Context, p *prov, seed []byte) (*rawSession, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, errors.New("auth key is not an Ed25519 seed")
	}
	r := newRawSession(p)
	if err := r.signIn(ctx, ed25519.NewKeyFromSeed(seed)); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

// signIn runs the challenge and response of docs/api.md.
func (r *rawSession) signIn(ctx context.Context, key ed25519.PrivateKey) error {
	pub := key.Public().(ed25519.PublicKey)
	var ch struct {
		Challenge []byte `json:"challenge"`
	}
	if err := r.do(ctx, http.MethodPost, "/v1/auth/challenge", map[string]any{"auth_key": []byte(pub)}, &ch); err != nil {
		return fmt.Errorf("sign in: %w", err)
	}
	msg := append([]byte("switchboard auth v1\n"+r.p.domain+"\n"), ch.Challenge...)
	var sess struct {
		Token string `json:"token"`
	}
	req := map[string]any{"auth_key": []byte(pub), "challenge": ch.Challenge, "signature": ed25519.Sign(key, msg)}
	if err := r.do(ctx, http.MethodPost, "/v1/auth/session", req, &sess); err != nil {
		return fmt.Errorf("sign in: %w", err)
	}
	r.token = sess.Token
	return nil
}

// post submits one MLS message to a room as it is and returns its seq:
// over the stream if it is open and overStream is set, else (or if the
// stream goes before answering) as a POST, with the same client ID.
func (r *rawSession) post(ctx context.Context, room, clientID string, msg []byte) (int64, error) {
	if ss := r.sends.Load(); ss != nil {
		if seq, ok, err := ss.send(ctx, room, clientID, msg); ok || ctx.Err() != nil {
			return seq, err
		}
	}
	req := struct {
		ClientID string `json:"client_id"`
		Message  []byte `json:"message"`
	}{clientID, msg}
	var resp struct {
		Seq int64 `json:"seq"`
	}
	err := r.do(ctx, http.MethodPost, "/v1/rooms/"+url.PathEscape(room)+"/messages", req, &resp)
	return resp.Seq, err
}

// rawSends sends messages over one stream and matches the answers (sent,
// send_error) to them by ID.
type rawSends struct {
	conn    *websocket.Conn
	mu      sync.Mutex
	next    uint64
	waiting map[string]chan sendAnswer
	gone    bool
}

// sendAnswer is the provider's answer to a send frame.
type sendAnswer struct {
	Type    string `json:"type"`
	ID      string `json:"id"`
	Seq     int64  `json:"seq"`
	Status  int    `json:"status"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// send sends a message and waits for its answer; ok is false if the
// stream went first (nothing is known of the message then).
func (ss *rawSends) send(ctx context.Context, room, clientID string, msg []byte) (seq int64, ok bool, err error) {
	ss.mu.Lock()
	if ss.gone {
		ss.mu.Unlock()
		return 0, false, nil
	}
	ss.next++
	id := strconv.FormatUint(ss.next, 10)
	ch := make(chan sendAnswer, 1)
	ss.waiting[id] = ch
	ss.mu.Unlock()
	frame, _ := json.Marshal(map[string]any{"type": "send", "id": id, "room": room, "client_id": clientID, "message": msg})
	// Not ctx: a write whose context ends closes the socket.
	wctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err = ss.conn.Write(wctx, websocket.MessageText, frame)
	cancel()
	if err != nil {
		ss.answered(sendAnswer{ID: id}) // forget it
		return 0, false, nil
	}
	select {
	case a, open := <-ch:
		if !open {
			return 0, false, nil
		}
		if a.Type != "sent" {
			return 0, true, &apiError{Status: a.Status, Code: a.Code, Msg: a.Message}
		}
		return a.Seq, true, nil
	case <-ctx.Done():
		ss.answered(sendAnswer{ID: id})
		return 0, false, ctx.Err()
	}
}

// answered hands an answer to the send waiting for it, if any.
func (ss *rawSends) answered(a sendAnswer) {
	ss.mu.Lock()
	ch := ss.waiting[a.ID]
	delete(ss.waiting, a.ID)
	ss.mu.Unlock()
	if ch != nil && a.Type != "" {
		ch <- a
	}
}

// close tells the sends still waiting that the stream is gone.
func (ss *rawSends) close() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.gone = true
	for id, ch := range ss.waiting {
		close(ch)
		delete(ss.waiting, id)
	}
}

// do sends one JSON request and decodes the JSON answer into out.
func (r *rawSession) do(ctx context.Context, method, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, r.p.url+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return decodeError(resp.StatusCode, data)
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}

func decodeError(status int, data []byte) error {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &e) == nil && e.Error.Code != "" {
		return &apiError{Status: status, Code: e.Error.Code, Msg: e.Error.Message}
	}
	return &apiError{Status: status, Code: "http_" + strconv.Itoa(status), Msg: strings.TrimSpace(string(data[:min(len(data), 200)]))}
}

func getJSON(ctx context.Context, hc *http.Client, u string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return decodeError(resp.StatusCode, data)
	}
	return json.Unmarshal(data, out)
}

// streamFrame is one frame of the delivery stream.
type streamFrame struct {
	Type    string `json:"type"`
	Cursor  int64  `json:"cursor"`
	Message *struct {
		Room    string `json:"room"`
		Seq     int64  `json:"seq"`
		Kind    string `json:"kind"`
		Payload []byte `json:"payload"`
	} `json:"message"`
}

// stream holds the device's WebSocket stream open until ctx ends. It
// calls connected once the stream is open, and onFrame for every frame
// as it arrives (with the time it was read). Like the SDK it acknowledges
// each run of frames that arrived together with one ack of the last
// cursor, after handling them.
func (r *rawSession) stream(ctx context.Context, connected func(), onFrame func(f *streamFrame, at time.Time)) error {
	u, _ := url.Parse(r.p.url + "/v1/stream")
	u.Scheme = strings.Replace(u.Scheme, "http", "ws", 1)
	u.RawQuery = "after=0"
	conn, _, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{
		HTTPClient: r.hc,
		HTTPHeader: http.Header{"Authorization": {"Bearer " + r.token}},
	})
	if err != nil {
		return err
	}
	defer conn.CloseNow()
	conn.SetReadLimit(32 << 20)
	var sends *rawSends
	if r.overStream {
		sends = &rawSends{conn: conn, waiting: map[string]chan sendAnswer{}}
		r.sends.Store(sends)
		// Sends go over the stream: a device then holds this connection
		// and no other (the keep-alive one left from signing in would
		// count in the provider's memory per device).
		r.tr.CloseIdleConnections()
		defer func() {
			r.sends.CompareAndSwap(sends, nil)
			sends.close()
		}()
	}
	outer := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if connected != nil {
		connected()
	}
	type read struct {
		f  *streamFrame
		at time.Time
	}
	frames := make(chan read, 256)
	readErr := make(chan error, 1)
	go func() {
		defer close(frames)
		for {
			_, data, err := conn.Read(ctx)
			if err != nil {
				readErr <- err
				return
			}
			f := &streamFrame{}
			ferr := json.Unmarshal(data, f)
			if sends != nil && (ferr != nil || f.Type == "sent" || f.Type == "send_error") {
				// An answer to a send (its message is a string).
				var a sendAnswer
				if json.Unmarshal(data, &a) == nil {
					sends.answered(a)
				}
				continue
			}
			if ferr != nil {
				continue
			}
			select {
			case frames <- read{f, time.Now()}:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		rd, ok := <-frames
		if !ok {
			return streamEnd(outer, readErr)
		}
		cursor := int64(0)
		for {
			onFrame(rd.f, rd.at)
			cursor = max(cursor, rd.f.Cursor)
			select {
			case rd, ok = <-frames:
				if ok {
					continue
				}
			default:
			}
			break
		}
		if cursor > 0 {
			ack, _ := json.Marshal(map[string]any{"type": "ack", "cursor": cursor})
			if err := conn.Write(ctx, websocket.MessageText, ack); err != nil {
				if outer.Err() != nil {
					return nil
				}
				return err
			}
		}
		if !ok {
			return streamEnd(outer, readErr)
		}
	}
}

// streamEnd is the reason a stream ended: none when its context ended
// (the run is over), else the reader's error.
func streamEnd(ctx context.Context, readErr <-chan error) error {
	if ctx.Err() != nil {
		return nil
	}
	select {
	case err := <-readErr:
		return err
	default:
		return errors.New("stream closed")
	}
}
