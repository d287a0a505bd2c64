package identity

import (
	"fmt"
	"strings"
)

// Kind says what a MIMI URI names. The first path segment of the URI is its
// kind's letter (draft-mahy-mimi-identity §"Representation of identifiers
// using URIs"), so the kind of an identifier is never guessed from its shape.
type Kind uint8

// The kinds of MIMI URI. KindInvalid is the zero value, so a URI that was
// never filled in is not mistaken for a provider.
const (
	KindInvalid   Kind = iota
	KindProvider       // mimi://DOMAIN
	KindUser           // mimi://DOMAIN/u/USER
	KindPseudonym      // mimi://DOMAIN/p/USER
	KindDevice         // mimi://DOMAIN/d/USER/DEVICE
	KindRoom           // mimi://DOMAIN/r/ID
	KindGroup          // mimi://DOMAIN/g/ID (an MLS group)
	KindTeam           // mimi://DOMAIN/t/ID
)

// kindLetters maps each kind that has a path to its first path segment.
var kindLetters = map[Kind]string{
	KindUser:      "u",
	KindPseudonym: "p",
	KindDevice:    "d",
	KindRoom:      "r",
	KindGroup:     "g",
	KindTeam:      "t",
}

var kindNames = map[Kind]string{
	KindInvalid:   "invalid",
	KindProvider:  "provider",
	KindUser:      "user",
	KindPseudonym: "pseudonym",
	KindDevice:    "device",
	KindRoom:      "room",
	KindGroup:     "group",
	KindTeam:      "team",
}

func (k Kind) String() string {
	if n, ok := kindNames[k]; ok {
		return n
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Limits on the parts of a MIMI URI. A DNS name is at most 253 characters
// (RFC 1035 §2.3.4, without the trailing dot); 64 characters hold a UUID, a
// base64url-encoded 256-bit value (43) or any sensible account name, and
// keep certificates, room rosters and error messages small.
const (
	MaxDomainLength = 253
	MaxNameLength   = 64
)

// maxURILength bounds the input ParseURI looks at, so hostile input costs
// nothing to refuse: scheme, domain, two separators, a kind letter and two
// names.
const maxURILength = len("mimi://") + MaxDomainLength + len("/d/") + 2*MaxNameLength + 1

const scheme = "mimi://"

// URI is a parsed MIMI URI. Which fields are set depends on Kind:
//
//	KindProvider             Domain
//	KindUser, KindPseudonym  Domain, User
//	KindDevice               Domain, User, Device
//	KindRoom, KindGroup,
//	KindTeam                 Domain, ID
//
// The rules (see Validate) make the text form canonical: every identifier has
// exactly one spelling, so two URIs name the same thing exactly when their
// strings are equal, and the struct is comparable with ==.
type URI struct {
	Kind   Kind
	Domain string // the provider's DNS name, lower case
	User   string // the user (or pseudonym) identifier, scoped to Domain
	Device string // the device (client) identifier, scoped to User
	ID     string // the room, group or team identifier, scoped to Domain
}

// ProviderURI returns mimi://DOMAIN. Like the other constructors it does not
// validate its arguments; call Validate, or use ParseURI on untrusted text.
func ProviderURI(domain string) URI { return URI{Kind: KindProvider, Domain: domain} }

// UserURI returns mimi://DOMAIN/u/USER.
func UserURI(domain, user string) URI { return URI{Kind: KindUser, Domain: domain, User: user} }

// DeviceURI returns mimi://DOMAIN/d/USER/DEVICE.
func DeviceURI(domain, user, device string) URI {
	return URI{Kind: KindDevice, Domain: domain, User: user, Device: device}
}

// RoomURI returns mimi://DOMAIN/r/ID.
func RoomURI(domain, id string) URI { return URI{Kind: KindRoom, Domain: domain, ID: id} }

// UserOf returns the user URI of a device URI: the same domain and user.
func (u URI) UserOf() URI { return UserURI(u.Domain, u.User) }

// String returns the URI's text form. For a URI that passes Validate,
// ParseURI(u.String()) returns u.
func (u URI) String() string {
	var b strings.Builder
	b.WriteString(scheme)
	b.WriteString(u.Domain)
	switch u.Kind {
	case KindProvider:
	case KindUser, KindPseudonym:
		b.WriteString("/" + kindLetters[u.Kind] + "/" + u.User)
	case KindDevice:
		b.WriteString("/d/" + u.User + "/" + u.Device)
	case KindRoom, KindGroup, KindTeam:
		b.WriteString("/" + kindLetters[u.Kind] + "/" + u.ID)
	default:
		// Not a URI anyone can parse, but printable in an error message.
		b.WriteString("/?")
	}
	return b.String()
}

// Validate reports whether u obeys the rules ParseURI enforces; the error
// wraps ErrInvalidURI.
func (u URI) Validate() error {
	if reason := u.check(); reason != "" {
		return newError(ErrInvalidURI, nil, "invalid MIMI URI %s: %s", quote(u.String()), reason)
	}
	return nil
}

// check returns why u is invalid, or "".
func (u URI) check() string {
	if reason := checkDomain(u.Domain); reason != "" {
		return reason
	}
	// Fields that the kind does not use must be empty, or two different
	// structs would print as the same URI.
	var user, device, id bool
	switch u.Kind {
	case KindProvider:
	case KindUser, KindPseudonym:
		user = true
	case KindDevice:
		user, device = true, true
	case KindRoom, KindGroup, KindTeam:
		id = true
	default:
		return fmt.Sprintf("unknown kind %v", u.Kind)
	}
	for _, f := range []struct {
		what, value string
		used        bool
	}{{"user", u.User, user}, {"device", u.Device, device}, {kindNames[u.Kind] + " id", u.ID, id}} {
		if !f.used {
			if f.value != "" {
				return fmt.Sprintf("a %v URI has no %s", u.Kind, f.what)
			}
			continue
		}
		if reason := checkName(f.value); reason != "" {
			return f.what + " " + reason
		}
	}
	return ""
}

// ParseURI parses and validates a MIMI URI. It accepts exactly the canonical
// form that String produces and refuses everything else with an error
// wrapping ErrInvalidURI:
//
//   - the scheme is "mimi://", in lower case;
//   - the domain is a DNS name in lower case: dot-separated labels of 1–63
//     letters, digits and hyphens, not starting or ending with a hyphen, at
//     most 253 characters, no trailing dot, and a last label that is not all
//     digits (so no IP address); internationalised names appear as their
//     "xn--" A-labels. There is no user information, port, query or fragment;
//   - the path is empty (a provider) or a kind letter (u, p, d, r, g, t)
//     followed by its names: one for u, p, r, g and t, two (user, device) for
//     d. The draft's user-less device form mimi://DOMAIN/d/DEVICE is
//     refused: a Switchboard device always belongs to a user;
//   - each name is 1–64 characters from A–Z a–z 0–9 "." "_" "-", and is not
//     "." or "..". These are RFC 3986 unreserved characters, so a name never
//     needs percent-encoding and has one spelling; "." and ".." would be
//     removed by URI normalisation; "@", ":" and "/" are refused so a name
//     cannot pass for an address on another domain. Names are case
//     sensitive: providers should issue lower-case user names, but peers
//     compare what they are given byte for byte and never fold case.
func ParseURI(s string) (URI, error) {
	u, reason := parseURI(s)
	if reason != "" {
		return URI{}, newError(ErrInvalidURI, nil, "invalid MIMI URI %s: %s", quote(s), reason)
	}
	return u, nil
}

func parseURI(s string) (URI, string) {
	if len(s) > maxURILength {
		return URI{}, fmt.Sprintf("longer than %d characters", maxURILength)
	}
	rest, ok := strings.CutPrefix(s, scheme)
	if !ok {
		if len(s) >= len(scheme) && strings.EqualFold(s[:len(scheme)], scheme) {
			return URI{}, `the scheme must be "mimi://" in lower case`
		}
		return URI{}, `not a mimi:// URI`
	}
	domain, path, hasPath := strings.Cut(rest, "/")
	if reason := checkDomain(domain); reason != "" {
		return URI{}, reason
	}
	if !hasPath {
		return ProviderURI(domain), ""
	}
	segs := strings.Split(path, "/")
	var kind Kind
	for k, letter := range kindLetters {
		if segs[0] == letter {
			kind = k
		}
	}
	if kind == KindInvalid {
		if segs[0] == "" {
			return URI{}, "empty path segment (a provider URI has no trailing slash)"
		}
		return URI{}, fmt.Sprintf("unknown identifier type %q (want u, p, d, r, g or t)", segs[0])
	}
	want := 2
	if kind == KindDevice {
		want = 3
	}
	if len(segs) != want {
		if kind == KindDevice {
			return URI{}, "a device URI is mimi://DOMAIN/d/USER/DEVICE"
		}
		return URI{}, fmt.Sprintf("a %v URI is mimi://DOMAIN/%s/NAME", kind, segs[0])
	}
	u := URI{Kind: kind, Domain: domain}
	switch kind {
	case KindUser, KindPseudonym:
		u.User = segs[1]
	case KindDevice:
		u.User, u.Device = segs[1], segs[2]
	default:
		u.ID = segs[1]
	}
	if reason := u.check(); reason != "" {
		return URI{}, reason
	}
	return u, ""
}

// checkDomain returns why d is not an acceptable provider domain, or "".
func checkDomain(d string) string {
	switch {
	case d == "":
		return "empty domain"
	case len(d) > MaxDomainLength:
		return fmt.Sprintf("domain longer than %d characters", MaxDomainLength)
	case strings.HasSuffix(d, "."):
		return "domain ends with a dot"
	}
	if strings.ContainsAny(d, "@:[]") {
		return "domain must be a DNS name, without user, port or IP literal"
	}
	if strings.ToLower(d) != d {
		// Folding case for the caller would give one identity two
		// spellings; refusing keeps comparison a plain string compare.
		return fmt.Sprintf("domain %s must be lower case", quote(d))
	}
	labels := strings.Split(d, ".")
	for _, l := range labels {
		if l == "" {
			return "domain has an empty label"
		}
		if len(l) > 63 {
			return "domain label longer than 63 characters"
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Sprintf("domain label %s starts or ends with a hyphen", quote(l))
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Sprintf("domain has character %s; a domain is letters, digits, hyphens and dots", quoteByte(c))
			}
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		// Top-level domains are never all digits (RFC 3696 §2); this is
		// what keeps IPv4 addresses out.
		return "domain must be a DNS name, not an IP address"
	}
	return ""
}

// checkName returns why a user, device or room name is unacceptable, or "".
func checkName(n string) string {
	switch {
	case n == "":
		return "is empty"
	case len(n) > MaxNameLength:
		return fmt.Sprintf("is longer than %d characters", MaxNameLength)
	case n == "." || n == "..":
		return fmt.Sprintf("%s is not allowed", quote(n))
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; !nameChar(c) {
			return fmt.Sprintf("has character %s; names are letters, digits, '.', '_' and '-'", quoteByte(c))
		}
	}
	return ""
}

func nameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// quote quotes untrusted text for an error message, shortened so a huge
// input does not make a huge message.
func quote(s string) string {
	const max = 80
	if len(s) > max {
		return fmt.Sprintf("%q…", s[:max])
	}
	return fmt.Sprintf("%q", s)
}

func quoteByte(c byte) string {
	if c < 0x20 || c >= 0x7f {
		return fmt.Sprintf("0x%02x", c)
	}
	return fmt.Sprintf("%q", string(c))
}
