package provider

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/store"
)

// The hub: every room this provider hosts has one ordered log. The hub
// follows the room's public MLS state (mls.PublicGroup), so it knows which
// device holds which leaf, checks every handshake message's signature and
// validity, lets exactly one commit through per epoch, and applies the
// room policy before anything is stored.

type hub struct {
	s     *Server
	mu    sync.Mutex
	rooms map[string]*roomState
}

// roomState caches a room's public group. Its lock serialises the room's
// submissions in this process; the store's version check catches writers
// in other processes.
type roomState struct {
	mu      sync.Mutex
	loaded  bool
	room    store.Room
	group   *mls.PublicGroup
	members map[mls.LeafIndex]member // who holds each leaf

	// Application messages are queued in the store behind one another
	// without the lock held across their COMMIT (acceptQueued). queued is
	// the last Seq handed to the store, inflight counts the submissions
	// not yet answered, and stale says one of them failed, so the Seqs
	// handed out after it fail too and room.LastSeq must be read again.
	// room.LastSeq itself is only ever a Seq known to be committed.
	queued   int64
	inflight sync.WaitGroup
	stale    bool
	// pending are the queued messages by client ID, so that a retry
	// racing its original waits for the original's answer instead of
	// reaching the store as a duplicate (which would fail the ones
	// queued behind it).
	pending map[string]*pendingMsg
}

// pendingMsg is a queued message's outcome, set before done is closed.
type pendingMsg struct {
	done chan struct{}
	res  acceptance
	err  error
}

// nextSeq is the Seq of the room's next message, after every one queued.
func (rs *roomState) nextSeq() int64 { return max(rs.room.LastSeq, rs.queued) + 1 }

// errRoomNotFound marks a room that does not exist, as opposed to one that
// failed to load.
var errRoomNotFound = errors.New("room not found")

func newHub(s *Server) *hub { return &hub{s: s, rooms: map[string]*roomState{}} }

// acquire locks a room and makes sure its cached state is loaded.
func (h *hub) acquire(ctx context.Context, id string) (*roomState, func(), error) {
	h.mu.Lock()
	rs, ok := h.rooms[id]
	if !ok {
		rs = &roomState{}
		h.rooms[id] = rs
	}
	h.mu.Unlock()
	rs.mu.Lock()
	if rs.loaded && rs.stale {
		if err := h.refresh(ctx, rs); err != nil {
			rs.mu.Unlock()
			return nil, nil, err
		}
	}
	if !rs.loaded {
		if err := h.load(ctx, id, rs); err != nil {
			rs.mu.Unlock()
			// Forget a room that does not exist, or every request for a
			// made-up room ID would leave an entry behind for good.
			if errors.Is(err, errRoomNotFound) {
				h.mu.Lock()
				if h.rooms[id] == rs {
					delete(h.rooms, id)
				}
				h.mu.Unlock()
			}
			return nil, nil, err
		}
	}
	return rs, rs.mu.Unlock, nil
}

func (h *hub) load(ctx context.Context, id string, rs *roomState) error {
	// What is still queued lands first, or the room read would miss it.
	rs.inflight.Wait()
	rs.queued, rs.stale = 0, false
	room, err := h.s.store.Room(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return &Error{Code: "not_found", Status: http.StatusNotFound, Message: fmt.Sprintf("no room %q", id), cause: errRoomNotFound}
	} else if err != nil {
		return err
	}
	if room.Hub != "" {
		// A follower's copy: the hub keeps the group, this provider only
		// the log it was sent.
		rs.room, rs.group, rs.members, rs.loaded = room, nil, nil, true
		return nil
	}
	g, err := mls.RestorePublicGroup(room.State)
	if err != nil {
		return fmt.Errorf("room %s: stored state: %w", id, err)
	}
	members, err := h.s.membersOf(ctx, g)
	if err != nil {
		return err
	}
	rs.room, rs.group, rs.members, rs.loaded = room, g, members, true
	return nil
}

// refresh reads a hosted room again after another replica wrote to it.
// When its Version is the one cached, only its log grew (application
// messages) and the cached group and members still hold: the new last Seq
// is all there is to take. Otherwise the whole room is loaded again.
func (h *hub) refresh(ctx context.Context, rs *roomState) error {
	if rs.loaded && rs.group != nil {
		rs.inflight.Wait()
		room, err := h.s.store.Room(ctx, rs.room.ID)
		if err != nil {
			return err
		}
		if room.Version == rs.room.Version {
			rs.room.LastSeq, rs.queued, rs.stale = room.LastSeq, 0, false
			return nil
		}
	}
	return h.load(ctx, rs.room.ID, rs)
}

func roomID(groupID []byte) string { return base64.RawURLEncoding.EncodeToString(groupID) }

type createRoomRequest struct {
	GroupInfo   []byte `json:"group_info"`
	RatchetTree []byte `json:"ratchet_tree"`
}

func (s *Server) createRoom(w http.ResponseWriter, r *http.Request) error {
	c := callerOf(r)
	var req createRoomRequest
	if err := s.readJSON(r, &req); err != nil {
		return err
	}
	m, err := mls.ParseMLSMessage(req.GroupInfo)
	if err != nil || m.GroupInfo == nil {
		return errBadRequest("group_info must be a GroupInfo MLSMessage")
	}
	var tree mls.TreeNodes
	if len(req.RatchetTree) > 0 {
		if err := mls.Unmarshal(req.RatchetTree, &tree); err != nil {
			return errBadRequest("ratchet_tree: %v", err)
		}
	}
	g, err := mls.NewPublicGroup(m.GroupInfo, tree)
	if err != nil {
		return errInvalidMessage(err)
	}
	if g.Epoch() != 0 {
		return errBadRequest("a room starts in epoch 0, this group is in epoch %d", g.Epoch())
	}
	members, err := s.membersOf(r.Context(), g)
	if err != nil {
		return err
	}
	if len(members) != 1 {
		return errBadRequest("a new room has exactly one member, its creator")
	}
	for _, mem := range members {
		if mem.device.ID != c.device.ID {
			return errForbidden("the group's only member must be the calling device")
		}
	}
	id := roomID(g.GroupID())
	room := store.Room{ID: id, CreatorID: c.user.ID, Epoch: 0, Version: 1, State: g.MarshalState(), Created: s.now()}
	err = s.store.CreateRoom(r.Context(), room, []store.RoomMember{{RoomID: id, UserID: c.user.ID, Role: store.RoleAdmin}})
	if errors.Is(err, store.ErrExists) {
		return errConflict("a room with this group id exists")
	} else if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"room": map[string]any{"id": id, "epoch": 0}})
	return nil
}

// memberRoom locks the room and checks that the caller's device is in it:
// in a room this provider hosts, that the device holds a leaf; in a
// follower's copy, that the hub counts the device's user in the room (the
// follower does not follow the group, so it knows users, not leaves).
func (s *Server) memberRoom(r *http.Request) (*roomState, func(), error) {
	return s.memberRoomOf(r.Context(), callerOf(r), r.PathValue("id"))
}

// memberRoomOf is memberRoom for a caller and a room ID however they came
// (a request's path, a stream's frame).
func (s *Server) memberRoomOf(ctx context.Context, c *caller, id string) (*roomState, func(), error) {
	rs, unlock, err := s.hub.acquire(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if rs.room.Hub != "" {
		in, err := s.userInRoom(ctx, rs.room.ID, c.user.ID)
		if err != nil || !in {
			unlock()
			if err != nil {
				return nil, nil, err
			}
			return nil, nil, errNotFound("no room %q", id)
		}
		return rs, unlock, nil
	}
	_, ok := rs.leafOf(c.device.ID)
	if !ok {
		// Another replica may have added the device since this one read
		// the room: look again before saying no. refresh reads only the
		// room's row unless a commit came between, so a stranger asking
		// again and again costs no more than that.
		if err := s.hub.refresh(ctx, rs); err != nil {
			unlock()
			return nil, nil, err
		}
		_, ok = rs.leafOf(c.device.ID)
	}
	if !ok {
		unlock()
		// Not a member: answer as if the room did not exist.
		return nil, nil, errNotFound("no room %q", id)
	}
	return rs, unlock, nil
}

// userInRoom says whether a local user is listed in a room's members.
func (s *Server) userInRoom(ctx context.Context, roomID string, userID int64) (bool, error) {
	ms, err := s.store.RoomMembers(ctx, roomID)
	if err != nil {
		return false, err
	}
	for _, m := range ms {
		if m.UserID == userID {
			return true, nil
		}
	}
	return false, nil
}

func (rs *roomState) leafOf(deviceID int64) (mls.LeafIndex, bool) {
	for l, m := range rs.members {
		if m.local() && m.device.ID == deviceID {
			return l, true
		}
	}
	return 0, false
}

func (s *Server) getRoom(w http.ResponseWriter, r *http.Request) error {
	rs, unlock, err := s.memberRoom(r)
	if err != nil {
		return err
	}
	defer unlock()
	if rs.room.Hub != "" {
		return errNotFound("room %q is hosted by %s; this provider keeps only its log", rs.room.ID, rs.room.Hub)
	}
	roles, err := s.store.RoomMembers(r.Context(), rs.room.ID)
	if err != nil {
		return err
	}
	role := map[int64]store.Role{}
	for _, m := range roles {
		role[m.UserID] = m.Role
	}
	type userEntry struct {
		User    string   `json:"user"`
		Role    string   `json:"role"`
		Devices []string `json:"devices"`
	}
	byUser := map[identity.URI]*userEntry{}
	var order []identity.URI
	for _, l := range sortedLeaves(rs.members) {
		m := rs.members[l]
		u := m.uri.UserOf()
		e, ok := byUser[u]
		if !ok {
			e = &userEntry{User: s.address(m.uri), Role: string(store.RoleMember)}
			if m.local() {
				e.Role = string(roleOr(role, m.user.ID))
			}
			byUser[u] = e
			order = append(order, u)
		}
		e.Devices = append(e.Devices, m.uri.Device)
	}
	out := make([]*userEntry, 0, len(order))
	for _, id := range order {
		out = append(out, byUser[id])
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": rs.room.ID, "epoch": rs.group.Epoch(), "members": out})
	return nil
}

func roleOr(roles map[int64]store.Role, user int64) store.Role {
	if r, ok := roles[user]; ok {
		return r
	}
	return store.RoleMember
}

func sortedLeaves(m map[mls.LeafIndex]member) []mls.LeafIndex {
	out := make([]mls.LeafIndex, 0, len(m))
	for l := range m {
		out = append(out, l)
	}
	slices.Sort(out)
	return out
}

func (s *Server) getRoomTree(w http.ResponseWriter, r *http.Request) error {
	rs, unlock, err := s.memberRoom(r)
	if err != nil {
		return err
	}
	defer unlock()
	if rs.room.Hub != "" {
		return errNotFound("room %q is hosted by %s; this provider keeps only its log", rs.room.ID, rs.room.Hub)
	}
	writeJSON(w, http.StatusOK, map[string]any{"epoch": rs.group.Epoch(), "ratchet_tree": mls.Marshal(rs.group.Tree().TreeNodes())})
	return nil
}

func (s *Server) roomLog(w http.ResponseWriter, r *http.Request) error {
	rs, unlock, err := s.memberRoom(r)
	if err != nil {
		return err
	}
	id := rs.room.ID
	unlock()
	after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	msgs, err := s.store.RoomMessages(r.Context(), id, after, limit)
	if err != nil {
		return err
	}
	out := make([]messageJSON, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, s.messageJSON(r.Context(), m))
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": out})
	return nil
}

// messageJSON is a message as the API shows it.
type messageJSON struct {
	ID      string         `json:"id"`
	Room    string         `json:"room"`
	Seq     int64          `json:"seq"`
	Kind    string         `json:"kind"`
	Epoch   uint64         `json:"epoch"`
	Sender  map[string]any `json:"sender"`
	Payload []byte         `json:"payload"`
	Created time.Time      `json:"created"`
	// Hub, on a Welcome, is the domain of the provider hosting the room.
	Hub string `json:"hub,omitempty"`
	// Frank is the hub's frank of an application message that asked for
	// one (the MIMI Frank encoding), AcceptedTimestamp the hub's
	// acceptance time in Unix ms, the number the frank signs
	// (docs/abuse.md).
	Frank             []byte `json:"frank,omitempty"`
	AcceptedTimestamp int64  `json:"accepted_timestamp,omitempty"`
}

func (s *Server) messageJSON(ctx context.Context, m store.Message) messageJSON {
	sender := map[string]any{}
	if u, err := identity.ParseURI(m.Sender); err == nil && u.Kind == identity.KindDevice {
		sender["user"], sender["device"], sender["domain"] = u.User, u.Device, u.Domain
	} else if d, err := s.store.DeviceByID(ctx, m.SenderDevice); err == nil {
		sender["domain"] = s.cfg.Domain
		sender["device"] = d.Name
		if u, err := s.store.UserByID(ctx, d.UserID); err == nil {
			sender["user"] = u.Handle
		}
	}
	hub := ""
	if m.Kind == store.KindWelcome {
		hub = s.cfg.Domain
		if r, err := s.store.Room(ctx, m.RoomID); err == nil && r.Hub != "" {
			hub = r.Hub
		}
	}
	return messageJSON{
		Hub: hub,
		ID:  m.RoomID + "/" + strconv.FormatInt(m.Seq, 10), Room: m.RoomID, Seq: m.Seq, Kind: string(m.Kind),
		Epoch: m.Epoch, Sender: sender, Payload: m.Payload, Created: m.Created.UTC(),
		Frank: m.Frank, AcceptedTimestamp: m.Accepted,
	}
}

// address is a user as the client API names them: the bare handle for
// users of this provider, handle@domain for others.
func (s *Server) address(u identity.URI) string {
	if u.Domain == s.cfg.Domain {
		return u.User
	}
	return u.User + "@" + u.Domain
}
