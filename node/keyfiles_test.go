package node_test

import (
	"bytes"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/node"
)

// TestKeysAreWrittenForTheOperatorOnly: a fresh data directory is made
// 0700, and the keys a provider makes in it (its CA's and its federation
// TLS key) are 0600, whatever the umask lets through: another account on
// the machine reads neither. A reissued certificate keeps the key's mode.
func TestKeysAreWrittenForTheOperatorOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "green")
	st, ca, err := node.OpenDataDir(dir, "green.test")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := node.LoadOrIssueProviderCert(dir, ca, "green.test", time.Now()); err != nil {
		t.Fatal(err)
	}
	// Past the renewal point: the certificate is reissued for the kept key.
	if _, err := node.LoadOrIssueProviderCert(dir, ca, "green.test", time.Now().Add(400*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]fs.FileMode{
		".":                      0o700 | fs.ModeDir,
		"ca-key.pem":             0o600,
		"federation-tls-key.pem": 0o600,
	} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode() & (fs.ModePerm | fs.ModeDir); got != want {
			t.Errorf("%s has mode %v, want %v", name, got, want)
		}
	}
}

// TestWidenedKeyFilesAreMadePrivateAgain: the operator copies a data
// directory for a second replica with a tool that does not keep modes, so
// its keys come out readable by every account. Started on it, the
// provider makes them 0600 again and says so in its log.
func TestWidenedKeyFilesAreMadePrivateAgain(t *testing.T) {
	first := filepath.Join(t.TempDir(), "green")
	st, ca, err := node.OpenDataDir(first, "green.test")
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if _, err := node.LoadOrIssueProviderCert(first, ca, "green.test", time.Now()); err != nil {
		t.Fatal(err)
	}
	copied := filepath.Join(t.TempDir(), "green-2")
	if err := os.CopyFS(copied, os.DirFS(first)); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ca-key.pem", "federation-tls-key.pem"} {
		if err := os.Chmod(filepath.Join(copied, name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var log bytes.Buffer
	n, err := node.Start(node.Config{Domain: "green.test", DataDir: copied, Listen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	n.Close()
	for _, name := range []string{"ca-key.pem", "federation-tls-key.pem"} {
		fi, err := os.Stat(filepath.Join(copied, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("%s is %v after the start, want 0600", name, got)
		}
		if !strings.Contains(log.String(), filepath.Join(copied, name)) {
			t.Errorf("the log does not name %s:\n%s", name, log.String())
		}
	}
}
