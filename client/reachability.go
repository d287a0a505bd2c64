package client

import (
	"context"
	"fmt"
	"net/http"
)

// Third-party reachability (docs/reachability.md): whether people on other
// providers may reach this device's user, and from which providers.

// Reachability modes, as Reachability returns them and SetReachability
// takes them.
const (
	ReachOff  = "off"  // nobody on another provider (a new user's setting)
	ReachAll  = "all"  // the users of every partner provider
	ReachSome = "some" // the users of the partner providers listed
)

// reachabilitySettings is GET and PUT /v1/me/reachability.
type reachabilitySettings struct {
	Mode     string   `json:"mode"`
	Partners []string `json:"partners"`
}

// Reachability says whether the user may be reached from other providers:
// mode is ReachOff (until the user says otherwise), ReachAll or ReachSome,
// and partners, for ReachSome, the provider domains allowed, sorted.
func (c *Client) Reachability(ctx context.Context) (mode string, partners []string, err error) {
	var s reachabilitySettings
	if err := c.call(ctx, http.MethodGet, "/v1/me/reachability", nil, nil, &s); err != nil {
		return "", nil, fmt.Errorf("client: reachability: %w", err)
	}
	return s.Mode, s.Partners, nil
}

// SetReachability sets whether, and from which providers, the user may be
// reached: ReachOff, ReachAll, or ReachSome with the partner domains
// allowed (required for ReachSome, and given with it only, else
// ErrBadRequest). Turning reachability off, or leaving a provider out,
// stops that provider's new invitations and messages to the user at once;
// rooms the user's own provider hosts are not affected.
func (c *Client) SetReachability(ctx context.Context, mode string, partners []string) error {
	in := reachabilitySettings{Mode: mode, Partners: partners}
	if in.Partners == nil {
		in.Partners = []string{}
	}
	if err := c.call(ctx, http.MethodPut, "/v1/me/reachability", nil, in, nil); err != nil {
		return fmt.Errorf("client: set reachability %s: %w", mode, err)
	}
	return nil
}
