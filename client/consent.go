package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/switchboard-chat/switchboard/identity"
)

// Consent (docs/consent.md): message requests, and the people this
// device's user accepted or blocked. The user's provider keeps them and
// enforces them: it hands a blocked person none of the user's key
// material and delivers none of their messages, and delivers nothing of a
// declined room.
//
// People are named as Invite names them: "bob" for a user of this
// provider, "bob@blue.example" for a partner's; a user URI
// ("mimi://blue.example/u/bob") is taken too. What these methods return
// names people the same way.

// Request is a message request: someone this user has not accepted added
// them to Room, or (Room empty) asked for consent with no room.
type Request struct {
	Peer    string // as Invite names people
	Room    RoomID // empty for a request without a room
	Created time.Time
}

// peerURI turns an address into the user URI the provider takes.
func (c *Client) peerURI(peer string) (string, error) {
	p := strings.TrimSpace(peer)
	if strings.HasPrefix(p, "mimi://") {
		u, err := identity.ParseURI(p)
		if err != nil || u.Kind != identity.KindUser {
			return "", fmt.Errorf("%w: %q is not a user URI", ErrBadRequest, peer)
		}
		return u.String(), nil
	}
	user, domain := p, c.dev.Domain
	if at := strings.LastIndexByte(p, '@'); at >= 0 {
		user, domain = p[:at], p[at+1:]
	}
	u := identity.UserURI(strings.ToLower(domain), strings.ToLower(user))
	if user == "" || u.Validate() != nil {
		return "", fmt.Errorf("%w: %q is not a handle or handle@domain", ErrBadRequest, peer)
	}
	return u.String(), nil
}

// address names a user URI as Invite does; what is not a user URI is
// returned as it is.
func (c *Client) address(uri string) string {
	u, err := identity.ParseURI(uri)
	if err != nil || u.Kind != identity.KindUser {
		return uri
	}
	return member{Domain: u.Domain, User: u.User}.address(c.dev.Domain)
}

// Requests lists the user's pending message requests, oldest first.
func (c *Client) Requests(ctx context.Context) ([]Request, error) {
	var resp struct {
		Requests []struct {
			Peer    string    `json:"peer"`
			Room    string    `json:"room"`
			Created time.Time `json:"created"`
		} `json:"requests"`
	}
	if err := c.call(ctx, http.MethodGet, "/v1/requests", nil, nil, &resp); err != nil {
		return nil, fmt.Errorf("client: requests: %w", err)
	}
	out := []Request{}
	for _, r := range resp.Requests {
		out = append(out, Request{Peer: c.address(r.Peer), Room: RoomID(r.Room), Created: r.Created})
	}
	return out, nil
}

// answer posts an accept or decline.
func (c *Client) answer(ctx context.Context, verb, peer string, room RoomID) error {
	uri, err := c.peerURI(peer)
	if err != nil {
		return err
	}
	in := map[string]string{"peer": uri, "room": string(room)}
	if err := c.call(ctx, http.MethodPost, "/v1/requests/"+verb, nil, in, nil); err != nil {
		return fmt.Errorf("client: %s the request of %s: %w", verb, peer, err)
	}
	return nil
}

// AcceptRequest accepts a pending request: peer becomes an accepted
// contact, none of their requests is pending any more, and a partner's
// user's provider is told. No such request is ErrNotFound.
func (c *Client) AcceptRequest(ctx context.Context, peer string, room RoomID) error {
	return c.answer(ctx, "accept", peer, room)
}

// DeclineRequest declines a pending request: the provider delivers
// nothing more of the room to this user's devices, and drops what it had
// waiting. Nobody is told. No such request is ErrNotFound.
func (c *Client) DeclineRequest(ctx context.Context, peer string, room RoomID) error {
	return c.answer(ctx, "decline", peer, room)
}

// setContact puts the user's decision about peer.
func (c *Client) setContact(ctx context.Context, peer, state string) error {
	uri, err := c.peerURI(peer)
	if err != nil {
		return err
	}
	in := map[string]string{"state": state}
	if err := c.call(ctx, http.MethodPut, "/v1/contacts/"+url.PathEscape(uri), nil, in, nil); err != nil {
		return fmt.Errorf("client: contact %s %s: %w", peer, state, err)
	}
	return nil
}

// Block blocks peer: their pending requests are declined, they get none
// of this user's key material (an invitation fails with ErrNoConsent),
// and their messages, in any room, are not delivered to this user's
// devices. Nobody is told. It holds until Unblock.
func (c *Client) Block(ctx context.Context, peer string) error {
	return c.setContact(ctx, peer, "blocked")
}

// Unblock lifts a block (and forgets an acceptance): peer's new
// invitations are message requests again. Rooms declined stay declined.
func (c *Client) Unblock(ctx context.Context, peer string) error {
	return c.setContact(ctx, peer, "none")
}

// Blocked lists the people the user blocked, sorted by user URI.
func (c *Client) Blocked(ctx context.Context) ([]string, error) {
	var resp struct {
		Contacts []struct {
			Peer string `json:"peer"`
		} `json:"contacts"`
	}
	if err := c.call(ctx, http.MethodGet, "/v1/contacts", url.Values{"state": {"blocked"}}, nil, &resp); err != nil {
		return nil, fmt.Errorf("client: blocked: %w", err)
	}
	out := []string{}
	for _, ct := range resp.Contacts {
		out = append(out, c.address(ct.Peer))
	}
	return out, nil
}
