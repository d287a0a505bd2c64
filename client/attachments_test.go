package client_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/switchboard-chat/switchboard/client"
)

func TestAttachmentRoundTrip(t *testing.T) {
	e := newEnv(t)
	alice := e.register("alice", "phone")
	laptop := e.register("alice", "laptop")
	bob := e.register("bob", "phone")

	file := []byte("a picture of a cat, or close enough: " + strings.Repeat("meow ", 1000))
	a, err := alice.Upload(e.ctx, bytes.NewReader(file), "image/png", "cat.png")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a.URL, "https://green.test/attachments/") || a.MediaType != "image/png" || a.Filename != "cat.png" ||
		a.EncAlg != client.EncAlgAES128GCM || a.HashAlg != client.HashAlgSHA256 || len(a.Key) != 16 || len(a.Nonce) != 12 ||
		len(a.Hash) != 32 || a.Size != uint64(len(file)+16) || a.Expires.IsZero() {
		t.Fatalf("upload gave %+v", a)
	}
	// The description survives JSON, as a message body carries it.
	data, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	var got client.Attachment
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*device{alice, laptop, bob} {
		plain, err := d.Download(e.ctx, got)
		if err != nil || !bytes.Equal(plain, file) {
			t.Errorf("%s downloads %d bytes, %v", d.Device(), len(plain), err)
		}
	}

	// Two uploads of the same file share nothing.
	b, err := alice.Upload(e.ctx, bytes.NewReader(file), "image/png", "cat.png")
	if err != nil {
		t.Fatal(err)
	}
	if b.URL == a.URL || bytes.Equal(b.Key, a.Key) || bytes.Equal(b.Nonce, a.Nonce) || bytes.Equal(b.Hash, a.Hash) {
		t.Error("two uploads share a URL, key, nonce or hash")
	}

	// An empty file is a file.
	empty, err := alice.Upload(e.ctx, bytes.NewReader(nil), "text/plain", "")
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := bob.Download(e.ctx, empty); err != nil || len(plain) != 0 {
		t.Errorf("the empty file downloads as %d bytes, %v", len(plain), err)
	}
}

func TestAttachmentTampering(t *testing.T) {
	e := newEnv(t)
	alice := e.register("alice", "phone")
	bob := e.register("bob", "phone")
	file := []byte(strings.Repeat("the minutes of the meeting ", 200))
	a, err := alice.Upload(e.ctx, bytes.NewReader(file), "text/plain", "minutes.txt")
	if err != nil {
		t.Fatal(err)
	}
	flip := func(b []byte) []byte {
		b = bytes.Clone(b)
		b[len(b)/2] ^= 1
		return b
	}
	for _, c := range []struct {
		name   string
		change func(a *client.Attachment)
		want   error
	}{
		{"hash", func(a *client.Attachment) { a.Hash = flip(a.Hash) }, client.ErrAttachmentCorrupt},
		{"key", func(a *client.Attachment) { a.Key = flip(a.Key) }, client.ErrAttachmentCorrupt},
		{"nonce", func(a *client.Attachment) { a.Nonce = flip(a.Nonce) }, client.ErrAttachmentCorrupt},
		{"aad", func(a *client.Attachment) { a.AAD = []byte("x") }, client.ErrAttachmentCorrupt},
		{"smaller", func(a *client.Attachment) { a.Size-- }, client.ErrAttachmentCorrupt},
		{"larger", func(a *client.Attachment) { a.Size++ }, client.ErrAttachmentCorrupt},
		{"short key", func(a *client.Attachment) { a.Key = a.Key[:15] }, client.ErrAttachmentCorrupt},
		{"no hash", func(a *client.Attachment) { a.Hash = nil }, client.ErrAttachmentCorrupt},
		{"encAlg", func(a *client.Attachment) { a.EncAlg = 2 }, client.ErrAttachmentUnsupported},
		{"hashAlg", func(a *client.Attachment) { a.HashAlg = 2 }, client.ErrAttachmentUnsupported},
		{"unknown", func(a *client.Attachment) { a.URL += "x" }, client.ErrNotFound},
	} {
		changed := a
		c.change(&changed)
		if plain, err := bob.Download(e.ctx, changed); !errors.Is(err, c.want) {
			t.Errorf("%s changed: got %d bytes, %v; want %v", c.name, len(plain), err, c.want)
		}
	}

	// A provider, or anything between, that changes the bytes is caught:
	// a proxy in front of the provider flips one bit of every download.
	target, _ := url.Parse(e.p.URL())
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		if !strings.HasPrefix(resp.Request.URL.Path, "/v1/attachments/download") || resp.StatusCode != http.StatusOK {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		resp.Body = io.NopCloser(bytes.NewReader(flip(body)))
		return nil
	}
	hs := httptest.NewServer(proxy)
	t.Cleanup(hs.Close)
	bob.Close()
	<-bob.done
	via, err := client.Open(e.ctx, hs.URL, bob.dir, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer via.Close()
	if plain, err := via.Download(e.ctx, a); !errors.Is(err, client.ErrAttachmentCorrupt) {
		t.Errorf("a flipped bit in transit: got %d bytes, %v", len(plain), err)
	}
}

func TestAttachmentTooLarge(t *testing.T) {
	e := newEnv(t)
	alice := e.register("alice", "phone")
	// The provider's default limit, 25 MiB of ciphertext: a file of
	// exactly that less the tag fits, one byte more does not.
	limit := 25 << 20
	big := make([]byte, limit-16+1)
	rand.Read(big)
	_, err := alice.Upload(e.ctx, bytes.NewReader(big), "application/octet-stream", "big.bin")
	var ae *client.APIError
	if !errors.Is(err, client.ErrTooLarge) || !errors.As(err, &ae) || ae.Status != http.StatusRequestEntityTooLarge ||
		!strings.Contains(ae.Message, strconv.Itoa(limit)) {
		t.Fatalf("uploading %d bytes: %v", len(big), err)
	}
	a, err := alice.Upload(e.ctx, bytes.NewReader(big[:len(big)-1]), "application/octet-stream", "big.bin")
	if err != nil {
		t.Fatalf("uploading %d bytes: %v", len(big)-1, err)
	}
	if plain, err := alice.Download(e.ctx, a); err != nil || !bytes.Equal(plain, big[:len(big)-1]) {
		t.Errorf("downloading it: %d bytes, %v", len(plain), err)
	}
}
