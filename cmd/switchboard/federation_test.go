package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/node"
	"github.com/switchboard-chat/switchboard/provider"
)

// writeTrust writes a trust file listing one partner by its CA.
func writeTrust(t *testing.T, path, domain, endpoint string, ca *identity.CA, suspended bool) {
	t.Helper()
	data, err := json.Marshal(map[string]any{"partners": []map[string]any{{
		"domain": domain, "endpoint": endpoint, "suspended": suspended,
		"ca_pem": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Certificate().Raw})),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestServeCheckFederation: --check validates the federation fields.
func TestServeCheckFederation(t *testing.T) {
	work := t.TempDir()
	t.Chdir(work)
	blue, err := identity.NewCA("blue.example")
	if err != nil {
		t.Fatal(err)
	}
	trust := filepath.Join(work, "trust.json")
	writeTrust(t, trust, "blue.example", "https://fed.blue.example", blue, false)
	bad := filepath.Join(work, "bad.json")
	os.WriteFile(bad, []byte(`{"partners": [{"domain": "blue.example"}]}`), 0o600)
	for _, c := range []struct {
		args []string
		want string // "" for valid
	}{
		{[]string{"--domain", "green.example", "--config", cfgFile(t, work, `{"federation_listen": "127.0.0.1:8444", "trust_file": "`+trust+`"}`)}, ""},
		{[]string{"--config", cfgFile(t, work, `{"federation_listen": "0.0.0.0:8444", "federation_url": "https://fed.localhost/mimi", "trust_file": "`+trust+`"}`)}, ""},
		{[]string{"--config", cfgFile(t, work, `{"federation_listen": "127.0.0.1", "trust_file": "`+trust+`"}`)}, "federation_listen"},
		{[]string{"--config", cfgFile(t, work, `{"federation_listen": "127.0.0.1:8444"}`)}, "needs trust_file"},
		{[]string{"--config", cfgFile(t, work, `{"trust_file": "`+trust+`"}`)}, "need federation_listen"},
		{[]string{"--config", cfgFile(t, work, `{"federation_listen": "127.0.0.1:8444", "federation_url": "http://x.example", "trust_file": "`+trust+`"}`)}, "federation_url"},
		{[]string{"--config", cfgFile(t, work, `{"federation_listen": "127.0.0.1:8444", "trust_file": "`+bad+`"}`)}, "trust_file"},
		{[]string{"--config", cfgFile(t, work, `{"federation_listen": "127.0.0.1:8444", "trust_file": "missing.json"}`)}, "trust_file"},
	} {
		var out, errOut bytes.Buffer
		code := run(append([]string{"serve", "--check"}, c.args...), &out, &errOut)
		if c.want == "" && (code != 0 || strings.TrimSpace(out.String()) != "configuration ok") {
			t.Errorf("serve --check %q: exit %d, %q %q", c.args, code, out.String(), errOut.String())
		}
		if c.want != "" && (code != 2 || !strings.Contains(errOut.String(), c.want)) {
			t.Errorf("serve --check %q: exit %d, stderr %q; want exit 2 and %q", c.args, code, errOut.String(), c.want)
		}
	}
}

// cfgFile writes a configuration file of its own in dir.
func cfgFile(t *testing.T, dir, content string) string {
	t.Helper()
	f, err := os.CreateTemp(dir, "cfg-*.json")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	path := f.Name()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestProviderCertificateKeepsItsKey: the federation certificate is reused
// while valid, and reissued on the same key (so pins hold) when it nears
// its end.
func TestProviderCertificateKeepsItsKey(t *testing.T) {
	dir := t.TempDir()
	ca, err := identity.NewCA("green.example")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	first, err := node.LoadOrIssueProviderCert(dir, ca, "green.example", now)
	if err != nil {
		t.Fatal(err)
	}
	again, err := node.LoadOrIssueProviderCert(dir, ca, "green.example", now.Add(time.Hour))
	if err != nil || !bytes.Equal(again.Certificate[0], first.Certificate[0]) {
		t.Fatalf("a valid certificate was not reused (%v)", err)
	}
	later := now.Add(federation.DefaultProviderCertValidity - node.ProviderCertRenewBefore + time.Hour)
	renewed, err := node.LoadOrIssueProviderCert(dir, ca, "green.example", later)
	if err != nil || bytes.Equal(renewed.Certificate[0], first.Certificate[0]) {
		t.Fatalf("a certificate near its end was not reissued (%v)", err)
	}
	if federation.PinSHA256(renewed.Leaf) != federation.PinSHA256(first.Leaf) {
		t.Fatal("the renewed certificate has a new key: pinned partners would refuse it")
	}
	if !renewed.Leaf.NotAfter.After(first.Leaf.NotAfter) {
		t.Fatal("the renewed certificate does not last longer")
	}
}

// TestFederationListener runs serve's federation listener for green and
// calls it as blue: an identifierQuery over mutual TLS, then, after the
// trust file suspends blue and SIGHUP reloads it, a refusal.
func TestFederationListener(t *testing.T) {
	dir := t.TempDir()
	blue, err := identity.NewCA("blue.example")
	if err != nil {
		t.Fatal(err)
	}
	cfg := serveConfig{Domain: "green.example", DataDir: dir, FederationListen: "127.0.0.1:0",
		FederationURL: "https://fed.green.example", TrustFile: filepath.Join(dir, "trust.json")}
	writeTrust(t, cfg.TrustFile, "blue.example", "https://fed.blue.example", blue, false)
	n, err := node.Start(node.Config{Domain: cfg.Domain, DataDir: dir, Listen: "127.0.0.1:0",
		FederationListen: cfg.FederationListen, FederationURL: cfg.FederationURL, TrustFile: cfg.TrustFile})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	green := n.CA
	alice, _, err := provider.AddUser(context.Background(), n.Store, "alice", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	// Only users who allow it are found by identifierQuery (docs/discovery.md).
	if err := n.Store.SetDiscoverable(context.Background(), alice.ID, true, false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reloadOnHangup(ctx, n.Trust, slog.New(slog.DiscardHandler))
	for _, f := range []string{"federation-tls.pem", "federation-tls-key.pem"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("the data directory lacks %s: %v", f, err)
		}
	}

	blueTrust := filepath.Join(t.TempDir(), "trust.json")
	writeTrust(t, blueTrust, "green.example", "https://"+n.FederationAddr, green, false)
	bt, err := federation.LoadTrust(blueTrust, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := federation.IssueProviderCertificate(blue, "blue.example", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	peers, err := federation.NewPeers("blue.example", cert, bt, federation.PeerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer peers.Close()
	query := mls.Marshal(&federation.IdentifierRequest{QueryElements: []federation.QueryElement{{SearchType: federation.SearchHandle, SearchValue: "alice"}}})
	resp, err := peers.Post(ctx, "green.example", "/identifierQuery/green.example", query, nil)
	if err != nil || resp.Status != http.StatusOK {
		t.Fatalf("identifierQuery: %v %v", resp, err)
	}
	var ans federation.IdentifierResponse
	if err := mls.Unmarshal(resp.Body, &ans); err != nil || ans.ResponseCode != federation.IdentifierSuccess ||
		len(ans.URIs) != 1 || ans.URIs[0] != "mimi://green.example/u/alice" {
		t.Fatalf("identifierQuery answered %+v, %v", ans, err)
	}
	// The certificate partners see is the one kept in the data directory.
	pemData, _ := os.ReadFile(filepath.Join(dir, "federation-tls.pem"))
	block, _ := pem.Decode(pemData)
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if leaf.VerifyHostname("green.example") != nil {
		t.Fatal("the kept certificate does not name green.example")
	}

	writeTrust(t, cfg.TrustFile, "blue.example", "https://fed.blue.example", blue, true)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := peers.Post(ctx, "green.example", "/identifierQuery/green.example", query, nil)
		var pe *federation.PeerError
		if errors.As(federation.Classify(resp, err), &pe) && pe.Code == "suspended_partner" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("blue is still served after SIGHUP: %v %v", resp, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
