package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/switchboard-chat/switchboard/mlsinterop"
)

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// runInteropRun plays interop scenario files against running interop
// clients (ours or other implementations') and prints one line per run.
func runInteropRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mls interop-run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var configs, clients listFlag
	fs.Var(&configs, "config", "scenario file (repeatable)")
	fs.Var(&clients, "client", "host:port of an interop client (repeatable)")
	suite := fs.Int("suite", 0, "play only this cipher suite (default: every suite a client supports)")
	public := fs.Bool("public", false, "only handshakes as PublicMessage")
	private := fs.Bool("private", false, "only handshakes as PrivateMessage")
	mode := fs.String("mode", string(mlsinterop.AssignRoundRobin), "actor placement: roundRobin, allCombinations or random")
	failFast := fs.Bool("fail-fast", false, "stop at the first failure")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if len(configs) == 0 || len(clients) == 0 {
		fmt.Fprintln(stderr, "usage: switchboard mls interop-run -config FILE [-config FILE...] -client HOST:PORT [-client ...] [-suite N] [-public|-private] [-mode M] [-fail-fast]")
		return 2
	}
	opts := mlsinterop.RunOptions{Assign: mlsinterop.AssignMode(*mode), FailFast: *failFast}
	if *suite != 0 {
		if *suite < 0 || *suite > 0xffff {
			fmt.Fprintf(stderr, "switchboard: suite %s is not a uint16\n", strconv.Itoa(*suite))
			return 2
		}
		opts.Suites = []uint16{uint16(*suite)}
	}
	switch {
	case *public && !*private:
		opts.Encrypt = []bool{false}
	case *private && !*public:
		opts.Encrypt = []bool{true}
	}
	r, err := mlsinterop.Dial(clients)
	if err != nil {
		fmt.Fprintln(stderr, "switchboard:", err)
		return 1
	}
	defer r.Close()
	fmt.Fprintf(stdout, "clients: %s\n", strings.Join(r.Names(), ", "))
	passed, failed := 0, 0
	for _, path := range configs {
		cfg, err := mlsinterop.LoadConfig(path)
		if err != nil {
			fmt.Fprintln(stderr, "switchboard:", err)
			return 1
		}
		opts.Progress = func(res mlsinterop.Result) {
			fmt.Fprintf(stdout, "%s: %s\n", path, res)
			if res.Err != nil {
				failed++
			} else {
				passed++
			}
		}
		if _, err := r.RunConfig(context.Background(), cfg, opts); err != nil {
			fmt.Fprintln(stderr, "switchboard:", err)
			return 1
		}
		if failed > 0 && *failFast {
			break
		}
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		return 1
	}
	return 0
}
