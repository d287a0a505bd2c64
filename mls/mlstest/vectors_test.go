package mlstest

import (
	"os"
	"path/filepath"
	"testing"
)

// TestOfficialVectors runs every official MLS test-vector file and fails on
// any failed case. Skips (unsupported cipher suites) are logged.
func TestOfficialVectors(t *testing.T) {
	dir, err := DefaultDir()
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	passive, _ := filepath.Glob(filepath.Join(dir, "interop-passive", "*.json"))
	files = append(files, passive...)
	if len(files) == 0 {
		t.Fatalf("no vector files under %s (set MLS_TEST_VECTORS)", dir)
	}
	for _, f := range files {
		name, _ := filepath.Rel(dir, f)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := detect(data); err != nil {
				t.Skipf("no checker for this file yet: %v", err)
			}
			res, err := Run(data)
			if err != nil {
				t.Fatal(err)
			}
			for _, fl := range res.Failures {
				t.Error(fl)
			}
			for _, s := range res.Skips {
				t.Log("skipped:", s)
			}
			if res.Passed == 0 {
				t.Errorf("no case passed")
			}
			t.Log(Summary(name, res))
		})
	}
}
