//go:build unix

package crashpoint

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// TestArmedPointKillsItsProcess runs this test binary again with a point
// armed for its second time: the child passes the point once, dies by
// SIGKILL at the second, and never reaches the line after it.
func TestArmedPointKillsItsProcess(t *testing.T) {
	if os.Getenv("CRASHPOINT_CHILD") != "" {
		Reached(OutboxSent)
		Reached(HubCommitStored) // another point: not counted
		os.Stdout.WriteString("passed once\n")
		Reached(OutboxSent)
		os.Stdout.WriteString("still alive\n")
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestArmedPointKillsItsProcess$")
	cmd.Env = append(os.Environ(), "CRASHPOINT_CHILD=1", EnvVar+"="+OutboxSent+"@2")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("the child did not die: %v\n%s", err, out)
	}
	ws, _ := exit.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the child ended with %v, not by SIGKILL\n%s", exit, out)
	}
	if !strings.Contains(string(out), "passed once") || strings.Contains(string(out), "still alive") {
		t.Fatalf("the child died at the wrong time:\n%s", out)
	}
	if !strings.Contains(string(out), "crashpoint: outbox-sent reached (time 2)") {
		t.Fatalf("the child did not say where it crashed:\n%s", out)
	}
}

// TestUnknownPointStopsTheProcessAtStart: a typo must not silently arm
// nothing.
func TestUnknownPointStopsTheProcessAtStart(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), EnvVar+"=hub-comit-stored")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), `no crash point "hub-comit-stored"`) {
		t.Fatalf("want exit status 2 naming the unknown point; got %v\n%s", err, out)
	}
}
