package federation

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/switchboard-chat/switchboard/mls"
)

// POST /batch: a Switchboard extension of the MIMI profile. A sender puts
// several one-way requests for the same partner (notify, requestConsent,
// updateConsent, reportAbuse) into one request; the receiver handles them
// in order, each exactly as if it had come alone, and answers each. A
// partner offers it by listing "batch" in its directory; to one that does
// not, every request goes alone. docs/federation.md, "Batches", has the
// rules.
//
//	struct {
//	    opaque name<V>;     /* canonical form, e.g. Mimi-Room-Seq */
//	    opaque value<V>;
//	} HeaderField;
//
//	struct {
//	    opaque path<V>;             /* as it would be POSTed alone, under the
//	                                   partner's federation base URL */
//	    opaque delivery_id<V>;      /* Mimi-Delivery-Id */
//	    HeaderField headers<V>;     /* sorted by name, each name once */
//	    opaque body<V>;
//	} BatchEntry;
//
//	struct { BatchEntry entries<V>; } BatchRequest;
//
//	struct {
//	    uint16 status;              /* the HTTP status the entry got */
//	    HeaderField headers<V>;     /* the answer's headers, sorted */
//	    opaque body<V>;             /* the answer's body */
//	} BatchResult;
//
//	struct { BatchResult results<V>; } BatchResponse;

// HeaderField is one header of a batch entry or of its answer.
type HeaderField struct {
	Name, Value string
}

// BatchEntry is one request inside a BatchRequest.
type BatchEntry struct {
	// Path is the request path the entry would be POSTed to alone,
	// relative to the partner's federation base URL and escaped as it
	// would be sent, such as "/notify/mimi%3A%2F%2Fa.example%2Fr%2Fx".
	Path string
	// DeliveryID is the entry's HeaderDeliveryID: the receiver applies a
	// retried entry once, whether it comes alone or in a batch.
	DeliveryID string
	Headers    []HeaderField
	Body       []byte
}

// BatchRequest is the body of POST /batch.
type BatchRequest struct {
	Entries []BatchEntry
}

// BatchResult is the answer to one entry: what the entry's endpoint
// answered, as it would have answered the entry alone.
type BatchResult struct {
	Status  int
	Headers []HeaderField
	Body    []byte
}

// BatchResponse is the answer to POST /batch: one result per entry, in
// the entries' order, up to and including the first entry that failed in
// a way worth retrying. The entries after it were not handled, or may
// have been: the sender sends them again, and the receiver applies each
// once by its delivery ID.
type BatchResponse struct {
	Results []BatchResult
}

// Header returns the value of a header of the answer, or "".
func (b *BatchResult) Header(name string) string {
	name = http.CanonicalHeaderKey(name)
	for _, h := range b.Headers {
		if h.Name == name {
			return h.Value
		}
	}
	return ""
}

// batchReservedHeaders are headers an entry or its answer must not carry:
// they belong to the batch request itself (who calls, its replay stamp),
// to the transport, or, for the delivery ID, to their own field.
var batchReservedHeaders = map[string]bool{
	"From": true, "Host": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true,
	"Keep-Alive": true, "Upgrade": true, "Te": true, "Trailer": true,
	HeaderRequestID: true, HeaderTimestamp: true, HeaderDeliveryID: true,
}

// validHeaderName reports whether name is an HTTP token in Go's canonical
// form: the form net/http hands a handler, so that the same header has one
// encoding.
func validHeaderName(name string) bool {
	if name == "" || len(name) > 128 || http.CanonicalHeaderKey(name) != name {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validHeaderValue reports whether v can travel in an HTTP header
// unchanged: printable ASCII and inner spaces, at most 8 KiB.
func validHeaderValue(v string) bool {
	if len(v) > 8<<10 || strings.TrimSpace(v) != v {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < ' ' || v[i] > '~' {
			return false
		}
	}
	return true
}

// validBatchPath reports whether p is an escaped, absolute request path
// that names no other host, as requestURL requires of a path sent alone.
func validBatchPath(p string) bool {
	if len(p) > 4096 || !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") {
		return false
	}
	u, err := url.ParseRequestURI(p)
	return err == nil && u.RequestURI() == p
}

func writeHeaders(w *mls.Writer, hs []HeaderField) {
	w.Vector(func(w *mls.Writer) {
		for _, h := range hs {
			w.Opaque([]byte(h.Name))
			w.Opaque([]byte(h.Value))
		}
	})
}

// readHeaders reads HeaderField headers<V>: names valid, canonical, not
// reserved and strictly ascending (so each once, in one order), values
// valid.
func readHeaders(r *mls.Reader, field string) []HeaderField {
	var out []HeaderField
	r.Each(func(r *mls.Reader) {
		h := HeaderField{Name: string(r.Opaque()), Value: string(r.Opaque())}
		switch {
		case r.Err() != nil:
		case !validHeaderName(h.Name):
			failf(r, "%s: %q is not a header name in canonical form", field, h.Name)
		case batchReservedHeaders[h.Name]:
			failf(r, "%s: %s belongs to the batch, not to an entry", field, h.Name)
		case len(out) > 0 && out[len(out)-1].Name >= h.Name:
			failf(r, "%s: %s after %s: names must be sorted, each once", field, h.Name, out[len(out)-1].Name)
		case !validHeaderValue(h.Value):
			failf(r, "%s: the value of %s is not printable ASCII", field, h.Name)
		}
		out = append(out, h)
	})
	return out
}

// MarshalMLS writes the entry.
func (e *BatchEntry) MarshalMLS(w *mls.Writer) {
	w.Opaque([]byte(e.Path))
	w.Opaque([]byte(e.DeliveryID))
	writeHeaders(w, e.Headers)
	w.Opaque(e.Body)
}

// UnmarshalMLS reads an entry.
func (e *BatchEntry) UnmarshalMLS(r *mls.Reader) {
	*e = BatchEntry{}
	e.Path = string(r.Opaque())
	e.DeliveryID = string(r.Opaque())
	if r.Err() == nil && !validBatchPath(e.Path) {
		failf(r, "entry path %q is not an escaped absolute path", e.Path)
	}
	if r.Err() == nil && !validDeliveryID(e.DeliveryID) {
		failf(r, "entry delivery ID %q: want 1 to 256 printable ASCII characters without spaces", e.DeliveryID)
	}
	e.Headers = readHeaders(r, "entry headers")
	e.Body = readBytes(r)
}

// MarshalMLS writes the request.
func (b *BatchRequest) MarshalMLS(w *mls.Writer) {
	w.Vector(func(w *mls.Writer) {
		for i := range b.Entries {
			b.Entries[i].MarshalMLS(w)
		}
	})
}

// UnmarshalMLS reads a request: at least one entry.
func (b *BatchRequest) UnmarshalMLS(r *mls.Reader) {
	*b = BatchRequest{}
	r.Each(func(r *mls.Reader) {
		var e BatchEntry
		e.UnmarshalMLS(r)
		b.Entries = append(b.Entries, e)
	})
	if r.Err() == nil && len(b.Entries) == 0 {
		failf(r, "a batch has at least one entry")
	}
}

// MarshalMLS writes the result.
func (b *BatchResult) MarshalMLS(w *mls.Writer) {
	w.U16(uint16(b.Status)) // #nosec G115 -- an HTTP status, 200 to 599
	writeHeaders(w, b.Headers)
	w.Opaque(b.Body)
}

// UnmarshalMLS reads a result: a final HTTP status, 200 to 599.
func (b *BatchResult) UnmarshalMLS(r *mls.Reader) {
	*b = BatchResult{}
	b.Status = int(r.U16())
	if r.Err() == nil && (b.Status < 200 || b.Status > 599) {
		failf(r, "result status %d is not a final HTTP status", b.Status)
	}
	b.Headers = readHeaders(r, "result headers")
	b.Body = readBytes(r)
}

// MarshalMLS writes the response.
func (b *BatchResponse) MarshalMLS(w *mls.Writer) {
	w.Vector(func(w *mls.Writer) {
		for i := range b.Results {
			b.Results[i].MarshalMLS(w)
		}
	})
}

// UnmarshalMLS reads a response: at least one result, since the receiver
// always handles the first entry.
func (b *BatchResponse) UnmarshalMLS(r *mls.Reader) {
	*b = BatchResponse{}
	r.Each(func(r *mls.Reader) {
		var res BatchResult
		res.UnmarshalMLS(r)
		b.Results = append(b.Results, res)
	})
	if r.Err() == nil && len(b.Results) == 0 {
		failf(r, "a batch answer has at least one result")
	}
}

// String describes the entry for logs and test failures.
func (e BatchEntry) String() string {
	return fmt.Sprintf("%s %s (%d bytes)", e.DeliveryID, e.Path, len(e.Body))
}
