// Package content implements the MIMI content format
// (draft-ietf-mimi-content): the CBOR message that Switchboard clients put
// inside MLS application messages.
//
// A Message has a random salt, the optional message IDs it replaces or
// replies to, a topic, an expiration, an extensions map (where the sender
// and room URIs go) and a body Part, which is empty (NullPart), inline
// content (SinglePart), content at a URL (ExternalPart) or two or more
// nested parts (MultiPart). Decode reads a message and Encode writes it in
// deterministic CBOR, so Encode(Decode(b)) gives back b for every canonical
// b; unknown content types, dispositions and extensions pass through
// unchanged. MessageID computes the draft's message ID of encoded content.
//
// Constructors make the messages a chat client sends: Text, Markdown,
// Reply, Reaction, Unlike, Edit, Delete, Attachment, with WithExpiry,
// WithTopic and friends to add the rest. Kind, Text, Reactions, Mentions
// and Attachments read a received message's meaning. SealAttachment and
// OpenAttachment encrypt and check the files that external parts point to.
//
// Every error is an *Error with a stable Code; nothing here panics on
// input. docs/content.md explains the choices. The package imports nothing
// of ours.
package content
