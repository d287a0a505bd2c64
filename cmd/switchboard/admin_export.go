package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/switchboard-chat/switchboard/store/postgres"
)

// runAdminExport moves a provider from the embedded SQLite store to
// PostgreSQL (docs/deploy.md): every table of DIR/provider.db is copied
// into the empty database at --to, in one transaction, and the row counts
// are printed. The provider must be stopped, so nothing is written to the
// SQLite file meanwhile.
func runAdminExport(args []string, stdout, stderr io.Writer) int {
	cfg := defaultServeConfig()
	fs := flag.NewFlagSet("admin export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", cfg.DataDir, "the stopped provider's data directory")
	to := fs.String("to", "", "the PostgreSQL store to fill: a postgres:// URL of an empty database")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if !strings.HasPrefix(*to, "postgres://") && !strings.HasPrefix(*to, "postgresql://") {
		fmt.Fprintln(stderr, "switchboard: admin export needs --to postgres://...")
		return 2
	}
	path := filepath.Join(*data, "provider.db")
	if _, err := os.Stat(path); err != nil {
		fmt.Fprintln(stderr, "switchboard: no SQLite store to export:", err)
		return 1
	}
	counts, err := postgres.ImportSQLite(context.Background(), path, *to)
	if err != nil {
		fmt.Fprintln(stderr, "switchboard:", err)
		return 1
	}
	var total int64
	for _, c := range counts {
		fmt.Fprintf(stdout, "%-17s %d\n", c.Table, c.Rows)
		total += c.Rows
	}
	fmt.Fprintf(stdout, "copied %d rows from %s; start the provider with store: the PostgreSQL URL\n", total, path)
	return 0
}
