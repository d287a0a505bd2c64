package federation

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/switchboard-chat/switchboard/identity"
)

// WellKnownDirectoryPath is where a provider publishes its Directory (the
// draft's `mimi-protocol-directory` well-known URI).
const WellKnownDirectoryPath = "/.well-known/mimi-protocol-directory"

// ErrDirectory wraps every problem with a directory or its URL templates.
var ErrDirectory = errors.New("federation: invalid directory")

// Directory is the JSON document a provider serves at
// WellKnownDirectoryPath: for each MIMI endpoint, an HTTPS URL template
// whose {variables} the caller fills in (see Expand). Like ACME's
// directory, it lets a provider put its endpoints where it likes.
//
// A peer's document may lack endpoints it does not offer; the URL methods
// then return an error. Fields unknown to us are ignored.
type Directory struct {
	KeyMaterial     string `json:"keyMaterial,omitempty"`
	Update          string `json:"update,omitempty"`
	Notify          string `json:"notify,omitempty"`
	SubmitMessage   string `json:"submitMessage,omitempty"`
	GroupInfo       string `json:"groupInfo,omitempty"`
	RequestConsent  string `json:"requestConsent,omitempty"`
	UpdateConsent   string `json:"updateConsent,omitempty"`
	IdentifierQuery string `json:"identifierQuery,omitempty"`
	ReportAbuse     string `json:"reportAbuse,omitempty"`
	ProxyDownload   string `json:"proxyDownload,omitempty"`

	// Batch is a Switchboard addition (docs/federation.md, "Batches"):
	// where the provider takes several one-way requests in one
	// (BatchRequest). A partner whose directory lacks it gets every
	// request alone.
	Batch string `json:"batch,omitempty"`

	// FrankingKeys is a Switchboard addition (docs/abuse.md): the hub's
	// franking signature public keys by signature scheme ("ed25519",
	// "p256", "p384", "p521"), which verify the franks of the rooms it
	// hosts. The draft puts the key in each room's GroupContext instead.
	FrankingKeys map[string][]byte `json:"frankingKeys,omitempty"`
}

// NewDirectory returns the directory of a provider whose MIMI endpoints live
// under base, an https URL such as "https://mimi.example.com/v1": the
// endpoint paths of the draft, each with its variable as the last segment.
//
// The draft's example has "update{roomId}"; the slash it lacks is a typo.
// The consent endpoints take the user URIs ({targetUser},
// {requesterUser}) as the draft's directory example does, rather than the
// domains its endpoint section shows; URL methods fill either.
func NewDirectory(base string) (*Directory, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("%w: base URL: %v", ErrDirectory, err)
	}
	if u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.User != nil ||
		(u.Path != "" && !strings.HasPrefix(u.Path, "/")) {
		return nil, fmt.Errorf("%w: base URL %q must be https://host[/path] with no query, fragment or user", ErrDirectory, base)
	}
	b := strings.TrimSuffix(u.String(), "/")
	d := &Directory{
		KeyMaterial:     b + "/keyMaterial/{targetUser}",
		Update:          b + "/update/{roomId}",
		Notify:          b + "/notify/{roomId}",
		SubmitMessage:   b + "/submitMessage/{roomId}",
		GroupInfo:       b + "/groupInfo/{roomId}",
		RequestConsent:  b + "/requestConsent/{targetUser}",
		UpdateConsent:   b + "/updateConsent/{requesterUser}",
		IdentifierQuery: b + "/identifierQuery/{domain}",
		ReportAbuse:     b + "/reportAbuse/{roomId}",
		ProxyDownload:   b + "/proxyDownload/{downloadUrl}",
		Batch:           b + "/batch",
	}
	return d, d.Validate()
}

// ParseDirectory decodes and validates a peer's directory document.
func ParseDirectory(data []byte) (*Directory, error) {
	d := new(Directory)
	if err := json.Unmarshal(data, d); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDirectory, err)
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return d, nil
}

// endpoints lists the directory's fields by their JSON names.
func (d *Directory) endpoints() []struct{ name, template string } {
	return []struct{ name, template string }{
		{"keyMaterial", d.KeyMaterial}, {"update", d.Update}, {"notify", d.Notify},
		{"submitMessage", d.SubmitMessage}, {"groupInfo", d.GroupInfo},
		{"requestConsent", d.RequestConsent}, {"updateConsent", d.UpdateConsent},
		{"identifierQuery", d.IdentifierQuery}, {"reportAbuse", d.ReportAbuse},
		{"proxyDownload", d.ProxyDownload}, {"batch", d.Batch},
	}
}

// Validate checks that every template present is an https URL with
// well-formed {variables}: a peer's bad template is caught when its
// directory is read, not when a message is due.
func (d *Directory) Validate() error {
	for _, e := range d.endpoints() {
		if e.template == "" {
			continue
		}
		names, err := templateVars(e.template)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrDirectory, e.name, err)
		}
		// Give every variable a harmless value to check the URL's shape.
		vars := make(map[string]string, len(names))
		for _, n := range names {
			vars[n] = "x"
		}
		s, err := Expand(e.template, vars)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrDirectory, e.name, err)
		}
		u, err := url.Parse(s)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("%w: %s: %q is not an https URL", ErrDirectory, e.name, e.template)
		}
	}
	return nil
}

// templateVars returns the variable names of a template, refusing
// unbalanced braces and empty or odd names.
func templateVars(template string) ([]string, error) {
	var names []string
	for rest := template; ; {
		open := strings.IndexAny(rest, "{}")
		if open < 0 {
			return names, nil
		}
		if rest[open] == '}' {
			return nil, fmt.Errorf("unbalanced '}' in %q", template)
		}
		end := strings.IndexAny(rest[open+1:], "{}")
		if end < 0 || rest[open+1+end] != '}' {
			return nil, fmt.Errorf("unbalanced '{' in %q", template)
		}
		name := rest[open+1 : open+1+end]
		if !validVarName(name) {
			return nil, fmt.Errorf("bad variable name %q in %q", name, template)
		}
		names = append(names, name)
		rest = rest[open+1+end+1:]
	}
}

func validVarName(name string) bool {
	if name == "" {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Expand fills the {variables} of template from vars, percent-encoding each
// value so that it becomes exactly one path segment: every byte but the
// unreserved characters of RFC 3986 is encoded, including "/" and ":", so
// "mimi://a.example/r/club" becomes "mimi%3A%2F%2Fa.example%2Fr%2Fclub". A
// net/http ServeMux pattern "/notify/{roomId}" matches it and PathValue
// returns the URI decoded. A variable missing from vars is an error; extra
// entries are ignored (so one map can serve templates naming a user or a
// domain).
func Expand(template string, vars map[string]string) (string, error) {
	if _, err := templateVars(template); err != nil {
		return "", fmt.Errorf("%w: %v", ErrDirectory, err)
	}
	var b strings.Builder
	for rest := template; ; {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			b.WriteString(rest)
			return b.String(), nil
		}
		end := open + strings.IndexByte(rest[open:], '}')
		name := rest[open+1 : end]
		v, ok := vars[name]
		if !ok {
			return "", fmt.Errorf("%w: no value for {%s} in %q", ErrDirectory, name, template)
		}
		b.WriteString(rest[:open])
		b.WriteString(escapeSegment(v))
		rest = rest[end+1:]
	}
}

// escapeSegment percent-encodes every byte outside RFC 3986's unreserved
// set. url.PathEscape keeps ":" and other sub-delims, which a peer's router
// might not treat as data.
func escapeSegment(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// endpointURL expands one of the directory's templates.
func endpointURL(name, template string, vars map[string]string) (string, error) {
	if template == "" {
		return "", fmt.Errorf("%w: the peer's directory has no %s endpoint", ErrDirectory, name)
	}
	return Expand(template, vars)
}

// userVars gives a user URI under the name user and its provider's domain
// under domain, so that a template may name either.
func userVars(user, domain string, uri IdentifierURI) map[string]string {
	vars := map[string]string{user: string(uri)}
	if u, err := identity.ParseURI(string(uri)); err == nil {
		vars[domain] = u.Domain
	}
	return vars
}

// KeyMaterialURL returns the keyMaterial URL for targetUser.
func (d *Directory) KeyMaterialURL(targetUser IdentifierURI) (string, error) {
	return endpointURL("keyMaterial", d.KeyMaterial, map[string]string{"targetUser": string(targetUser)})
}

// UpdateURL returns the update URL for a room.
func (d *Directory) UpdateURL(roomID IdentifierURI) (string, error) {
	return endpointURL("update", d.Update, map[string]string{"roomId": string(roomID)})
}

// NotifyURL returns the notify URL for a room.
func (d *Directory) NotifyURL(roomID IdentifierURI) (string, error) {
	return endpointURL("notify", d.Notify, map[string]string{"roomId": string(roomID)})
}

// SubmitMessageURL returns the submitMessage URL for a room.
func (d *Directory) SubmitMessageURL(roomID IdentifierURI) (string, error) {
	return endpointURL("submitMessage", d.SubmitMessage, map[string]string{"roomId": string(roomID)})
}

// GroupInfoURL returns the groupInfo URL for a room.
func (d *Directory) GroupInfoURL(roomID IdentifierURI) (string, error) {
	return endpointURL("groupInfo", d.GroupInfo, map[string]string{"roomId": string(roomID)})
}

// ReportAbuseURL returns the reportAbuse URL for a room.
func (d *Directory) ReportAbuseURL(roomID IdentifierURI) (string, error) {
	return endpointURL("reportAbuse", d.ReportAbuse, map[string]string{"roomId": string(roomID)})
}

// RequestConsentURL returns the requestConsent URL for a target user; the
// template may name {targetUser} or {targetDomain}.
func (d *Directory) RequestConsentURL(targetUser IdentifierURI) (string, error) {
	return endpointURL("requestConsent", d.RequestConsent, userVars("targetUser", "targetDomain", targetUser))
}

// UpdateConsentURL returns the updateConsent URL for a requesting user; the
// template may name {requesterUser} or {requesterDomain}.
func (d *Directory) UpdateConsentURL(requesterUser IdentifierURI) (string, error) {
	return endpointURL("updateConsent", d.UpdateConsent, userVars("requesterUser", "requesterDomain", requesterUser))
}

// IdentifierQueryURL returns the identifierQuery URL for a domain.
func (d *Directory) IdentifierQueryURL(domain string) (string, error) {
	return endpointURL("identifierQuery", d.IdentifierQuery, map[string]string{"domain": domain})
}

// ProxyDownloadURL returns the proxyDownload URL for a file's URL.
func (d *Directory) ProxyDownloadURL(downloadURL string) (string, error) {
	return endpointURL("proxyDownload", d.ProxyDownload, map[string]string{"downloadUrl": downloadURL})
}

// BatchURL returns the batch URL (a Switchboard addition).
func (d *Directory) BatchURL() (string, error) {
	return endpointURL("batch", d.Batch, nil)
}
