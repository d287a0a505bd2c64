package inbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	_ "modernc.org/sqlite" // the database/sql driver "sqlite"
)

// inbox.db holds the desk's own records: agents, sessions, teams, the
// conversations' status, assignment, labels, notes, audit trail, SLA
// clocks and satisfaction answers, contacts, canned responses and
// settings. The messages themselves stay in the Messenger's history.db.
// Times are Unix milliseconds of the Desk's clock; 0 means none.

// migrations are applied in order; PRAGMA user_version counts those done.
// Append, never edit.
var migrations = []string{`
CREATE TABLE agents (
	id        INTEGER PRIMARY KEY,
	login     TEXT    NOT NULL UNIQUE,
	name      TEXT    NOT NULL,
	role      TEXT    NOT NULL,
	password  TEXT    NOT NULL, -- PHC string: $argon2id$v=19$m=..,t=..,p=..$salt$hash
	capacity  INTEGER NOT NULL,
	online    INTEGER NOT NULL DEFAULT 0,
	last_seen INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE agent_teams (
	agent INTEGER NOT NULL,
	team  INTEGER NOT NULL,
	PRIMARY KEY (agent, team)
);
CREATE TABLE sessions (
	hash    BLOB    PRIMARY KEY, -- SHA-256 of the token; the token itself is never stored
	agent   INTEGER NOT NULL,
	expires INTEGER NOT NULL
);
CREATE TABLE teams (
	id             INTEGER PRIMARY KEY,
	name           TEXT    NOT NULL UNIQUE,
	first_response INTEGER NOT NULL DEFAULT 0, -- target, ms; 0 none
	resolution     INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE contacts (
	id       INTEGER PRIMARY KEY,
	name     TEXT    NOT NULL,
	phone    TEXT    NOT NULL DEFAULT '', -- verified, E.164
	separate INTEGER NOT NULL DEFAULT 0   -- made by Unlink: never joined by phone
);
CREATE INDEX contacts_phone ON contacts (phone) WHERE phone <> '' AND separate = 0;
CREATE TABLE conversations (
	id             INTEGER PRIMARY KEY,
	room           TEXT    NOT NULL UNIQUE,
	customer       TEXT    NOT NULL,
	provider       TEXT    NOT NULL,
	contact        INTEGER NOT NULL,
	unlinked       INTEGER NOT NULL DEFAULT 0,
	status         TEXT    NOT NULL DEFAULT 'open',
	assignee       INTEGER NOT NULL DEFAULT 0,
	team           INTEGER NOT NULL DEFAULT 0,
	created        INTEGER NOT NULL,
	last_message   INTEGER NOT NULL DEFAULT 0,
	waiting_since  INTEGER NOT NULL DEFAULT 0,
	first_customer INTEGER NOT NULL DEFAULT 0, -- the first customer message: the first-response clock
	first_response INTEGER NOT NULL DEFAULT 0,
	res_start      INTEGER NOT NULL DEFAULT 0, -- the current resolution clock's start
	resolved       INTEGER NOT NULL DEFAULT 0,
	fr_breached    INTEGER NOT NULL DEFAULT 0,
	res_breached   INTEGER NOT NULL DEFAULT 0,
	last_seq       INTEGER NOT NULL DEFAULT 0, -- the newest message of the room taken in
	read_seq       INTEGER NOT NULL DEFAULT 0, -- the newest customer message an agent read
	greeted        INTEGER NOT NULL DEFAULT 0,
	away_until     INTEGER NOT NULL DEFAULT 0, -- the away reply was sent for the closed period ending then
	csat_asked     INTEGER NOT NULL DEFAULT 0,
	csat           INTEGER NOT NULL DEFAULT 0  -- 1..5; 0 none
);
CREATE INDEX conversations_contact ON conversations (contact);
CREATE TABLE messages (
	conversation INTEGER NOT NULL,
	seq          INTEGER NOT NULL,
	at           INTEGER NOT NULL, -- when the desk took it in
	PRIMARY KEY (conversation, seq)
);
CREATE TABLE labels (
	conversation INTEGER NOT NULL,
	label        TEXT    NOT NULL,
	PRIMARY KEY (conversation, label)
);
CREATE TABLE notes (
	id           INTEGER PRIMARY KEY,
	conversation INTEGER NOT NULL,
	agent        INTEGER NOT NULL,
	agent_name   TEXT    NOT NULL, -- kept: the agent may be removed later
	text         TEXT    NOT NULL,
	at           INTEGER NOT NULL
);
CREATE INDEX notes_conversation ON notes (conversation);
CREATE TABLE audit (
	id           INTEGER PRIMARY KEY,
	conversation INTEGER NOT NULL,
	at           INTEGER NOT NULL,
	actor        TEXT    NOT NULL,
	action       TEXT    NOT NULL,
	detail       TEXT    NOT NULL
);
CREATE INDEX audit_conversation ON audit (conversation);
CREATE TABLE breaches (
	conversation INTEGER NOT NULL,
	kind         TEXT    NOT NULL, -- 'first_response', 'resolution'
	clock        INTEGER NOT NULL, -- the clock's start: one breach per clock
	due          INTEGER NOT NULL,
	detected     INTEGER NOT NULL,
	PRIMARY KEY (conversation, kind, clock)
);
CREATE TABLE resolutions (
	conversation INTEGER NOT NULL,
	started      INTEGER NOT NULL,
	at           INTEGER NOT NULL
);
CREATE INDEX resolutions_at ON resolutions (at);
CREATE TABLE canned (
	code TEXT PRIMARY KEY,
	text TEXT NOT NULL
);
CREATE TABLE settings (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
`}

func openDB(path string) (*sql.DB, error) {
	dsn := "file:" + path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	// One writer: the desk is one process, and one connection keeps
	// transactions simple.
	db.SetMaxOpenConns(1)
	var version int
	if err := db.QueryRow(`PRAGMA user_version`).Scan(&version); err != nil {
		db.Close()
		return nil, fmt.Errorf("inbox: %s: %w", path, err)
	}
	if version > len(migrations) {
		db.Close()
		return nil, fmt.Errorf("inbox: %s is from a newer version (schema %d, this knows %d)", path, version, len(migrations))
	}
	for i := version; i < len(migrations); i++ {
		tx, err := db.Begin()
		if err != nil {
			db.Close()
			return nil, err
		}
		if _, err := tx.Exec(migrations[i]); err != nil {
			tx.Rollback()
			db.Close()
			return nil, fmt.Errorf("inbox: migration %d: %w", i+1, err)
		}
		if _, err := tx.Exec(fmt.Sprintf(`PRAGMA user_version = %d`, i+1)); err != nil {
			tx.Rollback()
			db.Close()
			return nil, err
		}
		if err := tx.Commit(); err != nil {
			db.Close()
			return nil, err
		}
	}
	return db, nil
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}

// optMS is a nullable time.
func optMS(v int64) *time.Time {
	if v == 0 {
		return nil
	}
	t := time.UnixMilli(v)
	return &t
}

// notFound turns sql.ErrNoRows into ErrNotFound.
func notFound(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %s", ErrNotFound, what)
	}
	return err
}

// tx runs f in a transaction.
func (d *Desk) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (d *Desk) setting(ctx context.Context, key string) (string, error) {
	var v string
	err := d.db.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return v, err
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func setSetting(ctx context.Context, x execer, key, value string) error {
	_, err := x.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	return err
}
