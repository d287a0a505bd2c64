package main

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/node"
	"github.com/switchboard-chat/switchboard/provider"
)

// TestServeCheck runs `switchboard serve --check` as an operator would,
// from a fresh working directory: valid configurations say so and exit 0,
// invalid ones exit 2 naming the problem, and neither creates anything.
func TestServeCheck(t *testing.T) {
	work := t.TempDir()
	t.Chdir(work)
	file := func(name, content string) string {
		t.Helper()
		path := filepath.Join(work, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	// A TLS pair that loads, and a data directory whose CA is for
	// green.example (made the way `serve` makes it).
	cert, key := filepath.Join(work, "tls.pem"), filepath.Join(work, "tls-key.pem")
	if err := selfSign("green.example", cert, key); err != nil {
		t.Fatal(err)
	}
	greenData := filepath.Join(work, "green-data")
	os.Mkdir(greenData, 0o700)
	if _, err := node.LoadOrCreateCA(greenData, "green.example"); err != nil {
		t.Fatal(err)
	}
	halfCA := filepath.Join(work, "half-ca")
	os.Mkdir(halfCA, 0o700)
	caPEM, _ := os.ReadFile(filepath.Join(greenData, "ca.pem"))
	os.WriteFile(filepath.Join(halfCA, "ca.pem"), caPEM, 0o600)
	full := file("full.json", `{"listen": "0.0.0.0:8443", "domain": "green.example", "data_dir": "`+greenData+`",
		"tls_self_signed": true, "max_body_bytes": 65536, "key_package_low_watermark": 5, "queue_retention_days": 7, "max_attachment_bytes": 1048576, "attachment_retention_days": 3}`)
	notAFile := file("plain-file", "")
	trust := file("trust.json", `{"partners": []}`)

	valid := [][]string{
		{},                          // the defaults: ./switchboard-data, 127.0.0.1:8080
		{"--config", full},          // every field, TLS on every interface
		{"--listen", "[::1]:9000"},  // IPv6 loopback, plain HTTP
		{"--listen", "localhost:0"}, // a name for loopback
		{"--domain", "green.example", "--data", greenData},
		{"--listen", "0.0.0.0:443", "--tls-cert", cert, "--tls-key", key},
		{"--config", file("bus.json", `{"bus": "nats://10.0.0.5:4222, nats://10.0.0.6:4222"}`)}, // replicas
		{"--bus", "nats://127.0.0.1:4222", "--replica", "green-1"},
		{"--bus", "tls://nats.internal:4222", "--replica", "eu-west.a_2"},
		{"--config", file("ttl.json", `{"bus": "nats://127.0.0.1:4222", "bus_lease_ttl_seconds": 5}`)},
		{"--config", file("fed.json", `{"domain": "green.example", "federation_listen": "127.0.0.1:9443", "trust_file": "`+trust+`"}`),
			"--federation-listen", "127.0.0.1:0"}, // a second replica on the same host
		{"--config", file("limits.json", `{"rate_limits": {"user": {"every_ms": 10, "burst": 600}, "room": {"off": true}, "partner": {"burst": 5000}}}`)},
		{"--config", file("conns.json", `{"connection_limits": {"total": 50000, "per_source": -1}, "timeouts": {"read_header_seconds": 5, "body_seconds": 600, "idle_seconds": 60, "federation_read_seconds": 30, "federation_write_seconds": 30}}`)},
	}
	for _, args := range valid {
		var out, errOut bytes.Buffer
		code := run(append([]string{"serve", "--check"}, args...), &out, &errOut)
		if code != 0 || strings.TrimSpace(out.String()) != "configuration ok" {
			t.Errorf("serve --check %q: exit %d, %q %q", args, code, out.String(), errOut.String())
		}
	}

	invalid := []struct {
		args []string
		want string // in the message
	}{
		{[]string{"extra"}, "takes no arguments"},
		{[]string{"--listen", "127.0.0.1"}, "missing port"},
		{[]string{"--listen", "0.0.0.0:8080"}, "not a loopback address"},
		{[]string{"--domain", "Green.Example"}, "lower case"},
		{[]string{"--domain", "127.0.0.1"}, "domain"},
		{[]string{"--tls-cert", cert}, "go together"},
		{[]string{"--tls-cert", filepath.Join(work, "missing.pem"), "--tls-key", key}, "tls_cert and tls_key"},
		{[]string{"--tls-cert", key, "--tls-key", cert}, "tls_cert and tls_key"},
		{[]string{"--config", filepath.Join(work, "missing.json")}, "no such file"},
		{[]string{"--config", file("unknown.json", `{"listen": "127.0.0.1:1", "colour": "red"}`)}, `unknown field "colour"`},
		{[]string{"--config", file("bad.json", `{"listen": `)}, "unexpected EOF"},
		{[]string{"--config", file("negative.json", `{"max_body_bytes": -1}`)}, "must not be negative"},
		{[]string{"--data", notAFile}, "not a directory"},
		{[]string{"--data", greenData}, `CA is for "green.example", not "localhost"`},
		{[]string{"--data", halfCA}, "ca-key.pem"},
		{[]string{"--no-such-flag"}, "not defined"},
		{[]string{"--config", file("bus-http.json", `{"bus": "http://127.0.0.1:4222"}`)}, "want nats://HOST:PORT"},
		{[]string{"--config", file("bus-bare.json", `{"bus": "127.0.0.1:4222"}`)}, "want nats://HOST:PORT"},
		{[]string{"--bus", "http://127.0.0.1:4222"}, "want nats://HOST:PORT"},
		{[]string{"--replica", "green-1"}, "--replica needs bus"},
		{[]string{"--bus", "nats://127.0.0.1:4222", "--replica", "green 1"}, "letters, digits"},
		{[]string{"--bus", "nats://127.0.0.1:4222", "--replica", strings.Repeat("r", 65)}, "at most 64"},
		{[]string{"--config", file("ttl-alone.json", `{"bus_lease_ttl_seconds": 5}`)}, "bus_lease_ttl_seconds needs bus"},
		{[]string{"--config", file("ttl-negative.json", `{"bus": "nats://127.0.0.1:4222", "bus_lease_ttl_seconds": -1}`)}, "must not be negative"},
		{[]string{"--federation-listen", "127.0.0.1"}, "federation_listen"},
		{[]string{"--federation-listen", "127.0.0.1:0"}, "needs trust_file"},
		{[]string{"--config", file("limit-negative.json", `{"rate_limits": {"user": {"burst": -1}}}`)}, "rate_limits.user: every_ms and burst must not be negative"},
		{[]string{"--config", file("limit-off-and.json", `{"rate_limits": {"room": {"off": true, "burst": 5}}}`)}, "rate_limits.room: off takes no"},
		{[]string{"--config", file("limit-unknown.json", `{"rate_limits": {"users": {"off": true}}}`)}, `unknown field "users"`},
		{[]string{"--config", file("limit-field.json", `{"rate_limits": {"user": {"per_second": 5}}}`)}, `unknown field "per_second"`},
		{[]string{"--config", file("conns-negative.json", `{"connection_limits": {"per_source": -2}}`)}, "-1 for none"},
		{[]string{"--config", file("conns-field.json", `{"connection_limits": {"per_ip": 5}}`)}, `unknown field "per_ip"`},
		{[]string{"--config", file("timeouts-negative.json", `{"timeouts": {"body_seconds": -1}}`)}, "timeouts must not be negative"},
		{[]string{"--config", file("timeouts-huge.json", `{"timeouts": {"idle_seconds": 9223372036854775807}}`)}, "timeouts must be at most 86400 seconds"},
		{[]string{"--config", file("timeouts-field.json", `{"timeouts": {"write_seconds": 5}}`)}, `unknown field "write_seconds"`},
	}
	for _, c := range invalid {
		var out, errOut bytes.Buffer
		code := run(append([]string{"serve", "--check"}, c.args...), &out, &errOut)
		if code != 2 || out.Len() != 0 || !strings.Contains(errOut.String(), c.want) {
			t.Errorf("serve --check %q: exit %d, stdout %q, stderr %q; want exit 2 and %q", c.args, code, out.String(), errOut.String(), c.want)
		}
	}

	// --check made nothing: no default data directory, no CA in the half
	// one, no TLS pair in the green one.
	if _, err := os.Stat(filepath.Join(work, "switchboard-data")); !os.IsNotExist(err) {
		t.Errorf("--check created the default data directory (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(halfCA, "ca-key.pem")); !os.IsNotExist(err) {
		t.Errorf("--check made a CA key (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(greenData, "tls.pem")); !os.IsNotExist(err) {
		t.Errorf("--check made a TLS pair (%v)", err)
	}
}

// TestHalfACAIsNotReplaced: a data directory that lost its CA key must
// not get a new CA, which would silently invalidate every credential.
func TestHalfACAIsNotReplaced(t *testing.T) {
	dir := t.TempDir()
	ca, err := node.LoadOrCreateCA(dir, "green.example")
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "ca-key.pem"))
	if _, err := node.LoadOrCreateCA(dir, "green.example"); err == nil {
		t.Fatal("a new CA was made beside the old certificate")
	}
	caPEM, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if block, _ := pem.Decode(caPEM); block == nil || !bytes.Equal(block.Bytes, ca.Certificate().Raw) {
		t.Fatal("the CA certificate was replaced")
	}
}

// TestServeHelp: -h explains serve, replicas included, and exits 0.
func TestServeHelp(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"serve", "-h"}, &out, &errOut); code != 0 {
		t.Errorf("serve -h: exit %d", code)
	}
	for _, want := range []string{"usage: switchboard serve", "docs/deploy.md", "-bus", "-replica", "-federation-listen", "SIGHUP"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("serve -h does not say %q:\n%s", want, errOut.String())
		}
	}
}

// TestReplicaNames: a replica's name on the bus is the --replica name
// (else the host name) with a suffix drawn at each start, so that two
// processes given one name still tell their wake-ups apart.
func TestReplicaNames(t *testing.T) {
	cfg := serveConfig{Domain: "green.example", Bus: "nats://127.0.0.1:4222", replica: "green-1"}
	a, b := cfg.busName(), cfg.busName()
	if !strings.HasPrefix(a, "green-1-") || !strings.HasPrefix(b, "green-1-") || a == b {
		t.Errorf("two starts of green-1 are named %q and %q", a, b)
	}
	cfg.replica = ""
	if host, err := os.Hostname(); err == nil && validReplicaName(host) {
		if n := cfg.busName(); !strings.HasPrefix(n, host+"-") {
			t.Errorf("without --replica the name is %q, not the host name %q's", n, host)
		}
	}
}

// TestServeRateLimits: the configuration file's rate_limits reach the
// provider as its limits: a missing limit or field keeps the default, "off"
// switches a limit off (docs/ratelimits.md).
func TestServeRateLimits(t *testing.T) {
	var cfg serveConfig
	dec := json.NewDecoder(strings.NewReader(`{"rate_limits": {"user": {"every_ms": 10, "burst": 600}, "room": {"off": true}, "partner": {"burst": 5000}}}`))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	var p provider.Config
	cfg.RateLimits.apply(&p)
	want := map[string][2]provider.RateLimit{
		"user":              {p.UserMessageLimit, {Every: 10 * time.Millisecond, Burst: 600}},
		"room":              {p.RoomLimit, {Every: -1, Burst: -1}},
		"partner":           {p.PartnerLimit, {Burst: 5000}}, // every: the default
		"discovery_user":    {p.UserDiscoveryLimit, {}},
		"discovery_partner": {p.PartnerDiscoveryLimit, {}},
	}
	for name, got := range want {
		if got[0] != got[1] {
			t.Errorf("%s: %+v, want %+v", name, got[0], got[1])
		}
	}
}

// TestServeConnectionLimitsAndTimeouts: connection_limits and timeouts of
// the configuration file reach the provider and the node; what is left
// out keeps its default, and -1 switches a connection limit off.
func TestServeConnectionLimitsAndTimeouts(t *testing.T) {
	for _, c := range []struct {
		json     string
		conns    provider.ConnLimits
		body     time.Duration
		timeouts node.Timeouts
	}{
		{`{}`, provider.ConnLimits{}, 0, node.Timeouts{}},
		{`{"connection_limits": {"total": 50000, "per_source": -1}, "timeouts": {"read_header_seconds": 5, "body_seconds": 600, "idle_seconds": 60, "federation_read_seconds": 30, "federation_write_seconds": 40}}`,
			provider.ConnLimits{Total: 50000, PerSource: -1}, 10 * time.Minute,
			node.Timeouts{ReadHeader: 5 * time.Second, Idle: time.Minute, FederationRead: 30 * time.Second, FederationWrite: 40 * time.Second}},
		{`{"connection_limits": {"per_source": 200}, "timeouts": {"idle_seconds": 300}}`,
			provider.ConnLimits{PerSource: 200}, 0, node.Timeouts{Idle: 5 * time.Minute}},
	} {
		cfg := defaultServeConfig()
		dec := json.NewDecoder(strings.NewReader(c.json))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			t.Fatal(err)
		}
		if err := cfg.check(); err != nil {
			t.Fatalf("%s: %v", c.json, err)
		}
		p := cfg.providerConfig()
		if p.Connections != c.conns || p.BodyTimeout != c.body {
			t.Errorf("%s: connections %+v, body timeout %v; want %+v, %v", c.json, p.Connections, p.BodyTimeout, c.conns, c.body)
		}
		if got := cfg.Timeouts.node(); got != c.timeouts {
			t.Errorf("%s: node timeouts %+v, want %+v", c.json, got, c.timeouts)
		}
	}
}
