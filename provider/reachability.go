package provider

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/store"
)

// Third-party reachability (docs/reachability.md): whether, and by which
// partner providers, a user may be reached. Off for a new user.
//
//   - GET and PUT /v1/me/reachability read and set the signed-in user's
//     mode (off, all, some) and, for some, the partner domains allowed;
//   - fedKeyMaterial (federation.go) answers noConsent for a user who does
//     not allow the requesting partner, before it claims or records
//     anything;
//   - fedNotify (federated.go) queues a room's messages, and Welcomes, for
//     a user's devices only while the user allows the room's hub.
//
// Rooms this provider hosts, and KeyPackages claimed by this provider's
// own users, are not affected: they never leave the user's provider.

// maxReachablePartners bounds the list a user may give, and so the rows
// one PUT writes.
const maxReachablePartners = 100

// reachabilitySettings is the body of GET and PUT /v1/me/reachability.
type reachabilitySettings struct {
	Mode     store.ReachMode `json:"mode"`
	Partners []string        `json:"partners"`
}

func reachabilityBody(r store.Reachability) reachabilitySettings {
	out := reachabilitySettings{Mode: r.Mode, Partners: r.Partners}
	if out.Partners == nil {
		out.Partners = []string{}
	}
	return out
}

func (s *Server) getReachability(w http.ResponseWriter, r *http.Request) error {
	reach, err := s.store.Reachability(r.Context(), callerOf(r).user.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, reachabilityBody(reach))
	return nil
}

// setReachability replaces the user's reachability. Partners are any
// valid provider domains, not only today's trust-file partners: the
// setting is the user's consent, which outlives a partner's suspension or
// a trust file that names the partner later. Partners are required for
// "some" and refused for "off" and "all", so that a PUT never means more
// or less than it says.
func (s *Server) setReachability(w http.ResponseWriter, r *http.Request) error {
	var req reachabilitySettings
	if err := s.readJSON(r, &req); err != nil {
		return err
	}
	reach, err := s.checkReachability(req)
	if err != nil {
		return err
	}
	u := callerOf(r).user
	if err := s.store.SetReachability(context.WithoutCancel(r.Context()), u.ID, reach.Mode, reach.Partners); err != nil {
		return err
	}
	s.log.Info("reachability changed", "user", u.Handle, "mode", reach.Mode, "partners", len(reach.Partners))
	writeJSON(w, http.StatusOK, reachabilityBody(reach))
	return nil
}

// checkReachability checks a PUT's body and normalizes its partners:
// lower case, each once, sorted.
func (s *Server) checkReachability(req reachabilitySettings) (store.Reachability, error) {
	if !req.Mode.Valid() {
		return store.Reachability{}, errBadRequest(`mode must be "off", "all" or "some"`)
	}
	if req.Mode != store.ReachSome {
		if len(req.Partners) > 0 {
			return store.Reachability{}, errBadRequest("partners are given with mode \"some\" only")
		}
		return store.Reachability{Mode: req.Mode}, nil
	}
	if len(req.Partners) == 0 {
		return store.Reachability{}, errBadRequest("mode \"some\" needs the partners allowed")
	}
	if len(req.Partners) > maxReachablePartners {
		return store.Reachability{}, errBadRequest("at most %d partners", maxReachablePartners)
	}
	var partners []string
	for _, p := range req.Partners {
		d := strings.ToLower(strings.TrimSpace(p))
		if d == "" || identity.ProviderURI(d).Validate() != nil {
			return store.Reachability{}, errBadRequest("%q is not a provider domain", p)
		}
		if d == s.cfg.Domain {
			return store.Reachability{}, errBadRequest("%s is this provider: its users always reach each other", d)
		}
		if !slices.Contains(partners, d) {
			partners = append(partners, d)
		}
	}
	slices.Sort(partners)
	return store.Reachability{Mode: store.ReachSome, Partners: partners}, nil
}

// reachableFrom says whether the user allows the partner domain to reach
// them.
func (s *Server) reachableFrom(ctx context.Context, userID int64, domain string) (bool, error) {
	reach, err := s.store.Reachability(ctx, userID)
	if err != nil {
		return false, err
	}
	return reach.Allows(domain), nil
}

// reachableDevices keeps the devices whose users allow the hub domain to
// reach them, in order, with their users: the recipients a follower
// queues a hub's message for. A device that no longer exists is left out.
func (s *Server) reachableDevices(ctx context.Context, devices []int64, hub string) ([]recipient, error) {
	allowed := map[int64]bool{} // by user
	var out []recipient
	for _, id := range devices {
		d, err := s.store.DeviceByID(ctx, id)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			return nil, err
		}
		ok, seen := allowed[d.UserID]
		if !seen {
			if ok, err = s.reachableFrom(ctx, d.UserID, hub); err != nil {
				return nil, err
			}
			allowed[d.UserID] = ok
		}
		if ok {
			out = append(out, recipient{device: id, user: d.UserID})
		}
	}
	return out, nil
}
