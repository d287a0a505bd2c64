package content_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/switchboard-chat/switchboard/content"
)

// raw is CBOR written out in hex, for inputs an encoder would not make.
func raw(s string) cbor.RawMessage {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// detMode encodes test inputs in deterministic CBOR, like a good sender,
// but lets raw items with indefinite lengths through.
var detMode = func() cbor.EncMode {
	opts := cbor.CoreDetEncOptions()
	opts.IndefLength = cbor.IndefLengthAllowed
	em, err := opts.EncMode()
	if err != nil {
		panic(err)
	}
	return em
}()

func enc(v any) []byte {
	b, err := detMode.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

var (
	salt   = bytes.Repeat([]byte{0xa5}, 16)
	goodID = append([]byte{1}, bytes.Repeat([]byte{7}, 31)...)
	text   = []any{1, "", 1, content.TypePlainText, []byte("hi")}
)

// msg is a message with the draft's seven fields, any of which a case
// replaces.
func msg(edit func(f []any)) []byte {
	f := []any{salt, nil, []byte{}, nil, nil, map[any]any{}, text}
	if edit != nil {
		edit(f)
	}
	return enc(f)
}

func field(i int, v any) func([]any) { return func(f []any) { f[i] = v } }

// nest is a body nested depth levels deep (the body is level 1).
func nest(depth int) any {
	if depth == 1 {
		return text
	}
	return []any{1, "", 3, 2, []any{nest(depth - 1), text}}
}

// TestDecodeRefuses: input that is not MIMI content, or is beyond a limit,
// is refused with the right kind of error and never panics.
func TestDecodeRefuses(t *testing.T) {
	manyParts := make([]any, 1024)
	for i := range manyParts {
		manyParts[i] = text
	}
	cases := []struct {
		name  string
		input []byte
		want  error
	}{
		{"empty input", nil, content.ErrMalformed},
		{"not an array", enc("hello"), content.ErrMalformed},
		{"six fields", enc([]any{salt, nil, []byte{}, nil, nil, map[any]any{}}), content.ErrMalformed},
		{"truncated", msg(nil)[:40], content.ErrMalformed},
		{"trailing data", append(msg(nil), 0), content.ErrMalformed},
		{"salt of 15 octets", msg(field(0, salt[:15])), content.ErrMalformed},
		{"salt as text", msg(field(0, strings.Repeat("s", 16))), content.ErrMalformed},
		{"replaces of 31 octets", msg(field(1, goodID[:31])), content.ErrMalformed},
		{"replaces with hash algorithm 2", msg(field(1, append([]byte{2}, goodID[1:]...))), content.ErrUnsupported},
		{"inReplyTo as text", msg(field(4, "017ce548")), content.ErrMalformed},
		{"topicId null", msg(field(2, nil)), content.ErrMalformed},
		{"topicId too long", msg(field(2, make([]byte, 4097))), content.ErrTooLarge},
		{"expires of one item", msg(field(3, []any{true})), content.ErrMalformed},
		{"expires relative as int", msg(field(3, []any{1, 5})), content.ErrMalformed},
		{"expires beyond 32 bits", msg(field(3, []any{false, uint64(1) << 32})), content.ErrMalformed},
		{"extensions as array", msg(field(5, []any{})), content.ErrMalformed},
		{"duplicate extension key", msg(field(5, raw("a2 01 61 61 01 61 62"))), content.ErrMalformed},
		{"byte string extension key", msg(field(5, raw("a1 41 00 01"))), content.ErrMalformed},
		{"empty text extension key", msg(field(5, raw("a1 60 01"))), content.ErrMalformed},
		{"text extension key of 256 octets", msg(field(5, map[string]int{strings.Repeat("k", 256): 1})), content.ErrMalformed},
		{"extension key beyond 2^53", msg(field(5, map[uint64]int{1 << 53: 1})), content.ErrMalformed},
		{"senderUri not text", msg(field(5, map[int]int{1: 5})), content.ErrMalformed},
		{"extension nested 5 deep", msg(field(5, map[int]any{300: []any{[]any{[]any{[]any{}}}}})), content.ErrMalformed},
		{"extension with a tag too deep", msg(field(5, map[int]any{300: []any{[]any{cbor.Tag{Number: 32, Content: []any{}}}}})), content.ErrMalformed},
		{"duplicate key inside an extension", msg(field(5, map[int]any{300: raw("a2 01 00 01 00")})), content.ErrMalformed},
		{"array key inside an extension", msg(field(5, map[int]any{300: raw("a1 80 00")})), content.ErrMalformed},
		{"NaN inside an extension", msg(field(5, map[int]any{300: raw("fb 7ff8000000000001")})), content.ErrMalformed},
		{"invalid UTF-8 inside an extension", msg(field(5, map[int]any{300: raw("62 c3 28")})), content.ErrMalformed},
		{"invalid UTF-8 in a content type", msg(field(6, []any{1, "", 1, raw("62 c3 28"), []byte{}})), content.ErrMalformed},
		{"indefinite-length array", raw("9f" + hex.EncodeToString(msg(nil)[1:]) + "ff"), content.ErrMalformed},
		{"indefinite-length content", msg(field(6, []any{1, "", 1, "text/plain", raw("5f 41 68 41 69 ff")})), content.ErrMalformed},
		{"disposition 256", msg(field(6, []any{256, "", 0})), content.ErrMalformed},
		{"unknown cardinality", msg(field(6, []any{1, "", 4})), content.ErrUnsupported},
		{"null part with content", msg(field(6, []any{1, "", 0, "text/plain"})), content.ErrMalformed},
		{"single part without content", msg(field(6, []any{1, "", 1, "text/plain"})), content.ErrMalformed},
		{"external part of 14 items", msg(field(6, []any{6, "", 2, "a", "u", 0, 0, 0, []byte{}, []byte{}, []byte{}, 0, []byte{}, ""})), content.ErrMalformed},
		{"external encAlg beyond 16 bits", msg(field(6, []any{6, "", 2, "a", "u", 0, 0, 1 << 16, []byte{}, []byte{}, []byte{}, 0, []byte{}, "", ""})), content.ErrMalformed},
		{"external hashAlg beyond 8 bits", msg(field(6, []any{6, "", 2, "a", "u", 0, 0, 0, []byte{}, []byte{}, []byte{}, 256, []byte{}, "", ""})), content.ErrMalformed},
		{"unknown part semantics", msg(field(6, []any{1, "", 3, 3, []any{text, text}})), content.ErrUnsupported},
		{"multipart of one part", msg(field(6, []any{1, "", 3, 0, []any{text}})), content.ErrMalformed},
		{"parts nested 5 deep", msg(field(6, nest(5))), content.ErrTooLarge},
		{"1025 parts", msg(field(6, []any{1, "", 3, 2, manyParts})), content.ErrTooLarge},
		{"too large", msg(field(6, []any{1, "", 1, "a", make([]byte, content.MaxEncodedSize)})), content.ErrTooLarge},
		{"deeply nested garbage", bytes.Repeat([]byte{0x81}, 5000), content.ErrTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := content.Decode(c.input)
			if !errors.Is(err, c.want) {
				t.Fatalf("Decode = %v, %v; want %v", m, err, c.want)
			}
			t.Log(err)
			var e *content.Error
			if !errors.As(err, &e) || e.Code() == "" || content.Code(err) != e.Code() {
				t.Fatalf("error %v has no stable code", err)
			}
		})
	}
}

// TestDecodeAccepts: the edges of what the draft allows.
func TestDecodeAccepts(t *testing.T) {
	cases := []struct {
		name  string
		input []byte
	}{
		{"parts nested 4 deep", msg(field(6, nest(4)))},
		{"topic of 4096 octets", msg(field(2, make([]byte, 4096)))},
		{"extension nested 4 deep", msg(field(5, map[int]any{300: []any{[]any{[]any{1}}}}))},
		{"the draft's depth example", msg(field(5, map[int]any{1: "mimi://a.example/u/alice",
			256: []any{[]any{[]byte{0x12, 0x34}, cbor.Tag{Number: 32, Content: "http://example.com"}}, []any{[]byte{0x34, 0x56}, 5771}}}))},
		{"half-width quiet NaN in an extension", msg(field(5, map[int]any{300: raw("f9 7e00")}))},
		{"byte string key inside an extension", msg(field(5, map[int]any{300: raw("a1 41 00 01")}))},
		{"negative and text extension keys", msg(field(5, raw("a2 20 00 61 78 00")))},
		{"unassigned disposition", msg(field(6, []any{255, "", 0}))},
		{"external part", msg(field(6, []any{6, "", 2, "a", "u", 0, uint64(1) << 63, 1, []byte{1}, []byte{2}, []byte{}, 1, []byte{3}, "d", "f"}))},
		{"non-shortest integer", msg(field(6, []any{raw("18 01"), "", 0}))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := content.Decode(c.input)
			if err != nil {
				t.Fatal(err)
			}
			b, err := m.Encode()
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			m2, err := content.Decode(b)
			if err != nil {
				t.Fatalf("Decode(Encode): %v", err)
			}
			if b2, _ := m2.Encode(); !bytes.Equal(b, b2) {
				t.Fatal("encoding is not stable")
			}
		})
	}
	for name, b := range map[string][]byte{
		"non-shortest disposition":             msg(field(6, []any{raw("18 01"), "", 0})),
		"non-shortest integer in an extension": msg(field(5, map[int]any{300: raw("18 05")})),
		"unsorted map in an extension":         msg(field(5, map[int]any{300: raw("a2 02 00 01 00")})),
		"non-shortest length in an extension":  msg(field(5, map[int]any{300: raw("78 01 61")})),
		"unsorted extensions":                  msg(field(5, raw("a2 02 61 61 01 61 62"))),
	} {
		if content.IsCanonical(b) {
			t.Errorf("%s: IsCanonical = true", name)
		}
	}
	if !content.IsCanonical(msg(field(5, map[int]any{300: raw("a2 01 00 02 00"), 1: "x"}))) {
		t.Error("a canonical message is not canonical")
	}
}

// TestEncodeRefuses: Encode will not write what Decode would refuse.
func TestEncodeRefuses(t *testing.T) {
	badHash := content.ID{2}
	tooDeep := content.TextPart("x")
	for range 4 {
		tooDeep = content.Multipart(content.ProcessAll, tooDeep, content.TextPart("y"))
	}
	cases := []struct {
		name string
		m    *content.Message
		want error
	}{
		{"single part with parts", content.New(content.Part{Cardinality: content.SinglePart, Parts: []content.Part{{}}}), content.ErrMalformed},
		{"null part with content", content.New(content.Part{Content: []byte("x")}), content.ErrMalformed},
		{"external part with content", content.New(content.Part{Cardinality: content.ExternalPart, Content: []byte("x")}), content.ErrMalformed},
		{"multipart with external fields", content.New(content.Part{Cardinality: content.MultiPart, External: content.External{URL: "u"}, Parts: []content.Part{{}, {}}}), content.ErrMalformed},
		{"multipart of one", content.New(content.Multipart(content.ChooseOne, content.TextPart("x"))), content.ErrMalformed},
		{"unknown semantics", content.New(content.Multipart(9, content.TextPart("x"), content.TextPart("y"))), content.ErrUnsupported},
		{"unknown cardinality", content.New(content.Part{Cardinality: 7}), content.ErrUnsupported},
		{"too deep", content.New(tooDeep), content.ErrTooLarge},
		{"unknown hash algorithm", content.Edit(badHash, content.TextPart("x")), content.ErrUnsupported},
		{"invalid UTF-8", content.Text("x").WithLanguage("\xff"), content.ErrMalformed},
		{"long topic", content.Text("x").WithTopic(make([]byte, 4097)), content.ErrTooLarge},
		{"bad extension value", &content.Message{Extensions: content.Extensions{content.IntKey(9): {0x82, 0x01}}}, content.ErrMalformed},
		{"text key too long", &content.Message{Extensions: content.Extensions{content.TextKey(strings.Repeat("k", 256)): {0x01}}}, content.ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := c.m.Encode(); !errors.Is(err, c.want) {
				t.Fatalf("Encode = %v, want %v", err, c.want)
			}
		})
	}
}

// TestMessageIDInputs: the ID depends on the sender, the room, and every
// octet of the message, and refuses what is not a message.
func TestMessageIDInputs(t *testing.T) {
	b := msg(nil)
	base, err := content.MessageID("mimi://a.example/u/x", "mimi://a.example/r/y", b)
	if err != nil {
		t.Fatal(err)
	}
	// Moving a character between sender and room changes the ID: the
	// lengths are part of the input.
	moved, _ := content.MessageID("mimi://a.example/u/", "xmimi://a.example/r/y", b)
	other := append([]byte{}, b...)
	other[len(other)-1] ^= 1
	changed, _ := content.MessageID("mimi://a.example/u/x", "mimi://a.example/r/y", other)
	if base == moved || base == changed || base.HashAlg() != 1 {
		t.Errorf("IDs %s %s %s", base, moved, changed)
	}
	for _, bad := range [][]byte{nil, {0x87}, {0x86, 0x50}, {0x87, 0x4f}, {0x87, 0x50, 1, 2}} {
		if _, err := content.MessageID("s", "r", bad); !errors.Is(err, content.ErrMalformed) {
			t.Errorf("MessageID(%x) = %v, want ErrMalformed", bad, err)
		}
	}
	if _, err := content.MessageID(strings.Repeat("s", 1<<16), "r", b); !errors.Is(err, content.ErrTooLarge) {
		t.Errorf("long sender: %v", err)
	}
	if id, err := content.ParseID(base.String()); err != nil || id != base {
		t.Errorf("ParseID(String) = %v, %v", id, err)
	}
}
