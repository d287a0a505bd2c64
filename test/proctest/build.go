package proctest

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// Build builds cmd/switchboard into dir, from the module's root, and
// returns the binary's path: BuildBinary for a TestMain, so that a
// package's tests share one build.
func Build(dir string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the go command, to build switchboard: %w", err)
	}
	out, err := exec.Command(goBin, "env", "GOMOD").Output() // #nosec G204 -- the go command found on PATH
	if err != nil || strings.TrimSpace(string(out)) == "" {
		return "", fmt.Errorf("finding the module root (go env GOMOD): %v %s", err, out)
	}
	bin := filepath.Join(dir, "switchboard")
	build := exec.Command(goBin, "build", "-o", bin, "./cmd/switchboard") // #nosec G204 -- the go command found on PATH
	build.Dir = filepath.Dir(strings.TrimSpace(string(out)))
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/switchboard: %v\n%s", err, out)
	}
	return bin, nil
}
