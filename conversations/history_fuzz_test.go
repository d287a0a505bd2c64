package conversations

import (
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/content"
)

// FuzzHistoryRow reads back a row of the local history whose stored text
// columns (the message ID, the reply's ID, the attachment as JSON) hold
// whatever another version, or a damaged file, could leave. Never a
// panic; a row the reader takes has the columns it read; a row written by
// this version reads back as written.
func FuzzHistoryRow(f *testing.F) {
	h, err := openHistory(filepath.Join(f.TempDir(), "history.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { h.close() })
	att := &client.Attachment{URL: "https://green.example/a/0123", MediaType: "image/png", Filename: "cat.png",
		Size: 1216, Expires: time.Unix(1900000000, 0).UTC(), EncAlg: 1, Key: make([]byte, 16), Nonce: make([]byte, 12)}
	good, _ := json.Marshal(att)
	id := content.ID{7}.String()
	f.Add(id, content.ID{6}.String(), string(good))
	f.Add(id, "", "")
	f.Add("nothex", "", "")
	f.Add(id, "zz", `{"url":1}`)
	f.Add(id, "", `{"size":-1}`)
	f.Add(id, "", `null`)
	ctx := context.Background()
	room := client.RoomID("fuzz-room")
	f.Fuzz(func(t *testing.T, id, reply, file string) {
		if _, err := h.db.Exec(`DELETE FROM entries`); err != nil {
			t.Fatal(err)
		}
		if _, err := h.db.Exec(`INSERT INTO entries (room, id, seq, sender, own, sent, body, reply_to, file)
			VALUES (?, ?, 1, 'alice', 0, 1700000000000, 'hi', ?, ?)`, string(room), id, reply, file); err != nil {
			t.Fatal(err)
		}
		entries, err := h.page(ctx, room, 0, 10)
		if err != nil {
			return
		}
		if len(entries) != 1 {
			t.Fatalf("one row read as %d entries", len(entries))
		}
		e := entries[0]
		if e.ID.String() != id {
			t.Fatalf("the row's id %q read as %s", id, e.ID)
		}
		if e.File != nil {
			again, err := json.Marshal(e.File)
			if err != nil {
				t.Fatalf("an attachment read from the row does not encode: %v", err)
			}
			var back client.Attachment
			if err := json.Unmarshal(again, &back); err != nil || !reflect.DeepEqual(&back, e.File) {
				t.Fatalf("the attachment changes on a round trip: %+v, then %+v (%v)", e.File, back, err)
			}
		}
		// This version's own row reads back as it wrote it.
		own := &Entry{Room: room, ID: content.ID{9}, Seq: 2, Sender: "bob", Sent: time.UnixMilli(1700000000001), Text: "yo", File: att}
		if err := h.add(ctx, own); err != nil {
			t.Fatal(err)
		}
		got, err := h.entry(ctx, room, own.ID)
		if err != nil || got.Text != "yo" || !reflect.DeepEqual(got.File, att) {
			t.Fatalf("this version's row read back as %+v, %v", got, err)
		}
	})
}
