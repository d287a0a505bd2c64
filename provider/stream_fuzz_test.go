package provider

import (
	"strings"
	"testing"
)

// FuzzStreamFrame feeds the stream's frame decoder whatever a device could
// send. It must never panic; a frame it takes is one the stream can act
// on (an ack with a cursor, a send with an ID to answer and, unless it is
// to be refused, a room), and what it refuses has a close reason that fits
// in a WebSocket close frame.
func FuzzStreamFrame(f *testing.F) {
	for _, seed := range []string{
		`{"type":"ack","cursor":12}`,
		`{"type":"ack","cursor":-1}`,
		`{"type":"ack"}`,
		`{"type":"send","id":"1","room":"abc","client_id":"cid-00000001","message":"AAEAAg=="}`,
		`{"type":"send","id":"s-2","room":"abc","client_id":"cid-00000002","message":"AAEAAg==","welcome":"AA==","group_info":"AA==","ratchet_tree":"AA=="}`,
		`{"type":"send","id":"x","room":"abc","message":"not base64"}`,
		`{"type":"send","id":"x","room":"abc","extra":1}`,
		`{"type":"send","id":"x"}`,
		`{"type":"send","id":""}`,
		`{"type":"send","id":7}`,
		`{"type":"send","id":"` + strings.Repeat("a", 65) + `"}`,
		`{"type":"send","id":"\u0000"}`,
		`{"type":"subscribe"}`,
		`[1,2,3]`,
		`null`,
		``,
		`{"type":"send","id":"a","room":"r"}{"trailing":true}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := parseStreamFrame(data)
		if err != nil {
			if len(err.Error()) > 123 {
				t.Fatalf("close reason of %d bytes: %q", len(err.Error()), err)
			}
			return
		}
		switch fr.Type {
		case "ack":
			if fr.Cursor < 0 {
				t.Fatalf("ack with cursor %d taken", fr.Cursor)
			}
		case "send":
			if !validSendID(fr.ID) {
				t.Fatalf("send with id %q taken", fr.ID)
			}
			if fr.Err == nil && fr.Room == "" {
				t.Fatal("send without a room taken")
			}
			if fr.Err != nil && fr.Err.Code != "bad_request" {
				t.Fatalf("refused with %s", fr.Err.Code)
			}
		default:
			t.Fatalf("frame of type %q taken", fr.Type)
		}
	})
}
