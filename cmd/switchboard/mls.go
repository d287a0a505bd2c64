package main

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/switchboard-chat/switchboard/mls/mlstest"
)

func init() {
	commands["mls"] = command{
		summary: "MLS tools: 'mls test-vectors PATH...' checks test-vector files; 'mls interop-client --port N' serves the IETF interop service",
		run:     runMLS,
	}
}

func runMLS(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "test-vectors":
			return runTestVectors(args[1:], stdout, stderr)
		case "interop-client":
			return runInteropClient(args[1:], stdout, stderr)
		case "interop-run":
			return runInteropRun(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintln(stderr, "usage: switchboard mls test-vectors [-v] [PATH...]")
	fmt.Fprintln(stderr, "       switchboard mls interop-client --port N [--host ADDR]")
	fmt.Fprintln(stderr, "       switchboard mls interop-run -config FILE... -client HOST:PORT...")
	return 2
}

// runTestVectors checks each vector file, recognised by its contents, and
// prints one line per file and a total. With no PATH it runs every file of
// the shared vector directory.
func runTestVectors(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mls test-vectors", flag.ContinueOnError)
	fs.SetOutput(stderr)
	verbose := fs.Bool("v", false, "print each failed and skipped case")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: switchboard mls test-vectors [-v] [PATH...]")
		fmt.Fprintln(stderr, "Checks MLS test-vector files; with no PATH, all of $MLS_TEST_VECTORS or ../shared/mls-test-vectors.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	paths := fs.Args()
	if len(paths) == 0 {
		dir, err := mlstest.DefaultDir()
		if err != nil {
			fmt.Fprintln(stderr, "switchboard:", err)
			return 2
		}
		a, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		b, _ := filepath.Glob(filepath.Join(dir, "interop-passive", "*.json"))
		paths = append(a, b...)
		if len(paths) == 0 {
			fmt.Fprintf(stderr, "switchboard: no vector files in %s\n", dir)
			return 2
		}
	}
	var total mlstest.Result
	bad := 0
	for _, p := range paths {
		res, err := mlstest.RunFile(p)
		if err != nil {
			fmt.Fprintf(stdout, "%s: error: %v\n", p, err)
			bad++
			continue
		}
		fmt.Fprintln(stdout, mlstest.Summary(p, res))
		if *verbose {
			for _, f := range res.Failures {
				fmt.Fprintf(stdout, "  FAIL %s\n", f)
			}
			for _, s := range res.Skips {
				fmt.Fprintf(stdout, "  SKIP %s\n", s)
			}
		}
		total.Passed += res.Passed
		total.Failed += res.Failed
		total.Skipped += res.Skipped
	}
	line := mlstest.Summary(fmt.Sprintf("total (%d files)", len(paths)), total)
	if bad > 0 {
		line += fmt.Sprintf(", %d not checked (unreadable or unrecognised)", bad)
	}
	fmt.Fprintln(stdout, line)
	if bad > 0 || total.Failed > 0 {
		return 1
	}
	return 0
}
