package content

import (
	"crypto/sha256"
	"encoding/binary"
)

// MessageID computes the ID of a message as the draft defines it:
//
//	hash_output = SHA-256( senderUriLength || senderUri ||
//	                       roomUriLength   || roomUri   ||
//	                       message         || salt )
//	messageId   = 0x01 || hash_output[0..30]
//
// where the lengths are big-endian 16-bit integers, message is the encoded
// message exactly as sent or received, and salt is its salt. sender is the
// sender's user URI and room the room's URI; a receiver should take them
// from the authenticated MLS credential and its room, not from the
// message's own senderUri and roomUri extensions.
//
// MessageID reads only the salt from encoded; it refuses, with ErrMalformed,
// bytes that do not start like a message, and with ErrTooLarge URIs longer
// than 65535 octets.
func MessageID(sender, room string, encoded []byte) (ID, error) {
	var id ID
	salt, err := saltOf(encoded)
	if err != nil {
		return id, err
	}
	if len(sender) > 0xffff || len(room) > 0xffff {
		return id, newError(ErrTooLarge, nil, "sender or room URI longer than 65535 octets")
	}
	h := sha256.New()
	var n [2]byte
	binary.BigEndian.PutUint16(n[:], uint16(len(sender))) // #nosec G115 -- checked above: at most 65535
	h.Write(n[:])
	h.Write([]byte(sender))
	binary.BigEndian.PutUint16(n[:], uint16(len(room))) // #nosec G115 -- checked above: at most 65535
	h.Write(n[:])
	h.Write([]byte(room))
	h.Write(encoded)
	h.Write(salt)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	id[0] = HashSHA256
	copy(id[1:], sum[:31])
	return id, nil
}

// saltOf finds the salt of an encoded message: the 16-octet byte string
// that opens its 7-item array.
func saltOf(b []byte) ([]byte, error) {
	major, _, arg, n, err := readHead(b)
	if err != nil || major != majArray || arg != 7 {
		return nil, newError(ErrMalformed, err, "not a MIMI content message")
	}
	major, _, arg, m, err := readHead(b[n:])
	if err != nil || major != majBytes || arg != SaltSize || len(b)-n-m < SaltSize {
		return nil, newError(ErrMalformed, err, "message does not start with a %d-octet salt", SaltSize)
	}
	return b[n+m : n+m+SaltSize], nil
}

// EncodeWithID encodes the message and computes its ID for the given
// sender and room URIs.
func (m *Message) EncodeWithID(sender, room string) ([]byte, ID, error) {
	b, err := m.Encode()
	if err != nil {
		return nil, ID{}, err
	}
	id, err := MessageID(sender, room, b)
	return b, id, err
}
