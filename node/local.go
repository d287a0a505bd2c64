package node

import (
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
)

// Local is several providers on loopback, each a partner of every other,
// with mutual TLS between them: what `switchboard demo` runs, and what the
// cross-provider tests run. Each node has its own data directory, CA and
// trust file, as separate deployments would.
type Local struct {
	mu    sync.Mutex
	nodes []*Node
	cfgs  []Config
}

// LocalOptions tune StartLocal.
type LocalOptions struct {
	// Logger, if set, is given to every node, with the node's domain.
	Logger *slog.Logger
	// Configure, if set, may change a node's configuration before it
	// starts (its addresses and files are already set).
	Configure func(*Config)
}

// StartLocal starts one node per domain, with data under dir. Each node
// listens on free loopback ports; once all listen, every trust file is
// written to list the others (endpoint and CA) and reloaded.
func StartLocal(dir string, domains []string, opts LocalOptions) (*Local, error) {
	l := &Local{}
	for _, d := range domains {
		data := filepath.Join(dir, d)
		if err := os.MkdirAll(data, 0o700); err != nil {
			l.Close() // #nosec G104 -- on an error path: the first error is the one returned
			return nil, err
		}
		trust := filepath.Join(data, "trust.json")
		if _, err := os.Stat(trust); errors.Is(err, os.ErrNotExist) {
			if err := os.WriteFile(trust, []byte(`{"partners": []}`), 0o644); err != nil { // #nosec G306 -- a partner list, in the 0700 data directory
				_ = l.Close() // on an error path: the first error is the one returned
				return nil, err
			}
		}
		cfg := Config{Domain: d, DataDir: data, Listen: "127.0.0.1:0", FederationListen: "127.0.0.1:0", TrustFile: trust}
		if opts.Logger != nil {
			cfg.Logger = opts.Logger.With("provider", d)
		}
		if opts.Configure != nil {
			opts.Configure(&cfg)
		}
		n, err := Start(cfg)
		if err != nil {
			l.Close() // #nosec G104 -- on an error path: the first error is the one returned
			return nil, fmt.Errorf("starting %s: %w", d, err)
		}
		// A restart reuses the ports, so clients and partners find it.
		cfg.Listen, cfg.FederationListen = n.ClientURL[len("http://"):], n.FederationAddr
		l.nodes, l.cfgs = append(l.nodes, n), append(l.cfgs, cfg)
	}
	for i := range l.nodes {
		if err := l.writeTrust(i, nil); err != nil {
			l.Close() // #nosec G104 -- on an error path: the first error is the one returned
			return nil, err
		}
	}
	return l, nil
}

// trustEntry is one partner in a trust file.
type trustEntry struct {
	Domain    string `json:"domain"`
	Endpoint  string `json:"endpoint"`
	CAPEM     string `json:"ca_pem"`
	Suspended bool   `json:"suspended,omitempty"`
}

// writeTrust writes node i's trust file listing every other node, with
// the domains in suspended marked so, and reloads it.
func (l *Local) writeTrust(i int, suspended map[string]bool) error {
	var entries []trustEntry
	for j, n := range l.nodes {
		if j == i {
			continue
		}
		ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: n.CA.Certificate().Raw})
		entries = append(entries, trustEntry{Domain: n.Domain, Endpoint: "https://" + l.cfgs[j].FederationListen, CAPEM: string(ca), Suspended: suspended[n.Domain]})
	}
	data, err := json.MarshalIndent(map[string]any{"partners": entries}, "", "  ")
	if err != nil {
		return err
	}
	tmp := l.cfgs[i].TrustFile + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil { // #nosec G306 -- a partner list, in the 0700 data directory
		return err
	}
	if err := os.Rename(tmp, l.cfgs[i].TrustFile); err != nil {
		return err
	}
	if n := l.nodes[i]; n != nil {
		return n.Trust.Reload()
	}
	return nil
}

// Suspend rewrites node i's trust file with the given partners suspended
// (none: all active again), as an operator would, and reloads it.
func (l *Local) Suspend(i int, domains ...string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := map[string]bool{}
	for _, d := range domains {
		s[d] = true
	}
	return l.writeTrust(i, s)
}

// Node returns node i, or nil while it is stopped.
func (l *Local) Node(i int) *Node {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nodes[i]
}

// Nodes returns the running nodes, in the order of the domains.
func (l *Local) Nodes() []*Node {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Node(nil), l.nodes...)
}

// Stop closes node i gracefully; its partners find it unreachable until
// Start.
func (l *Local) Stop(i int) error {
	l.mu.Lock()
	n := l.nodes[i]
	l.nodes[i] = nil
	l.mu.Unlock()
	if n == nil {
		return nil
	}
	return n.Close()
}

// Start starts node i again, on its data directory and ports.
func (l *Local) Start(i int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.nodes[i] != nil {
		return fmt.Errorf("%s is running", l.cfgs[i].Domain)
	}
	n, err := Start(l.cfgs[i])
	if err != nil {
		return err
	}
	l.nodes[i] = n
	return nil
}

// Close stops every node.
func (l *Local) Close() error {
	var errs error
	for i := range l.nodes {
		errs = errors.Join(errs, l.Stop(i))
	}
	return errs
}
