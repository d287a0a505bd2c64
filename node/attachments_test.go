package node_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/node"
)

// attachmentLimit is the providers' MaxAttachmentBytes in these tests:
// small enough to go over quickly, large enough that a file crosses from
// one provider to the other in several pieces.
const attachmentLimit = 6 << 20

// TestAttachmentAcrossProviders: Alice (green) uploads a file to green and
// sends its description to Bob (blue) in a message; Bob downloads it
// through blue, which fetches it from green over the federation API. Green
// sees blue ask, never Bob's device; no provider holds, logs or passes on
// the file's plaintext; a tampered description fails; an upload over the
// limit is refused.
func TestAttachmentAcrossProviders(t *testing.T) {
	h := startHarnessWith(t, func(cfg *node.Config) { cfg.Provider.MaxAttachmentBytes = attachmentLimit },
		"green.test", "blue.test")
	alice, _ := h.enroll("green.test", "alice", "phone", client.Options{})
	bob, _ := h.enroll("blue.test", "bob", "tablet", client.Options{})
	ctx := context.Background()
	dm, err := alice.c.CreateRoom(ctx)
	must(t, "alice creates a room", err)
	must(t, "alice invites bob", alice.c.Invite(ctx, dm, "bob@blue.test"))

	// The file: a marker no one else could write, then enough random
	// bytes that it travels in three pieces.
	var rnd [12]byte
	rand.Read(rnd[:])
	marker := "sbattach-" + hex.EncodeToString(rnd[:]) + "-plaintext"
	file := make([]byte, 5<<20)
	rand.Read(file)
	copy(file, marker)
	copy(file[len(file)/2:], marker)

	a, err := alice.c.Upload(ctx, bytes.NewReader(file), "application/pdf", "report.pdf")
	must(t, "alice uploads the file", err)
	if !strings.HasPrefix(a.URL, "https://green.test/attachments/") {
		t.Fatalf("the attachment's URL %q does not name green", a.URL)
	}
	desc, err := json.Marshal(a)
	must(t, "encoding the attachment", err)
	alice.send(dm, string(desc))

	// Bob reads the message, and downloads the file through blue.
	var got client.Attachment
	waitFor(t, "bob reads the attachment", func() bool {
		bob.read()
		bob.mu.Lock()
		defer bob.mu.Unlock()
		for _, e := range bob.seen {
			if m, ok := e.(*client.Message); ok && m.Room == dm {
				must(t, "decoding the attachment", json.Unmarshal(m.Body, &got))
				return true
			}
		}
		return false
	})
	plain, err := bob.c.Download(ctx, got)
	must(t, "bob downloads the file", err)
	if !bytes.Equal(plain, file) {
		t.Fatalf("bob downloaded %d bytes that are not the file", len(plain))
	}

	// A description changed on the way (by someone who could, which is
	// only a member of the room) is caught.
	for name, change := range map[string]func(*client.Attachment){
		"hash": func(a *client.Attachment) { a.Hash = flipped(a.Hash) },
		"key":  func(a *client.Attachment) { a.Key = flipped(a.Key) },
	} {
		bad := got
		change(&bad)
		if _, err := bob.c.Download(ctx, bad); !errors.Is(err, client.ErrAttachmentCorrupt) {
			t.Errorf("a tampered %s: %v, want ErrAttachmentCorrupt", name, err)
		}
	}

	// Over the limit: refused, with the limit in the message.
	big := make([]byte, attachmentLimit)
	_, err = alice.c.Upload(ctx, bytes.NewReader(big), "application/octet-stream", "big.bin")
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusRequestEntityTooLarge || ae.Code != "too_large" ||
		!strings.Contains(ae.Message, strconv.Itoa(attachmentLimit)) {
		t.Errorf("an upload over the limit: %v, want 413 too_large naming %d", err, attachmentLimit)
	}

	// Green stored ciphertext only.
	id := strings.TrimPrefix(a.URL, "https://green.test/attachments/")
	stored, size, err := h.node("green.test").Store.ReadAttachment(ctx, id, 0, 0)
	must(t, "reading the stored attachment", err)
	if size != int64(len(file)+16) || int64(len(stored)) != size {
		t.Errorf("green stores %d bytes (size %d) for a %d-byte file", len(stored), size, len(file))
	}
	needles := spellings(marker)
	if found(needles, file) == "" {
		t.Fatal("the search does not find the marker in the file itself")
	}
	if n := found(needles, stored); n != "" {
		t.Errorf("the marker's %s is in the attachment green stores", n)
	}

	// What green saw of the download: requests from blue, the provider,
	// naming no device or user of blue's.
	fetches := h.traffic.all(func(e exchange) bool { return strings.HasPrefix(e.Path, "/proxyDownload/") })
	if len(fetches) < 3 {
		t.Errorf("blue fetched the file from green in %d requests, want 3 pieces", len(fetches))
	}
	for _, e := range fetches {
		var b bytes.Buffer
		e.Header.Write(&b)
		b.WriteString(e.Path)
		if e.To != "green.test" || e.From() != "blue.test" || e.Status != http.StatusPartialContent ||
			strings.Contains(b.String(), "bob") || strings.Contains(b.String(), "tablet") {
			t.Errorf("a proxyDownload %s -> %s %s: %d, headers %v", e.From(), e.To, e.Path, e.Status, e.Header)
		}
	}
	served := 0
	for _, line := range h.logsOf("green.test") {
		if !strings.Contains(line, "attachment served to a partner") {
			continue
		}
		served++
		if !strings.Contains(line, `"peer":"blue.test"`) || strings.Contains(line, "bob") || strings.Contains(line, "tablet") {
			t.Errorf("green logged: %s", line)
		}
	}
	if served != len(fetches) {
		t.Errorf("green logged %d pieces served, and served %d", served, len(fetches))
	}
	if !h.logged("blue.test", "attachment fetched from a partner", `"partner":"green.test"`) {
		t.Error("blue did not log the fetch")
	}

	// No plaintext in the federation traffic, the logs or the data
	// directories.
	for _, e := range h.traffic.all(nil) {
		var b bytes.Buffer
		e.Header.Write(&b)
		b.Write(e.Body)
		e.RespHeader.Write(&b)
		b.Write(e.RespBody)
		if n := found(needles, b.Bytes()); n != "" {
			t.Errorf("the marker's %s is in a federation exchange %s -> %s %s", n, e.From(), e.To, e.Path)
		}
	}
	if n := found(needles, h.logs.Bytes()); n != "" {
		t.Errorf("the marker's %s is in the providers' logs", n)
	}
	for _, d := range h.domains {
		err := filepath.WalkDir(h.dataDir(d), func(path string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if n := found(needles, data); n != "" {
				t.Errorf("the marker's %s is in %s", n, path)
			}
			return nil
		})
		must(t, "searching "+d+"'s data directory", err)
	}
}

func flipped(b []byte) []byte {
	b = bytes.Clone(b)
	b[0] ^= 1
	return b
}
