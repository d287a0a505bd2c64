package content_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/content"
)

// conversation plays a room's members sending messages to each other: each
// send encodes, computes the ID as a receiver would, and decodes the bytes
// as received.
type conversation struct {
	t    *testing.T
	room string
}

func (c *conversation) send(sender string, m *content.Message) (content.ID, *content.Message) {
	c.t.Helper()
	m.WithSender(sender).WithRoom(c.room)
	b, id, err := m.EncodeWithID(sender, c.room)
	if err != nil {
		c.t.Fatalf("%s sends: %v", sender, err)
	}
	got, err := content.Decode(b)
	if err != nil {
		c.t.Fatalf("decoding what %s sent: %v", sender, err)
	}
	if again, err := got.Encode(); err != nil || !bytes.Equal(again, b) {
		c.t.Fatalf("what %s sent does not re-encode to the same bytes (%v)", sender, err)
	}
	if id.HashAlg() != content.HashSHA256 {
		c.t.Fatalf("ID %s does not start with the SHA-256 octet", id)
	}
	return id, got
}

// TestConversation: Alice posts, Bob replies and then fixes and finally
// deletes his reply, Cathy reacts and takes it back; receivers see each
// message's kind and the messages it points to.
func TestConversation(t *testing.T) {
	c := &conversation{t: t, room: "mimi://green.example/r/lobby"}
	alice, bob, cathy := "mimi://green.example/u/alice", "mimi://blue.example/u/bob", "mimi://red.example/u/cathy"

	post, got := c.send(alice, content.Markdown("Release 2.0 is out, thanks "+content.MentionLink("@Bob", bob)+"!"))
	if got.Kind() != content.KindText || got.Body.ContentType != content.TypeMarkdown {
		t.Fatalf("post: kind %v, type %q", got.Kind(), got.Body.ContentType)
	}
	if m := got.Mentions(); len(m) != 1 || m[0] != bob {
		t.Errorf("post mentions %q, want Bob", m)
	}
	if s, _ := got.SenderURI(); s != alice {
		t.Errorf("senderUri = %q", s)
	}

	reply, got := c.send(bob, content.Reply(post, content.TextPart("Congrats all")))
	if got.Kind() != content.KindText || !got.IsReply() || *got.InReplyTo != post || got.Text() != "Congrats all" {
		t.Fatalf("reply: kind %v, inReplyTo %v, text %q", got.Kind(), got.InReplyTo, got.Text())
	}

	like, got := c.send(cathy, content.Reaction(post, "👍"))
	if got.Kind() != content.KindReaction || *got.InReplyTo != post {
		t.Fatalf("reaction: kind %v, inReplyTo %v", got.Kind(), got.InReplyTo)
	}
	if r := got.Reactions(); len(r) != 1 || r[0] != "👍" {
		t.Errorf("reactions %q", r)
	}

	_, got = c.send(cathy, content.Unlike(like).WithReplyTo(post))
	if got.Kind() != content.KindUnlike || *got.Replaces != like || got.Body.Cardinality != content.NullPart {
		t.Fatalf("unlike: kind %v, replaces %v, body %v", got.Kind(), got.Replaces, got.Body.Cardinality)
	}

	_, got = c.send(bob, content.Edit(reply, content.TextPart("Congrats, all!")).WithReplyTo(post))
	if got.Kind() != content.KindEdit || *got.Replaces != reply || *got.InReplyTo != post || got.Text() != "Congrats, all!" {
		t.Fatalf("edit: kind %v, replaces %v, text %q", got.Kind(), got.Replaces, got.Text())
	}

	_, got = c.send(bob, content.Delete(reply).WithReplyTo(post))
	if got.Kind() != content.KindDelete || *got.Replaces != reply || got.Text() != "" {
		t.Fatalf("delete: kind %v, replaces %v", got.Kind(), got.Replaces)
	}
}

// TestSaltsAreFresh: two identical messages get different salts and so
// different IDs.
func TestSaltsAreFresh(t *testing.T) {
	a, b := content.Text("hi"), content.Text("hi")
	if a.Salt == b.Salt || a.Salt == [16]byte{} {
		t.Fatalf("salts %x and %x", a.Salt, b.Salt)
	}
	_, ida, _ := a.EncodeWithID("mimi://a.example/u/x", "mimi://a.example/r/y")
	_, idb, _ := b.EncodeWithID("mimi://a.example/u/x", "mimi://a.example/r/y")
	if ida == idb {
		t.Fatal("two messages with the same ID")
	}
}

// TestExpiringAndTopics: relative and absolute expiry and a topic survive
// the trip and mean what they say.
func TestExpiringAndTopics(t *testing.T) {
	c := &conversation{t: t, room: "mimi://green.example/r/ops"}
	_, got := c.send("mimi://green.example/u/alice", content.Text("the wifi password is hunter2").
		WithExpiry(content.ExpiresAfter(90*time.Second+time.Millisecond)).WithTopic([]byte("wifi")))
	if got.Expires == nil || !got.Expires.Relative || got.Expires.Time != 91 {
		t.Fatalf("expires %+v, want 91 s after reading", got.Expires)
	}
	read := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if d := got.Expires.Deadline(read); !d.Equal(read.Add(91 * time.Second)) {
		t.Errorf("deadline %v", d)
	}
	if string(got.TopicID) != "wifi" {
		t.Errorf("topic %q", got.TopicID)
	}

	at := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	_, got = c.send("mimi://green.example/u/alice", content.Text("offer ends soon").WithExpiry(content.ExpiresAt(at)))
	if got.Expires.Relative || !got.Expires.Deadline(read).Equal(at) {
		t.Fatalf("expires %+v, want absolute %v", got.Expires, at)
	}
	if e := content.ExpiresAt(time.Unix(1<<40, 0)); e.Time != 1<<32-1 {
		t.Errorf("far future clamps to %d", e.Time)
	}
	if e := content.ExpiresAfter(0); e.Time != 1 {
		t.Errorf("zero duration gives %d seconds, want 1", e.Time)
	}
}

// TestMultipartSemantics: the three multipart semantics, nested, with
// implied part indexes and text chosen from alternatives.
func TestMultipartSemantics(t *testing.T) {
	c := &conversation{t: t, room: "mimi://green.example/r/lobby"}
	body := content.Multipart(content.ProcessAll,
		content.Multipart(content.ChooseOne, content.TextPart("hello"), content.MarkdownPart("**hello**")),
		content.Multipart(content.SingleUnit, content.InlinePart("image/png", []byte{0x89, 'P', 'N', 'G'}),
			content.InlinePart("text/html;charset=utf-8", []byte(`<img src="cid:5@local.invalid">`))),
	)
	_, got := c.send("mimi://green.example/u/alice", content.New(body))
	if got.Kind() != content.KindMultipart || got.PartCount() != 7 {
		t.Fatalf("kind %v with %d parts", got.Kind(), got.PartCount())
	}
	var seen []content.Semantics
	got.Walk(func(i, depth int, p *content.Part) bool {
		if p.Cardinality == content.MultiPart {
			seen = append(seen, p.Semantics)
		}
		return true
	})
	if len(seen) != 3 || seen[0] != content.ProcessAll || seen[1] != content.ChooseOne || seen[2] != content.SingleUnit {
		t.Errorf("semantics %v", seen)
	}
	if p, _ := got.Part(5); p.ContentType != "image/png" {
		t.Errorf("part 5 is %q, want the image", p.ContentType)
	}
	if got.Text() != "**hello**" {
		t.Errorf("Text = %q, want the Markdown alternative", got.Text())
	}
}

// TestAttachmentRoundTrip: Bob seals a file, "uploads" it, sends the
// attachment; Cathy opens what she downloads, and tampering is caught.
func TestAttachmentRoundTrip(t *testing.T) {
	file := bytes.Repeat([]byte("key signing video "), 1000)
	ct, ext, err := content.SealAttachment(file)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(ct, file[:64]) {
		t.Fatal("ciphertext contains the plaintext")
	}
	ext.URL, ext.Filename, ext.Description = "https://blue.example/files/abc", "video.mp4", "the video"
	c := &conversation{t: t, room: "mimi://green.example/r/lobby"}
	_, got := c.send("mimi://blue.example/u/bob", content.Attachment("video/mp4", ext))
	if got.Kind() != content.KindAttachment {
		t.Fatalf("kind %v", got.Kind())
	}
	a := got.Attachments()[0]
	if a.ContentType != "video/mp4" || a.Disposition != content.DispAttachment || a.External.EncAlg != content.EncAES128GCM ||
		a.External.HashAlg != content.HashSHA256 || a.External.Size != uint64(len(ct)) || a.External.Filename != "video.mp4" {
		t.Fatalf("attachment %+v", a)
	}
	pt, err := content.OpenAttachment(a.External, ct)
	if err != nil || !bytes.Equal(pt, file) {
		t.Fatalf("OpenAttachment: %v", err)
	}
	bad := append([]byte{}, ct...)
	bad[10] ^= 1
	if _, err := content.OpenAttachment(a.External, bad); !errors.Is(err, content.ErrIntegrity) {
		t.Errorf("tampered download: %v, want ErrIntegrity", err)
	}
	noHash := a.External
	noHash.HashAlg, noHash.ContentHash = content.HashNone, nil
	if _, err := content.OpenAttachment(noHash, bad); !errors.Is(err, content.ErrIntegrity) {
		t.Errorf("tampered download without hash: %v, want ErrIntegrity (GCM tag)", err)
	}
	if _, err := content.OpenAttachment(a.External, ct[:len(ct)-1]); !errors.Is(err, content.ErrIntegrity) {
		t.Errorf("short download: %v, want ErrIntegrity", err)
	}
	other := a.External
	other.EncAlg = 3
	if _, err := content.OpenAttachment(other, ct); !errors.Is(err, content.ErrUnsupported) {
		t.Errorf("unknown algorithm: %v, want ErrUnsupported", err)
	}
}

// TestUnknownsPassThrough: a proprietary part, an unassigned disposition
// and private and future extensions come back byte for byte.
func TestUnknownsPassThrough(t *testing.T) {
	m := content.New(content.Multipart(content.ChooseOne,
		content.TextPart("fallback"),
		content.Part{Disposition: 200, Language: "x-klingon", Cardinality: content.SinglePart,
			ContentType: "application/vnd.example-fancy", Content: []byte{0, 1, 2, 0xff}},
	))
	for k, v := range map[content.ExtKey]any{
		content.IntKey(-7):           "private",
		content.TextKey("x-example"): map[string]any{"a": []any{1, 2}},
		content.IntKey(256):          []any{[]any{[]byte{0x12, 0x34}, 7}},
	} {
		if err := m.SetExtension(k, v); err != nil {
			t.Fatalf("SetExtension(%v): %v", k, err)
		}
	}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := content.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := got.Encode(); !bytes.Equal(again, b) {
		t.Fatal("re-encoding changed the message")
	}
	if d := got.Body.Parts[1].Disposition; d != 200 || d.Effective() != content.DispRender {
		t.Errorf("disposition %v (effective %v)", d, d.Effective())
	}
	var s string
	if ok, err := got.Extension(content.IntKey(-7), &s); !ok || err != nil || s != "private" {
		t.Errorf("extension -7 = %q, %v, %v", s, ok, err)
	}
	if got.Text() != "fallback" {
		t.Errorf("Text = %q", got.Text())
	}
	if got.Kind() != content.KindMultipart {
		t.Errorf("kind %v", got.Kind())
	}
}

// TestDerivedExtendedTime: derived values with an RFC 9581 extended time
// instead of milliseconds round-trip, and other tags are refused.
func TestDerivedExtendedTime(t *testing.T) {
	d := content.Derived{MessageID: content.ID{1, 2}, ExtendedTimestamp: raw("d9 03e9 a1 01 1a 6203 6674"),
		MLSGroupID: []byte{9}, SenderLeafIndex: 4, SenderClientURL: "c", SenderUserURL: "u", RoomURL: "r"}
	b, err := d.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := content.DecodeDerived(b)
	if err != nil || !bytes.Equal(got.ExtendedTimestamp, d.ExtendedTimestamp) || got.HubTimestamp != 0 || got.RoomURL != "r" {
		t.Fatalf("DecodeDerived = %+v, %v", got, err)
	}
	d.ExtendedTimestamp = raw("c1 00")
	if _, err := d.Encode(); !errors.Is(err, content.ErrMalformed) {
		t.Errorf("tag 1: %v", err)
	}
}
