// Command switchboard is the single binary of Switchboard: cross-platform,
// end-to-end encrypted messaging between providers. Each subcommand lives in
// its own file; main only dispatches.
package main

import (
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/switchboard-chat/switchboard/clock"
)

// command is one subcommand: its one-line summary and its entry point, which
// returns the process exit code.
type command struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

var commands = map[string]command{}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return 0
	}
	// SWITCHBOARD_CLOCK_SKEW is a testing hook: refused if mistyped, and
	// never silent.
	if skew, err := clock.Skew(); err != nil {
		fmt.Fprintln(stderr, "switchboard:", err)
		return 2
	} else if skew != 0 {
		fmt.Fprintf(stderr, "switchboard: this process's clock is skewed by %v (%s, a testing hook)\n", skew, clock.EnvSkew)
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "switchboard: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	return cmd.run(args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Switchboard: end-to-end encrypted chats across messaging providers.")
	fmt.Fprintln(w, "\nUsage: switchboard COMMAND [ARGS]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'switchboard COMMAND -h' for a command's options.")
}
