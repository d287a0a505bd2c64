package content

import (
	"mime"
	"strings"
)

// Kind is what a message means to a chat client.
type Kind uint8

// The kinds of message, from Message.Kind.
const (
	KindUnknown    Kind = iota // none of the below, such as an empty body that replaces nothing
	KindText                   // a text body (plain, Markdown or HTML); a reply if InReplyTo is set
	KindReaction               // a reaction (disposition reaction) to InReplyTo
	KindUnlike                 // withdraws the reaction in Replaces (an empty reaction part)
	KindEdit                   // a new version of the message in Replaces
	KindDelete                 // retracts the message in Replaces (an empty part)
	KindAttachment             // a body that is an external part (a file at a URL)
	KindSession                // a multimedia session to join (disposition session)
	KindMultipart              // a multipart body that is not a set of reactions
	KindMedia                  // a single inline part of another type, such as an image or a proprietary format
)

var kindNames = [...]string{"unknown", "text", "reaction", "unlike", "edit", "delete", "attachment", "session", "multipart", "media"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(?)"
}

// Kind classifies the message by its replaces field and its body:
// replacing with an empty part is a delete (an unlike if the part's
// disposition is reaction), replacing with content is an edit; otherwise a
// reaction disposition makes a reaction, and the body's shape and type
// decide the rest. A reply is any message with InReplyTo set (IsReply).
func (m *Message) Kind() Kind {
	b := &m.Body
	d := b.Disposition.Effective()
	if m.Replaces != nil {
		switch {
		case b.Cardinality == NullPart && d == DispReaction:
			return KindUnlike
		case b.Cardinality == NullPart:
			return KindDelete
		}
		return KindEdit
	}
	switch {
	case b.Cardinality == NullPart:
		return KindUnknown
	case d == DispReaction:
		return KindReaction
	case d == DispSession:
		return KindSession
	case b.Cardinality == ExternalPart:
		return KindAttachment
	case b.Cardinality == MultiPart:
		return KindMultipart
	case b.IsText():
		return KindText
	}
	return KindMedia
}

// IsReply reports whether the message is a reply to (or reaction to)
// another message.
func (m *Message) IsReply() bool { return m.InReplyTo != nil }

// Walk calls fn for each part of the body depth-first, with the part's
// implied index (0 for the body) and level (1 for the body), until fn
// returns false.
func (m *Message) Walk(fn func(index, depth int, p *Part) bool) {
	i := 0
	walk(&m.Body, 1, &i, fn)
}

func walk(p *Part, depth int, i *int, fn func(int, int, *Part) bool) bool {
	index := *i
	*i++
	if !fn(index, depth, p) {
		return false
	}
	for k := range p.Parts {
		if !walk(&p.Parts[k], depth+1, i, fn) {
			return false
		}
	}
	return true
}

// Part returns the part with implied index i, as a content ID URI
// "cid:i@local.invalid" names it.
func (m *Message) Part(i int) (*Part, bool) {
	var found *Part
	m.Walk(func(index, _ int, p *Part) bool {
		if index == i {
			found = p
			return false
		}
		return true
	})
	return found, found != nil
}

// PartCount is the number of parts in the body, the body included.
func (m *Message) PartCount() int {
	n := 0
	m.Walk(func(int, int, *Part) bool { n++; return true })
	return n
}

// MediaType is the part's media type without parameters, in lower case
// ("" if it has none or it does not parse).
func (p *Part) MediaType() string {
	t, _, err := mime.ParseMediaType(p.ContentType)
	if err != nil {
		return ""
	}
	return t
}

// IsText reports whether the part is inline text every MIMI client can
// show: text/plain, text/markdown or text/html.
func (p *Part) IsText() bool {
	if p.Cardinality != SinglePart {
		return false
	}
	switch p.MediaType() {
	case "text/plain", "text/markdown", "text/html":
		return true
	}
	return false
}

// textRank orders text types by preference: GFM-MIMI Markdown, other
// Markdown, plain text, HTML. Lower is better; -1 is not text.
func (p *Part) textRank() int {
	if !p.IsText() {
		return -1
	}
	t, params, _ := mime.ParseMediaType(p.ContentType)
	switch {
	case t == "text/markdown" && strings.EqualFold(params["variant"], "GFM-MIMI"):
		return 0
	case t == "text/markdown":
		return 1
	case t == "text/plain":
		return 2
	}
	return 3
}

// TextPart is the text a client that shows one text should show: the body
// if it is text, else, among the text parts of a chooseOne multipart (or
// failing that, of the whole body), the one with the preferred type
// (GFM-MIMI Markdown, other Markdown, plain, HTML), first one first.
func (m *Message) TextPart() (*Part, bool) {
	if m.Body.IsText() {
		return &m.Body, true
	}
	var best *Part
	consider := func(p *Part) {
		if r := p.textRank(); r >= 0 && (best == nil || r < best.textRank()) {
			best = p
		}
	}
	if m.Body.Cardinality == MultiPart && m.Body.Semantics == ChooseOne {
		for i := range m.Body.Parts {
			consider(&m.Body.Parts[i])
		}
	}
	if best == nil {
		m.Walk(func(_, _ int, p *Part) bool { consider(p); return true })
	}
	return best, best != nil
}

// Text is the content of TextPart, or "".
func (m *Message) Text() string {
	if p, ok := m.TextPart(); ok {
		return string(p.Content)
	}
	return ""
}

// Reactions are the text reactions the message carries: the body's content
// if it is a text part with the reaction disposition, or each such part
// of a multipart of reactions. Empty for an unlike or a non-reaction.
func (m *Message) Reactions() []string {
	var out []string
	m.Walk(func(_, _ int, p *Part) bool {
		if p.Disposition == DispReaction && p.IsText() {
			out = append(out, string(p.Content))
		}
		return true
	})
	return out
}

// Attachments are the message's external parts, in part order.
func (m *Message) Attachments() []*Part {
	var out []*Part
	m.Walk(func(_, _ int, p *Part) bool {
		if p.Cardinality == ExternalPart {
			out = append(out, p)
		}
		return true
	})
	return out
}

// Mentions are the mimi: and im: URIs linked from the message's Markdown
// and HTML parts, each once, in order of appearance. The draft counts a
// link to a member of the room as a mention; checking membership, and
// showing the member's canonical name rather than the sender's link text,
// is the receiving client's job.
func (m *Message) Mentions() []string {
	var out []string
	m.Walk(func(_, _ int, p *Part) bool {
		if p.IsText() && p.MediaType() != "text/plain" {
			out = findMentions(out, string(p.Content))
		}
		return true
	})
	return out
}
