package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchboard-chat/switchboard/node"
	"github.com/switchboard-chat/switchboard/store/postgres/pgtest"
)

// TestAdminExport: an operator adds a user on the embedded store, stops
// the provider, exports to PostgreSQL, and a provider started on the
// PostgreSQL store knows the user.
func TestAdminExport(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if rc := runAdmin([]string{"user", "add", "alice", "--data", dir}, &out, &errb); rc != 0 {
		t.Fatalf("admin user add: %d %s", rc, errb.String())
	}
	dsn := pgtest.DSN(t)
	out.Reset()
	if rc := runAdmin([]string{"export", "--data", dir, "--to", dsn}, &out, &errb); rc != 0 {
		t.Fatalf("admin export: %d %s", rc, errb.String())
	}
	if !strings.Contains(out.String(), "users             1") || !strings.Contains(out.String(), "enrollments       1") {
		t.Errorf("export printed:\n%s", out.String())
	}
	st, err := node.OpenStore(filepath.Join(dir, "unused"), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.UserByHandle(context.Background(), "alice"); err != nil {
		t.Fatalf("alice after the export: %v", err)
	}
	if rc := runAdmin([]string{"export", "--data", dir, "--to", dsn}, &out, &errb); rc == 0 {
		t.Error("a second export into the same database succeeded")
	}
	// From now on the operator names the PostgreSQL store.
	if rc := runAdmin([]string{"user", "add", "bob", "--data", dir, "--store", dsn}, &out, &errb); rc != 0 {
		t.Fatalf("admin user add --store: %d %s", rc, errb.String())
	}
	if _, err := st.UserByHandle(context.Background(), "bob"); err != nil {
		t.Fatalf("bob, added with --store: %v", err)
	}
	out.Reset()
	if rc := runAdmin([]string{"reports", "list", "--data", dir, "--store", dsn}, &out, &errb); rc != 0 || !strings.Contains(out.String(), "no reports") {
		t.Errorf("admin reports --store: %d %q %s", rc, out.String(), errb.String())
	}
}
