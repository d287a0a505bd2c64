package sqlstore

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Dialect is what differs between the databases, and nothing else: the
// statements elsewhere in this package are the same text for both. Use
// SQLite or Postgres.
type Dialect struct {
	name string // prefixes errors: "sqlite", "postgres"

	// numbered: placeholders are $1, $2, ... (PostgreSQL) rather than ?.
	// The rebound text is cached per statement text.
	numbered bool
	rebound  sync.Map     // statement text -> rebound text
	nRebound atomic.Int32 // entries in rebound, to bound it

	// rowLocks: several writers share the database, and a transaction
	// orders itself against the others by locking rows (SELECT ... FOR
	// UPDATE). SQLite has one writer, which runs every change in turn.
	rowLocks bool

	// keyPackageOrder is the key_packages column that increases in the
	// order packages were added: SQLite's implicit rowid, PostgreSQL's
	// added (an identity column, the one column only PostgreSQL has).
	keyPackageOrder string

	// enqueue queues a logged message for devices, taking each a cursor;
	// see sqliteEnqueue and postgresEnqueue.
	enqueue func(t tx, msgID int64, devices []int64) error

	// idList is a subquery giving the integers of a JSON array passed as
	// its one parameter: a statement over a list of IDs keeps one text,
	// prepared once, and takes one argument however long the list.
	idList string

	// outboxLock, if not empty, is a statement taking a lock on one
	// destination (its one argument) until the transaction ends; see
	// insertOutbound.
	outboxLock string

	// ddl renders the schema's neutral text (SQLite's) in the dialect.
	ddl func(neutral string) string
}

// Name is the dialect's name: "sqlite" or "postgres".
func (d *Dialect) Name() string { return d.name }

// SQLite is the dialect of the embedded store: one writer goroutine runs
// every change, so nothing needs a lock, and cursors come from one
// store-wide counter.
var SQLite = &Dialect{
	name:            "sqlite",
	keyPackageOrder: "rowid",
	enqueue:         sqliteEnqueue,
	idList:          `SELECT value FROM json_each(?)`,
	ddl:             func(neutral string) string { return neutral },
}

// Postgres is the dialect of the store shared by replicas: $n
// placeholders, row locks, per-device cursor counters and an advisory lock
// per outbox destination order what several writers do at once
// (docs/storage.md, "Several writers").
var Postgres = &Dialect{
	name:            "postgres",
	numbered:        true,
	rowLocks:        true,
	keyPackageOrder: "added",
	enqueue:         postgresEnqueue,
	idList:          `SELECT jsonb_array_elements_text(?::jsonb)::bigint`,
	// The first key, "SBOX", keeps these locks apart from any other
	// advisory lock on the database.
	outboxLock: `SELECT pg_advisory_xact_lock(1396854616, hashtext(?))`,
	ddl:        postgresDDL,
}

// maxRebound bounds the rebinding cache. Statement texts are constants,
// except Refusing's, whose IN list grows with the number of users asked
// about; past the bound, statements are rebound every time.
const maxRebound = 1024

// rebind turns the ? placeholders of q into the dialect's. A ? inside a
// quoted string or identifier is left alone.
func (d *Dialect) rebind(q string) string {
	if !d.numbered {
		return q
	}
	if r, ok := d.rebound.Load(q); ok {
		return r.(string)
	}
	r := numberPlaceholders(q)
	if d.nRebound.Load() < maxRebound {
		if _, loaded := d.rebound.LoadOrStore(q, r); !loaded {
			d.nRebound.Add(1)
		}
	}
	return r
}

// numberPlaceholders writes $1, $2, ... for the ?s of q outside quotes.
func numberPlaceholders(q string) string {
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	var quote byte // the quote character we are inside, or 0
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// jsonIDs encodes IDs as a JSON array, for Dialect.idList.
func jsonIDs(ids []int64) string {
	list := make([]byte, 0, 8*len(ids)+2)
	list = append(list, '[')
	for i, id := range ids {
		if i > 0 {
			list = append(list, ',')
		}
		list = strconv.AppendInt(list, id, 10)
	}
	return string(append(list, ']'))
}

// sqliteEnqueue takes len(devices) cursors from the store-wide counter at
// once and writes one queue entry per device. Because one writer commits
// in order, a cursor never becomes visible before a smaller one; the
// savepoint gives the cursors back if anything after fails. (Cursors
// cannot be max(cursor)+1: after an Ack empties a queue, that would hand
// out a cursor the device has already acknowledged.) The entries go in
// with one statement, the devices passed as a JSON array, whatever their
// number: a statement per device cost the single writer about 20 µs each,
// which a room of 50 pays on every message.
func sqliteEnqueue(t tx, msgID int64, devices []int64) error {
	var top int64
	if err := t.queryRow(`UPDATE counters SET value = value + ? WHERE name = 'cursor' RETURNING value`,
		len(devices)).Scan(&top); err != nil {
		return err
	}
	if len(devices) == 1 {
		_, err := t.exec(`INSERT INTO device_queue (device_id, cursor, message_id) VALUES (?, ?, ?)`,
			devices[0], top, msgID)
		return err
	}
	// json_each numbers the array's elements from 0 (key), in order.
	_, err := t.exec(`INSERT INTO device_queue (device_id, cursor, message_id)
		SELECT j.value, ? + j.key, ? FROM json_each(?) AS j`,
		top-int64(len(devices))+1, msgID, jsonIDs(devices))
	return err
}

// postgresEnqueue counts cursors per device, in counters rows named
// "cursor/DEVICE" (made on a device's first entry, starting above the
// store-wide "cursor" value an import from SQLite left). Taking a cursor
// updates the device's row, whose lock the transaction then holds until it
// commits: a device's entries become visible in cursor order, so a device
// that has read up to cursor c never later finds an entry below c appear
// (which a sequence, handing out numbers outside the commit order, would
// allow), while Submits for other devices' queues do not wait on each
// other. The rows are locked in device order, so two Submits cannot
// deadlock over them (if a Welcome's recipients make them, PostgreSQL
// breaks the tie and the write is retried). An unknown device gets a
// counter row before the queue insert fails on it; the transaction rolls
// both back.
func postgresEnqueue(t tx, msgID int64, devices []int64) error {
	_, err := t.exec(`WITH c AS (
			INSERT INTO counters (name, value)
			SELECT 'cursor/' || d, (SELECT value FROM counters WHERE name = 'cursor') + 1
				FROM unnest(?::bigint[]) AS d ORDER BY d
			ON CONFLICT (name) DO UPDATE SET value = counters.value + 1
			RETURNING name, value)
		INSERT INTO device_queue (device_id, cursor, message_id)
		SELECT substr(c.name, 8)::bigint, c.value, ? FROM c`, devices, msgID)
	return err
}
