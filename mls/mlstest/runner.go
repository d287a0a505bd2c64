// Package mlstest checks the mls package against the official MLS test
// vectors (the mlswg test-vector files described in their docs/test-vectors.md).
// It is shared by the repository's tests and by `switchboard mls test-vectors`.
package mlstest

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/switchboard-chat/switchboard/mls"
)

// Result counts the cases of one vector file.
type Result struct {
	Kind     string
	Passed   int
	Failed   int
	Skipped  int
	Failures []string // one line per failed case
	Skips    []string // one line per skipped case, with the reason
}

func (r *Result) fail(i int, err error) {
	r.Failed++
	r.Failures = append(r.Failures, fmt.Sprintf("case %d: %v", i, err))
}

// kind is one family of vector files.
type kind struct {
	name string
	// detect reports whether a case object with these top-level keys is of this kind.
	detect func(keys map[string]bool) bool
	run    func(data []byte) (Result, error)
}

var kinds []kind

func register(name string, detect func(map[string]bool) bool, run func(data []byte) (Result, error)) {
	kinds = append(kinds, kind{name: name, detect: detect, run: run})
}

// has returns a detector matching case objects that have all the given keys.
func has(names ...string) func(map[string]bool) bool {
	return func(keys map[string]bool) bool {
		for _, n := range names {
			if !keys[n] {
				return false
			}
		}
		return true
	}
}

// ErrUnknownFormat is returned for a file that is not a known vector file.
var ErrUnknownFormat = errors.New("not a recognised MLS test-vector file")

// Kinds returns the names of the vector-file families this package checks.
func Kinds() []string {
	var names []string
	for _, k := range kinds {
		names = append(names, k.name)
	}
	sort.Strings(names)
	return names
}

// Detect names the family of a vector file from its contents: the keys of
// its first case object.
func Detect(data []byte) (string, error) {
	k, err := detect(data)
	if err != nil {
		return "", err
	}
	return k.name, nil
}

func detect(data []byte) (*kind, error) {
	var cases []map[string]json.RawMessage
	if err := json.Unmarshal(data, &cases); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnknownFormat, err)
	}
	if len(cases) == 0 {
		return nil, fmt.Errorf("%w: no cases", ErrUnknownFormat)
	}
	keys := map[string]bool{}
	for k := range cases[0] {
		keys[k] = true
	}
	for i := range kinds {
		if kinds[i].detect(keys) {
			return &kinds[i], nil
		}
	}
	return nil, ErrUnknownFormat
}

// Run checks every case of one vector file given as bytes.
func Run(data []byte) (Result, error) {
	k, err := detect(data)
	if err != nil {
		return Result{}, err
	}
	res, err := k.run(data)
	res.Kind = k.name
	return res, err
}

// RunFile checks every case of the vector file at path.
func RunFile(path string) (Result, error) {
	data, err := os.ReadFile(path) // #nosec G304 -- a test vector file the caller names
	if err != nil {
		return Result{}, err
	}
	return Run(data)
}

// runCases decodes a JSON array of T and checks each case. suite returns the
// case's cipher suite (0 if it has none); cases for suites this package does
// not implement are skipped with that reason.
func runCases[T any](data []byte, suite func(*T) uint16, check func(*T) error) (Result, error) {
	var cases []T
	if err := json.Unmarshal(data, &cases); err != nil {
		return Result{}, fmt.Errorf("decode vector file: %w", err)
	}
	var res Result
	for i := range cases {
		c := &cases[i]
		if id := suite(c); id != 0 {
			if _, err := mls.SuiteFor(mls.CipherSuite(id)); err != nil {
				res.Skipped++
				res.Skips = append(res.Skips, fmt.Sprintf("case %d: cipher suite 0x%04x is not supported", i, id))
				continue
			}
		}
		if err := safeCheck(c, check); err != nil {
			res.fail(i, err)
			continue
		}
		res.Passed++
	}
	return res, nil
}

// safeCheck turns a panic in the code under test into a failed case, so one
// bad case cannot hide the results of the others.
func safeCheck[T any](c *T, check func(*T) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return check(c)
}

func noSuite[T any](*T) uint16 { return 0 }

// Hex is a byte string written in JSON as lower-case hex; null is nil.
type Hex []byte

func (h *Hex) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*h = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	*h = v
	return nil
}

func (h Hex) String() string { return hex.EncodeToString(h) }

// mismatch formats a comparison failure.
func mismatch(what string, got, want []byte) error {
	return fmt.Errorf("%s mismatch: got %x, want %x", what, got, want)
}

func equal(a, b []byte) bool { return string(a) == string(b) }

// DefaultDir finds the shared test vectors: $MLS_TEST_VECTORS if set, else
// ../shared/mls-test-vectors beside the module root above the working directory.
func DefaultDir() (string, error) {
	if d := os.Getenv("MLS_TEST_VECTORS"); d != "" {
		return d, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "..", "shared", "mls-test-vectors"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("mlstest: no go.mod above the working directory; set MLS_TEST_VECTORS")
		}
		dir = parent
	}
}

// Summary formats a result as the one-line report used by the CLI.
func Summary(name string, r Result) string {
	return fmt.Sprintf("%s: %d passed, %d failed, %d skipped", name, r.Passed, r.Failed, r.Skipped)
}
