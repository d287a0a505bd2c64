package storetest

import (
	"bytes"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/store"
)

// Attachments: encrypted files kept whole and read back in ranges
// (docs/attachments.md).

func attachmentRanges(t *testing.T, e *env) {
	alice := e.user("alice")
	data := random(1000)
	e.ok(e.s.PutAttachment(e.ctx, store.Attachment{ID: "a1", OwnerID: alice.ID, Data: data, Created: time.Now()}))
	for _, c := range []struct {
		offset, limit int64
		want          []byte
	}{
		{0, 0, data},
		{0, -1, data},
		{0, 1000, data},
		{0, 5000, data},
		{0, 1, data[:1]},
		{10, 90, data[10:100]},
		{999, 10, data[999:]},
		{500, 0, data[500:]},
		{1000, 10, []byte{}},
		{5000, 0, []byte{}},
	} {
		got, size, err := e.s.ReadAttachment(e.ctx, "a1", c.offset, c.limit)
		e.ok(err)
		if size != 1000 || !bytes.Equal(got, c.want) || got == nil {
			t.Errorf("ReadAttachment(%d, %d) = %d bytes (nil %v) of size %d, want %d bytes of 1000",
				c.offset, c.limit, len(got), got == nil, size, len(c.want))
		}
	}
	_, _, err := e.s.ReadAttachment(e.ctx, "a2", 0, 0)
	is(t, err, store.ErrNotFound, "ReadAttachment of an unknown ID")
	if _, _, err := e.s.ReadAttachment(e.ctx, "a1", -1, 0); err == nil {
		t.Error("ReadAttachment at a negative offset succeeded")
	}

	// IDs are unique; an unknown owner is refused; neither changes the
	// stored attachment.
	is(t, e.s.PutAttachment(e.ctx, store.Attachment{ID: "a1", OwnerID: alice.ID, Data: random(10)}), store.ErrExists, "PutAttachment of a taken ID")
	is(t, e.s.PutAttachment(e.ctx, store.Attachment{ID: "a3", OwnerID: alice.ID + 100, Data: random(10)}), store.ErrNotFound, "PutAttachment of an unknown owner")
	if got, _, err := e.s.ReadAttachment(e.ctx, "a1", 0, 0); err != nil || !bytes.Equal(got, data) {
		t.Errorf("after the refused puts, a1 = %d bytes, %v", len(got), err)
	}
	_, _, err = e.s.ReadAttachment(e.ctx, "a3", 0, 0)
	is(t, err, store.ErrNotFound, "ReadAttachment of a refused attachment")

	// An empty attachment is stored as empty.
	e.ok(e.s.PutAttachment(e.ctx, store.Attachment{ID: "empty", OwnerID: alice.ID}))
	if got, size, err := e.s.ReadAttachment(e.ctx, "empty", 0, 0); err != nil || size != 0 || got == nil || len(got) != 0 {
		t.Errorf("empty attachment = %v (size %d), %v", got, size, err)
	}
}

func attachmentTrim(t *testing.T, e *env) {
	alice := e.user("alice")
	t0 := time.Now()
	for i, id := range []string{"old1", "old2", "new"} {
		created := t0.Add(-time.Hour)
		if i == 2 {
			created = t0
		}
		e.ok(e.s.PutAttachment(e.ctx, store.Attachment{ID: id, OwnerID: alice.ID, Data: random(100), Created: created}))
	}
	n, err := e.s.TrimAttachments(e.ctx, t0.Add(-time.Minute))
	e.ok(err)
	if n != 2 {
		t.Errorf("TrimAttachments removed %d, want 2", n)
	}
	for _, id := range []string{"old1", "old2"} {
		_, _, err := e.s.ReadAttachment(e.ctx, id, 0, 0)
		is(t, err, store.ErrNotFound, "ReadAttachment of trimmed "+id)
	}
	if _, size, err := e.s.ReadAttachment(e.ctx, "new", 0, 0); err != nil || size != 100 {
		t.Errorf("new after the trim: size %d, %v", size, err)
	}
	if n, err := e.s.TrimAttachments(e.ctx, t0.Add(-time.Minute)); err != nil || n != 0 {
		t.Errorf("second trim = %d, %v", n, err)
	}
}

func reopenAttachments(t *testing.T, open func() *env) {
	e := open()
	alice := e.user("alice")
	data := random(3 << 19)
	e.ok(e.s.PutAttachment(e.ctx, store.Attachment{ID: "big", OwnerID: alice.ID, Data: data, Created: time.Now()}))
	e.ok(e.s.Close())
	e = open()
	got, size, err := e.s.ReadAttachment(e.ctx, "big", 1<<19, 1<<19)
	e.ok(err)
	if size != int64(len(data)) || !bytes.Equal(got, data[1<<19:2<<19]) {
		t.Errorf("after reopening: size %d, the second half MiB matches: %v", size, bytes.Equal(got, data[1<<19:2<<19]))
	}
}
