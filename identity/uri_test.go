package identity_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/switchboard-chat/switchboard/identity"
)

func TestParseURIValid(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want identity.URI
	}{
		{"mimi://a.example", identity.ProviderURI("a.example")},
		{"mimi://localhost", identity.ProviderURI("localhost")},
		{"mimi://xn--bcher-kva.example", identity.ProviderURI("xn--bcher-kva.example")},
		{"mimi://a.example/u/alice", identity.UserURI("a.example", "alice")},
		{"mimi://example.com/u/alice.smith", identity.UserURI("example.com", "alice.smith")},
		{"mimi://a.example/d/alice/phone", identity.DeviceURI("a.example", "alice", "phone")},
		// The draft's own device example: mixed case is allowed and kept.
		{"mimi://example.com/d/SvPfLlwBQi-6oddVRrkqpw/04c7", identity.DeviceURI("example.com", "SvPfLlwBQi-6oddVRrkqpw", "04c7")},
		{"mimi://a.example/p/crazykoala75", identity.URI{Kind: identity.KindPseudonym, Domain: "a.example", User: "crazykoala75"}},
		{"mimi://hub.example/r/Rl33FWLCYWOwxHrYnpWDQg", identity.RoomURI("hub.example", "Rl33FWLCYWOwxHrYnpWDQg")},
		{"mimi://a.example/g/clubhouse", identity.URI{Kind: identity.KindGroup, Domain: "a.example", ID: "clubhouse"}},
		{"mimi://a.example/t/engineering", identity.URI{Kind: identity.KindTeam, Domain: "a.example", ID: "engineering"}},
		{"mimi://a.example/r/_-..x", identity.RoomURI("a.example", "_-..x")},
	} {
		got, err := identity.ParseURI(tc.in)
		if err != nil {
			t.Errorf("ParseURI(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseURI(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		if s := got.String(); s != tc.in {
			t.Errorf("ParseURI(%q).String() = %q", tc.in, s)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("Validate(%q): %v", tc.in, err)
		}
	}
}

func TestParseURIInvalid(t *testing.T) {
	long := strings.Repeat("a", 65)
	for _, tc := range []struct{ in, reason string }{
		{"", "not a mimi:// URI"},
		{"https://a.example/u/alice", "not a mimi:// URI"},
		{"MIMI://a.example/u/alice", `scheme must be "mimi://" in lower case`},
		{"mimi:a.example", "not a mimi:// URI"},
		{"mimi://", "empty domain"},
		{"mimi://A.example/u/alice", `domain "A.example" must be lower case`},
		{"mimi://a.example./u/alice", "domain ends with a dot"},
		{"mimi://a..example", "empty label"},
		{"mimi://-a.example", "starts or ends with a hyphen"},
		{"mimi://a_b.example", `domain has character "_"`},
		{"mimi://alice@a.example/u/alice", "without user, port or IP literal"},
		{"mimi://a.example:443/u/alice", "without user, port or IP literal"},
		{"mimi://[::1]/u/alice", "without user, port or IP literal"},
		{"mimi://192.0.2.1/u/alice", "not an IP address"},
		{"mimi://" + strings.Repeat("a", 64) + ".example", "longer than 63"},
		{"mimi://a.example/", "no trailing slash"},
		{"mimi://a.example/x/alice", `unknown identifier type "x"`},
		{"mimi://a.example/U/alice", `unknown identifier type "U"`},
		{"mimi://a.example/u", "mimi://DOMAIN/u/NAME"},
		{"mimi://a.example/u/", "user is empty"},
		{"mimi://a.example/u/alice/", "mimi://DOMAIN/u/NAME"},
		{"mimi://a.example/u/alice/phone", "mimi://DOMAIN/u/NAME"},
		{"mimi://a.example/d/ClientA1", "mimi://DOMAIN/d/USER/DEVICE"},
		{"mimi://a.example/d/alice/phone/x", "mimi://DOMAIN/d/USER/DEVICE"},
		{"mimi://a.example/d/alice/", "device is empty"},
		{"mimi://a.example/u/" + long, "longer than 64"},
		{"mimi://a.example/u/..", `".." is not allowed`},
		{"mimi://a.example/u/.", `"." is not allowed`},
		{"mimi://a.example/u/al%69ce", `character "%"`},
		{"mimi://a.example/u/alice@b.example", `character "@"`},
		{"mimi://a.example/u/al ice", `character " "`},
		{"mimi://a.example/u/alice?x=1", `character "?"`},
		{"mimi://a.example/u/alice#x", `character "#"`},
		{"mimi://a.example/u/al\x00ice", "character 0x00"},
		{"mimi://a.example/u/ålice", "character 0xc3"},
		{"mimi://a.example/u/" + strings.Repeat("a", 1000), "longer than"},
	} {
		_, err := identity.ParseURI(tc.in)
		if err == nil {
			t.Errorf("ParseURI(%q) succeeded", tc.in)
			continue
		}
		if !errors.Is(err, identity.ErrInvalidURI) {
			t.Errorf("ParseURI(%q): %v is not ErrInvalidURI", tc.in, err)
		}
		if !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("ParseURI(%q): %q does not say %q", tc.in, err, tc.reason)
		}
		if !strings.HasPrefix(err.Error(), "identity: invalid MIMI URI ") {
			t.Errorf("ParseURI(%q): message %q", tc.in, err)
		}
	}
}

func TestURIValidateRefusesStrayFields(t *testing.T) {
	for _, u := range []identity.URI{
		{},
		{Kind: identity.KindUser, Domain: "a.example", User: "alice", Device: "phone"},
		{Kind: identity.KindProvider, Domain: "a.example", ID: "x"},
		{Kind: identity.KindRoom, Domain: "a.example", ID: "x", User: "alice"},
		identity.DeviceURI("a.example", "alice", ""),
		identity.UserURI("A.example", "alice"),
	} {
		if err := u.Validate(); !errors.Is(err, identity.ErrInvalidURI) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalidURI", u, err)
		}
	}
}

func TestUserOf(t *testing.T) {
	d := identity.DeviceURI("green.example", "alice", "phone")
	if got := d.UserOf().String(); got != "mimi://green.example/u/alice" {
		t.Errorf("UserOf = %s", got)
	}
	if d.Kind.String() != "device" {
		t.Errorf("Kind.String() = %q", d.Kind)
	}
}
