package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestInboxUsage: -h explains the first and later runs; a missing --data
// or a stray argument is a usage error; an empty directory without a code
// says what to do.
func TestInboxUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if rc := run([]string{"inbox", "-h"}, &out, &errb); rc != 0 {
		t.Errorf("inbox -h: exit %d", rc)
	}
	for _, want := range []string{"--server URL --code CODE --data DIR", "later runs", "first admin agent", "-listen", "SIGTERM"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("inbox -h does not say %q:\n%s", want, errb.String())
		}
	}
	for _, args := range [][]string{{"inbox"}, {"inbox", "--data", t.TempDir(), "extra"}} {
		errb.Reset()
		if rc := run(args, &out, &errb); rc != 2 {
			t.Errorf("%v: exit %d, want 2", args, rc)
		}
	}
	errb.Reset()
	if rc := run([]string{"inbox", "--data", t.TempDir(), "--listen", "127.0.0.1:0"}, &out, &errb); rc != 1 || !strings.Contains(errb.String(), "switchboard inbox: no business device") {
		t.Errorf("empty directory: exit %d, %q", rc, errb.String())
	}
}
