package federation

import (
	"fmt"

	"github.com/switchboard-chat/switchboard/mls"
)

// POST /notify/{roomId}: the hub fans a message it accepted out to the
// follower providers. A body is one or more FanoutMessages, concatenated.

// FanoutMessage is one message the hub fans out, with what travels with it.
//
// The draft selects on `message.wire_format` with the cases application,
// welcome, proposal and commit, which mixes wire formats and content types.
// Its evident intent, implemented here, is:
//
//   - a PrivateMessage of content type application: optional<Frank>;
//   - a Welcome: a RatchetTreeOption;
//   - a PublicMessage proposal: moreProposals (the same list as in the
//     HandshakeBundle that brought it);
//   - a PublicMessage commit: externalProposals, the hub's replacements for
//     pending proposals an external commit invalidated.
//
// Any other message is refused. The draft also selects on a protocol the
// struct does not carry: the room's, known to both ends, and MLS 1.0 here.
type FanoutMessage struct {
	// Timestamp is the hub's acceptance time in milliseconds since the
	// Unix epoch.
	Timestamp uint64
	Message   mls.MLSMessage

	Frank             *Frank            // application
	RatchetTree       RatchetTreeOption // Welcome
	MoreProposals     []mls.MLSMessage  // proposal
	ExternalProposals []mls.MLSMessage  // commit
}

// fanoutKind classifies a fanned-out message by the draft's four cases.
type fanoutKind int

const (
	fanoutApplication fanoutKind = iota + 1
	fanoutWelcome
	fanoutProposal
	fanoutCommit
)

func kindOf(m *mls.MLSMessage) (fanoutKind, error) {
	switch {
	case isApplication(m):
		return fanoutApplication, nil
	case m.WireFormat == mls.WireFormatWelcome && m.Welcome != nil:
		return fanoutWelcome, nil
	case m.WireFormat != mls.WireFormatPublicMessage && m.WireFormat != mls.WireFormatPrivateMessage:
		return 0, fmt.Errorf("%w: a fanout message is an application message, a Welcome, a proposal or a commit, not a %s", ErrInvalidMessage, wireFormatName(m.WireFormat))
	}
	ct, err := handshakeType(m)
	if err != nil {
		return 0, err
	}
	if ct == mls.ContentCommit {
		return fanoutCommit, nil
	}
	return fanoutProposal, nil
}

// MarshalMLS writes the message.
func (f *FanoutMessage) MarshalMLS(w *mls.Writer) {
	w.U64(f.Timestamp)
	f.Message.MarshalMLS(w)
	kind, err := kindOf(&f.Message)
	if err != nil {
		return // the decoder refuses such a message whatever follows
	}
	switch kind {
	case fanoutApplication:
		writeOptionalFrank(w, f.Frank)
	case fanoutWelcome:
		f.RatchetTree.MarshalMLS(w)
	case fanoutProposal:
		writeMessages(w, f.MoreProposals)
	case fanoutCommit:
		writeMessages(w, f.ExternalProposals)
	}
}

// UnmarshalMLS reads one message.
func (f *FanoutMessage) UnmarshalMLS(r *mls.Reader) {
	*f = FanoutMessage{}
	f.Timestamp = r.U64()
	f.Message.UnmarshalMLS(r)
	if r.Err() != nil {
		return
	}
	kind, err := kindOf(&f.Message)
	if err != nil {
		r.Fail(err)
		return
	}
	switch kind {
	case fanoutApplication:
		f.Frank = readOptionalFrank(r)
	case fanoutWelcome:
		f.RatchetTree.UnmarshalMLS(r)
	case fanoutProposal:
		f.MoreProposals = readProposals(r, "moreProposals")
	case fanoutCommit:
		f.ExternalProposals = readProposals(r, "externalProposals")
	}
}

// MarshalFanout returns the body of a notify request: the messages,
// concatenated. (Each is self-delimiting, so the draft needs no framing.)
func MarshalFanout(msgs ...FanoutMessage) []byte {
	w := mls.NewWriter(256)
	for i := range msgs {
		msgs[i].MarshalMLS(w)
	}
	return w.Bytes()
}

// SplitFanout decodes the body of a notify request into its messages, in
// order. An empty body, or one any part of which does not decode, is an
// error: a follower accepts all of a body or none of it.
func SplitFanout(body []byte) ([]FanoutMessage, error) {
	if len(body) == 0 {
		return nil, fmt.Errorf("%w: empty notify body", ErrInvalidMessage)
	}
	r := mls.NewReader(body)
	var out []FanoutMessage
	for !r.Empty() {
		var f FanoutMessage
		f.UnmarshalMLS(r)
		if err := r.Err(); err != nil {
			return nil, fmt.Errorf("fanout message %d: %w", len(out), err)
		}
		out = append(out, f)
	}
	return out, nil
}
