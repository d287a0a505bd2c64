package sqlstore

import "regexp"

// migration is one step of the schema's history. SQL is neutral: written
// as SQLite reads it, and turned into PostgreSQL by the word rules of
// postgresDDL (INTEGER is BIGINT, BLOB is BYTEA, an INTEGER PRIMARY KEY
// (AUTOINCREMENT or not) is a BIGINT identity column, WITHOUT ROWID is
// dropped). What cannot be said the same way in both goes in SQLite or
// Postgres, run after SQL and not rendered.
type migration struct {
	SQL, SQLite, Postgres string
}

// migrations are the schema's history, for both databases: migrations[i]
// moves a database from version i to version i+1. Entries are only ever
// appended; an applied migration is never edited, because databases in
// the field already ran it. To change the schema, append one entry here
// (neutral SQL where the rules cover it) and add its columns to
// docs/privacy.md; both stores apply it on their next start.
//
// Choices worth knowing before editing:
//
//   - Times are INTEGER Unix nanoseconds (UTC), so comparisons are integer
//     comparisons and no driver time formatting is involved.
//   - uint64 epochs are stored bit-for-bit in INTEGER (int64) columns;
//     the Go side converts, so the full uint64 range round-trips.
//   - Flags (key_packages.last_resort and claimed, users.discoverable_*
//     and suspended) are 0/1 INTEGERs in both databases, not PostgreSQL
//     BOOLEANs, so that every statement that reads or writes them is the
//     same text for both.
//   - A message's payload is stored once, in room_messages; device_queue
//     holds only (device, cursor) -> message id references, so a message for
//     five devices costs one payload and five small index entries.
//   - device_queue is WITHOUT ROWID with the primary key (device_id,
//     cursor): one b-tree, clustered the way Deliveries reads it.
//   - Cursors come from the counters table, not from max(cursor)+1: after
//     an Ack empties a queue, max+1 would hand out a cursor the device has
//     already acknowledged, and the device would never see that entry.
//     (PostgreSQL keeps one counter row per device; see postgresEnqueue.)
//   - users and devices use AUTOINCREMENT (in PostgreSQL an identity) so
//     an ID is never reused, even if rows are deleted one day: IDs are
//     identities for other providers.
//   - room_members.user_id and room_messages.sender_device have no foreign
//     keys on purpose: rooms hosted here will have members and senders on
//     other providers, who have no local row (sender_device is then 0 and
//     room_messages.sender names the device).
//   - SQLite runs every migration with foreign keys off and a
//     foreign_key_check before COMMIT (store/sqlite), so one may rebuild a
//     table.
var migrations = []migration{
	// 1: the first schema.
	{SQL: `
CREATE TABLE users (
	id      INTEGER PRIMARY KEY AUTOINCREMENT,
	handle  TEXT    NOT NULL UNIQUE,
	phone   TEXT    UNIQUE,          -- NULL when none: NULLs do not collide
	created INTEGER NOT NULL
);

CREATE TABLE devices (
	id       INTEGER PRIMARY KEY AUTOINCREMENT,
	user_id  INTEGER NOT NULL REFERENCES users(id),
	name     TEXT    NOT NULL,
	auth_key BLOB    NOT NULL UNIQUE,
	created  INTEGER NOT NULL,
	UNIQUE (user_id, name)
);

CREATE TABLE enrollments (
	code_hash BLOB    PRIMARY KEY,
	user_id   INTEGER NOT NULL REFERENCES users(id),
	expires   INTEGER NOT NULL
);

CREATE TABLE sessions (
	token_hash BLOB    PRIMARY KEY,
	device_id  INTEGER NOT NULL REFERENCES devices(id),
	expires    INTEGER NOT NULL
);

-- A claimed (or replaced last-resort) KeyPackage keeps its row, without its
-- data, so that KeyPackageDevice can still route a Welcome to its device.
CREATE TABLE key_packages (
	ref         BLOB    PRIMARY KEY,
	device_id   INTEGER NOT NULL REFERENCES devices(id),
	suite       INTEGER NOT NULL,
	data        BLOB    NOT NULL,
	last_resort INTEGER NOT NULL,
	claimed     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX key_packages_available
	ON key_packages (device_id, suite, last_resort) WHERE claimed = 0;

CREATE TABLE rooms (
	id         TEXT    PRIMARY KEY,
	creator_id INTEGER NOT NULL REFERENCES users(id),
	epoch      INTEGER NOT NULL,
	version    INTEGER NOT NULL,
	state      BLOB    NOT NULL,
	created    INTEGER NOT NULL
);

CREATE TABLE room_members (
	room_id TEXT    NOT NULL REFERENCES rooms(id),
	user_id INTEGER NOT NULL,
	role    TEXT    NOT NULL,
	PRIMARY KEY (room_id, user_id)
) WITHOUT ROWID;

CREATE TABLE room_messages (
	id            INTEGER PRIMARY KEY,
	room_id       TEXT    NOT NULL REFERENCES rooms(id),
	seq           INTEGER NOT NULL,
	client_id     TEXT    NOT NULL,
	sender_device INTEGER NOT NULL,
	kind          TEXT    NOT NULL,
	epoch         INTEGER NOT NULL,
	payload       BLOB    NOT NULL,
	created       INTEGER NOT NULL,
	UNIQUE (room_id, seq),
	UNIQUE (room_id, client_id)
);

CREATE TABLE device_queue (
	device_id  INTEGER NOT NULL REFERENCES devices(id),
	cursor     INTEGER NOT NULL,
	message_id INTEGER NOT NULL REFERENCES room_messages(id),
	PRIMARY KEY (device_id, cursor)
) WITHOUT ROWID;

CREATE TABLE counters (
	name  TEXT    PRIMARY KEY,
	value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO counters (name, value) VALUES ('cursor', 0);
`,
		// ClaimKeyPackage hands packages out in the order they were added:
		// SQLite's implicit rowid says it; a PostgreSQL table has no such
		// column, so it gets one (Dialect.keyPackageOrder names each).
		Postgres: `
ALTER TABLE key_packages ADD COLUMN added BIGINT GENERATED BY DEFAULT AS IDENTITY;
`},
	// 2: the federation outbox and inbound de-duplication.
	//
	// outbox.seq is AUTOINCREMENT so a Seq is never reused: a sender that
	// deletes "its" entry late (after a restart, say) can never delete a
	// newer one. (destination, seq) is the order a destination's entries
	// are sent in; UNIQUE (destination, delivery_id) makes a retried
	// enqueue a no-op. inbound_seen is keyed the way SeenInbound looks it
	// up and indexed by time for TrimInbound.
	{SQL: `
CREATE TABLE outbox (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT,
	destination TEXT    NOT NULL,
	delivery_id TEXT    NOT NULL,
	kind        TEXT    NOT NULL,
	path        TEXT    NOT NULL,
	body        BLOB    NOT NULL,
	attempts    INTEGER NOT NULL DEFAULT 0,
	not_before  INTEGER NOT NULL DEFAULT 0, -- Unix ns; 0: no wait
	last_error  TEXT    NOT NULL DEFAULT '',
	created     INTEGER NOT NULL,
	UNIQUE (destination, delivery_id)
);
CREATE INDEX outbox_next ON outbox (destination, seq);

CREATE TABLE inbound_seen (
	from_domain TEXT    NOT NULL,
	delivery_id TEXT    NOT NULL,
	seen        INTEGER NOT NULL,
	PRIMARY KEY (from_domain, delivery_id)
) WITHOUT ROWID;
CREATE INDEX inbound_seen_by_time ON inbound_seen (seen);
`},
	// 3: follower copies of rooms hosted elsewhere, remote senders and
	// outbox headers.
	//
	// rooms is rebuilt (SQLite cannot drop a NOT NULL in place) with
	// creator_id nullable, NULL for a follower's copy, which has no local
	// creator, and hub, the hosting provider's domain ('' when this
	// provider hosts the room). The rebuild follows SQLite's recipe:
	// create the new table, copy, drop the old, rename the new; the
	// REFERENCES rooms(id) clauses of room_members and room_messages name
	// the table by name, so they point at the new one. It needs foreign
	// keys off (else DROP TABLE deletes the rows and fails on the
	// messages that refer to them); store/sqlite's applyMigration sees to
	// that and runs foreign_key_check before it commits.
	//
	// room_messages.sender is the sending device's URI ('' for messages
	// logged before it was kept). outbox.header is the entry's extra
	// request headers as a JSON object, '' when there are none.
	//
	// PostgreSQL drops the NOT NULL and adds hub in place instead (there
	// DROP TABLE would refuse, or with CASCADE drop the foreign keys that
	// refer to rooms); hub then comes last among rooms' columns, which
	// nothing depends on.
	{SQL: `
ALTER TABLE room_messages ADD COLUMN sender TEXT NOT NULL DEFAULT '';

ALTER TABLE outbox ADD COLUMN header TEXT NOT NULL DEFAULT '';
`, SQLite: `
CREATE TABLE rooms_v3 (
	id         TEXT    PRIMARY KEY,
	hub        TEXT    NOT NULL DEFAULT '',
	creator_id INTEGER REFERENCES users(id), -- NULL for a follower's copy
	epoch      INTEGER NOT NULL,
	version    INTEGER NOT NULL,
	state      BLOB    NOT NULL,
	created    INTEGER NOT NULL
);
INSERT INTO rooms_v3 (id, hub, creator_id, epoch, version, state, created)
	SELECT id, '', creator_id, epoch, version, state, created FROM rooms;
DROP TABLE rooms;
ALTER TABLE rooms_v3 RENAME TO rooms;
`, Postgres: `
ALTER TABLE rooms ALTER COLUMN creator_id DROP NOT NULL;
ALTER TABLE rooms ADD COLUMN hub TEXT NOT NULL DEFAULT '';
`},
	// 4: per-user discoverability (docs/discovery.md). A user may be found
	// by other providers' users by handle, by phone number, by both or (by
	// default, also for every user that existed before this migration) by
	// neither. Booleans are 0 or 1, as key_packages.last_resort.
	{SQL: `
ALTER TABLE users ADD COLUMN discoverable_handle INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN discoverable_phone  INTEGER NOT NULL DEFAULT 0;
`},
	// 5: attachments (docs/attachments.md): encrypted files uploaded by
	// local devices, one row each, whole. data is the last column and
	// size is kept beside it, so that reading a row's other columns, or
	// the size a range read answers with, never walks the blob's overflow
	// pages; the index on created serves TrimAttachments.
	{SQL: `
CREATE TABLE attachments (
	id       TEXT    PRIMARY KEY,
	owner_id INTEGER NOT NULL REFERENCES users(id),
	size     INTEGER NOT NULL,
	created  INTEGER NOT NULL,
	data     BLOB    NOT NULL
);
CREATE INDEX attachments_by_time ON attachments (created);
`},
	// 6: per-user third-party reachability (docs/reachability.md).
	// users.reachability is 'off' (the default, also for every user that
	// existed before this migration), 'all' or 'some'; for 'some',
	// user_reachable lists the partner domains the user allows, one row
	// each. A row of user_reachable means nothing unless its user's mode
	// is 'some', and SetReachability empties the list for the other two.
	{SQL: `
ALTER TABLE users ADD COLUMN reachability TEXT NOT NULL DEFAULT 'off'
	CHECK (reachability IN ('off', 'all', 'some'));
CREATE TABLE user_reachable (
	user_id INTEGER NOT NULL REFERENCES users(id),
	domain  TEXT    NOT NULL,
	PRIMARY KEY (user_id, domain)
) WITHOUT ROWID;
`},
	// 7: consent (docs/consent.md). contacts holds a user's decision
	// about another user (a user URI, of this provider or a partner):
	// accepted or blocked; no row is no decision. message_requests holds
	// first contacts waiting for an answer (pending) or declined; room_id
	// is '' for a MIMI requestConsent without a room. The partial index
	// serves Refusing, which runs for every delivered message: it finds
	// the users who declined a room without reading pending rows; a
	// block is found through contacts' primary key.
	{SQL: `
CREATE TABLE contacts (
	user_id INTEGER NOT NULL REFERENCES users(id),
	peer    TEXT    NOT NULL,
	state   TEXT    NOT NULL CHECK (state IN ('accepted', 'blocked')),
	updated INTEGER NOT NULL,
	PRIMARY KEY (user_id, peer)
) WITHOUT ROWID;
CREATE TABLE message_requests (
	user_id INTEGER NOT NULL REFERENCES users(id),
	peer    TEXT    NOT NULL,
	room_id TEXT    NOT NULL,
	state   TEXT    NOT NULL CHECK (state IN ('pending', 'declined')),
	created INTEGER NOT NULL,
	PRIMARY KEY (user_id, peer, room_id)
) WITHOUT ROWID;
CREATE INDEX message_requests_declined ON message_requests (room_id, user_id) WHERE state = 'declined';
`},
	// 8: franking and abuse
	// reports (docs/abuse.md). room_messages.frank is the hub's frank of
	// an application message that asked for one (NULL otherwise) and
	// accepted its acceptance time in Unix ms, the number the frank
	// signs; a report names a message by its frank, so franks are
	// indexed per room. franking_keys holds the hub's key material, one
	// row per signature scheme. reports is the operator's queue; notices
	// are the operator's messages to users; users.suspended bars a user.
	{SQL: `
ALTER TABLE room_messages ADD COLUMN frank BLOB;
ALTER TABLE room_messages ADD COLUMN accepted INTEGER NOT NULL DEFAULT 0;
CREATE INDEX room_messages_by_frank ON room_messages (room_id, frank) WHERE frank IS NOT NULL;

CREATE TABLE franking_keys (
	scheme      TEXT    PRIMARY KEY,
	private_key BLOB    NOT NULL,
	public_key  BLOB    NOT NULL,
	hub_key     BLOB    NOT NULL,
	created     INTEGER NOT NULL
);

CREATE TABLE reports (
	id             INTEGER PRIMARY KEY AUTOINCREMENT,
	created        INTEGER NOT NULL,
	room           TEXT    NOT NULL,
	reporter       TEXT    NOT NULL,
	alleged_abuser TEXT    NOT NULL,
	reason         INTEGER NOT NULL,
	note           TEXT    NOT NULL,
	body           BLOB    NOT NULL,
	origin         TEXT    NOT NULL,
	verified_by    TEXT    NOT NULL,
	state          TEXT    NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'handled')),
	action         TEXT    NOT NULL DEFAULT '',
	action_note    TEXT    NOT NULL DEFAULT '',
	handled        INTEGER NOT NULL DEFAULT 0,
	delivery_id    TEXT    NOT NULL DEFAULT ''
);
-- A partner's retry of a report it already delivered is recognised here,
-- in the same write as the report.
CREATE UNIQUE INDEX reports_by_delivery ON reports (origin, delivery_id) WHERE delivery_id != '';

CREATE TABLE notices (
	id      INTEGER PRIMARY KEY AUTOINCREMENT,
	user_id INTEGER NOT NULL REFERENCES users(id),
	text    TEXT    NOT NULL,
	report  INTEGER NOT NULL DEFAULT 0,
	created INTEGER NOT NULL
);
CREATE INDEX notices_by_user ON notices (user_id, id);

ALTER TABLE users ADD COLUMN suspended INTEGER NOT NULL DEFAULT 0;
`},
}

// Migrations returns the schema's history in the dialect: element i moves
// a database from version i to version i+1.
func (d *Dialect) Migrations() []string {
	out := make([]string, len(migrations))
	for i, m := range migrations {
		own := m.SQLite
		if d == Postgres {
			own = m.Postgres
		}
		out[i] = d.ddl(m.SQL) + own
	}
	return out
}

// postgresTypes are the word rules that turn the neutral DDL into
// PostgreSQL's, applied in order.
var postgresTypes = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\bINTEGER PRIMARY KEY( AUTOINCREMENT)?\b`), "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"},
	{regexp.MustCompile(`\bINTEGER\b`), "BIGINT"},
	{regexp.MustCompile(`\bBLOB\b`), "BYTEA"},
	{regexp.MustCompile(`\)\s*WITHOUT ROWID`), ")"},
}

// postgresDDL renders neutral DDL for PostgreSQL.
func postgresDDL(neutral string) string {
	for _, r := range postgresTypes {
		neutral = r.re.ReplaceAllString(neutral, r.with)
	}
	return neutral
}
