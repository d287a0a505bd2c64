package provider

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/store"
)

// signedIn makes a user with one device on n and returns a session token
// of that device, as if it had signed in.
func signedIn(t *testing.T, n *fedNode, handle string) string {
	t.Helper()
	ctx := context.Background()
	u, code, err := AddUser(ctx, n.st, handle, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.st.SetReachability(ctx, u.ID, store.ReachAll, nil); err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	d, err := n.st.RegisterDevice(ctx, hashSecret(normalizeCode(code)), "phone", pub, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tok := "session-of-" + handle + "-" + newAttachmentID()
	if err := n.st.CreateSession(ctx, store.Session{TokenHash: hashSecret([]byte(tok)), DeviceID: d.ID, Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return tok
}

// clientAPI serves n's client API on loopback and returns a function
// that sends one request to it.
func clientAPI(t *testing.T, n *fedNode) func(method, path, token, contentType string, body []byte) (int, string, []byte) {
	hs := httptest.NewServer(n.srv.Handler())
	t.Cleanup(hs.Close)
	return func(method, path, token, contentType string, body []byte) (int, string, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, hs.URL+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := hs.Client().Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s %s: reading the answer: %v", method, path, err)
		}
		var e struct {
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		if resp.StatusCode >= 300 {
			json.Unmarshal(data, &e)
		}
		return resp.StatusCode, e.Error.Code, data
	}
}

func downloadPath(u string) string {
	return "/v1/attachments/download?url=" + url.QueryEscape(u)
}

// TestAttachmentsAcrossProviders: alice uploads to green, whose
// federation URL is https://fed.green.example/mimi; bob downloads through
// blue, which fetches from green over mutual TLS in pieces, finding green
// by the host of its endpoint in blue's trust file.
func TestAttachmentsAcrossProviders(t *testing.T) {
	green, blue := newFedNode(t, "green.example"), newFedNode(t, "blue.example")
	greenTrust := loadTrust(t, blue.entry("https://blue.invalid"))
	addr := strings.TrimPrefix(green.serveFederation(t, greenTrust), "https://")
	blueTrust := loadTrust(t, green.entry("https://fed.green.example/mimi"))
	peers, err := federation.NewPeers(blue.domain, blue.cert, blueTrust, federation.PeerOptions{
		// fed.green.example is green's listener.
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(peers.Close)
	blue.srv.EnableFederation(Federation{Trust: blueTrust, Transport: peers})
	green.srv.cfg.MaxAttachmentBytes = 6 << 20

	atGreen, atBlue := clientAPI(t, green), clientAPI(t, blue)
	alice, bob := signedIn(t, green, "alice"), signedIn(t, blue, "bob")

	// Five pieces' worth and a bit, so that blue fetches it in three.
	blob := make([]byte, 5<<20+123)
	rand.Read(blob)
	status, code, body := atGreen("POST", "/v1/attachments", alice, "application/octet-stream", blob)
	if status != http.StatusCreated {
		t.Fatalf("upload: %d %s: %s", status, code, body)
	}
	var up struct {
		URL     string    `json:"url"`
		Size    int       `json:"size"`
		Expires time.Time `json:"expires"`
	}
	if err := json.Unmarshal(body, &up); err != nil {
		t.Fatal(err)
	}
	id, ok := strings.CutPrefix(up.URL, "https://fed.green.example/mimi/attachments/")
	if !ok || !validAttachmentID(id) || up.Size != len(blob) {
		t.Fatalf("upload answered %s", body)
	}
	if d := time.Until(up.Expires); d < 29*24*time.Hour || d > 31*24*time.Hour {
		t.Errorf("the attachment expires in %v, want the default 30 days", d)
	}

	t.Run("downloads", func(t *testing.T) {
		carol := signedIn(t, green, "carol")
		for _, c := range []struct {
			name  string
			at    func(method, path, token, contentType string, body []byte) (int, string, []byte)
			token string
		}{
			{"alice from green", atGreen, alice},
			{"bob through blue", atBlue, bob},
			{"another user from green", atGreen, carol},
		} {
			status, code, body := c.at("GET", downloadPath(up.URL), c.token, "", nil)
			if status != http.StatusOK || !bytes.Equal(body, blob) {
				t.Errorf("%s: %d %s, %d bytes, the same: %v", c.name, status, code, len(body), bytes.Equal(body, blob))
			}
		}
	})

	t.Run("refusals", func(t *testing.T) {
		other := "https://fed.green.example/mimi/attachments/" + newAttachmentID()
		for _, c := range []struct {
			name         string
			at           func(method, path, token, contentType string, body []byte) (int, string, []byte)
			method, path string
			token, ct    string
			body         []byte
			status       int
			code         string
		}{
			{"too large", atGreen, "POST", "/v1/attachments", alice, "application/octet-stream", make([]byte, 6<<20+1), 413, "too_large"},
			{"empty", atGreen, "POST", "/v1/attachments", alice, "application/octet-stream", nil, 400, "bad_request"},
			{"JSON", atGreen, "POST", "/v1/attachments", alice, "application/json", []byte(`{}`), 415, "unsupported_media_type"},
			{"not signed in", atGreen, "POST", "/v1/attachments", "", "application/octet-stream", []byte("x"), 401, "unauthenticated"},
			{"download not signed in", atBlue, "GET", downloadPath(up.URL), "", "", nil, 401, "unauthenticated"},
			{"unknown here", atGreen, "GET", downloadPath(other), alice, "", nil, 404, "not_found"},
			{"unknown at the partner", atBlue, "GET", downloadPath(other), bob, "", nil, 404, "not_found"},
			{"not a partner", atBlue, "GET", downloadPath("https://red.example/attachments/" + id), bob, "", nil, 404, "not_found"},
			{"no url", atBlue, "GET", "/v1/attachments/download", bob, "", nil, 400, "bad_request"},
			{"http", atBlue, "GET", downloadPath("http://fed.green.example/mimi/attachments/" + id), bob, "", nil, 400, "bad_request"},
			{"query", atBlue, "GET", downloadPath(up.URL + "?x=1"), bob, "", nil, 400, "bad_request"},
			// Only partners' attachment URLs are fetched, and only over
			// the federation connection to the partner's configured
			// endpoint: an internal address is never dialled.
			{"loopback", atBlue, "GET", downloadPath("https://127.0.0.1/mimi/attachments/" + id), bob, "", nil, 404, "not_found"},
			{"link-local metadata", atBlue, "GET", downloadPath("https://169.254.169.254/latest/meta-data/"), bob, "", nil, 404, "not_found"},
			{"localhost with a port", atBlue, "GET", downloadPath("https://localhost:5432/"), bob, "", nil, 404, "not_found"},
			{"credentials in the URL", atBlue, "GET", downloadPath("https://bob@fed.green.example/mimi/attachments/" + id), bob, "", nil, 400, "bad_request"},
			// Path tricks: an ID is exactly what newAttachmentID makes,
			// checked at the partner too, and attachments live in the
			// database, not in files.
			{"dot-dot at the partner", atBlue, "GET", downloadPath("https://fed.green.example/mimi/attachments/../keyMaterial/x"), bob, "", nil, 404, "not_found"},
			{"escaped dot-dot at the partner", atBlue, "GET", downloadPath("https://fed.green.example/mimi/attachments/%2e%2e%2f" + id), bob, "", nil, 404, "not_found"},
			{"an ID and more", atBlue, "GET", downloadPath(up.URL + "/../" + id), bob, "", nil, 404, "not_found"},
			{"dot-dot here", atGreen, "GET", downloadPath("https://fed.green.example/mimi/attachments/../../etc/passwd"), alice, "", nil, 404, "not_found"},
		} {
			status, code, body := c.at(c.method, c.path, c.token, c.ct, c.body)
			if status != c.status || code != c.code {
				t.Errorf("%s: %d %s, want %d %s: %s", c.name, status, code, c.status, c.code, body)
			}
			if c.code == "too_large" && !strings.Contains(string(body), strconv.Itoa(6<<20)) {
				t.Errorf("%s: the message does not give the limit: %s", c.name, body)
			}
		}
	})

	t.Run("proxyDownload", func(t *testing.T) {
		// blue's endpoint for green is https://fed.green.example/mimi.
		path := partnerPath(partnerDirectory.ProxyDownloadURL(up.URL))
		ask := func(rng string) *federation.Response {
			t.Helper()
			hdr := http.Header{}
			if rng != "" {
				hdr.Set("Range", rng)
			}
			resp, err := peers.Post(context.Background(), green.domain, path, nil, hdr)
			if err != nil {
				t.Fatal(err)
			}
			return resp
		}
		r := ask("bytes=10-19")
		if r.Status != http.StatusPartialContent || r.Header.Get("Content-Range") != "bytes 10-19/"+strconv.Itoa(len(blob)) || !bytes.Equal(r.Body, blob[10:20]) {
			t.Errorf("bytes=10-19: %d %q, %d bytes", r.Status, r.Header.Get("Content-Range"), len(r.Body))
		}
		// A range is answered with at most attachmentPiece bytes.
		r = ask("bytes=1-")
		if r.Status != http.StatusPartialContent || len(r.Body) != attachmentPiece || !bytes.Equal(r.Body, blob[1:1+attachmentPiece]) {
			t.Errorf("bytes=1-: %d %q, %d bytes", r.Status, r.Header.Get("Content-Range"), len(r.Body))
		}
		wantRefused(t, ask("bytes="+strconv.Itoa(len(blob))+"-"), http.StatusRequestedRangeNotSatisfiable, "range_not_satisfiable")
		wantRefused(t, ask("bytes=5-1"), http.StatusBadRequest, "bad_request")
		wantRefused(t, ask("bytes=0-1,4-5"), http.StatusBadRequest, "bad_request")
		// Without a range, the whole attachment: over the transport's
		// answer limit here, which is why blue asks in pieces.
		if _, err := peers.Post(context.Background(), green.domain, path, nil, nil); err == nil {
			t.Error("a 5 MiB answer passed the transport's 4 MiB limit")
		}
		// green serves its own attachments only.
		notOurs := partnerPath(partnerDirectory.ProxyDownloadURL("https://blue.example/attachments/" + id))
		resp, err := peers.Post(context.Background(), green.domain, notOurs, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		wantRefused(t, resp, http.StatusNotFound, "not_found")
	})

	t.Run("retention", func(t *testing.T) {
		green.srv.now = func() time.Time { return time.Now().Add(31 * 24 * time.Hour) }
		defer func() { green.srv.now = time.Now }()
		green.srv.trimAttachments(context.Background())
		if status, code, _ := atBlue("GET", downloadPath(up.URL), bob, "", nil); status != http.StatusNotFound || code != "not_found" {
			t.Errorf("an expired attachment: %d %s", status, code)
		}
		// Nothing else was stored: not the refused uploads.
		if n, err := green.st.TrimAttachments(context.Background(), time.Now().Add(time.Hour)); err != nil || n != 0 {
			t.Errorf("after the trim green holds %d attachments, %v", n, err)
		}
	})
}

func TestAttachmentRanges(t *testing.T) {
	for _, c := range []struct {
		in          string
		first, last int64
		ok          bool
	}{
		{"bytes=0-9", 0, 9, true},
		{"bytes=7-", 7, -1, true},
		{"bytes=5-5", 5, 5, true},
		{"bytes=5-4", 0, 0, false},
		{"bytes=-5", 0, 0, false},
		{"bytes=0-1,3-4", 0, 0, false},
		{"items=0-1", 0, 0, false},
		{"bytes=a-b", 0, 0, false},
	} {
		first, last, err := parseRange(c.in)
		if (err == nil) != c.ok || first != c.first || last != c.last {
			t.Errorf("parseRange(%q) = %d, %d, %v", c.in, first, last, err)
		}
	}
	for _, c := range []struct {
		in                 string
		first, last, total int64
		ok                 bool
	}{
		{"bytes 0-9/10", 0, 9, 10, true},
		{"bytes 10-19/100", 10, 19, 100, true},
		{"bytes */10", 0, 0, 0, false},
		{"bytes 9-0/10", 0, 0, 0, false},
		{"bytes 0-9", 0, 0, 0, false},
		{"0-9/10", 0, 0, 0, false},
	} {
		first, last, total, ok := parseContentRange(c.in)
		if ok != c.ok || first != c.first || last != c.last || total != c.total {
			t.Errorf("parseContentRange(%q) = %d, %d, %d, %v", c.in, first, last, total, ok)
		}
	}
	if validAttachmentID("") || validAttachmentID("abc") || validAttachmentID(newAttachmentID()+"A") || !validAttachmentID(newAttachmentID()) {
		t.Error("validAttachmentID accepts what newAttachmentID does not make, or refuses what it does")
	}
}

// fakePartner is a Transport whose partner answers proxyDownload as answer
// says, given the offset asked for.
type fakePartner func(off int64) (*federation.Response, error)

func (f fakePartner) Post(_ context.Context, domain, path string, _ []byte, hdr http.Header) (*federation.Response, error) {
	first, _, err := parseRange(hdr.Get("Range"))
	if err != nil || !strings.HasPrefix(path, "/proxyDownload/") {
		return nil, &federation.PeerError{Domain: domain, Code: federation.CodeBadRequest, Permanent: true, Err: err}
	}
	return f(first)
}

// piece is a partner's 206 answer of n bytes at off of an attachment of
// total bytes.
func piece(off, n, total int64) *federation.Response {
	h := http.Header{"Content-Range": {"bytes " + strconv.FormatInt(off, 10) + "-" + strconv.FormatInt(off+n-1, 10) + "/" + strconv.FormatInt(total, 10)}}
	return &federation.Response{Domain: "green.example", Status: http.StatusPartialContent, Header: h, Body: make([]byte, n)}
}

// TestAttachmentFromABadPartner: blue downloads for bob from partners
// that answer wrongly, and passes none of it off as an attachment.
func TestAttachmentFromABadPartner(t *testing.T) {
	green, blue := newFedNode(t, "green.example"), newFedNode(t, "blue.example")
	trust := loadTrust(t, green.entry("https://fed.green.example/mimi"))
	bob := signedIn(t, blue, "bob")
	atBlue := clientAPI(t, blue)
	u := "https://green.example/attachments/" + newAttachmentID()
	const total = 5 << 20

	for _, c := range []struct {
		name    string
		partner fakePartner
		status  int
		code    string
	}{
		{"whole at once", func(off int64) (*federation.Response, error) {
			return &federation.Response{Status: http.StatusOK, Body: make([]byte, 1000)}, nil
		}, 200, ""},
		{"in pieces", func(off int64) (*federation.Response, error) {
			return piece(off, min(attachmentPiece, total-off), total), nil
		}, 200, ""},
		{"unreachable", func(off int64) (*federation.Response, error) {
			return nil, &federation.PeerError{Domain: "green.example", Code: federation.CodeUnreachable}
		}, 502, "partner_unreachable"},
		{"over the limit", func(off int64) (*federation.Response, error) {
			return piece(off, attachmentPiece, 26<<20), nil
		}, 502, "too_large"},
		{"the wrong piece", func(off int64) (*federation.Response, error) {
			return piece(off+1, attachmentPiece, total), nil
		}, 502, "partner_unreachable"},
		{"a piece at a time", func(off int64) (*federation.Response, error) {
			return piece(off, 1, total), nil
		}, 502, "partner_unreachable"},
		{"a 200 that is not all", func(off int64) (*federation.Response, error) {
			return &federation.Response{Status: http.StatusOK, Body: make([]byte, 10)}, nil
		}, 200, ""}, // the partner says that is all; the SDK checks the size
	} {
		blue.srv.EnableFederation(Federation{Trust: trust, Transport: c.partner})
		status, code, body := atBlue("GET", downloadPath(u), bob, "", nil)
		if status != c.status || code != c.code {
			t.Errorf("%s: %d %s: %.200s", c.name, status, code, body)
		}
	}

	// A partner that fails after the first piece: the answer, whose
	// header is out, is cut short.
	blue.srv.EnableFederation(Federation{Trust: trust, Transport: fakePartner(func(off int64) (*federation.Response, error) {
		if off > 0 {
			return nil, &federation.PeerError{Domain: "green.example", Code: federation.CodeTimeout}
		}
		return piece(off, attachmentPiece, total), nil
	})})
	hs := httptest.NewServer(blue.srv.Handler())
	t.Cleanup(hs.Close)
	req, _ := http.NewRequest("GET", hs.URL+downloadPath(u), nil)
	req.Header.Set("Authorization", "Bearer "+bob)
	resp, err := hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK || resp.ContentLength != total || err == nil || n >= total {
		t.Errorf("cut short: %d, Content-Length %d, read %d bytes, %v", resp.StatusCode, resp.ContentLength, n, err)
	}
}
