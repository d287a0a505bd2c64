package client

import "fmt"

// MemberPhone returns the phone number, in E.164 form ("+41446681800"),
// that the credential of user's device in the room's MLS group carries: a
// number the user's provider verified and the user chose to be
// discoverable by (docs/identity.md). It is "" when the credential has
// none. user is named as Members names users: "bob" for a user of this
// device's provider, "bob@blue.example" for others. A user who is not in
// the room is ErrNotMember.
//
// The number is read from the group state this device verified, so it is
// as trustworthy as the member's provider, and it is current as of the
// credential the member's device joined (or last updated) with: a
// credential issued before the user turned phone discovery on has no
// number. When the user's devices disagree, the most recently issued
// credential that has a number wins.
func (c *Client) MemberPhone(room RoomID, user string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.roomLocked(room)
	if err != nil {
		return "", err
	}
	if r.g == nil {
		return "", fmt.Errorf("%w: %s in %s", ErrNotMember, user, room)
	}
	found := false
	var best member
	for _, leaf := range r.g.Members() {
		m, err := c.verifier.leafMember(leaf)
		if err != nil || m.address(c.dev.Domain) != user {
			continue
		}
		found = true
		if m.Phone != "" && (best.Phone == "" || m.Issued.After(best.Issued)) {
			best = m
		}
	}
	if !found {
		return "", fmt.Errorf("%w: %s in %s", ErrNotMember, user, room)
	}
	return best.Phone, nil
}
