package content

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
)

// SealAttachment encrypts plaintext for upload with AES-128-GCM under a
// fresh random key and nonce (and empty AAD, the draft's default), and
// returns the ciphertext to upload and the External that lets members
// fetch and check it: EncAlg, Key, Nonce, AAD, HashAlg (SHA-256), the
// ContentHash and Size of the ciphertext, which is the content at the URL.
// The caller fills in URL (and Filename, Description, Expires) after
// uploading.
func SealAttachment(plaintext []byte) ([]byte, External, error) {
	e := External{EncAlg: EncAES128GCM, Key: make([]byte, 16), Nonce: make([]byte, 12), AAD: []byte{}, HashAlg: HashSHA256}
	rand.Read(e.Key)
	rand.Read(e.Nonce)
	aead, err := gcm(e.Key)
	if err != nil {
		return nil, External{}, err
	}
	ct := aead.Seal(nil, e.Nonce, plaintext, e.AAD)
	sum := sha256.Sum256(ct)
	e.ContentHash = sum[:]
	e.Size = uint64(len(ct))
	return ct, e, nil
}

// OpenAttachment checks content fetched from e.URL against e's size and
// hash and decrypts it. It refuses with ErrIntegrity content whose size or
// hash differ or that does not decrypt, and with ErrUnsupported an
// algorithm other than AES-128-GCM (or none) and SHA-256 (or none).
func OpenAttachment(e External, fetched []byte) ([]byte, error) {
	if e.Size != 0 && uint64(len(fetched)) != e.Size {
		return nil, newError(ErrIntegrity, nil, "attachment is %d octets, the message says %d", len(fetched), e.Size)
	}
	switch e.HashAlg {
	case HashNone:
	case HashSHA256:
		sum := sha256.Sum256(fetched)
		if subtle.ConstantTimeCompare(sum[:], e.ContentHash) != 1 {
			return nil, newError(ErrIntegrity, nil, "attachment hash does not match")
		}
	default:
		return nil, newError(ErrUnsupported, nil, "attachment hash algorithm %d", e.HashAlg)
	}
	switch e.EncAlg {
	case EncNone:
		return fetched, nil
	case EncAES128GCM:
		if len(e.Nonce) != 12 {
			return nil, newError(ErrMalformed, nil, "AES-128-GCM nonce of %d octets, not 12", len(e.Nonce))
		}
		aead, err := gcm(e.Key)
		if err != nil {
			return nil, err
		}
		pt, err := aead.Open(nil, e.Nonce, fetched, e.AAD)
		if err != nil {
			return nil, newError(ErrIntegrity, err, "attachment does not decrypt")
		}
		return pt, nil
	}
	return nil, newError(ErrUnsupported, nil, "attachment encryption algorithm %d", e.EncAlg)
}

func gcm(key []byte) (cipher.AEAD, error) {
	if len(key) != 16 {
		return nil, newError(ErrMalformed, nil, "AES-128-GCM key of %d octets, not 16", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, newError(ErrMalformed, err, "attachment key")
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, newError(ErrMalformed, err, "attachment key")
	}
	return aead, nil
}
