package mls

import (
	"errors"
	"fmt"
)

// Transcript hashes and the confirmation tag (RFC 9420 §8.2). Every Commit
// extends two running hashes: the confirmed transcript hash covers the
// Commit up to its signature and goes into the new GroupContext; the interim
// transcript hash adds the Commit's confirmation tag and is where the next
// Commit starts. The confirmation tag, a MAC of the confirmed transcript
// hash under the new epoch's confirmation_key, proves the committer reached
// the same epoch secrets as the receiver.

// ErrConfirmationTag reports a confirmation tag that does not match: the
// sender and receiver disagree about the new epoch.
var ErrConfirmationTag = fmt.Errorf("%w: confirmation tag mismatch", ErrCrypto)

// ErrNotCommit refuses to hash non-commit content into the transcript:
// only Commits change the epoch.
var ErrNotCommit = errors.New("mls: transcript hashes cover only commits")

// ConfirmedTranscriptHash returns
// Hash(interim_transcript_hash_before || ConfirmedTranscriptHashInput), where
// the input is the commit's wire format, FramedContent and signature.
// interimBefore is the previous epoch's interim transcript hash (empty for
// the first Commit of a group).
func ConfirmedTranscriptHash(s *Suite, interimBefore []byte, a *AuthenticatedContent) ([]byte, error) {
	if a.Content.ContentType != ContentCommit || a.Content.Commit == nil {
		return nil, fmt.Errorf("%w: got %s content", ErrNotCommit, a.Content.ContentType)
	}
	w := NewWriter(len(interimBefore) + framedContentSize(&a.Content) + len(a.Auth.Signature) + 8)
	w.Raw(interimBefore)
	w.U16(uint16(a.WireFormat))
	a.Content.MarshalMLS(w)
	w.Opaque(a.Auth.Signature)
	return s.Hash(w.Bytes()), nil
}

// InterimTranscriptHash returns Hash(confirmed || InterimTranscriptHashInput),
// the input being the confirmation tag as an opaque<V> MAC. New members get
// the tag from the GroupInfo, existing members from the Commit.
func InterimTranscriptHash(s *Suite, confirmed, confirmationTag []byte) []byte {
	w := NewWriter(len(confirmed) + len(confirmationTag) + 4)
	w.Raw(confirmed)
	w.Opaque(confirmationTag)
	return s.Hash(w.Bytes())
}

// ConfirmationTag returns MAC(confirmation_key, confirmed_transcript_hash),
// the value a committer puts in its Commit and GroupInfo.
func ConfirmationTag(s *Suite, confirmationKey, confirmedTranscriptHash []byte) []byte {
	return s.MAC(confirmationKey, confirmedTranscriptHash)
}

// VerifyConfirmationTag checks a received confirmation tag in constant time.
func VerifyConfirmationTag(s *Suite, confirmationKey, confirmedTranscriptHash, tag []byte) error {
	if len(confirmationKey) != s.HashSize() {
		return fmt.Errorf("%w: confirmation_key of %d bytes, want %d", ErrFraming, len(confirmationKey), s.HashSize())
	}
	if !s.VerifyMAC(confirmationKey, confirmedTranscriptHash, tag) {
		return ErrConfirmationTag
	}
	return nil
}
