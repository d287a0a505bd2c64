package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// The device's state directory. Every file is JSON with a "version" field,
// written atomically (temp file, fsync, rename, fsync of the directory) with
// mode 0600, so that a crash leaves either the old or the new version of a
// file and never a torn one:
//
//	device.json          identity: auth key, MLS signature key, credential
//	keypackages.json     private halves of uploaded KeyPackages
//	cursor.json          the device queue's last acknowledged cursor
//	rooms/ROOM.json      one per room: MLS group state and last hub seq
//	rooms/ROOM.HASH.tree the room's ratchet tree, named by its tree hash
//
// A room file and the cursor are separate files, so they are written in a
// fixed order: room files first, the cursor after. A crash in between
// makes the provider deliver entries again, and the room's last seq makes
// the client skip them: the room file is the record of what was processed.
//
// The ratchet tree is stored apart from the rest of the group state. It is
// most of a large room's state (every member's credential and keys: about
// 1 MB in a room of 1,000) and changes only at commits, while the rest (the
// epoch's secrets, the ratchets' positions) changes with every message sent
// or received and is small. So a send or a batch of application messages
// rewrites only the room file, and a tree file is written only when a
// commit changed the tree. Why this is as crash-safe as one file:
//
//   - The room file is the one commit point. It names its tree by hash
//     (and the MLS state's GroupContext holds the same hash, which restoring
//     checks), so a room file can never be read with another tree.
//   - A tree file is written (synced, renamed, directory synced) before any
//     room file names it, and removed only after a room file naming
//     another tree is durable. A crash in between leaves the old room file
//     with its old tree, both on disk: the device restarts where it was
//     before the batch, as with one file, and the provider delivers the
//     batch again. A tree file no room file names is left-over and removed
//     on load.
//   - Every secret, and every ratchet position, is in the room file only,
//     which is written and synced before a message encrypted with it
//     leaves (sendLocked), exactly as before: no crash can make the device
//     use a key twice. The tree holds only public keys and credentials.
//   - Trees are content-addressed, so writing one that is already there
//     is skipped: same name, same bytes.
//
// Room files of the first layout hold the whole MLS state with its tree
// (no "tree" field); they load as they are and are written in the new
// layout on the next save.

// stateVersion is the version of every file's layout. A file of another
// version is refused rather than guessed at.
const stateVersion = 1

const (
	deviceFileName      = "device.json"
	keyPackagesFileName = "keypackages.json"
	cursorFileName      = "cursor.json"
	roomsDirName        = "rooms"
)

// ErrNoState reports a directory without a registered device (Open on a
// directory that Register never completed in).
var ErrNoState = errors.New("client: no device state in directory")

// ErrStateExists reports Register into a directory that already holds a
// device.
var ErrStateExists = errors.New("client: directory already holds a device")

// deviceState is device.json. Keys are in raw form: the Ed25519 seed of the
// auth key, the MLS signature key as mls.SignaturePrivateKey.Bytes.
type deviceState struct {
	Version  int    `json:"version"`
	Domain   string `json:"domain"`
	User     string `json:"user"`
	Device   string `json:"device"`
	DeviceID int64  `json:"device_id"`
	AuthKey  []byte `json:"auth_key"`

	Suite        uint16 `json:"cipher_suite"`
	SignatureKey []byte `json:"signature_key"`
	// Credential is the MLS Credential encoding; empty until the provider
	// issued it (a Register interrupted after POST /v1/devices).
	Credential    []byte `json:"credential,omitempty"`
	DeviceURI     string `json:"device_uri,omitempty"`
	UserURI       string `json:"user_uri,omitempty"`
	CACertificate []byte `json:"ca_certificate,omitempty"`
}

// keyPackageState is one KeyPackage this device made: the public
// KeyPackage and the private init and encryption keys, kept until a
// Welcome uses them (a last-resort one is kept for good).
type keyPackageState struct {
	Ref           []byte `json:"ref"`
	KeyPackage    []byte `json:"key_package"` // MLSMessage encoding
	InitKey       []byte `json:"init_key"`
	EncryptionKey []byte `json:"encryption_key"`
	LastResort    bool   `json:"last_resort,omitempty"`
	NotAfter      uint64 `json:"not_after"`
	// Uploaded is set once the provider has stored it (for last-resort
	// KeyPackages, which the device checks before making another).
	Uploaded bool `json:"uploaded,omitempty"`
}

type keyPackagesFile struct {
	Version     int               `json:"version"`
	KeyPackages []keyPackageState `json:"key_packages"`
}

type cursorFile struct {
	Version int   `json:"version"`
	Cursor  int64 `json:"cursor"`
}

// roomState is rooms/ROOM.json.
type roomState struct {
	Version int    `json:"version"`
	Room    RoomID `json:"room"`
	// Hub is the domain of the provider hosting the room (empty in state
	// saved before it was kept: this device's own provider).
	Hub string `json:"hub,omitempty"`
	// LastSeq is the hub sequence number of the last message of the room
	// this device processed; anything at or below it is a redelivery.
	LastSeq int64 `json:"last_seq"`
	// JoinedEpoch is the epoch in which this device joined: messages of
	// earlier epochs were never meant for it.
	JoinedEpoch uint64 `json:"joined_epoch,omitempty"`
	// Removed is set once a commit removed this device; Group is then
	// dropped, since its secrets are of no further use.
	Removed bool `json:"removed,omitempty"`
	// Group is mls.Group.MarshalStateApart when Tree is set (the tree is
	// in rooms/ROOM.TREE.tree), mls.Group.MarshalState when it is not
	// (room files of the first layout).
	Group []byte `json:"group,omitempty"`
	// Tree is the hex tree hash of the room's tree file.
	Tree string `json:"tree,omitempty"`
	// Pending is a commit this device sent whose result it has not yet
	// seen (the group state holds it as its pending commit), so that after
	// a crash it can ask again with the same client_id.
	Pending *pendingPost `json:"pending,omitempty"`
}

// pendingPost is a handshake message POSTed (or about to be) to a room.
type pendingPost struct {
	// Seq is the hub's sequence number once the provider accepted the
	// commit (0 until then). Messages before it are processed in the old
	// epoch; the commit is merged when they are done.
	Seq      int64  `json:"seq,omitempty"`
	ClientID string `json:"client_id"`
	Message  []byte `json:"message"`
	Welcome  []byte `json:"welcome,omitempty"`
	// GroupInfo and RatchetTree are the new epoch's, which a room hosted
	// by another provider needs with the commit (docs/api.md).
	GroupInfo   []byte `json:"group_info,omitempty"`
	RatchetTree []byte `json:"ratchet_tree,omitempty"`
}

// writeFileAtomic replaces path with data so that readers, and the file
// after a crash, see either the old or the new contents. The temporary file
// is in the same directory because rename is atomic only within one file
// system.
func writeFileAtomic(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close() // #nosec G104 -- on an error path: the first error is the one returned
			os.Remove(tmp)
		}
	}()
	// CreateTemp already makes the file 0600, but say so: these files hold
	// private keys, and the mode must not depend on that detail.
	if err = f.Chmod(0o600); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	// The rename itself is durable only once the directory is synced.
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir) // #nosec G304 -- the device state directory the program was given
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, fs.ErrInvalid) {
		// Some platforms cannot sync a directory; the rename is then as
		// durable as that platform makes it.
		return err
	}
	return nil
}

// writeJSON stores v as the file name in dir. The JSON is compact: a
// room's file holds its whole group state (a ratchet tree with every
// member's credential, base64) and is written after every batch the
// device processes; indenting it cost a pass over every byte (in a room
// of 100, a tenth of the devices' CPU time) for no reader's benefit.
func writeJSON(dir, name string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("client: encode %s: %w", name, err)
	}
	if err := writeFileAtomic(filepath.Join(dir, name), append(data, '\n')); err != nil {
		return fmt.Errorf("client: write %s: %w", name, err)
	}
	return nil
}

// readJSON loads the file name in dir into v and checks its version;
// version points at v's version field.
func readJSON(dir, name string, v any, version *int) error {
	data, err := os.ReadFile(filepath.Join(dir, name)) // #nosec G304 -- a name listed in the state directory
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("client: read %s: %w", name, err)
	}
	if *version != stateVersion {
		return fmt.Errorf("client: read %s: state version %d, this client reads %d", name, *version, stateVersion)
	}
	return nil
}

// store is the state directory.
type store struct {
	dir string
}

func (s *store) roomsDir() string { return filepath.Join(s.dir, roomsDirName) }

// init makes the directory and its rooms subdirectory, readable by this
// user only.
func (s *store) init() error {
	if err := os.MkdirAll(s.roomsDir(), 0o700); err != nil {
		return fmt.Errorf("client: state directory: %w", err)
	}
	return nil
}

func (s *store) hasDevice() bool {
	_, err := os.Stat(filepath.Join(s.dir, deviceFileName))
	return err == nil
}

// removeDevice forgets a device the provider refused to register.
func (s *store) removeDevice() {
	os.Remove(filepath.Join(s.dir, deviceFileName))
}

func (s *store) saveDevice(d *deviceState) error {
	d.Version = stateVersion
	return writeJSON(s.dir, deviceFileName, d)
}

func (s *store) loadDevice() (*deviceState, error) {
	var d deviceState
	if err := readJSON(s.dir, deviceFileName, &d, &d.Version); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s", ErrNoState, s.dir)
		}
		return nil, err
	}
	return &d, nil
}

func (s *store) saveKeyPackages(kps []keyPackageState) error {
	return writeJSON(s.dir, keyPackagesFileName, &keyPackagesFile{Version: stateVersion, KeyPackages: kps})
}

func (s *store) loadKeyPackages() ([]keyPackageState, error) {
	var f keyPackagesFile
	if err := readJSON(s.dir, keyPackagesFileName, &f, &f.Version); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	return f.KeyPackages, nil
}

func (s *store) saveCursor(c int64) error {
	return writeJSON(s.dir, cursorFileName, &cursorFile{Version: stateVersion, Cursor: c})
}

func (s *store) loadCursor() (int64, error) {
	var f cursorFile
	if err := readJSON(s.dir, cursorFileName, &f, &f.Version); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, nil
		}
		return 0, err
	}
	return f.Cursor, nil
}

// validRoomID reports whether id can name a file: room IDs are base64url
// group IDs, and anything else from the provider is refused rather than
// used as a path.
func validRoomID(id RoomID) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for _, r := range id {
		switch {
		case r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_', r == '=':
		default:
			return false
		}
	}
	return true
}

func (s *store) saveRoom(r *roomState) error {
	if !validRoomID(r.Room) {
		return fmt.Errorf("client: room id %q cannot be stored", r.Room)
	}
	r.Version = stateVersion
	return writeJSON(s.roomsDir(), string(r.Room)+".json", r)
}

// treeFileName is the name of a room's tree file, from the hex tree hash.
func treeFileName(id RoomID, hash string) string { return string(id) + "." + hash + treeSuffix }

const treeSuffix = ".tree"

// validTreeHash reports whether h is a hex tree hash that can name a file.
func validTreeHash(h string) bool {
	if len(h) == 0 || len(h) > 128 {
		return false
	}
	for _, r := range h {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

// saveTree stores a room's tree under its hash, unless it is there already.
func (s *store) saveTree(id RoomID, hash string, tree []byte) error {
	if !validRoomID(id) || !validTreeHash(hash) {
		return fmt.Errorf("client: tree %q of room %q cannot be stored", hash, id)
	}
	path := filepath.Join(s.roomsDir(), treeFileName(id, hash))
	if _, err := os.Stat(path); err == nil {
		// Renamed into place only once complete, and named by its hash.
		return nil
	}
	if err := writeFileAtomic(path, tree); err != nil {
		return fmt.Errorf("client: write tree of %s: %w", id, err)
	}
	return nil
}

func (s *store) loadTree(id RoomID, hash string) ([]byte, error) {
	if !validTreeHash(hash) {
		return nil, fmt.Errorf("client: rooms/%s.json names tree %q", id, hash)
	}
	data, err := os.ReadFile(filepath.Join(s.roomsDir(), treeFileName(id, hash)))
	if err != nil {
		return nil, fmt.Errorf("client: tree of room %s: %w", id, err)
	}
	return data, nil
}

// removeTrees removes a room's tree files other than keep's ("" for all).
// It is tidying: a file it misses is removed on the next load.
func (s *store) removeTrees(id RoomID, keep string) {
	entries, _ := os.ReadDir(s.roomsDir())
	prefix := string(id) + "."
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, prefix) && strings.HasSuffix(name, treeSuffix) && name != treeFileName(id, keep) {
			os.Remove(filepath.Join(s.roomsDir(), name))
		}
	}
}

// loadRooms reads every room file. Leftover temporary files of an
// interrupted write are removed: they were never renamed into place, so
// nothing refers to them. So are tree files no room file names (a crash
// after a new tree was written and before the room file naming it).
func (s *store) loadRooms() (map[RoomID]*roomState, error) {
	entries, err := os.ReadDir(s.roomsDir())
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return map[RoomID]*roomState{}, nil
		}
		return nil, fmt.Errorf("client: rooms: %w", err)
	}
	rooms := map[RoomID]*roomState{}
	var trees []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-") {
			os.Remove(filepath.Join(s.roomsDir(), name))
			continue
		}
		if strings.HasSuffix(name, treeSuffix) {
			trees = append(trees, name)
			continue
		}
		if e.IsDir() || !strings.HasSuffix(name, ".json") {
			continue
		}
		r, err := s.loadRoom(RoomID(strings.TrimSuffix(name, ".json")))
		if err != nil {
			return nil, err
		}
		rooms[r.Room] = r
	}
	for _, name := range trees {
		id, _, _ := strings.Cut(name, ".")
		if r := rooms[RoomID(id)]; r == nil || r.Tree == "" || name != treeFileName(r.Room, r.Tree) {
			os.Remove(filepath.Join(s.roomsDir(), name))
		}
	}
	return rooms, nil
}

func (s *store) loadRoom(id RoomID) (*roomState, error) {
	var r roomState
	if err := readJSON(s.roomsDir(), string(id)+".json", &r, &r.Version); err != nil {
		return nil, err
	}
	if r.Room != id {
		return nil, fmt.Errorf("client: rooms/%s.json names room %q", id, r.Room)
	}
	return &r, nil
}

// cleanTemp removes leftover temporary files of interrupted writes in the
// top directory.
func (s *store) cleanTemp() {
	entries, _ := os.ReadDir(s.dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") && strings.Contains(e.Name(), ".tmp-") {
			os.Remove(filepath.Join(s.dir, e.Name()))
		}
	}
}
