package federation

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// SetPartnerSuspended sets "suspended" for one partner of the trust file
// at path and writes the file back, atomically (a new file renamed over
// the old, with the old one's permissions), so a provider reading it
// concurrently sees the old or the new version. The running provider
// takes the change at its next reload (Trust.Watch, or Reload on SIGHUP).
// A partner the file does not list is an error, and so is a file that
// would no longer be a valid configuration; either way nothing changes.
func SetPartnerSuspended(path, domain string, suspended bool) error {
	data, err := readTrustFile(path)
	if err != nil {
		return err
	}
	if _, err := parseTrust(data); err != nil {
		return trustErr(ErrTrustConfig, "", err, "%s", path)
	}
	var f trustFile
	if err := json.Unmarshal(data, &f); err != nil {
		return trustErr(ErrTrustConfig, "", err, "%s", path)
	}
	found := false
	for i := range f.Partners {
		if f.Partners[i].Domain == domain {
			f.Partners[i].Suspended, found = suspended, true
		}
	}
	if !found {
		return trustErr(ErrUnknownPartner, domain, nil, "%s does not list %s as a partner", path, domain)
	}
	out, err := json.MarshalIndent(&f, "", "  ")
	if err != nil {
		return err
	}
	out = append(out, '\n')
	if _, err := parseTrust(out); err != nil {
		return trustErr(ErrTrustConfig, "", err, "%s after the change", path)
	}
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".trust-*.json")
	if err != nil {
		return fmt.Errorf("federation: writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename, there is nothing to remove
	if _, err := tmp.Write(out); err != nil {
		tmp.Close() // #nosec G104 -- on an error path: the first error is the one returned
		return fmt.Errorf("federation: writing %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close() // #nosec G104 -- on an error path: the first error is the one returned
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close() // #nosec G104 -- on an error path: the first error is the one returned
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
