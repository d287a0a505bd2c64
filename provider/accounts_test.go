package provider_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchboard-chat/switchboard/provider"
	"github.com/switchboard-chat/switchboard/store/sqlite"
)

func TestOperatorAddsUsersWithPhoneNumbers(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "provider.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()

	// However the operator writes it, the number is stored in E.164 form,
	// and the handle in lower case.
	u, code, err := provider.AddUser(ctx, st, "  Alice ", "+49 (30) 901820", 0)
	if err != nil {
		t.Fatal(err)
	}
	if u.Handle != "alice" || u.Phone != "+4930901820" || len(code) != 24 {
		t.Fatalf("user %+v, code %q", u, code)
	}
	if got, err := st.UserByPhone(ctx, "+4930901820"); err != nil || got.ID != u.ID {
		t.Fatalf("lookup by phone: %+v, %v", got, err)
	}
	for _, tc := range []struct{ handle, phone, want string }{
		{"alice", "", "already taken"},
		{"bob", "+49 30 901820", "already taken"},
		{"carol", "030 901820", "country code"},
		{"dave", "+1 555", "not a valid number"},
		{"x", "", "handle"},
		{"eve/evil", "", "handle"},
	} {
		_, _, err := provider.AddUser(ctx, st, tc.handle, tc.phone, 0)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("AddUser(%q, %q) = %v, want an error about %q", tc.handle, tc.phone, err, tc.want)
		}
	}
}
