package client

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/switchboard-chat/switchboard/content"
	"github.com/switchboard-chat/switchboard/federation"
)

// Message franking and abuse reports (docs/abuse.md). A device commits to
// every MIMI content message it sends with a franking tag in the
// message's authenticated data; the hub stamps the message (the frank);
// a receiving device checks the tag against what it decrypted and keeps
// the frank, so that it can later report the message: its provider, the
// hub and the sender's provider can then verify that exactly this
// message was sent by that sender in that room.

// Frank is a received message's stamp from the room's hub.
type Frank struct {
	// Frank is the MIMI Frank encoding: the server frank, the cipher suite
	// and the hub's signature.
	Frank []byte
	// AcceptedTimestamp is the hub's acceptance time in milliseconds since
	// the Unix epoch, which the frank signs.
	AcceptedTimestamp uint64
}

// ErrFrankingTag reports a message whose franking tag is not the one of
// its content: the sender committed to something else.
var ErrFrankingTag = errors.New("client: the message's franking tag does not match its content")

// frankAAD is the authenticated data a message is sent with: a Safe AAD
// with the franking tag of a MIMI content message, nothing for other
// bodies (which have no salt to key the tag with).
func frankAAD(body []byte) []byte {
	msg, err := content.Decode(body)
	if err != nil {
		return nil
	}
	return federation.FrankAAD(federation.FrankingTag(msg.Salt[:], body))
}

// checkFrankingTag checks a decrypted message against the franking tag in
// its authenticated data, if it carries one.
func checkFrankingTag(aad, body []byte) error {
	tag, ok, err := federation.FrankingTagOf(aad)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrFrankingTag, err)
	}
	if !ok {
		return nil
	}
	msg, err := content.Decode(body)
	if err != nil {
		return fmt.Errorf("%w: a franked message that is not MIMI content", ErrFrankingTag)
	}
	if want := federation.FrankingTag(msg.Salt[:], body); !hmac.Equal(want[:], tag[:]) {
		return ErrFrankingTag
	}
	return nil
}

// frankOf is the frank a message arrived with, or nil.
func frankOf(m *wireMessage) *Frank {
	if len(m.Frank) == 0 {
		return nil
	}
	return &Frank{Frank: m.Frank, AcceptedTimestamp: m.AcceptedTimestamp}
}

// AbuseReport is what a device reports about messages of a room.
type AbuseReport struct {
	// AllegedAbuser is the user reported: handle for this provider's
	// users, handle@domain for others', or a user URI.
	AllegedAbuser string
	// Reason is the MIMI AbuseType; 0 (unspecified) is the only one
	// defined.
	Reason uint8
	Note   string
	// Messages are the reported messages, as received: the decrypted
	// content, which the report reveals, and its frank.
	Messages []ReportedMessage
}

// ReportedMessage is one message of a report.
type ReportedMessage struct {
	Content []byte
	Frank   Frank
}

// Report sends an abuse report about messages of a room to this
// device's provider, which verifies every message before it accepts the
// report (an *APIError with code frank_invalid otherwise) and sends it on
// to the room's hub and the alleged abuser's provider. It returns the
// report's number in the provider's queue.
func (c *Client) Report(ctx context.Context, room RoomID, r AbuseReport) (int64, error) {
	type msgJSON struct {
		Content           []byte `json:"content"`
		Frank             []byte `json:"frank"`
		AcceptedTimestamp uint64 `json:"accepted_timestamp"`
	}
	req := struct {
		AllegedAbuser string    `json:"alleged_abuser"`
		Reason        uint8     `json:"reason"`
		Note          string    `json:"note"`
		Messages      []msgJSON `json:"messages"`
	}{AllegedAbuser: r.AllegedAbuser, Reason: r.Reason, Note: r.Note}
	for _, m := range r.Messages {
		req.Messages = append(req.Messages, msgJSON{Content: m.Content, Frank: m.Frank.Frank, AcceptedTimestamp: m.Frank.AcceptedTimestamp})
	}
	var resp struct {
		ID int64 `json:"id"`
	}
	if err := c.call(ctx, http.MethodPost, "/v1/rooms/"+url.PathEscape(string(room))+"/reports", nil, req, &resp); err != nil {
		return 0, err
	}
	return resp.ID, nil
}

// Notice is a message from the provider's operator to this user, such as
// a warning after an abuse report.
type Notice struct {
	ID      int64
	Text    string
	Report  int64 // the report it follows, 0 if none
	Created time.Time
}

// Notices lists the operator's notices to this device's user, oldest
// first.
func (c *Client) Notices(ctx context.Context) ([]Notice, error) {
	var resp struct {
		Notices []struct {
			ID      int64     `json:"id"`
			Text    string    `json:"text"`
			Report  int64     `json:"report"`
			Created time.Time `json:"created"`
		} `json:"notices"`
	}
	if err := c.call(ctx, http.MethodGet, "/v1/me/notices", nil, nil, &resp); err != nil {
		return nil, err
	}
	out := make([]Notice, 0, len(resp.Notices))
	for _, n := range resp.Notices {
		out = append(out, Notice{ID: n.ID, Text: n.Text, Report: n.Report, Created: n.Created})
	}
	return out, nil
}
