package node_test

import (
	"io/fs"
	"os"
	"path/filepath"
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
