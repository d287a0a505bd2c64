package provider

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/store"
)

// Attachments (docs/attachments.md). A device encrypts a file with a key
// of its own and uploads the ciphertext here; the provider keeps it under
// an unguessable ID and answers with a URL that names this provider. The
// key travels only inside the MLS message that carries the URL. A device
// downloads through its own provider, always: the provider serves its own
// attachments from the store and fetches any other's from the provider the
// URL names, over the federation API (MIMI's proxyDownload), so the
// uploader's provider sees only the downloader's provider, never its
// device or address.
//
// A partner's answers are bounded by federation.MaxResponseBody, which is
// smaller than an attachment may be, so an attachment crosses between
// providers in pieces: HTTP range requests of attachmentPiece bytes.

const (
	// attachmentPiece is the most a proxyDownload answer carries, well
	// under federation.MaxResponseBody.
	attachmentPiece = 2 << 20
	// minAttachmentPiece is the least a partner may answer with, except
	// for the last piece, so that a partner cannot make a download take
	// a request per byte.
	minAttachmentPiece = 64 << 10
	// attachmentIDBytes is the entropy of an attachment ID: 128 bits.
	attachmentIDBytes = 16
	// attachmentsPath is where attachment URLs live under the
	// provider's federation URL.
	attachmentsPath = "/attachments/"
)

// attachmentURL is the URL of one of this provider's attachments.
func (s *Server) attachmentURL(id string) string {
	return strings.TrimSuffix(s.cfg.FederationURL, "/") + attachmentsPath + id
}

// localAttachmentID returns the ID an attachment URL of this provider
// names; ok is false for any other URL.
func (s *Server) localAttachmentID(raw string) (id string, ok bool) {
	id, ok = strings.CutPrefix(raw, strings.TrimSuffix(s.cfg.FederationURL, "/")+attachmentsPath)
	return id, ok && validAttachmentID(id)
}

func newAttachmentID() string {
	b := make([]byte, attachmentIDBytes)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// validAttachmentID reports whether id is as newAttachmentID makes them.
func validAttachmentID(id string) bool {
	b, err := base64.RawURLEncoding.DecodeString(id)
	return err == nil && len(b) == attachmentIDBytes && base64.RawURLEncoding.EncodeToString(b) == id
}

func errRangeNotSatisfiable(size int64) *Error {
	return &Error{Code: "range_not_satisfiable", Status: http.StatusRequestedRangeNotSatisfiable,
		Message: fmt.Sprintf("the range starts at or after the end of the %d-byte attachment", size)}
}

// uploadAttachment is POST /v1/attachments: the body is an encrypted file,
// stored whole for the calling user. A body over MaxAttachmentBytes is
// refused before anything is stored.
func (s *Server) uploadAttachment(w http.ResponseWriter, r *http.Request) error {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/octet-stream" {
		return &Error{Code: "unsupported_media_type", Status: http.StatusUnsupportedMediaType,
			Message: "send the encrypted attachment as application/octet-stream"}
	}
	limit := s.cfg.MaxAttachmentBytes
	if r.ContentLength > limit {
		return errAttachmentTooLarge(limit)
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return errAttachmentTooLarge(limit)
	} else if err != nil {
		return errBadRequest("reading the attachment: %v", err)
	}
	if len(data) == 0 {
		return errBadRequest("the attachment is empty")
	}
	c := callerOf(r)
	id, now := newAttachmentID(), s.now()
	if err := s.store.PutAttachment(r.Context(), store.Attachment{ID: id, OwnerID: c.user.ID, Data: data, Created: now}); err != nil {
		return err
	}
	s.log.Info("attachment stored", "user", c.user.Handle, "device", c.device.Name, "bytes", len(data))
	writeJSON(w, http.StatusCreated, map[string]any{
		"url":     s.attachmentURL(id),
		"size":    len(data),
		"expires": now.Add(s.cfg.AttachmentRetention).UTC(),
	})
	return nil
}

func errAttachmentTooLarge(limit int64) *Error {
	return &Error{Code: "too_large", Status: http.StatusRequestEntityTooLarge,
		Message: fmt.Sprintf("the attachment exceeds this provider's limit of %d bytes", limit)}
}

// downloadAttachment is GET /v1/attachments/download?url=URL: the
// encrypted bytes at an attachment URL, of this provider or of a partner.
func (s *Server) downloadAttachment(w http.ResponseWriter, r *http.Request) error {
	raw := r.URL.Query().Get("url")
	u, err := url.Parse(raw)
	if raw == "" || err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return errBadRequest("url must be an attachment's https URL, without query or fragment")
	}
	if id, ok := s.localAttachmentID(raw); ok {
		data, _, err := s.store.ReadAttachment(r.Context(), id, 0, 0)
		if errors.Is(err, store.ErrNotFound) {
			return errNotFound("no attachment at %s: it never existed or has expired", raw)
		} else if err != nil {
			return err
		}
		writeAttachmentHeader(w, int64(len(data)))
		w.Write(data) // #nosec G705 -- opaque ciphertext served as application/octet-stream
		return nil
	}
	domain, ok := s.attachmentPartner(u)
	if !ok {
		return errNotFound("no attachment at %s: %s is neither this provider nor one of its partners", raw, u.Host)
	}
	return s.proxyAttachment(w, r, domain, raw)
}

func writeAttachmentHeader(w http.ResponseWriter, size int64) {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// attachmentPartner finds the active partner whose attachments live at
// u's host: the partner's domain, or the host of its federation endpoint.
// The draft asks a proxy to check this, so that it never fetches from a
// host that is not a peer's.
func (s *Server) attachmentPartner(u *url.URL) (string, bool) {
	t := s.trustConfig()
	if t == nil {
		return "", false
	}
	partners := t.Partners()
	for _, p := range partners {
		if !p.Suspended && strings.EqualFold(u.Host, p.Domain) {
			return p.Domain, true
		}
	}
	for _, p := range partners {
		if e, err := url.Parse(p.Endpoint); err == nil && !p.Suspended && strings.EqualFold(e.Host, u.Host) {
			return p.Domain, true
		}
	}
	return "", false
}

// proxyAttachment fetches the attachment at raw from the partner domain,
// piece by piece through proxyDownload, and streams it to the device. The
// partner learns that this provider asked, not which device.
//
// Once the first piece has arrived the answer's header is sent, with the
// whole size as Content-Length; a later failure can then no longer be an
// error body, so the response is aborted and the device sees a short
// read.
func (s *Server) proxyAttachment(w http.ResponseWriter, r *http.Request, domain, raw string) error {
	if s.fed == nil || s.fed.Transport == nil {
		return errNotFound("no attachment at %s: this provider has no federation", raw)
	}
	path := partnerPath(partnerDirectory.ProxyDownloadURL(raw))
	size := int64(-1)
	for off := int64(0); size < 0 || off < size; {
		piece, total, err := s.fetchPiece(r.Context(), domain, path, off)
		if err == nil {
			switch {
			case size >= 0 && total != size:
				err = errPartnerAnswer(domain, fmt.Errorf("the attachment had %d bytes, now %d", size, total))
			case total > s.cfg.MaxAttachmentBytes:
				err = &Error{Code: "too_large", Status: http.StatusBadGateway,
					Message: fmt.Sprintf("the attachment at %s has %d bytes, over this provider's limit of %d", raw, total, s.cfg.MaxAttachmentBytes)}
			case off+int64(len(piece)) < total && len(piece) < minAttachmentPiece:
				err = errPartnerAnswer(domain, fmt.Errorf("%d bytes at %d of %d, too few", len(piece), off, total))
			}
		}
		if err != nil {
			if size < 0 {
				return err
			}
			s.log.Error("fetching an attachment from a partner failed midway; the download is aborted",
				"partner", domain, "offset", off, "size", size, "err", err)
			panic(http.ErrAbortHandler)
		}
		if size < 0 {
			size = total
			writeAttachmentHeader(w, size)
		}
		if _, err := w.Write(piece); err != nil {
			return nil // the device hung up; nothing more to say to it
		}
		off += int64(len(piece))
	}
	s.log.Info("attachment fetched from a partner", "partner", domain, "bytes", size)
	return nil
}

// fetchPiece asks the partner for the attachment's bytes from off on, and
// returns them with the attachment's whole size.
func (s *Server) fetchPiece(ctx context.Context, domain, path string, off int64) ([]byte, int64, error) {
	hdr := http.Header{"Range": {fmt.Sprintf("bytes=%d-%d", off, off+attachmentPiece-1)}}
	resp, err := s.fed.Transport.Post(ctx, domain, path, nil, hdr)
	if perr := federation.Classify(resp, err); perr != nil {
		var pe *federation.PeerError
		if errors.As(perr, &pe) && pe.Status == http.StatusNotFound {
			return nil, 0, &Error{Code: "not_found", Status: http.StatusNotFound,
				Message: fmt.Sprintf("%s has no such attachment: it never existed or has expired", domain), cause: perr}
		}
		return nil, 0, &Error{Code: "partner_unreachable", Status: http.StatusBadGateway,
			Message: fmt.Sprintf("%s did not hand out the attachment: %v", domain, perr), cause: perr}
	}
	badly := func(format string, args ...any) ([]byte, int64, error) {
		return nil, 0, errPartnerAnswer(domain, fmt.Errorf(format, args...))
	}
	switch resp.Status {
	case http.StatusOK:
		// The partner ignored the range and sent everything.
		if off != 0 {
			return badly("the whole attachment, asked for bytes from %d on", off)
		}
		return resp.Body, int64(len(resp.Body)), nil
	case http.StatusPartialContent:
		first, last, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || first != off || last-first+1 != int64(len(resp.Body)) || total <= last {
			return badly("Content-Range %q with %d bytes, asked for bytes from %d on", resp.Header.Get("Content-Range"), len(resp.Body), off)
		}
		return resp.Body, total, nil
	}
	return badly("status %d", resp.Status)
}

// errPartnerAnswer reports a partner's answer that makes no sense.
func errPartnerAnswer(domain string, err error) *Error {
	return &Error{Code: "partner_unreachable", Status: http.StatusBadGateway,
		Message: fmt.Sprintf("%s answered badly: %v", domain, err), cause: err}
}

// parseContentRange reads "bytes FIRST-LAST/TOTAL".
func parseContentRange(v string) (first, last, total int64, ok bool) {
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, 0, 0, false
	}
	span, size, ok := strings.Cut(rest, "/")
	a, b, ok2 := strings.Cut(span, "-")
	if !ok || !ok2 {
		return 0, 0, 0, false
	}
	var errs [3]error
	first, errs[0] = strconv.ParseInt(a, 10, 64)
	last, errs[1] = strconv.ParseInt(b, 10, 64)
	total, errs[2] = strconv.ParseInt(size, 10, 64)
	if errors.Join(errs[:]...) != nil || first < 0 || last < first {
		return 0, 0, 0, false
	}
	return first, last, total, true
}

// parseRange reads a Range header of one range, "bytes=FIRST-LAST" or
// "bytes=FIRST-"; last is -1 for the latter.
func parseRange(v string) (first, last int64, err error) {
	spec, ok := strings.CutPrefix(v, "bytes=")
	a, b, ok2 := strings.Cut(spec, "-")
	if !ok || !ok2 {
		return 0, 0, errBadRequest("Range must be one range, bytes=FIRST-LAST or bytes=FIRST-")
	}
	if first, err = strconv.ParseInt(a, 10, 64); err != nil || first < 0 {
		return 0, 0, errBadRequest("Range must be one range, bytes=FIRST-LAST or bytes=FIRST-")
	}
	if b == "" {
		return first, -1, nil
	}
	if last, err = strconv.ParseInt(b, 10, 64); err != nil || last < first {
		return 0, 0, errBadRequest("Range must be one range, bytes=FIRST-LAST or bytes=FIRST-")
	}
	if last == math.MaxInt64 {
		// No attachment ends there: it is an open range, and its length
		// last-first+1 would overflow into a negative bound on the read.
		return first, -1, nil
	}
	return first, last, nil
}

// fedProxyDownload is the proxyDownload endpoint: a partner's provider
// fetches one of this provider's attachments for a device of its own.
// Only this provider's attachment URLs are served: it proxies for no one
// else, so it is not an open proxy. Any active partner may fetch any
// attachment whose URL it knows; the 128-bit ID is the capability, and the
// bytes are ciphertext.
//
// A Range of one range is answered 206 with at most attachmentPiece bytes
// and a Content-Range (so a partner's answer limit never cuts an
// attachment short); without one the whole attachment is answered 200.
//
// The draft's proxyDownload is a GET; Switchboard's transport sends only
// POSTs, which go through the replay guard like every other POST. The GET
// is served too, for other implementations, without the guard, as the
// directory is: it changes nothing.
func (s *Server) fedProxyDownload(w http.ResponseWriter, r *http.Request) error {
	if err := s.limitPartner(r); err != nil {
		return err
	}
	peer, err := federation.PeerDomain(r)
	if err != nil {
		return err
	}
	raw := r.PathValue("downloadUrl")
	id, ok := s.localAttachmentID(raw)
	if !ok {
		return errNotFound("%q is not an attachment of %s, which proxies no other provider's", raw, s.cfg.Domain)
	}
	first, last, ranged := int64(0), int64(-1), r.Header.Get("Range") != ""
	if ranged {
		if first, last, err = parseRange(r.Header.Get("Range")); err != nil {
			return err
		}
	}
	limit := int64(0)
	if ranged {
		limit = attachmentPiece
		if last >= 0 {
			limit = min(limit, last-first+1)
		}
	}
	data, size, err := s.store.ReadAttachment(r.Context(), id, first, limit)
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound("no attachment at %s: it never existed or has expired", raw)
	} else if err != nil {
		return err
	}
	if ranged && first >= size {
		w.Header().Set("Content-Range", "bytes */"+strconv.FormatInt(size, 10))
		return errRangeNotSatisfiable(size)
	}
	// The peer is the partner's provider: which of its devices asked is
	// its own business, and it does not say.
	s.log.Info("attachment served to a partner", "peer", peer, "offset", first, "bytes", len(data), "size", size)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "no-store")
	status := http.StatusOK
	if ranged {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, first+int64(len(data))-1, size))
		status = http.StatusPartialContent
	}
	w.WriteHeader(status)
	w.Write(data) // #nosec G705 -- opaque ciphertext served as application/octet-stream
	return nil
}

// trimAttachments deletes the attachments older than AttachmentRetention.
func (s *Server) trimAttachments(ctx context.Context) {
	n, err := s.store.TrimAttachments(ctx, s.now().Add(-s.cfg.AttachmentRetention))
	if err != nil {
		s.log.Error("trimming attachments", "err", err)
	} else if n > 0 {
		s.log.Info("trimmed attachments", "attachments", n)
	}
}
