package mlstest

import (
	"fmt"

	"github.com/switchboard-chat/switchboard/mls"
)

func init() {
	register("messages", has("mls_welcome", "commit"), runMessages)
}

type messagesCase struct {
	MLSWelcome                     Hex `json:"mls_welcome"`
	MLSGroupInfo                   Hex `json:"mls_group_info"`
	MLSKeyPackage                  Hex `json:"mls_key_package"`
	RatchetTree                    Hex `json:"ratchet_tree"`
	GroupSecrets                   Hex `json:"group_secrets"`
	AddProposal                    Hex `json:"add_proposal"`
	UpdateProposal                 Hex `json:"update_proposal"`
	RemoveProposal                 Hex `json:"remove_proposal"`
	PreSharedKeyProposal           Hex `json:"pre_shared_key_proposal"`
	ReInitProposal                 Hex `json:"re_init_proposal"`
	ExternalInitProposal           Hex `json:"external_init_proposal"`
	GroupContextExtensionsProposal Hex `json:"group_context_extensions_proposal"`
	Commit                         Hex `json:"commit"`
	PublicMessageApplication       Hex `json:"public_message_application"`
	PublicMessageProposal          Hex `json:"public_message_proposal"`
	PublicMessageCommit            Hex `json:"public_message_commit"`
	PrivateMessage                 Hex `json:"private_message"`
}

// proposalBody decodes and re-encodes one proposal body of type t.
type proposalBody struct {
	p mls.Proposal
}

func (b *proposalBody) MarshalMLS(w *mls.Writer)   { b.p.MarshalBody(w) }
func (b *proposalBody) UnmarshalMLS(r *mls.Reader) { b.p.UnmarshalBody(r) }

type codec interface {
	mls.Marshaler
	mls.Unmarshaler
}

// roundTrip decodes b into v, checks v's kind, and re-encodes it.
func roundTrip(name string, b []byte, v codec, check func() error) error {
	if err := mls.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: decode: %w", name, err)
	}
	if check != nil {
		if err := check(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	if got := mls.Marshal(v); !equal(got, b) {
		return mismatch(name+" re-encoding", got, b)
	}
	return nil
}

func wireFormat(m *mls.MLSMessage, want mls.WireFormat) func() error {
	return func() error {
		if m.WireFormat != want {
			return fmt.Errorf("wire format %d, want %d", m.WireFormat, want)
		}
		return nil
	}
}

func publicContent(m *mls.MLSMessage, want mls.ContentType) func() error {
	return func() error {
		if err := wireFormat(m, mls.WireFormatPublicMessage)(); err != nil {
			return err
		}
		if got := m.Public.Content.ContentType; got != want {
			return fmt.Errorf("content type %v, want %v", got, want)
		}
		return nil
	}
}

func runMessages(data []byte) (Result, error) {
	return runCases(data, noSuite[messagesCase], func(c *messagesCase) error {
		msg := func() *mls.MLSMessage { return new(mls.MLSMessage) }
		var (
			welcome, groupInfo, keyPackage = msg(), msg(), msg()
			pubApp, pubProp, pubCommit     = msg(), msg(), msg()
			private                        = msg()
		)
		body := func(t mls.ProposalType) *proposalBody { return &proposalBody{p: mls.Proposal{Type: t}} }
		checks := []struct {
			name  string
			b     []byte
			v     codec
			check func() error
		}{
			{"mls_welcome", c.MLSWelcome, welcome, wireFormat(welcome, mls.WireFormatWelcome)},
			{"mls_group_info", c.MLSGroupInfo, groupInfo, wireFormat(groupInfo, mls.WireFormatGroupInfo)},
			{"mls_key_package", c.MLSKeyPackage, keyPackage, wireFormat(keyPackage, mls.WireFormatKeyPackage)},
			{"ratchet_tree", c.RatchetTree, new(mls.TreeNodes), nil},
			{"group_secrets", c.GroupSecrets, new(mls.GroupSecrets), nil},
			{"add_proposal", c.AddProposal, body(mls.ProposalAdd), nil},
			{"update_proposal", c.UpdateProposal, body(mls.ProposalUpdate), nil},
			{"remove_proposal", c.RemoveProposal, body(mls.ProposalRemove), nil},
			{"pre_shared_key_proposal", c.PreSharedKeyProposal, body(mls.ProposalPSK), nil},
			{"re_init_proposal", c.ReInitProposal, body(mls.ProposalReInit), nil},
			{"external_init_proposal", c.ExternalInitProposal, body(mls.ProposalExternalInit), nil},
			{"group_context_extensions_proposal", c.GroupContextExtensionsProposal, body(mls.ProposalGroupContextExtensions), nil},
			{"commit", c.Commit, new(mls.Commit), nil},
			{"public_message_application", c.PublicMessageApplication, pubApp, publicContent(pubApp, mls.ContentApplication)},
			{"public_message_proposal", c.PublicMessageProposal, pubProp, publicContent(pubProp, mls.ContentProposal)},
			{"public_message_commit", c.PublicMessageCommit, pubCommit, publicContent(pubCommit, mls.ContentCommit)},
			{"private_message", c.PrivateMessage, private, wireFormat(private, mls.WireFormatPrivateMessage)},
		}
		for _, ch := range checks {
			if err := roundTrip(ch.name, ch.b, ch.v, ch.check); err != nil {
				return err
			}
		}
		return nil
	})
}
