package content_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/switchboard-chat/switchboard/content"
)

// FuzzDecode: Decode never panics; what it refuses it refuses with an
// *Error with a code; what it accepts encodes, and that encoding decodes
// again to the same encoding; canonical input re-encodes to itself. It is seeded with the
// draft's examples, when present, and with messages of our own.
func FuzzDecode(f *testing.F) {
	dir := os.Getenv("MIMI_CONTENT_EXAMPLES")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "specs", "mimi-content-examples")
	}
	seeds, _ := filepath.Glob(filepath.Join(dir, "*.cbor"))
	for _, name := range seeds {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	for _, m := range []*content.Message{
		content.Text("hi"),
		content.Reaction(content.ID{1}, "👍").WithSender("mimi://a.example/u/x").WithRoom("mimi://a.example/r/y"),
		content.Delete(content.ID{1, 2}).WithExpiry(content.ExpiresAfter(60)),
		content.New(content.Multipart(content.ProcessAll, content.TextPart("a"),
			content.Multipart(content.ChooseOne, content.MarkdownPart("b"), content.ExternalRef(content.DispInline, "image/png", content.External{URL: "https://x"})))),
	} {
		b, err := m.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(msg(field(5, map[int]any{300: []any{[]any{[]any{1.5, nil}}}, -1: "x"})))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := content.Decode(b)
		if err != nil {
			var e *content.Error
			if !errors.As(err, &e) || content.Code(err) == "" {
				t.Fatalf("Decode error %v is not an *Error with a code", err)
			}
			if m != nil {
				t.Fatal("Decode returned a message and an error")
			}
			return
		}
		_ = m.Kind()
		_ = m.Text()
		_ = m.Mentions()
		_, _ = content.MessageID("mimi://a.example/u/x", "mimi://a.example/r/y", b)
		e1, err := m.Encode()
		if err != nil {
			t.Fatalf("a decoded message does not encode: %v", err)
		}
		m2, err := content.Decode(e1)
		if err != nil {
			t.Fatalf("an encoded message does not decode: %v", err)
		}
		e2, err := m2.Encode()
		if err != nil || !bytes.Equal(e1, e2) {
			t.Fatalf("encoding is not stable: %x then %x (%v)", e1, e2, err)
		}
		if content.IsCanonical(b) && !bytes.Equal(e1, b) {
			t.Fatalf("canonical input %x re-encodes to %x", b, e1)
		}
	})
}
