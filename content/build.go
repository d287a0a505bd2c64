package content

import "crypto/rand"

// New is a message with body and a fresh random salt, and nothing else.
func New(body Part) *Message {
	m := &Message{Body: body}
	rand.Read(m.Salt[:]) // crypto/rand.Read never fails (it crashes the program instead)
	return m
}

// TextPart is a plain text part (text/plain;charset=utf-8) to render.
func TextPart(body string) Part {
	return Part{Disposition: DispRender, Cardinality: SinglePart, ContentType: TypePlainText, Content: []byte(body)}
}

// MarkdownPart is a GFM-MIMI Markdown part to render. Any raw HTML in body
// is escaped first (see NoHTML), as GFM-MIMI requires.
func MarkdownPart(body string) Part {
	return Part{Disposition: DispRender, Cardinality: SinglePart, ContentType: TypeMarkdown, Content: []byte(NoHTML(body))}
}

// InlinePart is content of any media type, such as an image, to show in
// the conversation.
func InlinePart(contentType string, content []byte) Part {
	return Part{Disposition: DispInline, Cardinality: SinglePart, ContentType: contentType, Content: content}
}

// ExternalRef is a part for content at a URL with the given disposition
// (DispAttachment, DispInline, DispSession, ...).
func ExternalRef(d Disposition, contentType string, e External) Part {
	return Part{Disposition: d, Cardinality: ExternalPart, ContentType: contentType, External: e}
}

// Multipart is a part made of parts related by s (at least two of them).
func Multipart(s Semantics, parts ...Part) Part {
	return Part{Disposition: DispRender, Cardinality: MultiPart, Semantics: s, Parts: parts}
}

// Text is a plain text message.
func Text(body string) *Message { return New(TextPart(body)) }

// Markdown is a GFM-MIMI Markdown message. Use MentionLink to mention
// someone in it.
func Markdown(body string) *Message { return New(MarkdownPart(body)) }

// Reply is a message answering the message to with part.
func Reply(to ID, part Part) *Message { return New(part).WithReplyTo(to) }

// Reaction is a reaction to the message to: a single emoji (or other short
// text) with the reaction disposition. Several reactions are separate
// messages, or a ProcessAll multipart of reaction parts; never one text.
func Reaction(to ID, emoji string) *Message {
	p := TextPart(emoji)
	p.Disposition = DispReaction
	return New(p).WithReplyTo(to)
}

// Unlike withdraws the reaction sent as message reaction: it replaces that
// message with an empty reaction part. Like the draft's example, the caller
// may add WithReplyTo with the message the reaction was to.
func Unlike(reaction ID) *Message {
	m := New(Part{Disposition: DispReaction, Cardinality: NullPart})
	m.Replaces = &reaction
	return m
}

// Edit replaces the message of (the first version of the message, if it was
// edited before) with part. A replacement keeps the rest of the original's
// meaning: copy its InReplyTo and TopicID to the edit (WithReplyTo,
// WithTopic), as the draft's example does.
func Edit(of ID, part Part) *Message {
	m := New(part)
	m.Replaces = &of
	return m
}

// Delete retracts the message of (the first version, if it was edited): it
// replaces it with an empty part. As with Edit, keep the original's
// InReplyTo and TopicID.
func Delete(of ID) *Message {
	m := New(Part{Disposition: DispRender, Cardinality: NullPart})
	m.Replaces = &of
	return m
}

// Attachment is a message offering content kept at a URL for download,
// usually encrypted by SealAttachment, which fills e.
func Attachment(contentType string, e External) *Message {
	return New(ExternalRef(DispAttachment, contentType, e))
}

// WithReplyTo sets InReplyTo and returns m.
func (m *Message) WithReplyTo(to ID) *Message { m.InReplyTo = &to; return m }

// WithTopic sets TopicID and returns m.
func (m *Message) WithTopic(topic []byte) *Message { m.TopicID = topic; return m }

// WithExpiry sets Expires (see ExpiresAfter and ExpiresAt) and returns m.
func (m *Message) WithExpiry(e Expiration) *Message { m.Expires = &e; return m }

// WithLanguage sets the body's language and returns m.
func (m *Message) WithLanguage(lang string) *Message { m.Body.Language = lang; return m }

// WithSender sets the senderUri extension and returns m.
func (m *Message) WithSender(uri string) *Message { m.setText(SenderURIKey, uri); return m }

// WithRoom sets the roomUri extension and returns m.
func (m *Message) WithRoom(uri string) *Message { m.setText(RoomURIKey, uri); return m }

func (m *Message) setText(k ExtKey, s string) {
	b, _ := encMode.Marshal(s) // a Go string always encodes
	if m.Extensions == nil {
		m.Extensions = make(Extensions)
	}
	m.Extensions[k] = b
}
