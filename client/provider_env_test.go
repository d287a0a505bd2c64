package client_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/provider"
	"github.com/switchboard-chat/switchboard/store"
	"github.com/switchboard-chat/switchboard/store/sqlite"
)

// testProvider is a real provider (package provider on the SQLite store)
// served over loopback HTTP, with the operator's enrollment at hand and a
// switch that loses submit responses after the provider has stored them,
// as a flaky network would.
type testProvider struct {
	t      testing.TB
	url    string
	store  store.Store
	server *provider.Server

	mu        sync.Mutex
	loseReply int      // submit responses still to lose
	posts     [][]byte // bodies of submits, while recordPosts is set
	record    bool
}

// newTestProvider starts the provider; tune, if given, changes its
// configuration first.
func newTestProvider(t testing.TB, tune ...func(*provider.Config)) *testProvider {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, "provider.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ca, err := identity.NewCA("green.test")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("SWITCHBOARD_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	// The scenarios send faster than a person (1,000 messages to an
	// offline device): a person's rate limit is not what they test.
	cfg := provider.Config{Domain: "green.test",
		UserMessageLimit: provider.RateLimit{Every: -1}, RoomLimit: provider.RateLimit{Every: -1}}
	for _, f := range tune {
		f(&cfg)
	}
	srv, err := provider.New(cfg, st, ca, log)
	if err != nil {
		t.Fatal(err)
	}
	p := &testProvider{t: t, store: st, server: srv}
	hs := httptest.NewServer(http.HandlerFunc(p.serveHTTP))
	t.Cleanup(hs.Close)
	t.Cleanup(srv.Drain) // close streams so the server can stop
	p.url = hs.URL
	return p
}

func (p *testProvider) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/messages") {
		p.mu.Lock()
		lose := p.loseReply > 0
		if lose {
			p.loseReply--
		}
		if p.record {
			body, _ := io.ReadAll(r.Body)
			p.posts = append(p.posts, body)
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		p.mu.Unlock()
		if lose {
			rec := httptest.NewRecorder()
			p.server.Handler().ServeHTTP(rec, r)
			http.Error(w, "the connection broke", http.StatusBadGateway)
			return
		}
	}
	p.server.Handler().ServeHTTP(w, r)
}

// recordPosts keeps the bodies of the submits from now on; submits
// returns them.
func (p *testProvider) recordPosts() {
	p.mu.Lock()
	p.record = true
	p.mu.Unlock()
}

func (p *testProvider) submits() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.posts)
}

func (p *testProvider) URL() string { return p.url }

// Enroll makes the user on first use and returns a code for a new device.
func (p *testProvider) Enroll(handle string) string {
	p.t.Helper()
	ctx := context.Background()
	if u, err := p.store.UserByHandle(ctx, handle); err == nil {
		code, err := provider.AddEnrollment(ctx, p.store, u.ID, 0)
		if err != nil {
			p.t.Fatal(err)
		}
		return code
	}
	_, code, err := provider.AddUser(ctx, p.store, handle, "", 0)
	if err != nil {
		p.t.Fatal(err)
	}
	return code
}

// loseReplies makes the next n submit responses get lost after the
// provider stored the message.
func (p *testProvider) loseReplies(n int) {
	p.mu.Lock()
	p.loseReply = n
	p.mu.Unlock()
}

// metric reads one sample of the provider's /metrics, 0 if absent.
func (p *testProvider) metric(name string, labels ...string) float64 {
	p.t.Helper()
	resp, err := http.Get(p.url + "/metrics")
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		match := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				match = false
			}
		}
		if !match {
			continue
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		return v
	}
	return 0
}

// keyPackages counts a device's fresh KeyPackages of suite 1 on the provider.
func (p *testProvider) keyPackages(handle, device string) int {
	p.t.Helper()
	ctx := context.Background()
	u, err := p.store.UserByHandle(ctx, handle)
	if err != nil {
		p.t.Fatal(err)
	}
	ds, _ := p.store.DevicesOfUser(ctx, u.ID)
	for _, d := range ds {
		if d.Name == device {
			n, err := p.store.CountKeyPackages(ctx, d.ID, 1)
			if err != nil {
				p.t.Fatal(err)
			}
			return n
		}
	}
	p.t.Fatalf("no device %s/%s", handle, device)
	return 0
}
