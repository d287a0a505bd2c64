package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/switchboard-chat/switchboard/mls/mlstest"
)

func vectorDir(t *testing.T) string {
	t.Helper()
	dir, err := mlstest.DefaultDir()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestTestVectorsCommandReportsEachFileAndATotal(t *testing.T) {
	dir := vectorDir(t)
	var out, errOut bytes.Buffer
	files := []string{filepath.Join(dir, "tree-math.json"), filepath.Join(dir, "crypto-basics.json")}
	code := run(append([]string{"mls", "test-vectors"}, files...), &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a line per file and a total, got:\n%s", out.String())
	}
	line := regexp.MustCompile(`^(.+): (\d+) passed, 0 failed, (\d+) skipped$`)
	for i, want := range []string{files[0], files[1], "total (2 files)"} {
		m := line.FindStringSubmatch(lines[i])
		if m == nil || m[1] != want {
			t.Errorf("line %d = %q, want a summary for %s", i, lines[i], want)
		}
	}
	if !strings.Contains(lines[1], "5 passed, 0 failed, 2 skipped") {
		t.Errorf("crypto-basics: %q", lines[1])
	}
}

func TestTestVectorsCommandFailsOnBadFiles(t *testing.T) {
	tmp := t.TempDir()
	notVectors := filepath.Join(tmp, "notes.json")
	os.WriteFile(notVectors, []byte(`[{"hello": 1}]`), 0o644)
	broken := filepath.Join(tmp, "tree-math.json")
	os.WriteFile(broken, []byte(`[{"n_leaves": 2, "n_nodes": 4, "root": 1, "left": [], "right": [], "parent": [], "sibling": []}]`), 0o644)
	for _, tc := range []struct {
		path, want string
	}{
		{filepath.Join(tmp, "missing.json"), "error:"},
		{notVectors, "not a recognised MLS test-vector file"},
		{broken, "0 passed, 1 failed"},
	} {
		var out, errOut bytes.Buffer
		if code := run([]string{"mls", "test-vectors", "-v", tc.path}, &out, &errOut); code != 1 {
			t.Errorf("%s: exit %d, want 1", tc.path, code)
		}
		if !strings.Contains(out.String(), tc.want) {
			t.Errorf("%s: output %q lacks %q", tc.path, out.String(), tc.want)
		}
	}
}

func TestUnknownCommandIsAnError(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"frobnicate"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "unknown command") {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
}
