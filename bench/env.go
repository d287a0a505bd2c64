package bench

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/node"
	"github.com/switchboard-chat/switchboard/provider"
	"github.com/switchboard-chat/switchboard/store"
)

// env is the providers of one run and the devices made on them.
type env struct {
	dir string
	// devDir holds the SDK devices' state directories; memDir is it when
	// in memory, removed at close.
	devDir, memDir string
	run            string // this run's prefix for handles and client IDs
	provs          []*prov
	local          *node.Local // nil with targets
	kids           []*child    // the providers spawned as processes (--spawn)

	mu      sync.Mutex
	devices []*device
}

// prov is one provider: its client API, and its store, through which
// users are created as the operator's `admin user add` creates them.
type prov struct {
	domain string
	url    string
	store  store.Store
	// ownStore is set when the bench opened the store (a target's), so it
	// closes it.
	ownStore bool
	pid      int // 0: this process
	// pprofURL is a spawned provider's runtime profiles (serve --pprof),
	// where its Go heap and goroutines are read.
	pprofURL string
}

// benchDomains name the providers started in this process.
var benchDomains = []string{"green.example", "blue.example", "red.example"}

// startEnv starts n providers in this process or as `serve` processes
// (spawn), or opens the targets.
func startEnv(ctx context.Context, s *Settings, n int, dir string) (_ *env, err error) {
	e := &env{dir: dir, run: runID(), devDir: filepath.Join(dir, "devices")}
	if s.DeviceStorage == StorageMemory {
		d, err := os.MkdirTemp("/dev/shm", "switchboard-bench-devices-")
		if err != nil {
			return nil, fmt.Errorf("bench: --device-storage memory needs /dev/shm: %w", err)
		}
		e.devDir = d
		e.memDir = d
		defer func() {
			if err != nil {
				os.RemoveAll(d)
			}
		}()
	}
	if s.Spawn {
		return e, e.spawn(ctx, s, n)
	}
	if len(s.Targets) == 0 {
		l, err := node.StartLocal(filepath.Join(dir, "providers"), benchDomains[:n], node.LocalOptions{
			Configure: func(cfg *node.Config) {
				// The bench measures capacity, not the rate limits: in
				// this process they are off (a target keeps its own, and
				// their refusals count as errors).
				off := provider.RateLimit{Every: -1, Burst: -1}
				cfg.Provider.UserMessageLimit, cfg.Provider.RoomLimit, cfg.Provider.PartnerLimit = off, off, off
				// Every simulated device connects from 127.0.0.1.
				cfg.Provider.Connections = provider.ConnLimits{Total: -1, PerSource: -1}
				// The body limits are the defaults: a commit that adds
				// members to a large room fits max_commit_bytes.
			},
		})
		if err != nil {
			return nil, fmt.Errorf("bench: starting providers: %w", err)
		}
		e.local = l
		for _, nd := range l.Nodes() {
			e.provs = append(e.provs, &prov{domain: nd.Domain, url: nd.ClientURL, store: nd.Store})
		}
		return e, nil
	}
	for _, t := range s.Targets[:n] {
		p, err := openTarget(t)
		if err != nil {
			e.close()
			return nil, err
		}
		e.provs = append(e.provs, p)
	}
	return e, nil
}

// spawn starts n providers as child processes and uses them as targets.
func (e *env) spawn(ctx context.Context, s *Settings, n int) error {
	bin, err := benchBinary(s)
	if err != nil {
		return err
	}
	kids, err := spawnProviders(ctx, bin, n, filepath.Join(e.dir, "providers"), s.logDir, filepath.Base(e.dir))
	if err != nil {
		return err
	}
	e.kids = kids
	for _, c := range kids {
		p, err := openTarget(Target{URL: c.clientURL, DataDir: c.dataDir, PID: c.cmd.Process.Pid})
		if err != nil {
			e.close()
			return err
		}
		p.pprofURL = c.pprofURL
		e.provs = append(e.provs, p)
	}
	return nil
}

// openTarget asks a running provider its domain and opens its store.
func openTarget(t Target) (*prov, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var info struct {
		Domain string `json:"domain"`
	}
	if err := getJSON(ctx, http.DefaultClient, strings.TrimSuffix(t.URL, "/")+"/v1/provider", &info); err != nil {
		return nil, fmt.Errorf("bench: target %s: %w", t.URL, err)
	}
	// The data directory must be this provider's: a wrong one would get a
	// new CA, and users nobody could sign in as.
	if _, found, err := node.LoadCA(t.DataDir, info.Domain); err != nil || !found {
		if err == nil {
			err = errors.New("no CA there")
		}
		return nil, fmt.Errorf("bench: target %s (%s): %s is not its data directory: %v", t.URL, info.Domain, t.DataDir, err)
	}
	st, err := node.OpenStore(t.DataDir, t.Store)
	if err != nil {
		return nil, fmt.Errorf("bench: target %s: its store: %w", t.URL, err)
	}
	return &prov{domain: info.Domain, url: strings.TrimSuffix(t.URL, "/"), store: st, ownStore: true, pid: t.PID}, nil
}

func (e *env) close() {
	e.mu.Lock()
	devs := e.devices
	e.devices = nil
	e.mu.Unlock()
	for _, d := range devs {
		d.close()
	}
	if e.local != nil {
		e.local.Close() // #nosec G104 -- shutting down: nothing is left to do with a failed close
	}
	for _, p := range e.provs {
		if p.ownStore {
			p.store.Close() // #nosec G104 -- shutting down: nothing is left to do with a failed close
		}
	}
	stopChildren(e.kids)
	if e.memDir != "" {
		os.RemoveAll(e.memDir)
	}
}

// runID is a short random prefix that keeps the handles of one run apart
// from those of earlier runs on the same target.
func runID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 6)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	// A handle starts with a letter or digit; b[0] is one.
	return string(b)
}

// device is one bench device: an SDK client (for the MLS work) or only a
// raw session (relay traffic, idle streams), or both.
type device struct {
	p      *prov
	handle string
	dir    string
	sdk    *client.Client
	raw    *rawSession
}

// address is how another user names this device's user.
func (d *device) address(from *prov) string {
	if from == d.p {
		return d.handle
	}
	return d.handle + "@" + d.p.domain
}

func (d *device) close() {
	if d.sdk != nil {
		d.sdk.Close() // #nosec G104 -- shutting down: nothing is left to do with a failed close
	}
	if d.raw != nil {
		d.raw.close()
	}
}

// addUser creates a user on a provider, as `admin user add` does, and
// returns its enrollment code.
func (e *env) addUser(ctx context.Context, p *prov, handle string) (string, error) {
	_, code, err := provider.AddUser(ctx, p.store, handle, "", time.Hour)
	if err != nil {
		return "", fmt.Errorf("bench: adding user %s on %s: %w", handle, p.domain, err)
	}
	return code, nil
}

// newSDKDevice makes a user with one SDK device, reachable from every
// partner (as a person would set it) when reachable is set.
func (e *env) newSDKDevice(ctx context.Context, p *prov, name string, reachable bool) (*device, error) {
	handle := e.run + "-" + name
	code, err := e.addUser(ctx, p, handle)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(e.devDir, handle)
	c, err := client.Register(ctx, p.url, code, "bench", dir, client.Options{
		// Each device is claimed once or twice in a run: a small batch
		// keeps setting up hundreds of devices short.
		KeyPackageBatch: 2,
	})
	if err != nil {
		return nil, fmt.Errorf("bench: registering %s on %s: %w", handle, p.domain, err)
	}
	d := &device{p: p, handle: handle, dir: dir, sdk: c}
	e.keep(d)
	if reachable {
		if err := c.SetReachability(ctx, "all", nil); err != nil {
			return nil, fmt.Errorf("bench: %s: reachability: %w", handle, err)
		}
	}
	return d, nil
}

// newRawDevice makes a user with one device registered over the client
// API directly, with no MLS state: enough to hold a stream open.
func (e *env) newRawDevice(ctx context.Context, p *prov, name string) (*device, error) {
	handle := e.run + "-" + name
	code, err := e.addUser(ctx, p, handle)
	if err != nil {
		return nil, err
	}
	rs, err := registerRaw(ctx, p, code)
	if err != nil {
		return nil, fmt.Errorf("bench: registering %s on %s: %w", handle, p.domain, err)
	}
	d := &device{p: p, handle: handle, raw: rs}
	e.keep(d)
	return d, nil
}

func (e *env) keep(d *device) {
	e.mu.Lock()
	e.devices = append(e.devices, d)
	e.mu.Unlock()
}

// openRaw gives an SDK device a raw session of its own: it signs in with
// the device's auth key from the SDK's state directory (device.json, see
// package client), so relay traffic is sent and received as that device
// without the SDK's MLS work.
func (d *device) openRaw(ctx context.Context) error {
	data, err := os.ReadFile(filepath.Join(d.dir, "device.json"))
	if err != nil {
		return err
	}
	var st struct {
		Version int    `json:"version"`
		AuthKey []byte `json:"auth_key"`
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("bench: %s: device.json: %w", d.handle, err)
	}
	if st.Version != 1 {
		return fmt.Errorf("bench: %s: device.json is of version %d; the bench reads version 1", d.handle, st.Version)
	}
	rs, err := signInRaw(ctx, d.p, st.AuthKey)
	if err != nil {
		return fmt.Errorf("bench: %s: %w", d.handle, err)
	}
	d.raw = rs
	return nil
}

// parallel runs f for 0..n-1 on a few workers and returns the first
// error. Setting up devices is CPU work (keys, KeyPackages) and round
// trips: a few at a time keeps both busy without starving the providers.
func parallel(ctx context.Context, n, workers int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(ctx, i); err != nil {
					errs <- err
					cancel()
					return
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return ctx.Err()
	}
}
