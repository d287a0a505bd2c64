package mlstest

import (
	"errors"
	"fmt"

	"github.com/switchboard-chat/switchboard/mls"
)

// Checkers for the message-protection, transcript-hashes and welcome vector
// files (test-vectors.md, sections "Message Protection", "Transcript Hashes"
// and "Welcome").

func init() {
	register("message-protection", has("membership_key", "proposal_priv", "application_priv"), runMessageProtection)
	register("transcript-hashes", has("authenticated_content", "interim_transcript_hash_before"), runTranscriptHashes)
	register("welcome", has("init_priv", "signer_pub", "welcome", "key_package"), runWelcome)
}

type messageProtectionCase struct {
	CipherSuite             uint16 `json:"cipher_suite"`
	GroupID                 Hex    `json:"group_id"`
	Epoch                   uint64 `json:"epoch"`
	TreeHash                Hex    `json:"tree_hash"`
	ConfirmedTranscriptHash Hex    `json:"confirmed_transcript_hash"`

	SignaturePriv Hex `json:"signature_priv"`
	SignaturePub  Hex `json:"signature_pub"`

	EncryptionSecret Hex `json:"encryption_secret"`
	SenderDataSecret Hex `json:"sender_data_secret"`
	MembershipKey    Hex `json:"membership_key"`

	Proposal     Hex `json:"proposal"`
	ProposalPub  Hex `json:"proposal_pub"`
	ProposalPriv Hex `json:"proposal_priv"`

	Commit     Hex `json:"commit"`
	CommitPub  Hex `json:"commit_pub"`
	CommitPriv Hex `json:"commit_priv"`

	Application     Hex `json:"application"`
	ApplicationPriv Hex `json:"application_priv"`
}

// The vectors' sender is leaf 1 of a two-member group.
const (
	mpLeaves = 2
	mpSender = mls.LeafIndex(1)
)

// mpEnv is what every step of a message-protection case shares.
type mpEnv struct {
	s    *mls.Suite
	c    *messageProtectionCase
	ctx  *mls.GroupContext
	priv *mls.SignaturePrivateKey
}

func runMessageProtection(data []byte) (Result, error) {
	return runCases(data, func(c *messageProtectionCase) uint16 { return c.CipherSuite }, checkMessageProtection)
}

func checkMessageProtection(c *messageProtectionCase) error {
	s, err := mls.SuiteFor(mls.CipherSuite(c.CipherSuite))
	if err != nil {
		return err
	}
	priv, err := s.ParseSignaturePrivateKey(c.SignaturePriv)
	if err != nil {
		return fmt.Errorf("signature_priv: %w", err)
	}
	if !equal(priv.PublicKey(), c.SignaturePub) {
		return mismatch("public key of signature_priv", priv.PublicKey(), c.SignaturePub)
	}
	env := &mpEnv{s: s, c: c, priv: priv, ctx: &mls.GroupContext{
		Version:                 mls.MLS10,
		CipherSuite:             mls.CipherSuite(c.CipherSuite),
		GroupID:                 c.GroupID,
		Epoch:                   c.Epoch,
		TreeHash:                c.TreeHash,
		ConfirmedTranscriptHash: c.ConfirmedTranscriptHash,
	}}

	var proposal mls.Proposal
	if err := mls.Unmarshal(c.Proposal, &proposal); err != nil {
		return fmt.Errorf("proposal: %w", err)
	}
	var commit mls.Commit
	if err := mls.Unmarshal(c.Commit, &commit); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	kinds := []struct {
		name      string
		content   func(*mls.FramedContent)
		raw       []byte
		pub, priv []byte
	}{
		{"proposal", func(f *mls.FramedContent) { f.ContentType, f.Proposal = mls.ContentProposal, &proposal }, c.Proposal, c.ProposalPub, c.ProposalPriv},
		{"commit", func(f *mls.FramedContent) { f.ContentType, f.Commit = mls.ContentCommit, &commit }, c.Commit, c.CommitPub, c.CommitPriv},
		{"application", func(f *mls.FramedContent) { f.ContentType, f.ApplicationData = mls.ContentApplication, c.Application }, c.Application, nil, c.ApplicationPriv},
	}
	for _, k := range kinds {
		content := &mls.FramedContent{
			GroupID: c.GroupID,
			Epoch:   c.Epoch,
			Sender:  mls.Sender{Type: mls.SenderMember, Leaf: mpSender},
		}
		k.content(content)
		if err := env.checkKind(k.name, content, k.raw, k.pub, k.priv); err != nil {
			return fmt.Errorf("%s: %w", k.name, err)
		}
	}
	return nil
}

// body returns the wire encoding of the content's proposal, commit or
// application data, as the vector gives the raw value.
func body(f *mls.FramedContent) []byte {
	switch f.ContentType {
	case mls.ContentProposal:
		return mls.Marshal(f.Proposal)
	case mls.ContentCommit:
		return mls.Marshal(f.Commit)
	}
	return f.ApplicationData
}

// checkReceived checks that received content is the vector's raw value from
// the expected sender in the expected group and epoch.
func (e *mpEnv) checkReceived(a *mls.AuthenticatedContent, want *mls.FramedContent, raw []byte) error {
	f := &a.Content
	switch {
	case f.ContentType != want.ContentType:
		return fmt.Errorf("content type %v, want %v", f.ContentType, want.ContentType)
	case f.Sender != want.Sender:
		return fmt.Errorf("sender %+v, want %+v", f.Sender, want.Sender)
	case !equal(f.GroupID, e.c.GroupID) || f.Epoch != e.c.Epoch:
		return fmt.Errorf("group %x epoch %d, want group %x epoch %d", f.GroupID, f.Epoch, e.c.GroupID, e.c.Epoch)
	}
	if got := body(f); !equal(got, raw) {
		return mismatch("content", got, raw)
	}
	return nil
}

func (e *mpEnv) newTree() (*mls.SecretTree, error) {
	return mls.NewSecretTree(e.s, e.c.EncryptionSecret, mpLeaves)
}

func (e *mpEnv) checkKind(name string, want *mls.FramedContent, raw, pub, priv []byte) error {
	s, c := e.s, e.c

	// The vector's PublicMessage verifies and carries the raw value.
	var pubTag []byte
	if pub != nil {
		m, err := mls.ParseMLSMessage(pub)
		if err != nil {
			return fmt.Errorf("%s_pub: %w", name, err)
		}
		if m.WireFormat != mls.WireFormatPublicMessage {
			return fmt.Errorf("%s_pub: wire format %d", name, m.WireFormat)
		}
		if err := m.Public.VerifyMembershipTag(s, c.MembershipKey, e.ctx); err != nil {
			return fmt.Errorf("%s_pub: %w", name, err)
		}
		a := m.Public.Authenticated()
		if err := a.VerifySignature(s, c.SignaturePub, e.ctx); err != nil {
			return fmt.Errorf("%s_pub: %w", name, err)
		}
		if err := e.checkReceived(a, want, raw); err != nil {
			return fmt.Errorf("%s_pub: %w", name, err)
		}
		pubTag = a.Auth.ConfirmationTag
	}

	// Protecting the raw value as a PublicMessage gives one that verifies;
	// for application data it must fail.
	signed, err := mls.SignContent(s, e.priv, mls.WireFormatPublicMessage, want, e.ctx)
	if err != nil {
		return fmt.Errorf("sign for PublicMessage: %w", err)
	}
	if want.ContentType == mls.ContentCommit {
		// The vector gives no confirmation key; reuse the tag it carries.
		signed.Auth.ConfirmationTag = pubTag
	}
	pm, err := mls.ProtectPublic(s, signed, c.MembershipKey, e.ctx)
	if want.ContentType == mls.ContentApplication {
		if err == nil {
			return errors.New("application data was protected as a PublicMessage")
		}
		if !errors.Is(err, mls.ErrPublicApplication) {
			return fmt.Errorf("protecting application data as a PublicMessage failed for the wrong reason: %w", err)
		}
	} else {
		if err != nil {
			return fmt.Errorf("protect as PublicMessage: %w", err)
		}
		enc := mls.Marshal(&mls.MLSMessage{Version: mls.MLS10, WireFormat: mls.WireFormatPublicMessage, Public: pm})
		m, err := mls.ParseMLSMessage(enc)
		if err != nil {
			return fmt.Errorf("own PublicMessage: %w", err)
		}
		if err := m.Public.VerifyMembershipTag(s, c.MembershipKey, e.ctx); err != nil {
			return fmt.Errorf("own PublicMessage: %w", err)
		}
		a := m.Public.Authenticated()
		if err := a.VerifySignature(s, c.SignaturePub, e.ctx); err != nil {
			return fmt.Errorf("own PublicMessage: %w", err)
		}
		if err := e.checkReceived(a, want, raw); err != nil {
			return fmt.Errorf("own PublicMessage: %w", err)
		}
	}

	// The vector's PrivateMessage unprotects with a fresh secret tree and
	// verifies with signature_pub.
	tree, err := e.newTree()
	if err != nil {
		return err
	}
	m, err := mls.ParseMLSMessage(priv)
	if err != nil {
		return fmt.Errorf("%s_priv: %w", name, err)
	}
	if m.WireFormat != mls.WireFormatPrivateMessage {
		return fmt.Errorf("%s_priv: wire format %d", name, m.WireFormat)
	}
	a, err := mls.UnprotectPrivate(s, m.Private, tree, c.SenderDataSecret)
	if err != nil {
		return fmt.Errorf("%s_priv: %w", name, err)
	}
	if err := a.VerifySignature(s, c.SignaturePub, e.ctx); err != nil {
		return fmt.Errorf("%s_priv: %w", name, err)
	}
	if err := e.checkReceived(a, want, raw); err != nil {
		return fmt.Errorf("%s_priv: %w", name, err)
	}
	privTag := a.Auth.ConfirmationTag

	// Protecting the raw value as a PrivateMessage (from leaf 1's own tree)
	// gives one that unprotects with a receiver's tree and verifies.
	signed, err = mls.SignContent(s, e.priv, mls.WireFormatPrivateMessage, want, e.ctx)
	if err != nil {
		return fmt.Errorf("sign for PrivateMessage: %w", err)
	}
	if want.ContentType == mls.ContentCommit {
		signed.Auth.ConfirmationTag = privTag
	}
	senderTree, err := e.newTree()
	if err != nil {
		return err
	}
	receiverTree, err := e.newTree()
	if err != nil {
		return err
	}
	own, err := mls.ProtectPrivate(s, signed, senderTree, c.SenderDataSecret, 0)
	if err != nil {
		return fmt.Errorf("protect as PrivateMessage: %w", err)
	}
	enc := mls.Marshal(&mls.MLSMessage{Version: mls.MLS10, WireFormat: mls.WireFormatPrivateMessage, Private: own})
	if m, err = mls.ParseMLSMessage(enc); err != nil {
		return fmt.Errorf("own PrivateMessage: %w", err)
	}
	if a, err = mls.UnprotectPrivate(s, m.Private, receiverTree, c.SenderDataSecret); err != nil {
		return fmt.Errorf("own PrivateMessage: %w", err)
	}
	if err := a.VerifySignature(s, c.SignaturePub, e.ctx); err != nil {
		return fmt.Errorf("own PrivateMessage: %w", err)
	}
	if err := e.checkReceived(a, want, raw); err != nil {
		return fmt.Errorf("own PrivateMessage: %w", err)
	}
	return nil
}

type transcriptHashesCase struct {
	CipherSuite                  uint16 `json:"cipher_suite"`
	ConfirmationKey              Hex    `json:"confirmation_key"`
	AuthenticatedContent         Hex    `json:"authenticated_content"`
	InterimTranscriptHashBefore  Hex    `json:"interim_transcript_hash_before"`
	ConfirmedTranscriptHashAfter Hex    `json:"confirmed_transcript_hash_after"`
	InterimTranscriptHashAfter   Hex    `json:"interim_transcript_hash_after"`
}

func runTranscriptHashes(data []byte) (Result, error) {
	return runCases(data, func(c *transcriptHashesCase) uint16 { return c.CipherSuite }, checkTranscriptHashes)
}

func checkTranscriptHashes(c *transcriptHashesCase) error {
	s, err := mls.SuiteFor(mls.CipherSuite(c.CipherSuite))
	if err != nil {
		return err
	}
	var a mls.AuthenticatedContent
	if err := mls.Unmarshal(c.AuthenticatedContent, &a); err != nil {
		return fmt.Errorf("authenticated_content: %w", err)
	}
	if a.Content.ContentType != mls.ContentCommit {
		return fmt.Errorf("authenticated_content holds %v content, not a commit", a.Content.ContentType)
	}
	if err := mls.VerifyConfirmationTag(s, c.ConfirmationKey, c.ConfirmedTranscriptHashAfter, a.Auth.ConfirmationTag); err != nil {
		return fmt.Errorf("confirmation_tag: %w", err)
	}
	confirmed, err := mls.ConfirmedTranscriptHash(s, c.InterimTranscriptHashBefore, &a)
	if err != nil {
		return err
	}
	if !equal(confirmed, c.ConfirmedTranscriptHashAfter) {
		return mismatch("confirmed_transcript_hash_after", confirmed, c.ConfirmedTranscriptHashAfter)
	}
	interim := mls.InterimTranscriptHash(s, confirmed, a.Auth.ConfirmationTag)
	if !equal(interim, c.InterimTranscriptHashAfter) {
		return mismatch("interim_transcript_hash_after", interim, c.InterimTranscriptHashAfter)
	}
	return nil
}

type welcomeCase struct {
	CipherSuite uint16 `json:"cipher_suite"`
	InitPriv    Hex    `json:"init_priv"`
	SignerPub   Hex    `json:"signer_pub"`
	KeyPackage  Hex    `json:"key_package"`
	Welcome     Hex    `json:"welcome"`
}

func runWelcome(data []byte) (Result, error) {
	return runCases(data, func(c *welcomeCase) uint16 { return c.CipherSuite }, checkWelcome)
}

func checkWelcome(c *welcomeCase) error {
	s, err := mls.SuiteFor(mls.CipherSuite(c.CipherSuite))
	if err != nil {
		return err
	}
	kpMsg, err := mls.ParseMLSMessage(c.KeyPackage)
	if err != nil {
		return fmt.Errorf("key_package: %w", err)
	}
	if kpMsg.WireFormat != mls.WireFormatKeyPackage {
		return fmt.Errorf("key_package: wire format %d", kpMsg.WireFormat)
	}
	wMsg, err := mls.ParseMLSMessage(c.Welcome)
	if err != nil {
		return fmt.Errorf("welcome: %w", err)
	}
	if wMsg.WireFormat != mls.WireFormatWelcome {
		return fmt.Errorf("welcome: wire format %d", wMsg.WireFormat)
	}
	kp, w := kpMsg.KeyPackage, wMsg.Welcome
	if kp.CipherSuite != s.ID || w.CipherSuite != s.ID {
		return fmt.Errorf("key package suite %v and Welcome suite %v in a case of suite %v", kp.CipherSuite, w.CipherSuite, s.ID)
	}
	initKey, err := s.ParseHPKEPrivateKey(c.InitPriv)
	if err != nil {
		return fmt.Errorf("init_priv: %w", err)
	}

	// The entry for key_package, decrypted with init_priv.
	secrets, err := mls.FindWelcomeSecrets(s, w, kp.Ref(s), initKey)
	if err != nil {
		return err
	}
	if len(secrets.PSKs) != 0 {
		return fmt.Errorf("group secrets name %d PSKs; the vector uses none", len(secrets.PSKs))
	}

	// The group info, decrypted with the welcome secret of joiner_secret and
	// no PSKs, and signed by signer_pub.
	pskSecret, err := mls.PSKSecret(s, nil)
	if err != nil {
		return err
	}
	welcomeSecret, err := mls.DeriveWelcomeSecret(s, secrets.JoinerSecret, pskSecret)
	if err != nil {
		return err
	}
	info, err := mls.OpenGroupInfo(s, w, welcomeSecret)
	if err != nil {
		return err
	}
	if err := info.VerifySignature(s, c.SignerPub); err != nil {
		return err
	}

	// The confirmation tag, from the epoch's key schedule.
	epoch, err := mls.EpochSecretsFromJoiner(s, secrets.JoinerSecret, pskSecret, mls.Marshal(&info.GroupContext))
	if err != nil {
		return err
	}
	if !equal(epoch.WelcomeSecret, welcomeSecret) {
		return mismatch("welcome_secret of the key schedule", epoch.WelcomeSecret, welcomeSecret)
	}
	if err := mls.VerifyConfirmationTag(s, epoch.ConfirmationKey, info.GroupContext.ConfirmedTranscriptHash, info.ConfirmationTag); err != nil {
		return fmt.Errorf("group info confirmation_tag: %w", err)
	}
	return nil
}
