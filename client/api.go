package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// APIError is an error the provider returned: the HTTP status and the
// stable code, safe message and request ID of docs/api.md. Compare it with
// errors.Is against ErrWrongEpoch and the other code sentinels.
type APIError struct {
	Status    int
	Code      string
	Message   string
	RequestID string
	// RetryAfter is the provider's Retry-After (a rate limit's 429, a
	// 503), zero when it gave none.
	RetryAfter time.Duration
}

// Error describes the error as the provider reported it.
func (e *APIError) Error() string {
	s := fmt.Sprintf("provider: %s (%d): %s", e.Code, e.Status, e.Message)
	if e.RequestID != "" {
		s += " [request " + e.RequestID + "]"
	}
	return s
}

// Is matches the sentinel of the error's code, so that callers can write
// errors.Is(err, ErrWrongEpoch) without a type assertion.
func (e *APIError) Is(target error) bool {
	if e.Code == "no_consent" && target == ErrForbidden {
		return true
	}
	s, ok := codeErrors[e.Code]
	return ok && s == target
}

// Sentinels for the provider's stable error codes (docs/api.md). An
// *APIError with that code matches them with errors.Is.
var (
	ErrBadRequest           = errors.New("client: bad_request")
	ErrInvalidMessage       = errors.New("client: invalid_message")
	ErrUnauthenticated      = errors.New("client: unauthenticated")
	ErrForbidden            = errors.New("client: forbidden")
	ErrNotFound             = errors.New("client: not_found")
	ErrConflict             = errors.New("client: conflict")
	ErrWrongEpoch           = errors.New("client: wrong_epoch")
	ErrGone                 = errors.New("client: gone")
	ErrTooLarge             = errors.New("client: too_large")
	ErrUnsupportedMediaType = errors.New("client: unsupported_media_type")
	ErrNoKeyPackages        = errors.New("client: no_key_packages")
	ErrInternal             = errors.New("client: internal")
	ErrUnavailable          = errors.New("client: unavailable")
	ErrRateLimited          = errors.New("client: rate_limited")
	// ErrStorageFull: the provider's disk is full, so it stored nothing
	// of the request. It is retryable: the SDK sends a message again
	// with the same client_id a few times, and an application may try
	// again later (the error's RetryAfter says when).
	ErrStorageFull = errors.New("client: storage_full")
	// ErrNoConsent: the user invited does not accept contact from this
	// user (blocked, or does not allow this provider). It also matches
	// ErrForbidden, which it refines.
	ErrNoConsent = errors.New("client: no_consent")
)

var codeErrors = map[string]error{
	"bad_request":            ErrBadRequest,
	"invalid_message":        ErrInvalidMessage,
	"unauthenticated":        ErrUnauthenticated,
	"forbidden":              ErrForbidden,
	"not_found":              ErrNotFound,
	"conflict":               ErrConflict,
	"wrong_epoch":            ErrWrongEpoch,
	"gone":                   ErrGone,
	"too_large":              ErrTooLarge,
	"unsupported_media_type": ErrUnsupportedMediaType,
	"no_key_packages":        ErrNoKeyPackages,
	"internal":               ErrInternal,
	"unavailable":            ErrUnavailable,
	"rate_limited":           ErrRateLimited,
	"storage_full":           ErrStorageFull,
	"no_consent":             ErrNoConsent,
}

// maxResponse bounds what the client reads of one response, so that a
// broken or hostile provider cannot exhaust the device's memory.
const maxResponse = 64 << 20

// api is the HTTP side of the client API: it knows the server's address and
// the session token, and turns provider errors into *APIError.
type api struct {
	base    *url.URL
	http    *http.Client
	authKey ed25519.PrivateKey
	domain  string
	// own is the transport made when the application gave no HTTP client.
	own *http.Transport

	// token is guarded by the Client's tokenMu, not mu: signing in must not
	// wait for a long group operation.
	token string
}

func newAPI(serverURL string, hc *http.Client) (*api, error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return nil, fmt.Errorf("client: server URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("client: server URL %q: scheme must be http or https", serverURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	a := &api{base: u, http: hc}
	if hc == nil {
		// A transport of the client's own, so that Close can drop its
		// idle connections: a server shutting down waits for them.
		a.own = http.DefaultTransport.(*http.Transport).Clone()
		a.http = &http.Client{Timeout: 60 * time.Second, Transport: a.own}
	}
	return a, nil
}

// close drops the idle connections of the client's own transport.
func (a *api) close() {
	if a.own != nil {
		a.own.CloseIdleConnections()
	}
}

// endpoint joins path (which starts with /v1, its segments escaped as
// url.PathEscape does) and an optional query to the server's base URL.
func (a *api) endpoint(path string, q url.Values) string {
	u := *a.base
	if p, err := url.PathUnescape(path); err == nil && p != path {
		// A segment holds an escaped character (a user URI's slashes):
		// keep the escaping rather than escape the % again.
		u.RawPath = a.base.EscapedPath() + path
		u.Path += p
	} else {
		u.Path += path
	}
	if q != nil {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// do sends one request with a JSON body (nil: none) and decodes a JSON
// response into out (nil: discard). token, if set, is sent as the bearer.
func (a *api) do(ctx context.Context, method, path string, q url.Values, token string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("client: encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.endpoint(path, q), body)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return &networkError{err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return &networkError{err: err}
	}
	if resp.StatusCode >= 300 {
		return decodeAPIError(resp, data)
	}
	if out == nil || len(data) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("client: %s %s: response: %w", method, path, err)
	}
	return nil
}

// decodeAPIError reads the provider's error body; a body that is not one
// (a proxy's error page, say) still yields an APIError with the status.
func decodeAPIError(resp *http.Response, data []byte) error {
	var body struct {
		Error struct {
			Code      string `json:"code"`
			Message   string `json:"message"`
			RequestID string `json:"request_id"`
		} `json:"error"`
	}
	e := &APIError{Status: resp.StatusCode}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		e.RetryAfter = time.Duration(min(secs, 3600)) * time.Second
	}
	if json.Unmarshal(data, &body) == nil && body.Error.Code != "" {
		e.Code, e.Message, e.RequestID = body.Error.Code, body.Error.Message, body.Error.RequestID
		return e
	}
	e.Code = statusCode(resp.StatusCode)
	// The start of the body, cut on a character boundary.
	n := min(len(data), 200)
	for n < len(data) && n > 0 && !utf8.RuneStart(data[n]) {
		n--
	}
	e.Message = strings.TrimSpace(string(data[:n]))
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	return e
}

// statusCode guesses the stable code of a response that carried none.
func statusCode(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "bad_request"
	case http.StatusUnauthorized:
		return "unauthenticated"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusConflict:
		return "conflict"
	case http.StatusGone:
		return "gone"
	case http.StatusRequestEntityTooLarge:
		return "too_large"
	case http.StatusUnsupportedMediaType:
		return "unsupported_media_type"
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return "unavailable"
	case http.StatusInsufficientStorage:
		return "storage_full"
	}
	return "internal"
}

// networkError is a failure to reach the provider or to read its answer:
// the request may or may not have taken effect.
type networkError struct{ err error }

func (e *networkError) Error() string { return "client: network: " + e.err.Error() }
func (e *networkError) Unwrap() error { return e.err }

// retryable reports whether a request may be sent again unchanged: the
// provider was unreachable, or answered with a fault of its own (5xx),
// which includes another provider it relies on being unreachable
// (hub_unreachable): the request may or may not have taken effect, and
// sending it again with the same idempotency key is how to find out. A
// 4xx answer is a definite refusal.
func retryable(err error) bool {
	var ne *networkError
	if errors.As(err, &ne) {
		return true
	}
	var ae *APIError
	if errors.As(err, &ae) && ae.Status >= 500 {
		return true
	}
	return errors.Is(err, ErrInternal) || errors.Is(err, ErrUnavailable) || errors.Is(err, ErrStorageFull)
}

// authSignatureInput is what a device signs to prove it holds its auth key
// (docs/api.md): the fixed label and the provider's domain, each ended by a
// newline, then the challenge. The domain binds the signature to one
// provider, so a challenge relayed from another provider is useless there.
func authSignatureInput(domain string, challenge []byte) []byte {
	b := make([]byte, 0, len("switchboard auth v1\n")+len(domain)+1+len(challenge))
	b = append(b, "switchboard auth v1\n"...)
	b = append(b, domain...)
	b = append(b, '\n')
	return append(b, challenge...)
}

// signIn runs the challenge–response of docs/api.md and returns a session
// token.
func (a *api) signIn(ctx context.Context) (string, error) {
	pub := a.authKey.Public().(ed25519.PublicKey)
	var ch struct {
		Challenge []byte `json:"challenge"`
	}
	if err := a.do(ctx, http.MethodPost, "/v1/auth/challenge", nil, "", map[string]any{"auth_key": []byte(pub)}, &ch); err != nil {
		return "", fmt.Errorf("client: sign in: %w", err)
	}
	if len(ch.Challenge) == 0 {
		return "", errors.New("client: sign in: empty challenge")
	}
	sig := ed25519.Sign(a.authKey, authSignatureInput(a.domain, ch.Challenge))
	var sess struct {
		Token string `json:"token"`
	}
	req := map[string]any{"auth_key": []byte(pub), "challenge": ch.Challenge, "signature": sig}
	if err := a.do(ctx, http.MethodPost, "/v1/auth/session", nil, "", req, &sess); err != nil {
		return "", fmt.Errorf("client: sign in: %w", err)
	}
	if sess.Token == "" {
		return "", errors.New("client: sign in: no token")
	}
	return sess.Token, nil
}

// providerInfo is GET /v1/provider.
type providerInfo struct {
	Domain        string   `json:"domain"`
	CACertificate []byte   `json:"ca_certificate"`
	CipherSuites  []uint16 `json:"cipher_suites"`
	// Partners are the provider's partner providers with their CAs.
	Partners []struct {
		Domain        string `json:"domain"`
		CACertificate []byte `json:"ca_certificate"`
	} `json:"partners"`
}
