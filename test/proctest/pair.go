package proctest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Pair is two providers, green.test and blue.test, each a `switchboard
// serve` process on SQLite in its own data directory, partners over
// federation (mutual TLS, each trusting the other's CA through its trust
// file), on fixed ports so that a restarted provider is found where it
// was. Rate limits are off: such tests are about processes, not limits.
type Pair struct {
	Bin, Dir string
	// Codes holds an enrollment code per device, by "handle@domain/device".
	Codes map[string]string
	// URL is each provider's client API ("green", "blue"), fixed.
	URL map[string]string

	configs map[string]string
	mu      sync.Mutex
	procs   map[string]*Proc
}

// NewPair makes the two providers' data directories, users and
// configuration files, without starting them. devices are
// "handle@green.test/device" or "handle@blue.test/device"; a user's first
// device is made with the user, the others are enrolled. settings are
// added to both configuration files (e.g. "drain_timeout_seconds").
func NewPair(t *testing.T, bin string, devices []string, settings map[string]any) *Pair {
	t.Helper()
	dir := t.TempDir()
	p := &Pair{Bin: bin, Dir: dir, Codes: map[string]string{}, URL: map[string]string{}, configs: map[string]string{}, procs: map[string]*Proc{}}
	path := func(name string) string { return filepath.Join(dir, name) }
	writeJSON := func(name string, v any) string {
		t.Helper()
		data, _ := json.MarshalIndent(v, "", "  ")
		if err := os.WriteFile(path(name), data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path(name)
	}
	// The users first: the first admin command makes each provider's
	// data directory and CA, which the other's trust file names.
	made := map[string]bool{}
	for _, d := range devices {
		user, _, _ := strings.Cut(d, "/")
		handle, domain, _ := strings.Cut(user, "@")
		st := []string{"--data", path(strings.TrimSuffix(domain, ".test")), "--domain", domain}
		if !made[user] {
			p.Codes[d] = AddUser(t, bin, handle, st...)
			made[user] = true
		} else {
			p.Codes[d] = EnrollDevice(t, bin, handle, st...)
		}
	}
	for _, name := range []string{"green", "blue"} {
		if _, err := os.Stat(path(name)); err != nil {
			// A provider without users still needs its CA.
			AddUser(t, bin, "nobody", "--data", path(name), "--domain", name+".test")
		}
	}
	ports := map[string]string{}
	for _, name := range []string{"green", "green-fed", "blue", "blue-fed"} {
		ports[name] = FreeAddr(t)
	}
	for self, partner := range map[string]string{"green": "blue", "blue": "green"} {
		ca, err := os.ReadFile(filepath.Join(path(partner), "ca.pem"))
		if err != nil {
			t.Fatal(err)
		}
		trust := writeJSON(self+"-trust.json", map[string]any{"partners": []map[string]string{
			{"domain": partner + ".test", "endpoint": "https://" + ports[partner+"-fed"], "ca_pem": string(ca)}}})
		off := map[string]bool{"off": true}
		cfg := map[string]any{
			"domain": self + ".test", "data_dir": path(self),
			"listen": ports[self], "federation_listen": ports[self+"-fed"], "trust_file": trust,
			"rate_limits": map[string]any{"user": off, "room": off, "partner": off},
		}
		for k, v := range settings {
			cfg[k] = v
		}
		p.configs[self] = writeJSON(self+".json", cfg)
		p.URL[self] = "http://" + ports[self]
	}
	return p
}

// Start starts the provider name ("green" or "blue") with env added to
// its environment, and returns it once it serves.
func (p *Pair) Start(t *testing.T, name string, env ...string) *Proc {
	t.Helper()
	proc := ServeEnv(t, p.Bin, p.Dir, name, env, "--config", p.configs[name])
	if proc.Client != p.URL[name] {
		t.Fatalf("%s serves %s, not %s", name, proc.Client, p.URL[name])
	}
	p.mu.Lock()
	p.procs[name] = proc
	p.mu.Unlock()
	return proc
}

// Proc is the provider's latest process.
func (p *Pair) Proc(name string) *Proc {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.procs[name]
}
