package federation

import (
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzClassify reads whatever a partner (or a proxy before it) could
// answer: any status, media type, Retry-After and body. Never a panic; a
// 2xx is no error and anything else a *PeerError with the status; the
// partner's code and message are bounded, and cut on a character
// boundary so that text that was UTF-8 stays UTF-8; a Retry-After never
// parks a queue for more than a day; the error prints on one line.
func FuzzClassify(f *testing.F) {
	f.Add(200, "application/octet-stream", "", []byte{0, 1})
	f.Add(403, "application/json", "", []byte(`{"error":{"code":"unknown_partner","message":"who are you"}}`))
	f.Add(429, "application/json; charset=utf-8", "120", []byte(`{"error":{"code":"rate_limited","message":"slow down"}}`))
	f.Add(503, "text/plain", "Wed, 21 Oct 2099 07:28:00 GMT", []byte("  maintenance\n"))
	f.Add(502, "text/html", "99999999999999999999", []byte("<html>bad gateway</html>"))
	f.Add(400, "application/json", "-1", []byte(`{"error":{"code":"`+strings.Repeat("é", 40)+`","message":"`+strings.Repeat("€", 200)+`"}}`))
	f.Add(500, "text/plain", "", []byte(strings.Repeat("ü", 300)))
	f.Add(404, "", "", []byte(nil))
	f.Fuzz(func(t *testing.T, status int, contentType, retryAfter string, body []byte) {
		h := http.Header{}
		h.Set("Content-Type", contentType)
		h.Set("Retry-After", retryAfter)
		before := time.Now()
		err := Classify(&Response{Domain: "blue.example", Status: status, Header: h, Body: body}, nil)
		if status >= 200 && status <= 299 {
			if err != nil {
				t.Fatalf("a %d answer is an error: %v", status, err)
			}
			return
		}
		pe, ok := err.(*PeerError)
		if !ok {
			t.Fatalf("a %d answer gave %T %v, not a *PeerError", status, err, err)
		}
		if pe.Status != status || pe.Domain != "blue.example" {
			t.Fatalf("status %d from blue.example read as %d from %q", status, pe.Status, pe.Domain)
		}
		if len(pe.Code) > 64 || len(pe.Message) > maxErrorMessage {
			t.Fatalf("code of %d bytes, message of %d", len(pe.Code), len(pe.Message))
		}
		if utf8.Valid(body) && (!utf8.ValidString(pe.Code) || !utf8.ValidString(pe.Message)) {
			t.Fatalf("UTF-8 text cut inside a character: code %q, message %q", pe.Code, pe.Message)
		}
		if !pe.RetryAfter.IsZero() && pe.RetryAfter.After(time.Now().Add(maxRetryAfter)) {
			t.Fatalf("Retry-After %q parks the queue until %v (asked at %v)", retryAfter, pe.RetryAfter, before)
		}
		if strings.ContainsAny(pe.Error(), "\n\r") {
			t.Fatalf("the error spans lines: %q", pe.Error())
		}
	})
}
