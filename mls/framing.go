package mls

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
)

// Message protection (RFC 9420 §6): signing FramedContent into an
// AuthenticatedContent (§6.1), wrapping it as a PublicMessage with a
// membership tag (§6.2) or as an encrypted PrivateMessage (§6.3), and the
// reverse. Checks that need group state this package does not hold here (is
// the sender leaf non-blank, which signature key does it have, is the epoch
// current) are left to the caller and said so on each function.
//
// Byte slices are shared, not copied, between the inputs and outputs of these
// functions (for example a PrivateMessage's GroupID is the FramedContent's):
// messages are treated as immutable values once built.

// Errors of message framing. Each failure wraps one of these with what
// exactly went wrong.
var (
	// ErrFraming reports a message or a request that is malformed or
	// inconsistent: a wrong sender type, a missing GroupContext, a sender
	// leaf outside the tree, an undecodable plaintext.
	ErrFraming = errors.New("mls: framing")
	// ErrPublicApplication refuses application data as a PublicMessage:
	// §6 requires application messages to be encrypted.
	ErrPublicApplication = fmt.Errorf("%w: application data must be sent as a PrivateMessage", ErrFraming)
	// ErrPadding reports non-zero bytes in a PrivateMessageContent's
	// padding, which §6.3.1 requires rejecting as malformed so that padding
	// cannot become a covert channel.
	ErrPadding = fmt.Errorf("%w: padding contains a non-zero byte", ErrFraming)
	// ErrMembershipTag reports a PublicMessage whose membership tag does not
	// match: the sender does not hold this epoch's membership key.
	ErrMembershipTag = fmt.Errorf("%w: membership tag mismatch", ErrCrypto)
)

// describe names a sender for error messages.
func (s *Sender) describe() string {
	switch s.Type {
	case SenderMember:
		return fmt.Sprintf("member at leaf %d", s.Leaf)
	case SenderExternal:
		return fmt.Sprintf("external sender %d", s.Index)
	case SenderNewMemberProposal:
		return "new member (proposal)"
	case SenderNewMemberCommit:
		return "new member (commit)"
	}
	return fmt.Sprintf("sender of type %d", uint8(s.Type))
}

// tbsHasContext reports whether FramedContentTBS includes the GroupContext
// for this sender type (§6.1): only senders that are, or are becoming,
// members know it; external senders and new-member proposers do not.
func tbsHasContext(t SenderType) bool {
	return t == SenderMember || t == SenderNewMemberCommit
}

// checkContent rejects content that cannot be encoded: an unknown content
// type or a missing body would otherwise panic deep in Marshal.
func checkContent(c *FramedContent) error {
	switch c.ContentType {
	case ContentApplication:
	case ContentProposal:
		if c.Proposal == nil {
			return fmt.Errorf("%w: proposal content without a Proposal", ErrFraming)
		}
	case ContentCommit:
		if c.Commit == nil {
			return fmt.Errorf("%w: commit content without a Commit", ErrFraming)
		}
	default:
		return fmt.Errorf("%w: unknown content type %d", ErrFraming, uint8(c.ContentType))
	}
	switch c.Sender.Type {
	case SenderMember, SenderExternal, SenderNewMemberProposal, SenderNewMemberCommit:
	default:
		return fmt.Errorf("%w: unknown sender type %d", ErrFraming, uint8(c.Sender.Type))
	}
	return nil
}

// framedContentSize estimates an encoding's size so that one allocation
// usually suffices.
func framedContentSize(c *FramedContent) int {
	return 160 + len(c.GroupID) + len(c.AuthenticatedData) + len(c.ApplicationData)
}

// marshalTBS writes FramedContentTBS. The caller has checked that ctx is
// present when the sender type needs it.
func marshalTBS(w *Writer, wf WireFormat, c *FramedContent, ctx *GroupContext) {
	w.U16(uint16(MLS10))
	w.U16(uint16(wf))
	c.MarshalMLS(w)
	if tbsHasContext(c.Sender.Type) {
		ctx.MarshalMLS(w)
	}
}

func needContext(c *FramedContent, ctx *GroupContext) error {
	if ctx == nil && tbsHasContext(c.Sender.Type) {
		return fmt.Errorf("%w: a GroupContext is needed to authenticate content from a %s", ErrFraming, c.Sender.describe())
	}
	return nil
}

// SignContent signs content as it will be sent in wire format wf, producing
// the AuthenticatedContent that ProtectPublic or ProtectPrivate wraps. ctx
// is the current epoch's GroupContext; it is covered by the signature (and
// so required) for member and new_member_commit senders and ignored, so may
// be nil, for the others. For a commit the ConfirmationTag is left empty:
// it depends on the new epoch, which the caller computes from the result.
func SignContent(s *Suite, key *SignaturePrivateKey, wf WireFormat, content *FramedContent, ctx *GroupContext) (*AuthenticatedContent, error) {
	if wf != WireFormatPublicMessage && wf != WireFormatPrivateMessage {
		return nil, fmt.Errorf("%w: content cannot be sent in wire format %d", ErrFraming, uint16(wf))
	}
	if key == nil {
		return nil, fmt.Errorf("%w: no signature key", ErrFraming)
	}
	if err := checkContent(content); err != nil {
		return nil, err
	}
	if err := needContext(content, ctx); err != nil {
		return nil, err
	}
	if tbsHasContext(content.Sender.Type) && (ctx.Epoch != content.Epoch || !bytes.Equal(ctx.GroupID, content.GroupID)) {
		// Receivers would reject the signature; say why here instead.
		return nil, fmt.Errorf("%w: content for group %x epoch %d signed with the GroupContext of group %x epoch %d",
			ErrFraming, content.GroupID, content.Epoch, ctx.GroupID, ctx.Epoch)
	}
	w := NewWriter(framedContentSize(content) + 128)
	marshalTBS(w, wf, content, ctx)
	sig, err := s.SignWithLabel(key, "FramedContentTBS", w.Bytes())
	if err != nil {
		return nil, fmt.Errorf("%w: signing content: %v", ErrCrypto, err)
	}
	return &AuthenticatedContent{WireFormat: wf, Content: *content, Auth: FramedContentAuthData{Signature: sig}}, nil
}

// VerifySignature checks the content's signature with the sender's public
// signature key pub, which the caller looks up as §6.1 says (the leaf's key
// for a member, the external_senders entry, or the key in the commit's path
// or Add's KeyPackage for new members). ctx is as for SignContent.
func (a *AuthenticatedContent) VerifySignature(s *Suite, pub []byte, ctx *GroupContext) error {
	if err := checkContent(&a.Content); err != nil {
		return err
	}
	if err := needContext(&a.Content, ctx); err != nil {
		return err
	}
	w := NewWriter(framedContentSize(&a.Content) + 128)
	marshalTBS(w, a.WireFormat, &a.Content, ctx)
	if err := s.VerifyWithLabel(pub, "FramedContentTBS", w.Bytes(), a.Auth.Signature); err != nil {
		return fmt.Errorf("%s signature of %s: %w", a.Content.ContentType, a.Content.Sender.describe(), err)
	}
	return nil
}

// needConfirmationTag catches a commit whose confirmation tag was never
// set: receivers would fail it against their confirmation key with a far
// less useful error.
func needConfirmationTag(a *AuthenticatedContent) error {
	if a.Content.ContentType == ContentCommit && len(a.Auth.ConfirmationTag) == 0 {
		return fmt.Errorf("%w: commit has no confirmation tag", ErrFraming)
	}
	return nil
}

// membershipTag computes MAC(membership_key, AuthenticatedContentTBM).
func membershipTag(s *Suite, key []byte, c *FramedContent, auth *FramedContentAuthData, ctx *GroupContext) []byte {
	w := NewWriter(framedContentSize(c) + 128 + len(auth.Signature) + len(auth.ConfirmationTag))
	marshalTBS(w, WireFormatPublicMessage, c, ctx)
	auth.marshal(w, c.ContentType)
	return s.MAC(key, w.Bytes())
}

func checkMembershipKey(s *Suite, key []byte) error {
	if len(key) != s.HashSize() {
		return fmt.Errorf("%w: membership_key of %d bytes, want %d", ErrFraming, len(key), s.HashSize())
	}
	return nil
}

// ProtectPublic wraps content signed for WireFormatPublicMessage as a
// PublicMessage. For a member sender it sets the membership tag with this
// epoch's membershipKey over the content and ctx; other senders are not
// members, have no membership key and get no tag (membershipKey and ctx are
// then unused). Application content is refused with ErrPublicApplication.
func ProtectPublic(s *Suite, a *AuthenticatedContent, membershipKey []byte, ctx *GroupContext) (*PublicMessage, error) {
	if a.Content.ContentType == ContentApplication {
		return nil, ErrPublicApplication
	}
	if a.WireFormat != WireFormatPublicMessage {
		return nil, fmt.Errorf("%w: content signed for wire format %d cannot be sent as a PublicMessage", ErrFraming, uint16(a.WireFormat))
	}
	if err := checkContent(&a.Content); err != nil {
		return nil, err
	}
	if err := needConfirmationTag(a); err != nil {
		return nil, err
	}
	m := &PublicMessage{Content: a.Content, Auth: a.Auth}
	if a.Content.Sender.Type == SenderMember {
		if err := needContext(&a.Content, ctx); err != nil {
			return nil, err
		}
		if err := checkMembershipKey(s, membershipKey); err != nil {
			return nil, err
		}
		m.MembershipTag = membershipTag(s, membershipKey, &a.Content, &a.Auth, ctx)
	}
	return m, nil
}

// VerifyMembershipTag checks a member's membership tag with this epoch's
// membershipKey and GroupContext. Messages from non-members carry no tag and
// pass; their signature is what authenticates them. The signature itself is
// checked separately, with Authenticated().VerifySignature.
func (m *PublicMessage) VerifyMembershipTag(s *Suite, membershipKey []byte, ctx *GroupContext) error {
	if m.Content.Sender.Type != SenderMember {
		return nil
	}
	if err := checkContent(&m.Content); err != nil {
		return err
	}
	if err := needContext(&m.Content, ctx); err != nil {
		return err
	}
	if err := checkMembershipKey(s, membershipKey); err != nil {
		return err
	}
	want := membershipTag(s, membershipKey, &m.Content, &m.Auth, ctx)
	if !hmac.Equal(want, m.MembershipTag) { // constant time: timing tells a forger nothing
		return fmt.Errorf("%w for leaf %d", ErrMembershipTag, m.Content.Sender.Leaf)
	}
	return nil
}

// Authenticated returns the message's content and authentication as the
// AuthenticatedContent that signature checks, transcript hashes and proposal
// references are computed over. It shares m's slices.
func (m *PublicMessage) Authenticated() *AuthenticatedContent {
	return &AuthenticatedContent{WireFormat: WireFormatPublicMessage, Content: m.Content, Auth: m.Auth}
}

// ratchetFor maps a content type onto the secret-tree ratchet that keys it
// (§9): handshake messages and application messages ratchet separately.
func ratchetFor(ct ContentType) (RatchetType, error) {
	switch ct {
	case ContentApplication:
		return ApplicationRatchet, nil
	case ContentProposal, ContentCommit:
		return HandshakeRatchet, nil
	}
	return 0, fmt.Errorf("%w: unknown content type %d", ErrFraming, uint8(ct))
}

// reuseGuardSize is the length of SenderData.reuse_guard.
const reuseGuardSize = 4

// senderDataSize is the encoded length of SenderData: leaf_index,
// generation and reuse_guard.
const senderDataSize = 4 + 4 + reuseGuardSize

func checkSenderDataSecret(s *Suite, secret []byte) error {
	if len(secret) != s.HashSize() {
		return fmt.Errorf("%w: sender_data_secret of %d bytes, want %d", ErrFraming, len(secret), s.HashSize())
	}
	return nil
}

// privateContentAAD encodes PrivateContentAAD (§6.3.1).
func privateContentAAD(groupID []byte, epoch uint64, ct ContentType, authData []byte) []byte {
	w := NewWriter(len(groupID) + len(authData) + 24)
	w.Opaque(groupID)
	w.U64(epoch)
	w.U8(uint8(ct))
	w.Opaque(authData)
	return w.Bytes()
}

// senderDataAAD encodes SenderDataAAD (§6.3.2).
func senderDataAAD(groupID []byte, epoch uint64, ct ContentType) []byte {
	w := NewWriter(len(groupID) + 16)
	w.Opaque(groupID)
	w.U64(epoch)
	w.U8(uint8(ct))
	return w.Bytes()
}

// guardNonce returns the key schedule's nonce with the reuse guard XORed
// into its first four bytes, in a fresh slice: the receiver's nonce belongs
// to the secret tree and must not change.
func guardNonce(nonce []byte, guard [reuseGuardSize]byte) []byte {
	out := append([]byte(nil), nonce...)
	for i := range guard {
		out[i] ^= guard[i]
	}
	return out
}

// ProtectPrivate encrypts member content signed for WireFormatPrivateMessage
// as a PrivateMessage, with the next key of the sender's handshake ratchet
// (proposals and commits) or application ratchet (application data) in tree,
// and this epoch's senderDataSecret. padding is how many zero bytes to append
// to the content before encryption; the padding policy is the caller's
// (§16.4). A fresh random reuse guard is drawn for every message so that a
// sender whose ratchet state was lost or rolled back still never reuses a
// nonce under a key.
//
// The ratchet generation is spent even if this fails after drawing it: a key
// must never encrypt twice.
func ProtectPrivate(s *Suite, a *AuthenticatedContent, tree *SecretTree, senderDataSecret []byte, padding int) (*PrivateMessage, error) {
	c := &a.Content
	if c.Sender.Type != SenderMember {
		return nil, fmt.Errorf("%w: a PrivateMessage must come from a member, not a %s", ErrFraming, c.Sender.describe())
	}
	if a.WireFormat != WireFormatPrivateMessage {
		return nil, fmt.Errorf("%w: content signed for wire format %d cannot be sent as a PrivateMessage", ErrFraming, uint16(a.WireFormat))
	}
	if err := checkContent(c); err != nil {
		return nil, err
	}
	if err := needConfirmationTag(a); err != nil {
		return nil, err
	}
	if padding < 0 || padding > maxVarint {
		return nil, fmt.Errorf("%w: padding of %d bytes", ErrFraming, padding)
	}
	if err := checkSenderDataSecret(s, senderDataSecret); err != nil {
		return nil, err
	}
	if tree == nil || tree.Suite() != s {
		return nil, fmt.Errorf("%w: secret tree missing or of another cipher suite", ErrFraming)
	}

	// PrivateMessageContent: body, auth, then zero padding. Room is left for
	// the AEAD tag so that sealing in place needs no second buffer.
	const tagRoom = 16
	w := NewWriter(framedContentSize(c) + len(a.Auth.Signature) + len(a.Auth.ConfirmationTag) + padding + tagRoom)
	c.marshalBody(w)
	a.Auth.marshal(w, c.ContentType)
	pt := append(w.Bytes(), make([]byte, padding)...)
	return sealPrivate(s, tree, senderDataSecret, c.Sender.Leaf, c.ContentType, c.GroupID, c.Epoch, c.AuthenticatedData, pt)
}

// sealPrivate encrypts an encoded PrivateMessageContent pt (whose buffer it
// reuses for the ciphertext) and its sender data.
func sealPrivate(s *Suite, tree *SecretTree, senderDataSecret []byte, leaf LeafIndex, ct ContentType,
	groupID []byte, epoch uint64, authData, pt []byte) (*PrivateMessage, error) {
	rt, err := ratchetFor(ct)
	if err != nil {
		return nil, err
	}
	key, err := tree.NextKey(leaf, rt)
	if err != nil {
		return nil, fmt.Errorf("PrivateMessage from leaf %d: %w", leaf, err)
	}
	defer key.wipe()
	var guard [reuseGuardSize]byte
	if _, err := rand.Read(guard[:]); err != nil {
		return nil, fmt.Errorf("%w: reuse guard: %v", ErrCrypto, err)
	}
	nonce := guardNonce(key.Nonce, guard)
	defer clear(nonce)
	aead, err := s.NewAEAD(key.Key)
	if err != nil {
		return nil, err
	}
	ciphertext := aead.Seal(pt[:0], nonce, pt, privateContentAAD(groupID, epoch, ct, authData))

	var sd [senderDataSize]byte
	binary.BigEndian.PutUint32(sd[0:4], uint32(leaf))
	binary.BigEndian.PutUint32(sd[4:8], key.Generation)
	copy(sd[8:], guard[:])
	sdKey, sdNonce := SenderDataKeyNonce(s, senderDataSecret, ciphertext)
	defer clear(sdKey)
	encSD, err := s.Seal(sdKey, sdNonce, senderDataAAD(groupID, epoch, ct), sd[:])
	if err != nil {
		return nil, err
	}
	return &PrivateMessage{
		GroupID:             groupID,
		Epoch:               epoch,
		ContentType:         ct,
		AuthenticatedData:   authData,
		EncryptedSenderData: encSD,
		Ciphertext:          ciphertext,
	}, nil
}

// UnprotectPrivate decrypts a PrivateMessage of the epoch whose secret tree
// and senderDataSecret are given, and returns its content as an
// AuthenticatedContent with WireFormatPrivateMessage and a FramedContent
// rebuilt from the message's header and the decrypted sender.
//
// It checks that the sender data names a leaf inside the tree; the caller
// must still check that the leaf is a non-blank member (§6.3.2) and MUST
// verify the signature with that member's key (VerifySignature), and for a
// commit the confirmation tag: decryption only proves the sender knows the
// epoch's secrets, which every member does. Picking the tree by group and
// epoch is also the caller's job.
//
// The ratchet generation is consumed only once the content has decrypted and
// parsed, so a forged or corrupted message cannot burn the key of the
// genuine one; a replay of a message already accepted is refused.
func UnprotectPrivate(s *Suite, m *PrivateMessage, tree *SecretTree, senderDataSecret []byte) (*AuthenticatedContent, error) {
	rt, err := ratchetFor(m.ContentType)
	if err != nil {
		return nil, err
	}
	if err := checkSenderDataSecret(s, senderDataSecret); err != nil {
		return nil, err
	}
	if tree == nil || tree.Suite() != s {
		return nil, fmt.Errorf("%w: secret tree missing or of another cipher suite", ErrFraming)
	}

	sdKey, sdNonce := SenderDataKeyNonce(s, senderDataSecret, m.Ciphertext)
	sd, err := s.Open(sdKey, sdNonce, senderDataAAD(m.GroupID, m.Epoch, m.ContentType), m.EncryptedSenderData)
	clear(sdKey)
	if err != nil {
		return nil, fmt.Errorf("PrivateMessage sender data: %w", err)
	}
	if len(sd) != senderDataSize {
		return nil, fmt.Errorf("%w: sender data of %d bytes, want %d", ErrFraming, len(sd), senderDataSize)
	}
	leaf := LeafIndex(uint32(sd[0])<<24 | uint32(sd[1])<<16 | uint32(sd[2])<<8 | uint32(sd[3]))
	gen := uint32(sd[4])<<24 | uint32(sd[5])<<16 | uint32(sd[6])<<8 | uint32(sd[7])
	var guard [reuseGuardSize]byte
	copy(guard[:], sd[8:])
	if uint32(leaf) >= tree.LeafCount() {
		return nil, fmt.Errorf("%w: sender data names leaf %d in a tree of %d leaves", ErrFraming, leaf, tree.LeafCount())
	}

	key, err := tree.Key(leaf, rt, gen)
	if err != nil {
		return nil, fmt.Errorf("PrivateMessage from leaf %d: %w", leaf, err)
	}
	nonce := guardNonce(key.Nonce, guard)
	aead, err := s.NewAEAD(key.Key)
	if err != nil {
		return nil, err
	}
	pt, err := aead.Open(nil, nonce, m.Ciphertext, privateContentAAD(m.GroupID, m.Epoch, m.ContentType, m.AuthenticatedData))
	clear(nonce)
	if err != nil {
		return nil, fmt.Errorf("%w: content of PrivateMessage from leaf %d generation %d does not decrypt", ErrCrypto, leaf, gen)
	}

	a := &AuthenticatedContent{
		WireFormat: WireFormatPrivateMessage,
		Content: FramedContent{
			GroupID:           m.GroupID,
			Epoch:             m.Epoch,
			Sender:            Sender{Type: SenderMember, Leaf: leaf},
			AuthenticatedData: m.AuthenticatedData,
			ContentType:       m.ContentType,
		},
	}
	if err := parsePrivateMessageContent(pt, &a.Content, &a.Auth); err != nil {
		return nil, fmt.Errorf("PrivateMessage from leaf %d generation %d: %w", leaf, gen, err)
	}
	if err := tree.Consume(leaf, rt, gen); err != nil {
		return nil, err
	}
	return a, nil
}

// parsePrivateMessageContent decodes a PrivateMessageContent of content type
// c.ContentType into c's body and auth, and checks that the padding after
// them is all zeros. Application data and the auth fields alias pt, which is
// the decryption's own fresh buffer.
func parsePrivateMessageContent(pt []byte, c *FramedContent, auth *FramedContentAuthData) error {
	r := NewReader(pt)
	switch c.ContentType {
	case ContentApplication:
		c.ApplicationData = r.Opaque()
		if c.ApplicationData == nil && r.Err() == nil {
			c.ApplicationData = []byte{}
		}
	case ContentProposal:
		c.Proposal = new(Proposal)
		c.Proposal.UnmarshalMLS(r)
	case ContentCommit:
		c.Commit = new(Commit)
		c.Commit.UnmarshalMLS(r)
	default:
		return fmt.Errorf("%w: unknown content type %d", ErrFraming, uint8(c.ContentType))
	}
	auth.Signature = r.Opaque()
	if c.ContentType == ContentCommit {
		auth.ConfirmationTag = r.Opaque()
	}
	if err := r.Err(); err != nil {
		return fmt.Errorf("%w: PrivateMessageContent: %w", ErrFraming, err)
	}
	padding := pt[len(pt)-r.Remaining():]
	for i, b := range padding {
		if b != 0 {
			return fmt.Errorf("%w (byte %d of %d)", ErrPadding, i, len(padding))
		}
	}
	return nil
}
