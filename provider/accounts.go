package provider

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"

	"github.com/switchboard-chat/switchboard/clock"
	"github.com/switchboard-chat/switchboard/store"
)

// handles are lower case, safe in MIMI URIs, and short.
var handlePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{1,31}$`)

// NormalizeHandle lower-cases a handle and checks its characters.
func NormalizeHandle(h string) (string, error) {
	h = strings.ToLower(strings.TrimSpace(h))
	if !handlePattern.MatchString(h) {
		return "", fmt.Errorf("handle %q: use 2-32 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit", h)
	}
	return h, nil
}

// NormalizePhone parses a phone number written with a leading + and
// country code, and returns it in E.164 form.
func NormalizePhone(p string) (string, error) {
	if strings.TrimSpace(p) == "" {
		return "", nil
	}
	num, err := phonenumbers.Parse(p, "")
	if err != nil {
		return "", fmt.Errorf("phone number %q: %v (write it with + and the country code)", p, err)
	}
	if !phonenumbers.IsValidNumber(num) {
		return "", fmt.Errorf("phone number %q is not a valid number", p)
	}
	return phonenumbers.Format(num, phonenumbers.E164), nil
}

// AddUser creates an account and an enrollment code for its first device.
// It is what the operator's `switchboard admin user add` runs.
func AddUser(ctx context.Context, st store.Store, handle, phone string, enrollmentTTL time.Duration) (store.User, string, error) {
	h, err := NormalizeHandle(handle)
	if err != nil {
		return store.User{}, "", err
	}
	p, err := NormalizePhone(phone)
	if err != nil {
		return store.User{}, "", err
	}
	u, err := st.CreateUser(ctx, h, p)
	if errors.Is(err, store.ErrExists) {
		return store.User{}, "", fmt.Errorf("handle %q or phone %q is already taken", h, p)
	} else if err != nil {
		return store.User{}, "", err
	}
	code, err := AddEnrollment(ctx, st, u.ID, enrollmentTTL)
	return u, code, err
}

// AddEnrollment makes a one-time code for a new device of the user.
func AddEnrollment(ctx context.Context, st store.Store, userID int64, ttl time.Duration) (string, error) {
	if ttl <= 0 {
		ttl = DefaultConfig().EnrollmentTTL
	}
	code := newCode()
	err := st.CreateEnrollment(ctx, store.Enrollment{CodeHash: hashSecret(normalizeCode(code)), UserID: userID, Expires: clock.Now().Add(ttl)})
	return code, err
}
