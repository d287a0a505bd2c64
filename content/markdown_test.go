package content_test

import (
	"testing"

	"github.com/switchboard-chat/switchboard/content"
)

// TestNoHTML: raw HTML in Markdown is defused before sending, while
// autolinks, comparisons and code stay as written.
func TestNoHTML(t *testing.T) {
	cases := []struct{ in, want string }{
		{"plain text", "plain text"},
		{"<b>bold</b>", "&lt;b>bold&lt;/b>"},
		{`<img src="x" onerror="y">`, `&lt;img src="x" onerror="y">`},
		{"<br/>", "&lt;br/>"},
		{"<br>", "&lt;br>"},
		{"<!-- hidden -->", "&lt;!-- hidden -->"},
		{"<?php ?>", "&lt;?php ?>"},
		{"<![CDATA[x]]>", "&lt;![CDATA[x]]>"},
		{"see <mimi://example.com/u/alice>", "see <mimi://example.com/u/alice>"},
		{"mail <alice@example.com>", "mail <alice@example.com>"},
		{"1 < 2 and 3 <4", "1 < 2 and 3 <4"},
		{"I <3 it", "I <3 it"},
		{"code `<b>` stays", "code `<b>` stays"},
		{"``a `<b>` c`` <i>", "``a `<b>` c`` &lt;i>"},
		{"unclosed ` <b>", "unclosed ` &lt;b>"},
		{"\\<b> escaped", "\\<b> escaped"},
		{"```html\n<b>x</b>\n```\n<b>y</b>", "```html\n<b>x</b>\n```\n&lt;b>y&lt;/b>"},
		{"~~~~\n<p>\n~~~\n<p>\n~~~~\n<p>", "~~~~\n<p>\n~~~\n<p>\n~~~~\n&lt;p>"},
		{"trailing <", "trailing <"},
		{"<div", "&lt;div"},
	}
	for _, c := range cases {
		if got := content.NoHTML(c.in); got != c.want {
			t.Errorf("NoHTML(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if m := content.Markdown("<b>hi</b>"); string(m.Body.Content) != "&lt;b>hi&lt;/b>" {
		t.Errorf("Markdown kept HTML: %q", m.Body.Content)
	}
}

// TestMentions: the four mention forms the draft shows, in Markdown and
// HTML, and links that are not mentions.
func TestMentions(t *testing.T) {
	uri := "mimi://example.com/u/alice-smith"
	for _, link := range []string{
		content.MentionLink("", uri),
		content.MentionLink(uri, uri),
		content.MentionLink("@AliceSmith", uri),
		content.MentionLink("Alice", uri),
	} {
		m := content.Markdown("hi " + link + ", see [docs](https://example.com/x)")
		if got := m.Mentions(); len(got) != 1 || got[0] != uri {
			t.Errorf("Mentions of %q = %q", link, got)
		}
	}
	if got := content.MentionLink("a]b", uri); got != `[a\]b](mimi://example.com/u/alice-smith)` {
		t.Errorf("MentionLink escapes to %q", got)
	}
	html := content.New(content.InlinePart(content.TypeHTML,
		[]byte(`<a href='mimi://x.example/u/bob'>Bob</a> and <a href="im:carol@x.example">Carol</a> and <a href="mimi://x.example/u/bob">again</a>`)))
	if got := html.Mentions(); len(got) != 2 || got[0] != "mimi://x.example/u/bob" || got[1] != "im:carol@x.example" {
		t.Errorf("HTML mentions %q", got)
	}
	if got := content.Text("[x](mimi://x.example/u/bob)").Mentions(); len(got) != 0 {
		t.Errorf("plain text has mentions %q", got)
	}
}
