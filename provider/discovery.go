package provider

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/mls"
)

// Discovery (docs/discovery.md): finding a person by handle or phone
// number, here and at the partner providers, among the users who allow it.
//
//   - GET and PUT /v1/me/discovery read and set whether the signed-in
//     user may be found by handle, by phone number, both or neither (the
//     default);
//   - POST /v1/discovery looks a handle or a phone number up: at one
//     partner, or here and at every active partner at once, each partner
//     with its own deadline (discoveryTimeout), asking each with a MIMI
//     identifierQuery;
//   - fedIdentifierQuery (federation.go) answers partners' queries, and
//     finds only users who allow being found by what was searched.

// discoveryTimeout bounds how long a lookup waits for each partner: one
// that has not answered by then is left out of the answer (and named in
// its "unanswered" list), so a slow partner never delays a lookup beyond
// it. A variable so that tests can shorten it.
var discoveryTimeout = 5 * time.Second

// discoverySettings is the body of GET and PUT /v1/me/discovery.
type discoverySettings struct {
	ByHandle *bool `json:"by_handle"`
	ByPhone  *bool `json:"by_phone"`
}

func (s *Server) getDiscovery(w http.ResponseWriter, r *http.Request) error {
	u := callerOf(r).user
	writeJSON(w, http.StatusOK, map[string]bool{"by_handle": u.DiscoverableByHandle, "by_phone": u.DiscoverableByPhone})
	return nil
}

// setDiscovery replaces both settings: a PUT that leaves one out is
// refused, rather than turning it off (or keeping it) by surprise.
func (s *Server) setDiscovery(w http.ResponseWriter, r *http.Request) error {
	var req discoverySettings
	if err := s.readJSON(r, &req); err != nil {
		return err
	}
	if req.ByHandle == nil || req.ByPhone == nil {
		return errBadRequest("give both by_handle and by_phone")
	}
	u := callerOf(r).user
	if *req.ByPhone && u.Phone == "" {
		return errBadRequest("the account has no phone number to be found by")
	}
	if err := s.store.SetDiscoverable(r.Context(), u.ID, *req.ByHandle, *req.ByPhone); err != nil {
		return err
	}
	s.log.Info("discoverability changed", "user", u.Handle, "by_handle", *req.ByHandle, "by_phone", *req.ByPhone)
	writeJSON(w, http.StatusOK, map[string]bool{"by_handle": *req.ByHandle, "by_phone": *req.ByPhone})
	return nil
}

// discoverRequest is the body of POST /v1/discovery: a handle or a phone
// number, and optionally the one provider to ask.
type discoverRequest struct {
	Handle string `json:"handle"`
	Phone  string `json:"phone"`
	Domain string `json:"domain"`
}

// discoveryMatch is one user a lookup found.
type discoveryMatch struct {
	User   string `json:"user"` // handle@domain
	Domain string `json:"domain"`
}

// discover answers POST /v1/discovery. Without a domain it asks this
// provider and every active partner, in parallel; with one, only that
// provider. A handle written handle@domain names its domain itself.
func (s *Server) discover(w http.ResponseWriter, r *http.Request) error {
	if err := s.limit(limitKey{s.limits.discoveryUser, userKey(callerOf(r))}); err != nil {
		return err
	}
	var req discoverRequest
	if err := s.readJSON(r, &req); err != nil {
		return err
	}
	q, domain, err := s.discoveryQuery(req)
	if err != nil {
		return err
	}
	matches, unanswered := []discoveryMatch{}, []string{}
	if domain == "" || domain == s.cfg.Domain {
		m, err := s.localMatches(r, q)
		if err != nil {
			return err
		}
		matches = append(matches, m...)
	}
	switch {
	case domain == s.cfg.Domain:
	case domain != "":
		// One provider, asked by name: if it cannot answer, the person
		// must hear so rather than read "nobody".
		if err := s.activePartner(domain); err != nil || s.fed.Transport == nil {
			return errNotFound("%s is not a partner of this provider", domain)
		}
		m, failed := s.askPartners(r.Context(), []string{domain}, q)
		if err := failed[domain]; err != nil {
			if e := partnerRateLimited(domain, err, s.now()); e != nil {
				return e
			}
			return &Error{Code: "partner_unreachable", Status: http.StatusBadGateway,
				Message: fmt.Sprintf("%s did not answer the lookup: %v", domain, err), cause: err}
		}
		matches = append(matches, m...)
	default:
		m, failed := s.askPartners(r.Context(), s.activePartners(), q)
		matches = append(matches, m...)
		unanswered = append(unanswered, slices.Sorted(maps.Keys(failed))...)
	}
	writeJSON(w, http.StatusOK, map[string]any{"matches": matches, "unanswered": unanswered})
	return nil
}

// discoveryQuery checks a lookup and makes its identifierQuery element,
// with the value normalized: a handle lower case, a phone number E.164. It
// returns the domain to ask ("" for all).
func (s *Server) discoveryQuery(req discoverRequest) (federation.QueryElement, string, error) {
	domain := strings.ToLower(strings.TrimSpace(req.Domain))
	handle, phone := strings.TrimSpace(req.Handle), strings.TrimSpace(req.Phone)
	switch {
	case handle != "" && phone != "":
		return federation.QueryElement{}, "", errBadRequest("give a handle or a phone number, not both")
	case handle != "":
		if at := strings.LastIndexByte(handle, '@'); at >= 0 {
			d := strings.ToLower(handle[at+1:])
			if domain != "" && domain != d {
				return federation.QueryElement{}, "", errBadRequest("the handle names %s, the domain is %s", d, domain)
			}
			handle, domain = handle[:at], d
		}
		h, err := NormalizeHandle(handle)
		if err != nil {
			return federation.QueryElement{}, "", errBadRequest("%v", err)
		}
		if err := s.checkDomain(domain); err != nil {
			return federation.QueryElement{}, "", err
		}
		return federation.QueryElement{SearchType: federation.SearchHandle, SearchValue: h}, domain, nil
	case phone != "":
		p, err := NormalizePhone(phone)
		if err != nil {
			return federation.QueryElement{}, "", errBadRequest("%v", err)
		}
		if err := s.checkDomain(domain); err != nil {
			return federation.QueryElement{}, "", err
		}
		return federation.QueryElement{SearchType: federation.SearchPhone, SearchValue: p}, domain, nil
	}
	return federation.QueryElement{}, "", errBadRequest("give a handle or a phone number to look up")
}

func (s *Server) checkDomain(domain string) error {
	if domain != "" && identity.ProviderURI(domain).Validate() != nil {
		return errBadRequest("%q is not a provider domain", domain)
	}
	return nil
}

// localMatches finds this provider's user, if they allow being found by
// what was searched, exactly as a partner's identifierQuery would.
func (s *Server) localMatches(r *http.Request, q federation.QueryElement) ([]discoveryMatch, error) {
	u, ok, err := s.findUser(r, q)
	if err != nil || !ok {
		return nil, err
	}
	return []discoveryMatch{{User: u.Handle + "@" + s.cfg.Domain, Domain: s.cfg.Domain}}, nil
}

// activePartners lists the partners that are not suspended, sorted.
func (s *Server) activePartners() []string {
	t := s.trustConfig()
	if t == nil || s.fed.Transport == nil {
		return nil
	}
	var domains []string
	for _, p := range t.Partners() {
		if !p.Suspended {
			domains = append(domains, p.Domain)
		}
	}
	return domains
}

// askPartners asks the partners at once, each within discoveryTimeout,
// and returns what they found, in the order of domains, and why each
// partner that gave no answer did not. It waits no longer than
// discoveryTimeout whatever the transport does: a partner whose answer is
// not in by then counts as not answering.
func (s *Server) askPartners(ctx context.Context, domains []string, q federation.QueryElement) ([]discoveryMatch, map[string]error) {
	type answer struct {
		i       int
		matches []discoveryMatch
		err     error
	}
	answers := make(chan answer, len(domains)) // never blocks a late sender
	for i, d := range domains {
		go func() {
			m, err := s.askPartner(ctx, d, q)
			answers <- answer{i, m, err}
		}()
	}
	found := make([][]discoveryMatch, len(domains))
	failed := map[string]error{}
	for _, d := range domains {
		failed[d] = fmt.Errorf("no answer within %v", discoveryTimeout)
	}
	deadline := time.NewTimer(discoveryTimeout)
	defer deadline.Stop()
wait:
	for range domains {
		select {
		case a := <-answers:
			found[a.i], failed[domains[a.i]] = a.matches, a.err
		case <-deadline.C:
			break wait
		}
	}
	var matches []discoveryMatch
	for i, d := range domains {
		matches = append(matches, found[i]...)
		if err := failed[d]; err != nil {
			s.log.Info("a partner did not answer a lookup", "partner", d, "err", err)
		} else {
			delete(failed, d)
		}
	}
	return matches, failed
}

// askPartner sends one identifierQuery to a partner, within
// discoveryTimeout. Only URIs of the partner's own users are taken from
// its answer: a partner speaks for its own users only.
func (s *Server) askPartner(ctx context.Context, domain string, q federation.QueryElement) ([]discoveryMatch, error) {
	ctx, cancel := context.WithTimeout(ctx, discoveryTimeout)
	defer cancel()
	body := mls.Marshal(&federation.IdentifierRequest{QueryElements: []federation.QueryElement{q}})
	path := partnerPath(partnerDirectory.IdentifierQueryURL(domain))
	resp, err := s.fed.Transport.Post(ctx, domain, path, body, nil)
	if perr := federation.Classify(resp, err); perr != nil {
		return nil, perr
	}
	var ir federation.IdentifierResponse
	if err := mls.Unmarshal(resp.Body, &ir); err != nil {
		return nil, fmt.Errorf("%s answered badly: %w", domain, err)
	}
	if ir.ResponseCode != federation.IdentifierSuccess {
		// notFound, and also forbidden, ambiguous and unsupportedField:
		// the partner has no one to offer for this search.
		return nil, nil
	}
	var out []discoveryMatch
	for _, raw := range ir.URIs {
		u, err := identity.ParseURI(string(raw))
		if err != nil || u.Kind != identity.KindUser || u.Domain != domain {
			s.log.Warn("a partner's lookup answer names a user not its own", "partner", domain, "uri", string(raw))
			continue
		}
		m := discoveryMatch{User: u.User + "@" + domain, Domain: domain}
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out, nil
}

// discoverableBy says whether a user found by a search of this type lets
// themselves be found by it: a handle search needs their consent to
// handle lookups, a phone search to phone lookups.
func discoverableBy(byHandle, byPhone bool, t federation.SearchIdentifierType) bool {
	switch t {
	case federation.SearchHandle:
		return byHandle
	case federation.SearchPhone:
		return byPhone
	}
	return false
}
