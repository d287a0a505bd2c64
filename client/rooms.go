package client

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-chat/switchboard/mls"
)

// maxCommitAttempts bounds how often a commit is rebuilt after losing its
// epoch to another member's commit. Each loss means the room moved on, so
// a busy room may take a few; endless losses mean something else is wrong.
const maxCommitAttempts = 8

// maxPostAttempts bounds how often one POST is retried after a network
// error or a provider fault.
const maxPostAttempts = 5

// CreateRoom makes a new room hosted by this device's provider, with its
// user as admin and every device of the user as a member: this device
// makes it, then adds the user's other devices in a first commit. A device
// that cannot be added yet (no KeyPackage) is added later, when the
// devices are next reconciled.
func (c *Client) CreateRoom(ctx context.Context) (RoomID, error) {
	id, err := c.createRoom(ctx)
	if err != nil {
		return "", err
	}
	if err := c.addOwnDevicesTo(ctx, id); err != nil {
		c.log.Warn("adding own devices to a new room", "room", id, "err", err)
	}
	return id, nil
}

// addOwnDevicesTo adds the user's devices missing from one room. Those it
// cannot add are left to the next reconciliation, which it makes sure
// does not take the device list for complete.
func (c *Client) addOwnDevicesTo(ctx context.Context, id RoomID) error {
	names, err := c.ownDeviceNames(ctx)
	if err != nil {
		c.forgetKnownDevices()
		return err
	}
	if len(c.missingDevices(id, names)) == 0 {
		return nil
	}
	err = c.addOwnDevices(ctx, id)
	if len(c.missingDevices(id, names)) > 0 {
		c.forgetKnownDevices()
	}
	return err
}

// forgetKnownDevices makes the next reconciliation compare every room
// with the account's devices, and the stream's retry timer try soon.
func (c *Client) forgetKnownDevices() {
	c.mu.Lock()
	c.knownDevices = nil
	c.mu.Unlock()
	c.devicesIncomplete.Store(true)
}

// ownDeviceNames lists the names of this user's devices, sorted.
func (c *Client) ownDeviceNames(ctx context.Context) ([]string, error) {
	var resp struct {
		Devices []struct {
			Name string `json:"name"`
		} `json:"devices"`
	}
	if err := c.call(ctx, http.MethodGet, "/v1/me/devices", nil, nil, &resp); err != nil {
		return nil, err
	}
	var names []string
	for _, d := range resp.Devices {
		names = append(names, d.Name)
	}
	slices.Sort(names)
	return names, nil
}

func (c *Client) createRoom(ctx context.Context) (RoomID, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gid := mls.RandomBytes(16)
	g, err := mls.CreateGroup(c.suite, gid, mls.Identity{Signer: c.signer, Credential: c.cred}, nil, c.groupConfig())
	if err != nil {
		return "", fmt.Errorf("client: create group: %w", err)
	}
	// The external_pub extension lets the hub (and, later, joiners by
	// link) use the GroupInfo; the tree travels separately.
	info, err := g.GroupInfo(false, true)
	if err != nil {
		return "", fmt.Errorf("client: create group: %w", err)
	}
	req := map[string]any{"group_info": mls.Marshal(info), "ratchet_tree": mls.Marshal(g.Tree().TreeNodes())}
	var resp struct {
		Room struct {
			ID    RoomID `json:"id"`
			Epoch uint64 `json:"epoch"`
		} `json:"room"`
	}
	if err := c.call(ctx, http.MethodPost, "/v1/rooms", nil, req, &resp); err != nil {
		return "", fmt.Errorf("client: create room: %w", err)
	}
	id := resp.Room.ID
	if !validRoomID(id) || !roomMatchesGroup(id, gid) {
		return "", fmt.Errorf("client: create room: provider named it %q", id)
	}
	r := &roomEntry{st: &roomState{Room: id, Hub: c.dev.Domain}, g: g}
	if err := c.saveRoomLocked(r); err != nil {
		return "", err
	}
	c.rooms[id] = r
	return id, nil
}

// Invite adds every device of a user of this provider to a room: it claims
// one KeyPackage per device and commits their Adds, with a Welcome for the
// new devices. Devices already in the room are left alone. If another
// member's commit wins the epoch, the room is brought up to date and the
// commit made again.
func (c *Client) Invite(ctx context.Context, room RoomID, handle string) error {
	return c.InviteAll(ctx, room, []string{handle})
}

// InviteAll adds every device of several users to a room in one commit:
// one epoch change, one Welcome for all the new devices, and one commit
// for every member to process, where inviting them one by one makes as
// many of each as there are users. It claims the users' KeyPackages
// first; if any of them cannot be invited (unknown, unreachable, no
// KeyPackage), nobody is, and the error names that user.
//
// An invitation cut off by a crash or the network is done by calling
// InviteAll again: the commit left pending is settled first (sent again
// with its client_id, which the provider recognises), and users already
// in the room are not invited again (their devices added later are
// added by those devices' own user). Claiming their KeyPackages again
// would add nothing, and a partner refuses the same claim repeated
// within a minute as a replay.
func (c *Client) InviteAll(ctx context.Context, room RoomID, handles []string) error {
	present, err := c.settledUsers(ctx, room)
	if err != nil {
		return err
	}
	var kps []claimedKeyPackage
	for _, h := range handles {
		if u := strings.TrimSuffix(h, "@"+c.dev.Domain); present[u] && u != c.dev.User {
			continue
		}
		got, err := c.claimKeyPackages(ctx, room, h)
		if err != nil {
			return err
		}
		kps = append(kps, got...)
	}
	return c.commit(ctx, room, func(r *roomEntry) ([]*mls.Proposal, error) {
		present := c.devicesOf(r.g)
		var props []*mls.Proposal
		for _, kp := range kps {
			// A user named twice had a KeyPackage claimed twice per
			// device; each device is added once.
			if uri := kp.m.DeviceURI(); !present[uri] {
				present[uri] = true
				props = append(props, &mls.Proposal{Type: mls.ProposalAdd, Add: kp.kp})
			}
		}
		return props, nil
	})
}

// settledUsers settles a room's commit of unknown outcome, if there is
// one, and returns the users in the room then.
func (c *Client) settledUsers(ctx context.Context, id RoomID) (map[string]bool, error) {
	c.mu.Lock()
	b := newBatch()
	var users map[string]bool
	r, err := c.roomLocked(id)
	if err == nil {
		if err = c.resolvePendingLocked(ctx, r, b); err == nil {
			users = c.usersOf(r.g)
		}
	}
	if ferr := c.flushLocked(b); err == nil {
		err = ferr
	}
	c.mu.Unlock()
	c.events.push(b.events...)
	return users, err
}

// Remove takes every device of a user out of a room (the devices are found
// by the user in their credentials' device URIs). handle is a user of this
// provider, or handle@domain. Removing this device itself is not possible
// this way; the user's other devices are removed.
func (c *Client) Remove(ctx context.Context, room RoomID, handle string) error {
	first := true
	return c.commit(ctx, room, func(r *roomEntry) ([]*mls.Proposal, error) {
		var props []*mls.Proposal
		for l, leaf := range r.g.Members() {
			if l == r.g.OwnLeaf() {
				continue
			}
			m, err := c.verifier.leafMember(leaf)
			if err != nil || m.address(c.dev.Domain) != handle {
				continue
			}
			props = append(props, &mls.Proposal{Type: mls.ProposalRemove, Remove: l})
		}
		if len(props) == 0 && first {
			return nil, fmt.Errorf("%w: %s", ErrNotMember, handle)
		}
		// On a retry, finding no one means another member's commit
		// already removed them: the caller's wish is met.
		first = false
		slices.SortFunc(props, func(a, b *mls.Proposal) int { return int(a.Remove) - int(b.Remove) })
		return props, nil
	})
}

// addOwnDevices adds this user's devices that are not yet in a room, as
// when another device of the user was registered.
func (c *Client) addOwnDevices(ctx context.Context, room RoomID) error {
	kps, err := c.claimKeyPackages(ctx, room, c.dev.User)
	if err != nil {
		return err
	}
	return c.commit(ctx, room, func(r *roomEntry) ([]*mls.Proposal, error) {
		present := c.devicesOf(r.g)
		var props []*mls.Proposal
		for _, kp := range kps {
			if !present[kp.m.DeviceURI()] {
				props = append(props, &mls.Proposal{Type: mls.ProposalAdd, Add: kp.kp})
			}
		}
		return props, nil
	})
}

// reconcileDevices adds this user's devices that are missing from the
// rooms this device is in. The provider's device.added notice is only a
// hint (a device that is offline when it is sent never gets it), so the
// client also compares the account's devices with each room when it syncs
// or reconnects. force skips the shortcut of an unchanged device list.
func (c *Client) reconcileDevices(ctx context.Context, force bool) error {
	names, err := c.ownDeviceNames(ctx)
	if err != nil {
		return err
	}
	c.mu.Lock()
	known := slices.Equal(names, c.knownDevices)
	c.mu.Unlock()
	if known && !force {
		return nil
	}
	complete := true
	for _, id := range c.Rooms() {
		if len(c.missingDevices(id, names)) == 0 {
			continue
		}
		if err := c.addOwnDevices(ctx, id); err != nil {
			c.log.Warn("adding own devices to room", "room", id, "err", err)
		}
		// A device that has not uploaded KeyPackages yet cannot be added;
		// the next reconciliation tries again.
		if len(c.missingDevices(id, names)) > 0 {
			complete = false
		}
	}
	c.devicesIncomplete.Store(!complete)
	if complete {
		c.mu.Lock()
		c.knownDevices = names
		c.mu.Unlock()
	}
	return nil
}

// missingDevices returns which of this user's devices are not in a room.
func (c *Client) missingDevices(id RoomID, names []string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.roomLocked(id)
	if err != nil {
		return nil
	}
	present := c.devicesOf(r.g)
	var out []string
	for _, n := range names {
		if !present[member{Domain: c.dev.Domain, User: c.dev.User, Device: n}.DeviceURI()] {
			out = append(out, n)
		}
	}
	return out
}

// commit makes and posts a commit of the proposals build returns (none:
// nothing to do), rebuilding it after a lost epoch. When it returns nil the
// commit is accepted, the group is in the new epoch and that is saved.
func (c *Client) commit(ctx context.Context, id RoomID, build func(*roomEntry) ([]*mls.Proposal, error)) error {
	c.mu.Lock()
	b := newBatch()
	err := c.commitLocked(ctx, id, build, b)
	if ferr := c.flushLocked(b); err == nil {
		err = ferr
	}
	c.mu.Unlock()
	c.events.push(b.events...)
	return err
}

func (c *Client) commitLocked(ctx context.Context, id RoomID, build func(*roomEntry) ([]*mls.Proposal, error), b *batch) error {
	r, err := c.roomLocked(id)
	if err != nil {
		return err
	}
	if err := c.resolvePendingLocked(ctx, r, b); err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		if r.st.Removed {
			return fmt.Errorf("%w: %s", ErrRemoved, id)
		}
		props, err := build(r)
		if err != nil || len(props) == 0 {
			return err
		}
		res, err := r.g.Commit(mls.CommitOptions{Proposals: props, InlineTree: true})
		if err != nil {
			return fmt.Errorf("client: commit: %w", err)
		}
		p := &pendingPost{ClientID: newClientID(), Message: mls.Marshal(res.Commit)}
		if r.st.Hub != "" && r.st.Hub != c.dev.Domain {
			// Only a room hosted elsewhere needs them (the update request
			// to its hub carries them). Our own provider is the hub and
			// follows the tree itself: leaving them out keeps a commit
			// that adds members to one copy of the tree, the Welcome's,
			// where it would otherwise carry three (docs/api.md).
			p.GroupInfo, p.RatchetTree = mls.Marshal(res.GroupInfo), mls.Marshal(res.RatchetTree)
		}
		if res.Welcome != nil {
			p.Welcome = mls.Marshal(res.Welcome)
		}
		// The pending commit is saved before it is sent: after a crash the
		// device can ask the provider, with the same client_id, whether it
		// won, and merge it or drop it.
		r.st.Pending = p
		if err := c.saveRoomLocked(r); err != nil {
			r.g.ClearPendingCommit()
			r.st.Pending = nil
			return err
		}
		err = c.postPendingLocked(ctx, r, b)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrWrongEpoch) || attempt == maxCommitAttempts {
			return err
		}
		c.log.Debug("commit lost its epoch; catching up", "room", id, "attempt", attempt)
		if err := c.catchUpLocked(ctx, r, 0, b); err != nil {
			return err
		}
	}
}

// postPendingLocked sends the room's pending commit and settles it: on
// acceptance the commit is merged after the messages the hub ordered
// before it; on a definite refusal it is dropped and the refusal returned.
// On a network failure it stays pending, to be resolved later.
func (c *Client) postPendingLocked(ctx context.Context, r *roomEntry, b *batch) error {
	p := r.st.Pending
	seq, err := c.post(ctx, r.st.Room, p)
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) && !retryable(err) {
			r.g.ClearPendingCommit()
			r.st.Pending = nil
			b.dirty(r)
		}
		return err
	}
	p.Seq = seq
	b.dirty(r)
	return c.finishAcceptedLocked(ctx, r, b)
}

// finishAcceptedLocked merges the room's accepted commit. Messages the hub
// ordered before it belong to the old epoch and must be processed in it
// first; catching up to the commit's seq merges it when it gets there.
func (c *Client) finishAcceptedLocked(ctx context.Context, r *roomEntry, b *batch) error {
	p := r.st.Pending
	if err := c.catchUpLocked(ctx, r, p.Seq, b); err != nil {
		return err
	}
	if r.st.Pending == nil {
		return nil
	}
	if r.st.LastSeq < p.Seq-1 {
		// The log did not yet show everything before the commit (a
		// lagging replica, say). Merging now would skip those messages
		// for good; the commit stays pending until they are seen.
		return fmt.Errorf("client: room %s: log ends at seq %d, before own commit at %d", r.st.Room, r.st.LastSeq, p.Seq)
	}
	// Seqs are contiguous, so everything before the commit was processed;
	// the log just does not show the commit itself yet.
	return c.mergeOwnLocked(r, b)
}

// resolvePendingLocked settles a commit whose outcome is unknown (the
// device crashed or lost the network after saving it) by sending it again
// with the same client_id: the provider answers with the first result.
func (c *Client) resolvePendingLocked(ctx context.Context, r *roomEntry, b *batch) error {
	p := r.st.Pending
	if p == nil {
		return nil
	}
	if p.Seq > 0 {
		// Accepted, but the device stopped before catching up to it.
		return c.finishAcceptedLocked(ctx, r, b)
	}
	if !r.g.HasPendingCommit() {
		// The saved state lost the commit itself; nothing to resolve.
		r.st.Pending = nil
		b.dirty(r)
		return nil
	}
	err := c.postPendingLocked(ctx, r, b)
	var ae *APIError
	if errors.As(err, &ae) && !retryable(err) {
		// The provider refused it for good (most often: another commit
		// won the epoch). It has been dropped, and the room's messages
		// will bring the group up to date; whoever made it was told, or
		// crashed before they could be.
		c.log.Info("pending commit refused", "room", r.st.Room, "err", err)
		return nil
	}
	return err
}

// mergeOwnLocked moves the group into the epoch of its accepted commit.
func (c *Client) mergeOwnLocked(r *roomEntry, b *batch) error {
	p := r.st.Pending
	before := c.usersOf(r.g)
	_, err := r.g.MergePendingCommit()
	r.st.Pending = nil
	b.dirty(r)
	if err != nil {
		return fmt.Errorf("client: merge own commit in %s: %w", r.st.Room, err)
	}
	r.st.LastSeq = max(r.st.LastSeq, p.Seq)
	b.membersChanged(r.st.Room, before, c.usersOf(r.g))
	return nil
}

// Send encrypts body for everyone in the room and posts it. It returns the
// message's ID once the provider has stored it. A network failure is
// retried with the same client_id, which the provider recognises, so the
// message is stored once however often it is sent.
func (c *Client) Send(ctx context.Context, room RoomID, body []byte) (MessageID, error) {
	c.mu.Lock()
	b := newBatch()
	id, err := c.sendLocked(ctx, room, body, b)
	if ferr := c.flushLocked(b); err == nil {
		err = ferr
	}
	c.mu.Unlock()
	c.events.push(b.events...)
	return id, err
}

func (c *Client) sendLocked(ctx context.Context, id RoomID, body []byte, b *batch) (MessageID, error) {
	r, err := c.roomLocked(id)
	if err != nil {
		return "", err
	}
	// A commit of unknown outcome must be settled first: the message
	// belongs in whichever epoch the room is really in.
	if err := c.resolvePendingLocked(ctx, r, b); err != nil {
		return "", err
	}
	for attempt := 1; ; attempt++ {
		if r.st.Removed {
			return "", fmt.Errorf("%w: %s", ErrRemoved, id)
		}
		msg, err := r.g.Encrypt(body, frankAAD(body))
		if err != nil {
			return "", fmt.Errorf("client: encrypt: %w", err)
		}
		// Encrypting used up a key of the sender's ratchet; that must be
		// on disk before the message leaves, or a crash would make the
		// device encrypt with the same key again.
		if err := c.saveRoomLocked(r); err != nil {
			return "", err
		}
		seq, err := c.post(ctx, id, &pendingPost{ClientID: newClientID(), Message: mls.Marshal(msg)})
		if err == nil {
			return MessageID(string(id) + "/" + strconv.FormatInt(seq, 10)), nil
		}
		if !errors.Is(err, ErrWrongEpoch) || attempt == maxCommitAttempts {
			return "", err
		}
		// The room moved to a new epoch the device had not yet seen: catch
		// up and encrypt again in it.
		if err := c.catchUpLocked(ctx, r, 0, b); err != nil {
			return "", err
		}
	}
}

// post sends one message to a room, retrying network failures and
// provider faults with the same client_id, and returns its seq.
func (c *Client) post(ctx context.Context, id RoomID, p *pendingPost) (int64, error) {
	body := postBody{p.ClientID, p.Message, p.Welcome, p.GroupInfo, p.RatchetTree}
	delay := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		seq, err := c.postOnce(ctx, id, body)
		if err == nil {
			if seq <= 0 {
				return 0, fmt.Errorf("client: provider accepted a message at seq %d", seq)
			}
			return seq, nil
		}
		// A rate limit is waited out as the provider asks (within
		// reason), and the same client_id sent again.
		var ae *APIError
		limited := errors.As(err, &ae) && ae.Code == "rate_limited"
		if !(retryable(err) || limited) || attempt == maxPostAttempts {
			return 0, err
		}
		wait := delay
		if limited {
			wait = min(max(ae.RetryAfter, time.Second), maxRateLimitWait)
		}
		if err := sleep(ctx, wait); err != nil {
			return 0, err
		}
		delay *= 2
	}
}

// postOnce sends a message once: over Run's stream if it holds one, else,
// or if the stream goes before answering, as a POST.
func (c *Client) postOnce(ctx context.Context, id RoomID, body postBody) (int64, error) {
	if ss := c.sender.Load(); ss != nil {
		ans, ok, err := ss.send(ctx, id, body)
		if err != nil {
			return 0, err
		}
		if ok {
			return ans.Seq, ans.err()
		}
	}
	var resp struct {
		Seq int64 `json:"seq"`
	}
	err := c.call(ctx, http.MethodPost, "/v1/rooms/"+url.PathEscape(string(id))+"/messages", nil, body, &resp)
	return resp.Seq, err
}

// maxRateLimitWait bounds how long post waits for a rate limit before
// another attempt.
const maxRateLimitWait = 30 * time.Second

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// devicesOf returns the device URIs in a group.
func (c *Client) devicesOf(g *mls.Group) map[string]bool {
	out := map[string]bool{}
	for _, leaf := range g.Members() {
		if m, err := c.verifier.leafMember(leaf); err == nil {
			out[m.DeviceURI()] = true
		}
	}
	return out
}

// usersOf returns the users in a group, as the application names them.
func (c *Client) usersOf(g *mls.Group) map[string]bool {
	out := map[string]bool{}
	if g == nil {
		return out
	}
	for _, leaf := range g.Members() {
		if m, err := c.verifier.leafMember(leaf); err == nil {
			out[m.address(c.dev.Domain)] = true
		}
	}
	return out
}

func sortedUsers(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for u := range set {
		out = append(out, u)
	}
	slices.Sort(out)
	return out
}

// saveRoomLocked writes a room's group state and record: the tree first
// if a commit changed it, then the room file, which names the tree (see
// state.go for why this order is crash-safe).
func (c *Client) saveRoomLocked(r *roomEntry) error {
	var hash string
	if r.g != nil && !r.st.Removed {
		hash = hex.EncodeToString(r.g.TreeHash())
		if hash != r.tree {
			if err := c.store.saveTree(r.st.Room, hash, r.g.MarshalTree()); err != nil {
				return err
			}
		}
		data, err := r.g.MarshalStateApart()
		if err != nil {
			return fmt.Errorf("client: room %s: %w", r.st.Room, err)
		}
		r.st.Group, r.st.Tree = data, hash
	} else {
		r.st.Tree = ""
	}
	if err := c.store.saveRoom(r.st); err != nil {
		return err
	}
	if hash != r.tree {
		c.store.removeTrees(r.st.Room, hash)
		r.tree = hash
	}
	return nil
}

// restoreGroup reads a room's MLS group from its saved state, in either
// layout (state.go).
func (c *Client) restoreGroup(st *roomState) (*mls.Group, error) {
	if st.Tree == "" {
		return mls.RestoreGroup(st.Group, c.groupConfig())
	}
	tree, err := c.store.loadTree(st.Room, st.Tree)
	if err != nil {
		return nil, err
	}
	return mls.RestoreGroupApart(st.Group, tree, c.groupConfig())
}
