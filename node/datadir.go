package node

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/store"
	"github.com/switchboard-chat/switchboard/store/postgres"
	"github.com/switchboard-chat/switchboard/store/sqlite"
)

// The data directory: provider.db (the store), ca.pem and ca-key.pem (the
// provider's identity CA), federation-tls.pem and federation-tls-key.pem
// (its certificate for partners).

// ProviderCertRenewBefore: the provider certificate is reissued when it has
// less than this left, so partners never see it expire.
const ProviderCertRenewBefore = 30 * 24 * time.Hour

// OpenDataDir opens (creating it if needed) a provider's data directory:
// its store (the embedded SQLite default) and its CA.
func OpenDataDir(dir, domain string) (store.Store, *identity.CA, error) {
	return OpenDataDirStore(dir, domain, "")
}

// OpenDataDirStore is OpenDataDir with the store chosen by dsn (see
// OpenStore). The CA and keys stay in the data directory whatever the
// store: replicas of one provider share them (a copy of the directory).
func OpenDataDirStore(dir, domain, dsn string) (store.Store, *identity.CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	ca, err := LoadOrCreateCA(dir, domain)
	if err != nil {
		return nil, nil, err
	}
	st, err := OpenStore(dir, dsn)
	if err != nil {
		return nil, nil, err
	}
	return st, ca, nil
}

// OpenStore opens the store a configuration names: "" or "sqlite" is the
// embedded default, provider.db in the data directory; a postgres:// or
// postgresql:// URL is a PostgreSQL database that replicas may share.
func OpenStore(dir, dsn string) (store.Store, error) {
	switch {
	case dsn == "" || dsn == "sqlite":
		return sqlite.Open(filepath.Join(dir, "provider.db"))
	case strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://"):
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return postgres.Open(ctx, dsn)
	}
	return nil, fmt.Errorf("unknown store %q: want \"sqlite\" or a postgres:// URL", redactDSN(dsn))
}

// redactDSN hides a password in a DSN before it is shown.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			return u.String()
		}
	}
	return dsn
}

// LoadCA reads the data directory's CA; found is false when there is none
// yet.
func LoadCA(dir, domain string) (ca *identity.CA, found bool, err error) {
	certFile, keyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	certPEM, err1 := os.ReadFile(certFile) // #nosec G304 -- files of the operator's configuration
	keyPEM, err2 := os.ReadFile(keyFile)   // #nosec G304 -- files of the operator's configuration
	if errors.Is(err1, fs.ErrNotExist) && errors.Is(err2, fs.ErrNotExist) {
		return nil, false, nil
	}
	// Half a CA is not "no CA": making a new one would overwrite the
	// other half, and every credential issued so far would stop
	// verifying.
	if err := errors.Join(err1, err2); err != nil {
		return nil, false, fmt.Errorf("the data directory's CA: %w", err)
	}
	ca, err = identity.LoadCA(certPEM, keyPEM)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", certFile, err)
	}
	if ca.Domain() != domain {
		return nil, false, fmt.Errorf("the data directory's CA is for %q, not %q", ca.Domain(), domain)
	}
	return ca, true, nil
}

// keyFiles are the private keys a provider keeps in its data directory
// (tls-key.pem is serve's self-signed client API key, when it made one).
var keyFiles = []string{"ca-key.pem", "federation-tls-key.pem", "tls-key.pem"}

// TightenKeyFiles makes the data directory's private keys 0600 again
// where something widened them (a copy of the directory made with
// os.CopyFS or cp without -p, a hand edit). They were written 0600; a key
// other accounts can read is one they can use to speak for the provider,
// so the fix is made rather than only reported. It returns a warning for
// each key it found readable by others, made private again or not (a
// read-only mount, such as a secret store's, cannot be changed: the
// provider still starts, and the warning says what to fix).
func TightenKeyFiles(dir string) (warnings []string) {
	for _, name := range keyFiles {
		path := filepath.Join(dir, name)
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm()&0o077 == 0 {
			continue // absent, or private; a file that cannot be read fails where it is loaded
		}
		if err := os.Chmod(path, 0o600); err != nil {
			warnings = append(warnings, fmt.Sprintf("%s is readable by other accounts (%v) and could not be made 0600: %v", path, fi.Mode().Perm(), err))
			continue
		}
		warnings = append(warnings, fmt.Sprintf("%s was readable by other accounts (%v): made 0600 again", path, fi.Mode().Perm()))
	}
	return warnings
}

// LoadOrCreateCA reads the data directory's CA, making one on first use.
func LoadOrCreateCA(dir, domain string) (*identity.CA, error) {
	certFile, keyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	if ca, found, err := LoadCA(dir, domain); found || err != nil {
		return ca, err
	}
	ca, err := identity.NewCA(domain)
	if err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := ca.PEM()
	if err != nil {
		return nil, err
	}
	// Both halves are written in full before either appears: half a CA
	// (a full disk, a crash) would stop every later start (see LoadCA).
	if err := writeFiles(file{keyFile, keyPEM, 0o600}, file{certFile, certPEM, 0o644}); err != nil {
		return nil, err
	}
	return ca, nil
}

// file is one file for writeFiles.
type file struct {
	path string
	data []byte
	perm os.FileMode
}

// writeFiles writes each file beside its place, synced, and renames them
// into place only once all are written: a full disk or a crash leaves
// either none of them or every one whole, never half a file. Leftover
// temporary files are removed.
func writeFiles(files ...file) error {
	tmps := make([]string, 0, len(files))
	defer func() {
		for _, t := range tmps {
			os.Remove(t) // gone already once renamed
		}
	}()
	for _, f := range files {
		tmp, err := os.CreateTemp(filepath.Dir(f.path), "."+filepath.Base(f.path)+".tmp-*")
		if err != nil {
			return err
		}
		tmps = append(tmps, tmp.Name())
		_, err = tmp.Write(f.data)
		if err == nil {
			err = tmp.Sync()
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Chmod(tmp.Name(), f.perm)
		}
		if err != nil {
			return fmt.Errorf("writing %s: %w", f.path, err)
		}
	}
	for i, f := range files {
		if err := os.Rename(tmps[i], f.path); err != nil {
			return err
		}
	}
	return nil
}

// LoadOrIssueProviderCert returns the provider's federation certificate,
// kept in the data directory as federation-tls.pem (certificate and CA) and
// federation-tls-key.pem. The key is made once and kept, so that partners
// who pin it (pin_sha256) keep working across renewals; the certificate is
// reissued by the provider's CA when it is missing, does not load, names
// another domain, or has less than ProviderCertRenewBefore left.
func LoadOrIssueProviderCert(dir string, ca *identity.CA, domain string, now time.Time) (tls.Certificate, error) {
	certFile, keyFile := filepath.Join(dir, "federation-tls.pem"), filepath.Join(dir, "federation-tls-key.pem")
	key, err := loadOrCreateKey(keyFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	if c, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil && c.Leaf != nil &&
		c.Leaf.VerifyHostname(domain) == nil && now.Add(ProviderCertRenewBefore).Before(c.Leaf.NotAfter) {
		return c, nil
	}
	c, err := federation.IssueProviderCertificateForKey(ca, domain, key, now.Add(federation.DefaultProviderCertValidity))
	if err != nil {
		return tls.Certificate{}, err
	}
	var out []byte
	for _, der := range c.Certificate {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	// Written beside and renamed, so a crash or a full disk never leaves
	// half a file.
	if err := writeFiles(file{certFile, out, 0o644}); err != nil {
		return tls.Certificate{}, err
	}
	return c, nil
}

// loadOrCreateKey reads the ECDSA P-256 key of keyFile, making it on first
// use.
func loadOrCreateKey(keyFile string) (*ecdsa.PrivateKey, error) {
	data, err := os.ReadFile(keyFile) // #nosec G304 -- a file of the operator's configuration
	if errors.Is(err, fs.ErrNotExist) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		return key, writeFiles(file{keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600})
	} else if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: not a PEM PRIVATE KEY", keyFile)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", keyFile, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		// Never replaced: a new key would break every partner's pin.
		return nil, fmt.Errorf("%s: not an ECDSA P-256 key", keyFile)
	}
	return key, nil
}
