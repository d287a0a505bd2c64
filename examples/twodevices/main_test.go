package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// The example is documentation; these tests keep it working.

var wantLines = []string{
	`bob joined room `,
	`bob decrypted from alice/phone: "Hi Bob! Only our two devices can read this."`,
	`alice decrypted from bob/laptop: "Hi Alice. The provider only sees ciphertext."`,
	`bob decrypted from alice/phone: "Then let us meet at noon."`,
}

func checkOutput(t *testing.T, out string) {
	t.Helper()
	for _, w := range wantLines {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

// TestOwnProvider runs it as `go run ./examples/twodevices` does.
func TestOwnProvider(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, "", "", "", &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	checkOutput(t, out.String())
}

// TestRunningProvider runs it with -server and the codes an operator got
// from `switchboard admin user add`.
func TestRunningProvider(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := startProvider(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop()
	var out bytes.Buffer
	if err := run(ctx, p.url, p.codes["alice"], p.codes["bob"], &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	checkOutput(t, out.String())
	if err := run(ctx, p.url, "", "", &out); err == nil {
		t.Error("-server without codes was accepted")
	}
}
