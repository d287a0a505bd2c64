package client

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// Discovery (docs/discovery.md): whether this device's user may be found
// by people on other providers, and finding people by handle or phone
// number among those who allow it.

// discoverySettings is GET and PUT /v1/me/discovery.
type discoverySettings struct {
	ByHandle bool `json:"by_handle"`
	ByPhone  bool `json:"by_phone"`
}

// Discovery says whether the user may be found by handle and by phone
// number. Both are false until the user says otherwise.
func (c *Client) Discovery(ctx context.Context) (byHandle, byPhone bool, err error) {
	var s discoverySettings
	if err := c.call(ctx, http.MethodGet, "/v1/me/discovery", nil, nil, &s); err != nil {
		return false, false, fmt.Errorf("client: discovery settings: %w", err)
	}
	return s.ByHandle, s.ByPhone, nil
}

// SetDiscovery sets whether the user may be found by handle and by phone
// number, here and at the provider's partners. Allowing phone lookups for
// an account without a phone number is ErrBadRequest.
//
// Being discoverable by phone also puts the number in the device's
// credential (docs/identity.md), so when byPhone changes this device asks
// its provider for a new credential: rooms it creates and KeyPackages it
// uploads from then on carry the number, or no longer carry it. Rooms it is
// already in, and KeyPackages already uploaded, keep the credential they
// were made with; the SDK does not yet replace its leaf credential in
// existing groups. The user's other devices pick the change up only when
// they next fetch a credential.
func (c *Client) SetDiscovery(ctx context.Context, byHandle, byPhone bool) error {
	_, wasByPhone, err := c.Discovery(ctx)
	if err != nil {
		return err
	}
	in := discoverySettings{ByHandle: byHandle, ByPhone: byPhone}
	if err := c.call(ctx, http.MethodPut, "/v1/me/discovery", nil, in, nil); err != nil {
		return fmt.Errorf("client: set discovery: %w", err)
	}
	if byPhone != wasByPhone {
		if err := c.fetchCredential(ctx); err != nil {
			return fmt.Errorf("client: discovery changed, but renewing the credential failed: %w", err)
		}
	}
	return nil
}

// Lookup finds the people a query names, among those who allow being
// found by it, and returns their addresses as handle@domain, ready for
// Invite. The query is
//
//   - a handle ("bob"): looked up here and at every partner provider;
//   - handle@domain ("bob@blue.example"): looked up at that provider only;
//   - a phone number in international form, in any common notation
//     ("+1 202-555-0123", "+1 (202) 555 0123", "0041 44 668 18 00",
//     "tel:+41-44-668-18-00"): looked up here and at every partner.
//
// A string of digits alone that could be a handle ("12345") is taken for
// a handle; write a phone number with its + (or 00) and country code.
// No match is an empty list, not an error. A partner that does not answer
// in time is left out of the answer; when the query names its provider,
// that is an error (code partner_unreachable).
func (c *Client) Lookup(ctx context.Context, query string) ([]string, error) {
	req, err := lookupRequest(query)
	if err != nil {
		return nil, err
	}
	var resp struct {
		Matches []struct {
			User   string `json:"user"`
			Domain string `json:"domain"`
		} `json:"matches"`
	}
	if err := c.call(ctx, http.MethodPost, "/v1/discovery", nil, req, &resp); err != nil {
		return nil, fmt.Errorf("client: lookup %q: %w", query, err)
	}
	out := []string{}
	for _, m := range resp.Matches {
		// The provider vouches for nothing more: a partner speaks for its
		// own users only, which the provider checked.
		if at := strings.LastIndexByte(m.User, '@'); at > 0 && m.User[at+1:] == m.Domain {
			out = append(out, m.User)
		}
	}
	return out, nil
}

// lookupRequest turns a Lookup query into the body of POST /v1/discovery.
func lookupRequest(query string) (map[string]string, error) {
	q := strings.TrimSpace(query)
	switch {
	case q == "":
		return nil, fmt.Errorf("%w: an empty lookup", ErrBadRequest)
	case looksLikePhone(q):
		return map[string]string{"phone": phoneNumber(q)}, nil
	}
	if at := strings.LastIndexByte(q, '@'); at >= 0 {
		handle, domain := q[:at], q[at+1:]
		if handle == "" || domain == "" {
			return nil, fmt.Errorf("%w: %q is not handle@domain", ErrBadRequest, query)
		}
		return map[string]string{"handle": handle, "domain": strings.ToLower(domain)}, nil
	}
	return map[string]string{"handle": q}, nil
}

// looksLikePhone says whether a query is written as a phone number: a
// "tel:" URI, or digits with the separators people write them with,
// beginning with + or 00 or holding a character no handle has (a space,
// a parenthesis, a slash). Digits with only dots, dashes or underscores
// between them make a valid handle, and are taken for one.
func looksLikePhone(q string) bool {
	if strings.HasPrefix(strings.ToLower(q), "tel:") {
		return true
	}
	digits, notHandle := 0, false
	for i, r := range q {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '+' && i == 0:
			notHandle = true
		case r == '-' || r == '.':
		case strings.ContainsRune(" ()/\u00a0", r):
			notHandle = true
		default:
			return false
		}
	}
	return digits >= 3 && (notHandle || strings.HasPrefix(q, "00"))
}

// phoneNumber turns the ways of writing an international prefix that the
// provider's parser does not read ("tel:", "00") into a leading +, and
// leaves the rest of the notation to the provider.
func phoneNumber(q string) string {
	if len(q) >= 4 && strings.EqualFold(q[:4], "tel:") {
		q = strings.TrimSpace(q[4:])
		if i := strings.IndexByte(q, ';'); i >= 0 { // tel: parameters
			q = q[:i]
		}
	}
	if strings.HasPrefix(q, "00") {
		q = "+" + q[2:]
	}
	return q
}
