package inbox

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Agents sign in with a login and a password. The password is hashed with
// argon2id, each with its own random salt, and kept as a PHC string with
// its parameters, so they can be raised later without breaking old
// hashes.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024 // KiB: OWASP's argon2id minimum
	argonThreads = 1
	argonKeyLen  = 32
	saltLen      = 16

	minPassword = 10
	maxPassword = 1024

	// DefaultCapacity is a new agent's capacity.
	DefaultCapacity = 5
	// maxCapacity bounds a capacity to something humane.
	maxCapacity = 1000

	sessionTTL = 12 * time.Hour
)

var loginRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

func hashPassword(password string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	return encodeHash(argonTime, argonMemory, argonThreads, salt,
		argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)), nil
}

func encodeHash(t, m uint32, p uint8, salt, key []byte) string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, m, t, p, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// argonParams are a stored hash's parameters.
type argonParams struct {
	time, memory uint32
	threads      uint8
	salt, key    []byte
}

// parseHash decodes a stored PHC string, refusing parameters beyond what
// this desk would ever set (a damaged row must not make a login take
// gigabytes).
func parseHash(stored string) (argonParams, bool) {
	var p argonParams
	parts := strings.Split(stored, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return p, false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.memory, &p.time, &p.threads); err != nil ||
		p.threads == 0 || p.threads > 16 || p.time == 0 || p.time > 10 || p.memory < 8*uint32(p.threads) || p.memory > 256*1024 {
		return p, false
	}
	var err1, err2 error
	p.salt, err1 = base64.RawStdEncoding.DecodeString(parts[4])
	p.key, err2 = base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(p.salt) < 8 || len(p.salt) > 64 || len(p.key) < 16 || len(p.key) > 64 {
		return p, false
	}
	return p, true
}

// checkPassword compares a password with a stored hash in constant time.
func checkPassword(stored, password string) bool {
	p, ok := parseHash(stored)
	if !ok {
		return false
	}
	got := argon2.IDKey([]byte(password), p.salt, p.time, p.memory, p.threads, uint32(len(p.key))) // #nosec G115 -- a 32-byte key
	return subtle.ConstantTimeCompare(got, p.key) == 1
}

// dummyHash is compared against when the login is unknown, so that an
// unknown login takes as long as a wrong password.
var dummyHash = encodeHash(argonTime, argonMemory, argonThreads, make([]byte, saltLen), make([]byte, argonKeyLen))

func validPassword(p string) error {
	if utf8.RuneCountInString(p) < minPassword || len(p) > maxPassword || !utf8.ValidString(p) {
		return fmt.Errorf("%w: a password has %d to %d bytes (at least %d characters)", ErrInvalid, minPassword, maxPassword, minPassword)
	}
	return nil
}

func validName(n string) (string, error) {
	n = strings.TrimSpace(n)
	if n == "" || utf8.RuneCountInString(n) > 100 || !utf8.ValidString(n) || strings.ContainsFunc(n, isControl) {
		return "", fmt.Errorf("%w: a name has 1 to 100 printable characters", ErrInvalid)
	}
	return n, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// AddAgent adds an agent (capacity DefaultCapacity, no team). The login
// is 1 to 64 of a-z 0-9 . _ - (starting with a letter or digit); the
// password has at least 10 characters.
func (d *Desk) AddAgent(ctx context.Context, login, name, password string, role Role) (Agent, error) {
	if !loginRE.MatchString(login) {
		return Agent{}, fmt.Errorf("%w: a login is 1 to 64 of a-z 0-9 . _ -", ErrInvalid)
	}
	if name == "" {
		name = login
	}
	name, err := validName(name)
	if err != nil {
		return Agent{}, err
	}
	if role != RoleAdmin && role != RoleAgent {
		return Agent{}, fmt.Errorf("%w: role %q", ErrInvalid, role)
	}
	if err := validPassword(password); err != nil {
		return Agent{}, err
	}
	hash, err := hashPassword(password)
	if err != nil {
		return Agent{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	res, err := d.db.ExecContext(ctx, `INSERT INTO agents (login, name, role, password, capacity) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (login) DO NOTHING`, login, name, string(role), hash, DefaultCapacity)
	if err != nil {
		return Agent{}, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return Agent{}, fmt.Errorf("%w: login %q", ErrExists, login)
	}
	id, _ := res.LastInsertId()
	d.publish(Event{Kind: "agents"})
	return d.Agent(ctx, id)
}

// RemoveAgent removes an agent: their sessions end, and their
// conversations become unassigned (audited), to be assigned again.
func (d *Desk) RemoveAgent(ctx context.Context, id int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	a, err := d.Agent(ctx, id)
	if err != nil {
		return err
	}
	now := d.now()
	var convs []int64
	err = d.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id FROM conversations WHERE assignee = ?`, id)
		if err != nil {
			return err
		}
		for rows.Next() {
			var c int64
			if err := rows.Scan(&c); err != nil {
				rows.Close()
				return err
			}
			convs = append(convs, c)
		}
		rows.Close()
		for _, c := range convs {
			if _, err := tx.ExecContext(ctx, `UPDATE conversations SET assignee = 0 WHERE id = ?`, c); err != nil {
				return err
			}
			if err := audit(ctx, tx, c, now, "system", "unassigned", a.Name+" was removed"); err != nil {
				return err
			}
		}
		for _, q := range []string{`DELETE FROM sessions WHERE agent = ?`, `DELETE FROM agent_teams WHERE agent = ?`, `DELETE FROM agents WHERE id = ?`} {
			if _, err := tx.ExecContext(ctx, q, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, c := range convs {
		d.publish(Event{Kind: "conversation", Conversation: c})
	}
	d.publish(Event{Kind: "agents"})
	return d.autoAssign(ctx)
}

const agentCols = `id, login, name, role, capacity, online, last_seen`

func (d *Desk) scanAgents(ctx context.Context, where string, args ...any) ([]Agent, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT `+agentCols+` FROM agents `+where+` ORDER BY id`, args...) // #nosec G202 -- agentCols and every where are constants; values are arguments
	if err != nil {
		return nil, err
	}
	var out []Agent
	for rows.Next() {
		var a Agent
		var seen int64
		if err := rows.Scan(&a.ID, &a.Login, &a.Name, &a.Role, &a.Capacity, &a.Online, &seen); err != nil {
			rows.Close()
			return nil, err
		}
		a.LastSeen = fromMS(seen)
		out = append(out, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		teams, err := d.agentTeams(ctx, out[i].ID)
		if err != nil {
			return nil, err
		}
		out[i].Teams = teams
	}
	return out, nil
}

func (d *Desk) agentTeams(ctx context.Context, id int64) ([]int64, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT team FROM agent_teams WHERE agent = ? ORDER BY team`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var t int64
		if err := rows.Scan(&t); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// Agents lists the agents.
func (d *Desk) Agents(ctx context.Context) ([]Agent, error) { return d.scanAgents(ctx, "") }

// Agent returns one agent.
func (d *Desk) Agent(ctx context.Context, id int64) (Agent, error) {
	as, err := d.scanAgents(ctx, "WHERE id = ?", id)
	if err != nil {
		return Agent{}, err
	}
	if len(as) == 0 {
		return Agent{}, fmt.Errorf("%w: agent %d", ErrNotFound, id)
	}
	return as[0], nil
}

// SetAgentCapacity sets how many open conversations auto-assignment gives
// an agent at most (0: none).
func (d *Desk) SetAgentCapacity(ctx context.Context, id int64, capacity int) error {
	if capacity < 0 || capacity > maxCapacity {
		return fmt.Errorf("%w: capacity %d (0 to %d)", ErrInvalid, capacity, maxCapacity)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.updateAgent(ctx, id, `UPDATE agents SET capacity = ? WHERE id = ?`, capacity, id); err != nil {
		return err
	}
	return d.autoAssign(ctx)
}

func (d *Desk) updateAgent(ctx context.Context, id int64, q string, args ...any) error {
	res, err := d.db.ExecContext(ctx, q, args...)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: agent %d", ErrNotFound, id)
	}
	d.publish(Event{Kind: "agents"})
	return nil
}

// SetAgentTeams sets the teams an agent serves.
func (d *Desk) SetAgentTeams(ctx context.Context, id int64, teams []int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.Agent(ctx, id); err != nil {
		return err
	}
	teams = slices.Compact(slices.Sorted(slices.Values(teams)))
	for _, t := range teams {
		if _, err := d.team(ctx, t); err != nil {
			return err
		}
	}
	err := d.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM agent_teams WHERE agent = ?`, id); err != nil {
			return err
		}
		for _, t := range teams {
			if _, err := tx.ExecContext(ctx, `INSERT INTO agent_teams (agent, team) VALUES (?, ?)`, id, t); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	d.publish(Event{Kind: "agents"})
	return d.autoAssign(ctx)
}

// SetPassword changes an agent's password. Their sessions stay.
func (d *Desk) SetPassword(ctx context.Context, id int64, password string) error {
	if err := validPassword(password); err != nil {
		return err
	}
	hash, err := hashPassword(password)
	if err != nil {
		return err
	}
	return d.updateAgent(ctx, id, `UPDATE agents SET password = ? WHERE id = ?`, hash, id)
}

// Login checks a login and password. An unknown login and a wrong
// password are alike ErrBadLogin, and take as long.
func (d *Desk) Login(ctx context.Context, login, password string) (Agent, error) {
	var id int64
	var hash string
	err := d.db.QueryRowContext(ctx, `SELECT id, password FROM agents WHERE login = ?`, login).Scan(&id, &hash)
	if errors.Is(err, sql.ErrNoRows) || len(password) > maxPassword {
		checkPassword(dummyHash, password)
		return Agent{}, ErrBadLogin
	} else if err != nil {
		return Agent{}, err
	}
	if !checkPassword(hash, password) {
		return Agent{}, ErrBadLogin
	}
	return d.Agent(ctx, id)
}

func tokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// NewSession starts a session of an agent: a token of 32 random bytes
// (base64url), of which only the SHA-256 is stored, valid for 12 hours.
func (d *Desk) NewSession(ctx context.Context, agentID int64) (string, time.Time, error) {
	if _, err := d.Agent(ctx, agentID); err != nil {
		return "", time.Time{}, err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", time.Time{}, err
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	expires := d.now().Add(sessionTTL)
	now := d.now()
	// Expired sessions go as new ones come.
	if _, err := d.db.ExecContext(ctx, `DELETE FROM sessions WHERE expires <= ?`, ms(now)); err != nil {
		return "", time.Time{}, err
	}
	if _, err := d.db.ExecContext(ctx, `INSERT INTO sessions (hash, agent, expires) VALUES (?, ?, ?)`,
		tokenHash(token), agentID, ms(expires)); err != nil {
		return "", time.Time{}, err
	}
	return token, time.UnixMilli(ms(expires)), nil
}

// SessionAgent returns the agent of a live session: ErrNotFound for an
// unknown or expired token, or a removed agent.
func (d *Desk) SessionAgent(ctx context.Context, token string) (Agent, error) {
	if token == "" || len(token) > 256 {
		return Agent{}, fmt.Errorf("%w: session", ErrNotFound)
	}
	var id int64
	err := d.db.QueryRowContext(ctx, `SELECT s.agent FROM sessions s JOIN agents a ON a.id = s.agent
		WHERE s.hash = ? AND s.expires > ?`, tokenHash(token), ms(d.now())).Scan(&id)
	if err != nil {
		return Agent{}, notFound(err, "session")
	}
	return d.Agent(ctx, id)
}

// EndSession ends a session (logout). An unknown token is not an error.
func (d *Desk) EndSession(ctx context.Context, token string) error {
	_, err := d.db.ExecContext(ctx, `DELETE FROM sessions WHERE hash = ?`, tokenHash(token))
	return err
}

// SetOnline says whether an agent holds a live console connection:
// auto-assignment gives conversations to online agents only.
func (d *Desk) SetOnline(ctx context.Context, agentID int64, online bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.updateAgent(ctx, agentID, `UPDATE agents SET online = ?, last_seen = ? WHERE id = ?`, online, ms(d.now()), agentID); err != nil {
		return err
	}
	if online {
		return d.autoAssign(ctx)
	}
	return nil
}

// actorName names an acting agent in the audit trail; an unknown one is
// ErrForbidden.
func (d *Desk) actorName(ctx context.Context, agentID int64) (string, error) {
	var name string
	err := d.db.QueryRowContext(ctx, `SELECT name FROM agents WHERE id = ?`, agentID).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("%w: no agent %d", ErrForbidden, agentID)
	}
	return name, err
}
