package content_test

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchboard-chat/switchboard/content"
)

// examplesDir finds the draft's examples: $MIMI_CONTENT_EXAMPLES, or
// shared/specs/mimi-content-examples beside the repository.
func examplesDir(tb testing.TB) string {
	dir := os.Getenv("MIMI_CONTENT_EXAMPLES")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "specs", "mimi-content-examples")
	}
	if _, err := os.Stat(filepath.Join(dir, "original.cbor")); err != nil {
		tb.Skipf("the draft's examples are not at %s (set MIMI_CONTENT_EXAMPLES): %v", dir, err)
	}
	return dir
}

func readExample(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(examplesDir(tb), name+".cbor"))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func mustID(tb testing.TB, s string) content.ID {
	tb.Helper()
	id, err := content.ParseID(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

func unhex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// The message IDs the examples' EDN gives in comments.
const (
	originalID = "017ce54837404c3696e0c747b985cb17 2716d0ed0a3d249ca63ace7d82a096f4"
	replyID    = "015354973c2b65ca937bf1e035ae53a5 ab80e947afa43d46920d4202e5cc0b27"
	reactionID = "0158c4288911e50a8f6be3f47746b668 2f10fd91bc8c05557aa589a3157aff68"
	room       = "mimi://example.com/r/engineering_team"
	alice      = "mimi://example.com/u/alice-smith"
	bob        = "mimi://example.com/u/bob-jones"
	cathy      = "mimi://example.com/u/cathy-washington"
)

type example struct {
	name   string
	sender string // the senderUri extension, which is also the ID's sender
	id     string // the message ID in the EDN's comment
	check  func(t *testing.T, m *content.Message)
}

// examples: for each of the draft's examples, what its EDN says it means.
var examples = []example{
	{"original", alice, originalID, func(t *testing.T, m *content.Message) {
		expectKind(t, m, content.KindText)
		expectSinglePart(t, &m.Body, content.DispRender, "", content.TypeMarkdown,
			"Hi everyone, we just shipped release 2.0. __Good  work__!")
		expectNoRelations(t, m, false, false)
	}},
	{"reply", bob, replyID, func(t *testing.T, m *content.Message) {
		expectKind(t, m, content.KindText)
		expectRef(t, "inReplyTo", m.InReplyTo, originalID)
		expectRef(t, "replaces", m.Replaces, "")
		if !m.IsReply() {
			t.Error("IsReply = false")
		}
		expectSinglePart(t, &m.Body, content.DispRender, "", content.TypeMarkdown, "Right on! _Congratulations_ 'all!")
	}},
	{"reaction", cathy, reactionID, func(t *testing.T, m *content.Message) {
		expectKind(t, m, content.KindReaction)
		expectRef(t, "inReplyTo", m.InReplyTo, originalID)
		// The EDN's comment says U+2665, but its content is U+2764 (e2 9d a4).
		expectSinglePart(t, &m.Body, content.DispReaction, "", content.TypePlainText, "\u2764")
		expectStrings(t, "Reactions", m.Reactions(), "\u2764")
	}},
	{"mention", cathy, "018d825adf9f6be00dcafc5704c4102f 5022e74219d0b603e4ba7622654042af", func(t *testing.T, m *content.Message) {
		expectKind(t, m, content.KindText)
		expectRef(t, "inReplyTo", m.InReplyTo, originalID)
		expectSinglePart(t, &m.Body, content.DispRender, "", content.TypeMarkdown,
			"Kudos to [@Alice Smith](mimi://example.com/u/alice-smith) for making the release happen!")
		expectStrings(t, "Mentions", m.Mentions(), alice)
	}},
	{"mention-html", cathy, "01967ff8e9a66819738ad5cf26d2e038 8a3b81d86b0f61d129c077d043ee2a4e", func(t *testing.T, m *content.Message) {
		expectKind(t, m, content.KindText)
		expectSinglePart(t, &m.Body, content.DispRender, "", content.TypeHTML,
			`<p>Kudos to <a href="mimi://example.com/u/alice-smith">@Alice Smith</a> for making the release happen!</p>`)
		expectStrings(t, "Mentions", m.Mentions(), alice)
	}},
	{"edit", bob, "014028c0deddbdea56bec26172f6ede9 53d11024cb82b8192b5e2aea62d7fb47", func(t *testing.T, m *content.Message) {
		expectKind(t, m, content.KindEdit)
		expectRef(t, "replaces", m.Replaces, replyID)
		expectRef(t, "inReplyTo", m.InReplyTo, originalID)
		expectSinglePart(t, &m.Body, content.DispRender, "", content.TypeMarkdown, "Right on! _Congratulations_ y'all!")
	}},
	{"delete", bob, "011d9efc78d04d4dcf4d82b07d5199bb ef37011c1f0c7e004b6111c6dda504b4", func(t *testing.T, m *content.Message) {
		expectKind(t, m, content.KindDelete)
		expectRef(t, "replaces", m.Replaces, replyID)
		expectRef(t, "inReplyTo", m.InReplyTo, originalID)
		expectNullPart(t, &m.Body, content.DispRender)
	}},
	{"unlike", cathy, "013aadbb8f313253c8930f4e93c6ca54 b2ed06d258185bdcec3870534c8a4ec4", func(t *testing.T, m *content.Message) {
		expectKind(t, m, content.KindUnlike)
		expectRef(t, "replaces", m.Replaces, reactionID)
		expectRef(t, "inReplyTo", m.InReplyTo, originalID)
		expectNullPart(t, &m.Body, content.DispReaction)
		if r := m.Reactions(); len(r) != 0 {
			t.Errorf("Reactions = %q, want none", r)
		}
	}},
	{"expiring", alice, "01e59db8173939facc2c8a4a0f0ae8d0 c7a11a81239626630c9464a8d6717a03", func(t *testing.T, m *content.Message) {
		expectKind(t, m, content.KindText)
		if m.Expires == nil || *m.Expires != (content.Expiration{Relative: false, Time: 1644390004}) {
			t.Errorf("Expires = %+v, want absolute 1644390004", m.Expires)
		}
		expectSinglePart(t, &m.Body, content.DispRender, "", content.TypeMarkdown,
			"__*VPN GOING DOWN*__ I'm rebooting the VPN in ten minutes unless anyone objects.")
	}},
	{"attachment", bob, "0176180c7d19a925021fe446d241134d 05c38e0d999cdc0f39c391d2377ed9d1", func(t *testing.T, m *content.Message) {
		expectKind(t, m, content.KindAttachment)
		expectNoRelations(t, m, false, false)
		p := &m.Body
		if p.Disposition != content.DispAttachment || p.Language != "en" || p.Cardinality != content.ExternalPart || p.ContentType != "video/mp4" {
			t.Errorf("body = %v %q %v %q, want attachment \"en\" external \"video/mp4\"", p.Disposition, p.Language, p.Cardinality, p.ContentType)
		}
		want := content.External{
			URL:         "https://example.com/storage/8ksB4bSrrRE.mp4",
			Expires:     0,
			Size:        708234961,
			EncAlg:      content.EncAES128GCM,
			Key:         unhex(t, "21399320958a6f4c745dde670d95e0d8"),
			Nonce:       unhex(t, "c86cf2c33f21527d1dd76f5b"),
			AAD:         []byte{},
			HashAlg:     content.HashSHA256,
			ContentHash: unhex(t, "9ab17a8cf0890baaae7ee016c7312fcc 080ba46498389458ee44f0276e783163"),
			Description: "2 hours of key signing video",
			Filename:    "bigfile.mp4",
		}
		expectExternal(t, p.External, want)
		if a := m.Attachments(); len(a) != 1 || a[0] != p {
			t.Errorf("Attachments = %v, want the body", a)
		}
	}},
	{"conferencing", alice, "01496d15a8dba28d7397f9868b70768e 4a67f765d5b5b1ae9e03848c5fdeb0ba", func(t *testing.T, m *content.Message) {
		expectKind(t, m, content.KindSession)
		if string(m.TopicID) != "Foo 118" {
			t.Errorf("TopicID = %q, want \"Foo 118\"", m.TopicID)
		}
		p := &m.Body
		if p.Disposition != content.DispSession || p.Cardinality != content.ExternalPart || p.ContentType != "" {
			t.Errorf("body = %v %v %q, want session external \"\"", p.Disposition, p.Cardinality, p.ContentType)
		}
		expectExternal(t, p.External, content.External{
			URL: "https://example.com/join/12345", Key: []byte{}, Nonce: []byte{}, AAD: []byte{}, ContentHash: []byte{},
			Description: "Join the Foo 118 conference",
		})
	}},
	{"multipart-1", alice, "01da5a515ec5db42cc4dcc19b90c3c31 245d8a1cfcce11318f24eb11dce0990e", func(t *testing.T, m *content.Message) {
		expectKind(t, m, content.KindMultipart)
		expectMulti(t, &m.Body, content.DispRender, content.ChooseOne, 2)
		expectSinglePart(t, &m.Body.Parts[0], content.DispRender, "", content.TypeMarkdown, "# Welcome!")
		expectSinglePart(t, &m.Body.Parts[1], content.DispRender, "", "application/vnd.examplevendor-fancy-im-message",
			string(unhex(t, "dc861ebaa718fd7c3ca159f71a2001")))
		if got := m.Text(); got != "# Welcome!" {
			t.Errorf("Text = %q, want the Markdown alternative", got)
		}
		if m.PartCount() != 3 {
			t.Errorf("PartCount = %d, want 3", m.PartCount())
		}
	}},
	{"multipart-2", alice, "01d65918c6c51c8e76546337276ae6f4 bfd873d867d5cb57c76bcdca3d999dd7", func(t *testing.T, m *content.Message) {
		expectKind(t, m, content.KindReaction)
		expectMulti(t, &m.Body, content.DispReaction, content.ProcessAll, 3)
		expectStrings(t, "Reactions", m.Reactions(), "\u2764", "\U0001F973", "\U0001F91E")
	}},
	{"multipart-3", alice, "01cfebeadbdb83c1eefb6403ba4852da f8bbbf9cd53bf5035a74d5d741950c9f", func(t *testing.T, m *content.Message) {
		expectKind(t, m, content.KindMultipart)
		expectMulti(t, &m.Body, content.DispRender, content.ChooseOne, 2)
		if m.PartCount() != 11 {
			t.Fatalf("PartCount = %d, want 11", m.PartCount())
		}
		// The draft's table of the 11 parts, by implied part index.
		table := []struct {
			card  content.Cardinality
			sem   content.Semantics
			lang  string
			ctype string
		}{
			{content.MultiPart, content.ChooseOne, "", ""},
			{content.MultiPart, content.ProcessAll, "", ""},
			{content.MultiPart, content.ChooseOne, "", ""},
			{content.SinglePart, 0, "en", content.TypeHTML},
			{content.SinglePart, 0, "fr", content.TypeHTML},
			{content.SinglePart, 0, "", "image/gif"},
			{content.MultiPart, content.ProcessAll, "", ""},
			{content.MultiPart, content.ChooseOne, "", ""},
			{content.SinglePart, 0, "en", content.TypeHTML},
			{content.SinglePart, 0, "fr", content.TypeHTML},
			{content.SinglePart, 0, "", "image/png"},
		}
		for i, want := range table {
			p, ok := m.Part(i)
			if !ok || p.Cardinality != want.card || p.Semantics != want.sem || p.Language != want.lang || p.ContentType != want.ctype {
				t.Errorf("part %d = %+v, want %+v", i, p, want)
			}
		}
		// The HTML refers to the images by part index.
		if en, _ := m.Part(3); !bytes.Contains(en.Content, []byte(`src="cid:5@local.invalid"`)) {
			t.Errorf("part 3 does not refer to cid:5: %q", en.Content)
		}
		if gif, _ := m.Part(5); gif.Disposition != content.DispInline || !bytes.Equal(gif.Content, unhex(t, "dc861ebaa718fd7c3ca159f71a2001a7")) {
			t.Errorf("part 5 = %+v, want the inline GIF", gif)
		}
		if png, _ := m.Part(10); png.Disposition != content.DispInline || !bytes.Equal(png.Content, unhex(t, "fa444237451a05a72bb0f67037cc1669")) {
			t.Errorf("part 10 = %+v, want the inline PNG", png)
		}
		if _, ok := m.Part(11); ok {
			t.Error("Part(11) found a part")
		}
	}},
}

// TestDraftExamples: each of the draft's example messages decodes to what
// its EDN says, re-encodes to exactly its bytes, and has the message ID
// its EDN gives when computed from its sender and room.
func TestDraftExamples(t *testing.T) {
	for _, ex := range examples {
		t.Run(ex.name, func(t *testing.T) {
			b := readExample(t, ex.name)
			m, err := content.Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			ex.check(t, m)
			if s, ok := m.SenderURI(); !ok || s != ex.sender {
				t.Errorf("SenderURI = %q, %v; want %q", s, ok, ex.sender)
			}
			if r, ok := m.RoomURI(); !ok || r != room {
				t.Errorf("RoomURI = %q, %v; want %q", r, ok, room)
			}
			if len(m.Extensions) != 2 {
				t.Errorf("%d extensions, want senderUri and roomUri only", len(m.Extensions))
			}
			if !bytes.Equal(m.Salt[:], b[2:18]) {
				t.Errorf("Salt = %x, want the first field %x", m.Salt, b[2:18])
			}
			again, err := m.Encode()
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if !bytes.Equal(again, b) {
				t.Fatalf("Encode(Decode(example)) differs:\n got %x\nwant %x", again, b)
			}
			if !content.IsCanonical(b) {
				t.Error("IsCanonical = false")
			}
			id, err := content.MessageID(ex.sender, room, b)
			if err != nil {
				t.Fatalf("MessageID: %v", err)
			}
			if want := mustID(t, ex.id); id != want {
				t.Errorf("MessageID = %s, the EDN says %s", id, want)
			}
		})
	}
}

// TestMessageIDChain: the IDs that the reply, reaction, edit, delete and
// unlike carry are the IDs computed from the messages they point to, with
// the sender and room of those messages.
func TestMessageIDChain(t *testing.T) {
	idOf := func(name, sender string) content.ID {
		id, err := content.MessageID(sender, room, readExample(t, name))
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	decode := func(name string) *content.Message {
		m, err := content.Decode(readExample(t, name))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	original, reply, reaction := idOf("original", alice), idOf("reply", bob), idOf("reaction", cathy)
	for _, name := range []string{"reply", "reaction", "mention", "mention-html", "edit", "delete", "unlike"} {
		if m := decode(name); m.InReplyTo == nil || *m.InReplyTo != original {
			t.Errorf("%s: inReplyTo = %v, want the ID of original.cbor %s", name, m.InReplyTo, original)
		}
	}
	for _, name := range []string{"edit", "delete"} {
		if m := decode(name); m.Replaces == nil || *m.Replaces != reply {
			t.Errorf("%s: replaces = %v, want the ID of reply.cbor %s", name, m.Replaces, reply)
		}
	}
	if m := decode("unlike"); m.Replaces == nil || *m.Replaces != reaction {
		t.Errorf("unlike: replaces = %v, want the ID of reaction.cbor %s", m.Replaces, reaction)
	}
}

// TestImpliedOriginal: the derived values of the original message decode
// as its EDN shows and re-encode to the same bytes. Its messageId is stale:
// the draft's -07 construction without the length prefixes, which the
// examples' EDN and this package no longer use.
func TestImpliedOriginal(t *testing.T) {
	b := readExample(t, "implied-original")
	d, err := content.DecodeDerived(b)
	if err != nil {
		t.Fatal(err)
	}
	want := content.Derived{
		HubTimestamp:    1644387225019,
		MLSGroupID:      unhex(t, "eeee0d12a7b5b5b78115ad1a1ddb1381 1c83fd7387c43e66799a594beeda26bf"),
		SenderLeafIndex: 4,
		SenderClientURL: "mimi://example.com/d/3b52249d-68f9-45ce-8bf5-c799f3cad7ec/0003",
		SenderUserURL:   alice,
		RoomURL:         room,
	}
	if d.HubTimestamp != want.HubTimestamp || !bytes.Equal(d.MLSGroupID, want.MLSGroupID) || d.SenderLeafIndex != want.SenderLeafIndex ||
		d.SenderClientURL != want.SenderClientURL || d.SenderUserURL != want.SenderUserURL || d.RoomURL != want.RoomURL || d.ExtendedTimestamp != nil {
		t.Errorf("derived = %+v\nwant %+v", d, want)
	}
	current := mustID(t, originalID)
	stale := mustID(t, "01b0084467273cc43d6f0ebeac13eb84 229c4fffe8f6c3594c905f47779e5a79")
	switch d.MessageID {
	case current:
		t.Log("implied-original.cbor now carries the current message ID")
	case stale:
		t.Log("implied-original.cbor carries the pre-length-prefix message ID (draft -07), not the one in its EDN")
	default:
		t.Errorf("messageId = %s, want %s", d.MessageID, current)
	}
	again, err := d.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, b) {
		t.Fatalf("Encode(DecodeDerived(example)) differs:\n got %x\nwant %x", again, b)
	}
}

func expectKind(t *testing.T, m *content.Message, want content.Kind) {
	t.Helper()
	if got := m.Kind(); got != want {
		t.Errorf("Kind = %v, want %v", got, want)
	}
}

func expectRef(t *testing.T, field string, got *content.ID, want string) {
	t.Helper()
	switch {
	case want == "" && got != nil:
		t.Errorf("%s = %s, want null", field, got)
	case want != "" && (got == nil || *got != mustID(t, want)):
		t.Errorf("%s = %v, want %s", field, got, strings.ReplaceAll(want, " ", ""))
	}
}

func expectNoRelations(t *testing.T, m *content.Message, replaces, inReplyTo bool) {
	t.Helper()
	if (m.Replaces != nil) != replaces || (m.InReplyTo != nil) != inReplyTo || len(m.TopicID) != 0 || m.Expires != nil {
		t.Errorf("replaces %v, inReplyTo %v, topic %q, expires %v: want none", m.Replaces, m.InReplyTo, m.TopicID, m.Expires)
	}
}

func expectSinglePart(t *testing.T, p *content.Part, d content.Disposition, lang, ctype, body string) {
	t.Helper()
	if p.Cardinality != content.SinglePart || p.Disposition != d || p.Language != lang || p.ContentType != ctype || string(p.Content) != body {
		t.Errorf("part = %v %v %q %q %q\nwant single %v %q %q %q", p.Cardinality, p.Disposition, p.Language, p.ContentType, p.Content, d, lang, ctype, body)
	}
}

func expectNullPart(t *testing.T, p *content.Part, d content.Disposition) {
	t.Helper()
	if p.Cardinality != content.NullPart || p.Disposition != d || p.Language != "" {
		t.Errorf("body = %v %v %q, want a null part with disposition %v", p.Cardinality, p.Disposition, p.Language, d)
	}
}

func expectMulti(t *testing.T, p *content.Part, d content.Disposition, s content.Semantics, n int) {
	t.Helper()
	if p.Cardinality != content.MultiPart || p.Disposition != d || p.Semantics != s || len(p.Parts) != n {
		t.Errorf("body = %v %v %v with %d parts, want multi %v %v with %d", p.Cardinality, p.Disposition, p.Semantics, len(p.Parts), d, s, n)
	}
}

func expectExternal(t *testing.T, got, want content.External) {
	t.Helper()
	if got.URL != want.URL || got.Expires != want.Expires || got.Size != want.Size || got.EncAlg != want.EncAlg ||
		!bytes.Equal(got.Key, want.Key) || !bytes.Equal(got.Nonce, want.Nonce) || !bytes.Equal(got.AAD, want.AAD) ||
		got.HashAlg != want.HashAlg || !bytes.Equal(got.ContentHash, want.ContentHash) ||
		got.Description != want.Description || got.Filename != want.Filename {
		t.Errorf("external = %+v\nwant %+v", got, want)
	}
}

func expectStrings(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\x00") != strings.Join(want, "\x00") || len(got) != len(want) {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}
