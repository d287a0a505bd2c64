package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/switchboard-chat/switchboard/node"
	"github.com/switchboard-chat/switchboard/provider"
)

func init() {
	commands["admin"] = command{summary: "operator tasks: 'admin user add HANDLE [--phone +CC...]', 'admin user enroll HANDLE', 'admin reports' (abuse report queue), 'admin export --to postgres://...'", run: runAdmin}
}

// runAdmin runs operator commands directly on a provider's data directory
// (the provider may be running: SQLite's WAL lets both work).
func runAdmin(args []string, stdout, stderr io.Writer) int {
	usage := func() int {
		fmt.Fprintln(stderr, "usage: switchboard admin user add HANDLE [--phone +CC...] [--data DIR] [--domain D] [--store URL]")
		fmt.Fprintln(stderr, "       switchboard admin user enroll HANDLE [--data DIR] [--domain D] [--store URL]")
		fmt.Fprintln(stderr, "       switchboard admin export --data DIR --to postgres://... (copy a stopped provider's SQLite store into an empty PostgreSQL one)")
		fmt.Fprintln(stderr, "       switchboard admin reports [list|show|warn|suspend-user|suspend-partner|dismiss] ... (see 'admin reports --help')")
		return 2
	}
	if len(args) > 0 && args[0] == "export" {
		return runAdminExport(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "reports" {
		return runAdminReports(args[1:], stdout, stderr)
	}
	if len(args) < 3 || args[0] != "user" {
		return usage()
	}
	verb, handle := args[1], args[2]
	cfg := defaultServeConfig()
	fs := flag.NewFlagSet("admin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	phone := fs.String("phone", "", "phone number with + and country code")
	data := fs.String("data", cfg.DataDir, "the provider's data directory")
	domain := fs.String("domain", cfg.Domain, "the provider's domain")
	storeDSN := fs.String("store", "", `the provider's store: "sqlite" (default, in the data directory) or a postgres:// URL`)
	if err := fs.Parse(args[3:]); err != nil {
		return 2
	}
	cfg.DataDir, cfg.Domain = *data, *domain
	st, _, err := node.OpenDataDirStore(cfg.DataDir, cfg.Domain, *storeDSN)
	if err != nil {
		fmt.Fprintln(stderr, "switchboard:", err)
		return 1
	}
	defer st.Close()
	ctx := context.Background()
	switch verb {
	case "add":
		u, code, err := provider.AddUser(ctx, st, handle, *phone, 0)
		if err != nil {
			fmt.Fprintln(stderr, "switchboard:", err)
			return 1
		}
		fmt.Fprintf(stdout, "user %s created on %s\nenrollment code for the first device (valid 7 days, single use):\n  %s\n", u.Handle, cfg.Domain, code)
	case "enroll":
		h, err := provider.NormalizeHandle(handle)
		if err != nil {
			fmt.Fprintln(stderr, "switchboard:", err)
			return 1
		}
		u, err := st.UserByHandle(ctx, h)
		if err != nil {
			fmt.Fprintf(stderr, "switchboard: no user %q\n", h)
			return 1
		}
		code, err := provider.AddEnrollment(ctx, st, u.ID, 0)
		if err != nil {
			fmt.Fprintln(stderr, "switchboard:", err)
			return 1
		}
		fmt.Fprintf(stdout, "enrollment code for a new device of %s (valid 7 days, single use):\n  %s\n", u.Handle, code)
	default:
		return usage()
	}
	return 0
}
