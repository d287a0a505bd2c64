package client

import (
	"context"
	"errors"
	"testing"
)

func TestDecodeStreamFrame(t *testing.T) {
	f, a, err := decodeStreamFrame([]byte(`{"type":"message","cursor":7,"message":{"room":"AAAA","seq":3,"kind":"application","epoch":2,"payload":"AAEC"}}`))
	if err != nil || a != nil || f.Cursor != 7 || f.Message == nil || f.Message.Seq != 3 || f.Message.unreadable != nil {
		t.Fatalf("a message: %+v %v %v", f, a, err)
	}
	_, a, err = decodeStreamFrame([]byte(`{"type":"send_error","id":"4","status":409,"code":"wrong_epoch","message":"a string"}`))
	if err != nil || a == nil || a.ID != "4" || a.Code != "wrong_epoch" {
		t.Fatalf("an answer: %+v %v", a, err)
	}
	// A field of another type than this client knows: the entry is kept,
	// marked, so that it is reported rather than passed over.
	f, a, err = decodeStreamFrame([]byte(`{"type":"message","cursor":8,"message":{"room":"AAAA","seq":4,"kind":"application","epoch":"two","payload":"AAEC"}}`))
	if err != nil || a != nil || f.Cursor != 8 || f.Message == nil || f.Message.Seq != 4 || f.Message.unreadable == nil {
		t.Fatalf("a message with a field of another type: %+v %v %v", f, a, err)
	}
	for name, data := range map[string]string{
		"not JSON":          `{"type":"message","cursor":9,`,
		"no room":           `{"type":"message","cursor":9,"message":{"seq":4,"epoch":"two"}}`,
		"a room not an id":  `{"type":"message","cursor":9,"message":{"room":"../x","seq":4,"epoch":"two"}}`,
		"no cursor":         `{"type":"message","cursor":"nine","message":{"room":"AAAA","seq":4}}`,
		"no seq":            `{"type":"message","cursor":9,"message":{"room":"AAAA","seq":"four"}}`,
		"a message of text": `{"type":"message","cursor":9,"message":"hello"}`,
	} {
		if f, _, err := decodeStreamFrame([]byte(data)); err == nil {
			t.Errorf("%s: read as %+v", name, f)
		}
	}
}

func FuzzDecodeStreamFrame(f *testing.F) {
	f.Add([]byte(`{"type":"message","cursor":7,"message":{"room":"AAAA","seq":3,"kind":"application","epoch":2,"payload":"AAEC"}}`))
	f.Add([]byte(`{"type":"message","cursor":8,"message":{"room":"AAAA","seq":4,"epoch":"two"}}`))
	f.Add([]byte(`{"type":"sent","id":"1","seq":5,"epoch":2}`))
	f.Add([]byte(`{"type":"keypackages.low","cipher_suite":1,"available":0}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, a, err := decodeStreamFrame(data)
		if err != nil || a != nil {
			return
		}
		if m := fr.Message; m != nil && m.unreadable != nil && (fr.Cursor <= 0 || m.Seq <= 0 || !validRoomID(m.Room)) {
			t.Fatalf("an unreadable message that cannot be placed was kept: %+v", fr)
		}
	})
}

// An entry whose fields do not all read reaches the application as a
// DeliveryFailed, the room moves past it, and its cursor is acknowledged.
func TestUnreadableEntryReported(t *testing.T) {
	st := store{dir: t.TempDir()}
	if err := st.init(); err != nil {
		t.Fatal(err)
	}
	c := &Client{store: st, rooms: map[RoomID]*roomEntry{}, kps: map[string]*keyPackageState{}, events: newEventQueue()}
	c.rooms["AAAA"] = &roomEntry{st: &roomState{Room: "AAAA", LastSeq: 3}}
	f, _, err := decodeStreamFrame([]byte(`{"type":"message","cursor":8,"message":{"room":"AAAA","seq":4,"kind":"application","epoch":"two","payload":"AAEC"}}`))
	if err != nil {
		t.Fatal(err)
	}
	cursor, err := c.processFrames(context.Background(), []frame{f})
	if err != nil || cursor != 8 {
		t.Fatalf("processed up to cursor %d: %v", cursor, err)
	}
	ev := <-c.events.out
	df, ok := ev.(*DeliveryFailed)
	if !ok || df.Room != "AAAA" || df.Seq != 4 || !errors.Is(df.Err, ErrUnreadableMessage) {
		t.Fatalf("event %#v", ev)
	}
	saved, err := st.loadRoom("AAAA")
	if err != nil || saved.LastSeq != 4 {
		t.Fatalf("room saved at seq %v: %v", saved, err)
	}
}
