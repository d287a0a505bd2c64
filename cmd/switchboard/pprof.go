package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"time"
)

// servePprof serves Go's profiles (CPU, heap, allocations, goroutines,
// mutex and block contention) on a listener of their own, for an
// operator or `switchboard bench` to see where a running provider spends
// its time. Profiles reveal much about a process, so only a loopback
// address is accepted.
func servePprof(addr string, log *slog.Logger) (*http.Server, net.Addr, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("pprof %q: %v", addr, err)
	}
	if ip := net.ParseIP(host); (ip == nil || !ip.IsLoopback()) && host != "localhost" {
		return nil, nil, errors.New("pprof must listen on a loopback address")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	// Contention is sampled only when asked for: a sample in 100 mutex
	// waits, and blocking events by every 100 µs spent blocked.
	runtime.SetMutexProfileFraction(100)
	runtime.SetBlockProfileRate(int((100 * time.Microsecond).Nanoseconds()))
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// No ReadTimeout or WriteTimeout: a CPU profile or trace runs for as
	// long as its caller asks (?seconds=), and the listener is loopback
	// only. Headers and idle keep-alives are bounded.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("pprof listener stopped", "err", err)
		}
	}()
	return srv, ln.Addr(), nil
}
