package inbox

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/content"
	"github.com/switchboard-chat/switchboard/conversations"
)

var errNotYet = errors.New("inbox: not implemented yet")

// Config is how a Desk is opened.
type Config struct {
	Dir       string                   // the inbox data directory (inbox.db lives here)
	Messenger *conversations.Messenger // the business account's device; Desk.Run runs it
	Now       func() time.Time         // the clock; nil: time.Now
	Log       *slog.Logger
}

// Desk is the business inbox.
type Desk struct{}

func Open(ctx context.Context, cfg Config) (*Desk, error) { return nil, errNotYet }
func (d *Desk) Run(ctx context.Context) error             { return errNotYet }
func (d *Desk) Close() error                              { return nil }
func (d *Desk) AddAgent(ctx context.Context, login, name, password string, role Role) (Agent, error) {
	return Agent{}, errNotYet
}
func (d *Desk) RemoveAgent(ctx context.Context, id int64) error             { return errNotYet }
func (d *Desk) Agents(ctx context.Context) ([]Agent, error)                 { return nil, errNotYet }
func (d *Desk) Agent(ctx context.Context, id int64) (Agent, error)          { return Agent{}, errNotYet }
func (d *Desk) SetAgentCapacity(ctx context.Context, id int64, c int) error { return errNotYet }
func (d *Desk) SetAgentTeams(ctx context.Context, id int64, t []int64) error {
	return errNotYet
}
func (d *Desk) SetPassword(ctx context.Context, id int64, password string) error { return errNotYet }
func (d *Desk) Login(ctx context.Context, login, password string) (Agent, error) {
	return Agent{}, errNotYet
}
func (d *Desk) NewSession(ctx context.Context, agentID int64) (string, time.Time, error) {
	return "", time.Time{}, errNotYet
}
func (d *Desk) SessionAgent(ctx context.Context, token string) (Agent, error) {
	return Agent{}, errNotYet
}
func (d *Desk) EndSession(ctx context.Context, token string) error { return errNotYet }
func (d *Desk) SetOnline(ctx context.Context, agentID int64, online bool) error {
	return errNotYet
}
func (d *Desk) Teams(ctx context.Context) ([]Team, error) { return nil, errNotYet }
func (d *Desk) AddTeam(ctx context.Context, name string, firstResponse, resolution time.Duration) (Team, error) {
	return Team{}, errNotYet
}
func (d *Desk) SetTeam(ctx context.Context, t Team) error                  { return errNotYet }
func (d *Desk) List(ctx context.Context, f Filter) ([]Conversation, error) { return nil, errNotYet }
func (d *Desk) Conversation(ctx context.Context, id int64) (Conversation, error) {
	return Conversation{}, errNotYet
}
func (d *Desk) History(ctx context.Context, id int64, before int64, limit int) ([]conversations.Entry, error) {
	return nil, errNotYet
}
func (d *Desk) MarkRead(ctx context.Context, id, agentID int64) error { return errNotYet }
func (d *Desk) Reply(ctx context.Context, id, agentID int64, text string) (*conversations.Entry, error) {
	return nil, errNotYet
}
func (d *Desk) ReplyFile(ctx context.Context, id, agentID int64, r io.Reader, name, mediaType string) (*conversations.Entry, error) {
	return nil, errNotYet
}
func (d *Desk) File(ctx context.Context, id int64, msg content.ID) ([]byte, *client.Attachment, error) {
	return nil, nil, errNotYet
}
func (d *Desk) AddNote(ctx context.Context, id, agentID int64, text string) (Note, error) {
	return Note{}, errNotYet
}
func (d *Desk) Notes(ctx context.Context, id int64) ([]Note, error) { return nil, errNotYet }
func (d *Desk) SetLabels(ctx context.Context, id, agentID int64, labels []string) error {
	return errNotYet
}
func (d *Desk) Labels(ctx context.Context) ([]string, error)                 { return nil, errNotYet }
func (d *Desk) Assign(ctx context.Context, id, byAgent, toAgent int64) error { return errNotYet }
func (d *Desk) Transfer(ctx context.Context, id, byAgent, toAgent, toTeam int64) error {
	return errNotYet
}
func (d *Desk) SetStatus(ctx context.Context, id, byAgent int64, s Status) error { return errNotYet }
func (d *Desk) Audit(ctx context.Context, id int64) ([]AuditEvent, error)        { return nil, errNotYet }
func (d *Desk) Unlink(ctx context.Context, id int64) error                       { return errNotYet }
func (d *Desk) Canned(ctx context.Context) ([]Canned, error)                     { return nil, errNotYet }
func (d *Desk) SetCanned(ctx context.Context, code, text string) error           { return errNotYet }
func (d *Desk) Expand(ctx context.Context, text string) (string, error)          { return "", errNotYet }
func (d *Desk) Settings(ctx context.Context) (Settings, error)                   { return Settings{}, errNotYet }
func (d *Desk) SetSettings(ctx context.Context, s Settings) error                { return errNotYet }
func (d *Desk) Open(at time.Time) bool                                           { return false }
func (d *Desk) Report(ctx context.Context, from, to time.Time) (Report, error) {
	return Report{}, errNotYet
}
func (d *Desk) Search(ctx context.Context, query string, limit int) ([]Hit, error) {
	return nil, errNotYet
}
func (d *Desk) Subscribe() (<-chan Event, func()) {
	ch := make(chan Event, 64)
	return ch, func() {}
}
