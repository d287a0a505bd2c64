package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/switchboard-chat/switchboard/content"
)

// Attachments (docs/attachments.md): a file is encrypted on the device
// with a fresh key, the ciphertext is uploaded to the device's own
// provider, and what a recipient needs to fetch and decrypt it — the URL,
// the key, the nonce, the hash — travels inside an MLS-encrypted message,
// as a MIMI ExternalPart (draft-ietf-mimi-content). Recipients download
// through their own provider, which fetches the ciphertext from the
// uploader's, so the uploader's provider never learns which device asked.

// Algorithm numbers of the MIMI ExternalPart.
const (
	// EncAlgAES128GCM is AEAD_AES_128_GCM in the IANA AEAD registry
	// (RFC 5116), which MIMI requires every implementation to support.
	EncAlgAES128GCM uint16 = 1
	// HashAlgSHA256 is sha-256 in the IANA Named Information Hash
	// Algorithm registry (RFC 6920).
	HashAlgSHA256 uint8 = 1
)

// Errors of attachments.
var (
	// ErrAttachmentCorrupt reports a downloaded attachment that is not
	// what its Attachment describes: the wrong size or hash, or a
	// ciphertext that does not decrypt under its key. Either the bytes
	// were changed on the way or the description was.
	ErrAttachmentCorrupt = errors.New("client: attachment corrupt")
	// ErrAttachmentUnsupported reports an Attachment whose encryption or
	// hash algorithm this client does not implement.
	ErrAttachmentUnsupported = errors.New("client: attachment algorithm not supported")
)

// Attachment describes an encrypted file on a provider: everything a
// recipient needs to download, check and decrypt it. It maps one to one
// onto the fields of a MIMI ExternalPart, whose names the JSON tags use.
// Size and Hash are of the content at the URL, as the draft's contentHash
// is: the ciphertext, which a downloader can check before decrypting.
type Attachment struct {
	URL       string `json:"url"`
	MediaType string `json:"contentType"`
	Filename  string `json:"filename,omitempty"`
	// Size is the ciphertext's length in octets: the plaintext's plus
	// the 16-byte GCM tag.
	Size uint64 `json:"size"`
	// Expires is when the uploader's provider deletes the file (zero:
	// unknown).
	Expires time.Time `json:"expires,omitzero"`
	EncAlg  uint16    `json:"encAlg"`
	Key     []byte    `json:"key"`
	Nonce   []byte    `json:"nonce"`
	// AAD is the AEAD's additional data: empty, MIMI's default.
	AAD     []byte `json:"aad,omitempty"`
	HashAlg uint8  `json:"hashAlg"`
	Hash    []byte `json:"contentHash"`
}

// Upload encrypts the file read from r with a fresh AES-128-GCM key and
// nonce, uploads the ciphertext to this device's provider, and returns its
// Attachment, to be sent in a message. mediaType and filename are only
// recorded in the Attachment (the provider never sees them). A file over
// the provider's limit is refused with an *APIError matching ErrTooLarge.
//
// The file is held in memory, encrypted in one piece.
func (c *Client) Upload(ctx context.Context, r io.Reader, mediaType, filename string) (Attachment, error) {
	if c.closed.Load() {
		return Attachment{}, ErrClosed
	}
	plain, err := io.ReadAll(r)
	if err != nil {
		return Attachment{}, fmt.Errorf("client: upload: reading the file: %w", err)
	}
	// The MIMI content format's own sealing: AES-128-GCM under a fresh
	// key and nonce, SHA-256 over the ciphertext.
	sealed, x, err := content.SealAttachment(plain)
	if err != nil {
		return Attachment{}, fmt.Errorf("client: upload: %w", err)
	}
	a := Attachment{MediaType: mediaType, Filename: filename, EncAlg: x.EncAlg, HashAlg: x.HashAlg,
		Key: x.Key, Nonce: x.Nonce, Hash: x.ContentHash, Size: x.Size}

	var resp struct {
		URL     string    `json:"url"`
		Size    uint64    `json:"size"`
		Expires time.Time `json:"expires"`
	}
	data, err := c.callRaw(ctx, http.MethodPost, "/v1/attachments", nil, sealed, maxResponse)
	if err != nil {
		return Attachment{}, fmt.Errorf("client: upload: %w", err)
	}
	if err := json.Unmarshal(data, &resp); err != nil {
		return Attachment{}, fmt.Errorf("client: upload: response: %w", err)
	}
	if resp.URL == "" || resp.Size != a.Size {
		return Attachment{}, fmt.Errorf("client: upload: the provider answered URL %q and size %d for %d bytes", resp.URL, resp.Size, a.Size)
	}
	a.URL, a.Expires = resp.URL, resp.Expires
	return a, nil
}

// Download fetches an attachment through this device's provider (which
// fetches it from the uploader's provider if that is another), checks its
// size and hash, decrypts it and returns the file. A download that does
// not match a is ErrAttachmentCorrupt; a missing or expired one an
// *APIError matching ErrNotFound.
func (c *Client) Download(ctx context.Context, a Attachment) ([]byte, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	if a.EncAlg != EncAlgAES128GCM || a.HashAlg != HashAlgSHA256 {
		return nil, fmt.Errorf("%w: encAlg %d, hashAlg %d (want %d and %d)", ErrAttachmentUnsupported, a.EncAlg, a.HashAlg, EncAlgAES128GCM, HashAlgSHA256)
	}
	if a.URL == "" || len(a.Key) != 16 || len(a.Nonce) != 12 || len(a.Hash) != sha256.Size || a.Size > maxResponse {
		return nil, fmt.Errorf("%w: the description is malformed (key %d bytes, nonce %d, hash %d, size %d)",
			ErrAttachmentCorrupt, len(a.Key), len(a.Nonce), len(a.Hash), a.Size)
	}
	// One byte more than the size is enough to tell a longer answer.
	sealed, err := c.callRaw(ctx, http.MethodGet, "/v1/attachments/download", url.Values{"url": {a.URL}}, nil, int64(a.Size)+1)
	if err != nil {
		return nil, fmt.Errorf("client: download: %w", err)
	}
	if uint64(len(sealed)) != a.Size {
		return nil, fmt.Errorf("%w: %d bytes downloaded, %d expected", ErrAttachmentCorrupt, len(sealed), a.Size)
	}
	plain, err := content.OpenAttachment(content.External{URL: a.URL, Size: a.Size, EncAlg: a.EncAlg, Key: a.Key,
		Nonce: a.Nonce, AAD: a.AAD, HashAlg: a.HashAlg, ContentHash: a.Hash}, sealed)
	switch {
	case errors.Is(err, content.ErrUnsupported):
		return nil, fmt.Errorf("%w: %v", ErrAttachmentUnsupported, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrAttachmentCorrupt, err)
	}
	return plain, nil
}

// callRaw is call for a binary body: body, if not nil, is sent as
// application/octet-stream, and the answer's body is returned as it is,
// reading at most limit bytes of it (an error body is read within
// maxResponse and decoded as usual). An expired session is renewed and
// the request sent again.
func (c *Client) callRaw(ctx context.Context, method, path string, q url.Values, body []byte, limit int64) ([]byte, error) {
	tok, err := c.token(ctx)
	if err != nil {
		return nil, err
	}
	data, err := c.api.raw(ctx, method, path, q, tok, body, limit)
	if !errors.Is(err, ErrUnauthenticated) {
		return data, err
	}
	if tok, err = c.signIn(ctx); err != nil {
		return nil, err
	}
	return c.api.raw(ctx, method, path, q, tok, body, limit)
}

// raw sends one request with a binary body (nil: none) and returns the
// answer's body, of which it reads at most limit bytes.
func (a *api) raw(ctx context.Context, method, path string, q url.Values, token string, body []byte, limit int64) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.endpoint(path, q), rd)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, &networkError{err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
		if err != nil {
			return nil, &networkError{err: err}
		}
		return nil, decodeAPIError(resp, data)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return nil, &networkError{err: err}
	}
	return data, nil
}
