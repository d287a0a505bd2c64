package main

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

// An operator measuring a provider asks it for its profiles on a
// loopback address; anything else is refused, since profiles say much
// about the process.
func TestProfilesAreServedOnLoopbackOnly(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if _, _, err := servePprof("0.0.0.0:0", log); err == nil {
		t.Fatal("profiles served on every interface")
	}
	srv, addr, err := servePprof("127.0.0.1:0", log)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	resp, err := http.Get("http://" + addr.String() + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile:") {
		t.Fatalf("goroutine profile: %s\n%s", resp.Status, body)
	}
}
