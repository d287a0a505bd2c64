package content

import (
	"strings"
)

// NoHTML applies GFM-MIMI's "No HTML" rule to Markdown before sending: the
// opening "<" of anything that GFM could read as raw HTML (an open or
// closing tag, a comment, a processing instruction, a declaration or a
// CDATA section) becomes "&lt;", which Markdown renders as "<". Autolinks
// such as <mimi://example.com/u/alice> are not HTML and stay. Code spans
// and fenced code blocks are left alone, since HTML there is already text;
// indented code blocks are not recognised and are escaped like prose.
//
// The test for a tag is deliberately loose: it escapes "<" followed by a
// tag name and then a space, "/", ">" or the end, or by "/", "!" or "?".
// Escaping something GFM would not have read as a tag changes nothing in
// the rendered text.
func NoHTML(md string) string {
	if !strings.Contains(md, "<") {
		return md
	}
	var out strings.Builder
	out.Grow(len(md) + 16)
	fence := "" // the opening fence of the code block we are in, if any
	for line := range strings.Lines(md) {
		if f := fenceOf(line); f != "" {
			switch {
			case fence == "":
				fence = f
				out.WriteString(line)
				continue
			case f[0] == fence[0] && len(f) >= len(fence) && strings.TrimSpace(line) == f:
				fence = ""
				out.WriteString(line)
				continue
			}
		}
		if fence != "" {
			out.WriteString(line)
			continue
		}
		escapeLine(&out, line)
	}
	return out.String()
}

// fenceOf returns the code fence (``` or ~~~, three or more) that opens
// line after at most three spaces, or "".
func fenceOf(line string) string {
	t := strings.TrimLeft(line, " ")
	if len(line)-len(t) > 3 || len(t) < 3 || (t[0] != '`' && t[0] != '~') {
		return ""
	}
	n := 0
	for n < len(t) && t[n] == t[0] {
		n++
	}
	if n < 3 {
		return ""
	}
	return t[:n]
}

// escapeLine writes line with HTML openers escaped outside code spans.
// (A code span that spans lines is treated as closed at the line's end.)
func escapeLine(out *strings.Builder, line string) {
	for i := 0; i < len(line); {
		switch c := line[i]; {
		case c == '`':
			n := run(line[i:], '`')
			if end := closingRun(line[i+n:], n); end >= 0 {
				out.WriteString(line[i : i+n+end+n])
				i += n + end + n
			} else {
				out.WriteString(line[i : i+n])
				i += n
			}
		case c == '\\' && i+1 < len(line):
			out.WriteString(line[i : i+2])
			i += 2
		case c == '<' && htmlOpener(line[i+1:]):
			out.WriteString("&lt;")
			i++
		default:
			out.WriteByte(c)
			i++
		}
	}
}

func run(s string, c byte) int {
	n := 0
	for n < len(s) && s[n] == c {
		n++
	}
	return n
}

// closingRun finds a run of exactly n backticks in s and returns its offset.
func closingRun(s string, n int) int {
	for i := 0; i < len(s); {
		if s[i] != '`' {
			i++
			continue
		}
		k := run(s[i:], '`')
		if k == n {
			return i
		}
		i += k
	}
	return -1
}

// htmlOpener reports whether s, the text after a "<", could make it the
// start of raw HTML rather than text or an autolink.
func htmlOpener(s string) bool {
	if s == "" {
		return false
	}
	switch s[0] {
	case '/', '!', '?':
		return true
	}
	if !isASCIILetter(s[0]) {
		return false
	}
	i := 1
	for i < len(s) && (isASCIILetter(s[i]) || s[i] >= '0' && s[i] <= '9' || s[i] == '-') {
		i++
	}
	if i == len(s) {
		return true
	}
	switch s[i] {
	case ' ', '\t', '\n', '\r', '/', '>':
		return true
	}
	return false // ":" (a URI autolink), "@" or "." (an email autolink), or not a tag
}

func isASCIILetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

// MentionLink is Markdown that mentions uri (a user's or room's MIMI URI)
// with display as the sender's suggested text, as in the draft's examples:
// [@Alice Smith](mimi://example.com/u/alice-smith). With display "" it is
// the autolink <uri>, leaving the rendering to the receiver.
func MentionLink(display, uri string) string {
	if display == "" {
		return "<" + uri + ">"
	}
	var b strings.Builder
	b.WriteByte('[')
	for _, r := range display {
		if strings.ContainsRune(`\[]*_<>`+"`", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteString("](")
	if strings.ContainsAny(uri, " ()<>") {
		b.WriteString("<" + strings.NewReplacer("<", "%3C", ">", "%3E").Replace(uri) + ">")
	} else {
		b.WriteString(uri)
	}
	b.WriteByte(')')
	return b.String()
}

// mentionSchemes are the URI schemes whose links are mentions.
var mentionSchemes = []string{"mimi:", "im:"}

// findMentions appends to dst the mimi: and im: URIs linked from Markdown
// (inline links "(uri)" and autolinks "<uri>") or HTML (href="uri" or
// href='uri') in text, skipping those already in dst.
func findMentions(dst []string, text string) []string {
	for i := 0; i < len(text); i++ {
		var end byte
		switch text[i] {
		case '(':
			end = ')'
		case '<':
			end = '>'
		case '"':
			end = '"'
		case '\'':
			end = '\''
		default:
			continue
		}
		rest := text[i+1:]
		if end == ')' && strings.HasPrefix(rest, "<") { // [x](<uri>)
			continue
		}
		scheme := false
		for _, s := range mentionSchemes {
			if len(rest) >= len(s) && strings.EqualFold(rest[:len(s)], s) {
				scheme = true
			}
		}
		if !scheme {
			continue
		}
		j := strings.IndexByte(rest, end)
		if j < 0 {
			continue
		}
		uri := rest[:j]
		if strings.ContainsAny(uri, " \t\r\n<>\"'") {
			continue
		}
		dup := false
		for _, u := range dst {
			dup = dup || u == uri
		}
		if !dup {
			dst = append(dst, uri)
		}
		i += j
	}
	return dst
}
