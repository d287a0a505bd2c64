package provider

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/store"
)

// Error is an API error: a stable code, the HTTP status and a message safe
// to show to the client. Detail that must not leave the provider goes to
// the log, tied to the request ID.
type Error struct {
	Code    string
	Status  int
	Message string
	cause   error
	// retryAfter is the Retry-After in seconds (0: none): a header over
	// HTTP, retry_after in a stream's send_error.
	retryAfter int64
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func (e *Error) Unwrap() error { return e.cause }

// The stable error codes of docs/api.md. Only ever add to this list.
func errBadRequest(format string, args ...any) *Error {
	return &Error{Code: "bad_request", Status: http.StatusBadRequest, Message: fmt.Sprintf(format, args...)}
}

func errInvalidMessage(err error) *Error {
	return &Error{Code: "invalid_message", Status: http.StatusBadRequest, Message: err.Error(), cause: err}
}

func errUnauthenticated(msg string) *Error {
	return &Error{Code: "unauthenticated", Status: http.StatusUnauthorized, Message: msg}
}

func errForbidden(format string, args ...any) *Error {
	return &Error{Code: "forbidden", Status: http.StatusForbidden, Message: fmt.Sprintf(format, args...)}
}

func errNotFound(format string, args ...any) *Error {
	return &Error{Code: "not_found", Status: http.StatusNotFound, Message: fmt.Sprintf(format, args...)}
}

func errConflict(format string, args ...any) *Error {
	return &Error{Code: "conflict", Status: http.StatusConflict, Message: fmt.Sprintf(format, args...)}
}

func errWrongEpoch(err error) *Error {
	return &Error{Code: "wrong_epoch", Status: http.StatusConflict, Message: err.Error(), cause: err}
}

func errGone(msg string) *Error {
	return &Error{Code: "gone", Status: http.StatusGone, Message: msg}
}

func errTooLarge(limit int64) *Error {
	return &Error{Code: "too_large", Status: http.StatusRequestEntityTooLarge, Message: fmt.Sprintf("the body exceeds %d bytes", limit)}
}

func errUnsupportedMedia() *Error {
	return &Error{Code: "unsupported_media_type", Status: http.StatusUnsupportedMediaType, Message: "send application/json"}
}

func errNoKeyPackages(handle string, suite uint16) *Error {
	return &Error{Code: "no_key_packages", Status: http.StatusConflict, Message: fmt.Sprintf("%s has no KeyPackage of cipher suite %d left", handle, suite)}
}

// errKeyPackageUsed: a commit adds a device with a KeyPackage that an
// earlier Welcome already used.
func errKeyPackageUsed(device identity.URI) *Error {
	return &Error{Code: "key_package_used", Status: http.StatusConflict,
		Message: fmt.Sprintf("the KeyPackage of %s was already used by another Welcome; claim a fresh one", device)}
}

// errKeyPackageUsedElsewhere is errKeyPackageUsed found by the store's
// write, which knows the KeyPackage but not whose it is.
func errKeyPackageUsedElsewhere(cause error) *Error {
	return &Error{Code: "key_package_used", Status: http.StatusConflict,
		Message: "a KeyPackage this Welcome uses was already used by another Welcome; claim a fresh one", cause: cause}
}

// errSuspended refuses a user the operator suspended (docs/abuse.md).
func errSuspended(handle string) *Error {
	return &Error{Code: "suspended", Status: http.StatusForbidden, Message: fmt.Sprintf("the account %s is suspended by the provider's operator", handle)}
}

// errFrankInvalid refuses an abuse report whose evidence does not verify;
// nothing of it is kept (docs/abuse.md).
func errFrankInvalid(format string, args ...any) *Error {
	return &Error{Code: "frank_invalid", Status: http.StatusUnprocessableEntity, Message: fmt.Sprintf(format, args...)}
}

func errInternal(err error) *Error {
	return &Error{Code: "internal", Status: http.StatusInternalServerError, Message: "internal error; nothing was changed", cause: err}
}

func errUnavailable(msg string) *Error {
	return &Error{Code: "unavailable", Status: http.StatusServiceUnavailable, Message: msg}
}

// storeDown turns an internal error caused by storage that cannot be
// reached (store.ErrUnavailable: PostgreSQL down or restarting) into 503
// unavailable with Retry-After, so clients retry instead of giving up;
// nothing was changed, and the store reconnects by itself.
func storeDown(e *Error) *Error {
	if e.Status != http.StatusInternalServerError || !errors.Is(e, store.ErrUnavailable) {
		return e
	}
	return &Error{Code: "unavailable", Status: http.StatusServiceUnavailable,
		Message: "storage is briefly unavailable; nothing was changed, retry shortly", cause: e.cause, retryAfter: 2}
}

// storageFullRetry is the Retry-After of storage_full, in seconds: a full
// disk waits for its operator, so asking sooner mostly adds load.
const storageFullRetry = 10

// storeFull turns an internal error caused by a full disk
// (store.ErrStorageFull) into 507 storage_full with Retry-After: the
// change was not stored and nothing of it is kept, so the same request
// (the same client_id) may be sent again once there is space, which
// needs no restart of the provider. Reads go on meanwhile.
func storeFull(e *Error) *Error {
	if e.Status != http.StatusInternalServerError || !errors.Is(e, store.ErrStorageFull) {
		return e
	}
	return &Error{Code: "storage_full", Status: http.StatusInsufficientStorage,
		Message: "the provider's storage is full; nothing was stored, retry later", cause: e.cause, retryAfter: storageFullRetry}
}

// hubFull passes on a hub's storage_full (its disk is full) to the
// device that sent the message through this provider: nothing was
// stored, and the same client_id may be sent again later.
func hubFull(hub string, err error) *Error {
	var pe *federation.PeerError
	if !errors.As(err, &pe) || pe.Status != http.StatusInsufficientStorage || pe.Code != "storage_full" {
		return nil
	}
	return &Error{Code: "storage_full", Status: http.StatusInsufficientStorage,
		Message: fmt.Sprintf("the storage of the room's hub %s is full; nothing was stored, retry later", hub), cause: err, retryAfter: storageFullRetry}
}

// apiError is the API error an error is answered with.
func apiError(err error) *Error {
	var apiErr *Error
	if !errors.As(err, &apiErr) {
		apiErr = errInternal(err)
	}
	return storeFull(storeDown(apiErr))
}

// setRetryAfter writes the error's Retry-After header, if it has one.
func setRetryAfter(w http.ResponseWriter, e *Error) {
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(e.retryAfter, 10))
	}
}

func errRateLimited(msg string) *Error {
	return &Error{Code: "rate_limited", Status: http.StatusTooManyRequests, Message: msg}
}

type errorBody struct {
	Error struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		RequestID string `json:"request_id"`
	} `json:"error"`
}

// handlerFunc is a handler that returns its error for the adapter to report.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// serve adapts a handlerFunc: it tags the request with an ID, refuses it
// while the server drains, turns errors into the API's error bodies, logs
// them, and counts them.
func (s *Server) serve(name string, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := newRequestID()
		w.Header().Set("X-Request-ID", id)
		var err error
		if s.isDraining() {
			// Every new request is refused while draining, including
			// registration and sign-in, which are not signed in.
			err = errUnavailable("the provider is shutting down")
		} else {
			s.boundBody(w, r)
			err = h(w, r)
		}
		if err == nil {
			s.metrics.requests.WithLabelValues(name, "ok").Inc()
			return
		}
		apiErr := apiError(err)
		setRetryAfter(w, apiErr)
		s.metrics.requests.WithLabelValues(name, apiErr.Code).Inc()
		level := slog.LevelInfo
		if apiErr.Status >= 500 {
			level = slog.LevelError
		}
		s.log.Log(r.Context(), level, "request failed", "request_id", id, "handler", name,
			"code", apiErr.Code, "message", apiErr.Message, "cause", apiErr.cause)
		var body errorBody
		body.Error.Code, body.Error.Message, body.Error.RequestID = apiErr.Code, apiErr.Message, id
		writeJSON(w, apiErr.Status, body)
	})
}

func newRequestID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) // #nosec G104 -- the client went away; nothing to tell it
}

// readJSON decodes a JSON body into v, refusing other media types, bodies
// over the limit, unknown fields and trailing data.
func (s *Server) readJSON(r *http.Request, v any) error {
	_, err := s.readJSONWithin(r, v, s.cfg.MaxBodyBytes)
	return err
}

// readJSONWithin is readJSON with another limit; it returns how many bytes
// of the body it read, for a caller that holds some messages to a lower
// limit once it knows what they are.
func (s *Server) readJSONWithin(r *http.Request, v any, limit int64) (int64, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" && ct != "application/json" && ct != "application/json; charset=utf-8" {
		return 0, errUnsupportedMedia()
	}
	body := &countingReader{r: http.MaxBytesReader(nil, r.Body, limit)}
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return body.n, errTooLarge(limit)
		}
		return body.n, errBadRequest("malformed JSON body: %v", err)
	}
	// More() would let a stray "}" or "]" pass: only the end may follow.
	if _, err := dec.Token(); err != io.EOF {
		return body.n, errBadRequest("trailing data after the JSON body")
	}
	return body.n, nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// boundBody gives a request with a body BodyTimeout to deliver all of it:
// past that, reads fail and the connection is closed. The deadline is
// lifted once the body has been read to its end, because net/http keeps
// reading the connection in the background while the handler runs, and
// a deadline passing then would cancel the request's context (a long
// submit, say). A request without a body, such as the stream's upgrade
// or a long poll, gets no deadline at all.
func (s *Server) boundBody(w http.ResponseWriter, r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return
	}
	rc := http.NewResponseController(w)
	if rc.SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout)) != nil {
		return // not supported by this connection: nothing to lift later
	}
	r.Body = &deadlineBody{ReadCloser: r.Body, lift: func() { rc.SetReadDeadline(time.Time{}) }} // #nosec G104 -- the request is over; the connection's next read sets its own deadline
}

// deadlineBody lifts the read deadline when its body has been read to
// the end.
type deadlineBody struct {
	io.ReadCloser
	lift   func()
	lifted bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.lifted {
		b.lifted = true
		b.lift()
	}
	return n, err
}
