package inbox

import (
	"errors"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/conversations"
)

// Errors. Wrapped errors still match errors.Is.
var (
	// ErrNotFound: no such agent, team, conversation, note, session or message.
	ErrNotFound = errors.New("inbox: not found")
	// ErrBadLogin: an unknown login or a wrong password (the caller is not told which).
	ErrBadLogin = errors.New("inbox: wrong login or password")
	// ErrForbidden: the acting agent may not do this.
	ErrForbidden = errors.New("inbox: forbidden")
	// ErrInvalid: a malformed argument; nothing was changed.
	ErrInvalid = errors.New("inbox: invalid")
	// ErrExists: the login, team name or canned code is taken.
	ErrExists = errors.New("inbox: already exists")
)

// Role is what an agent may do: an admin also manages agents, teams and settings.
type Role string

// Roles.
const (
	RoleAdmin Role = "admin"
	RoleAgent Role = "agent"
)

// Agent is one person answering customers.
type Agent struct {
	ID       int64
	Login    string
	Name     string
	Role     Role
	Capacity int     // how many open conversations auto-assignment gives them at most
	Teams    []int64 // the teams they serve
	Online   bool    // holding a live console connection
	LastSeen time.Time
}

// Team is a group of agents with its service-level targets (0: none).
type Team struct {
	ID            int64
	Name          string
	FirstResponse time.Duration
	Resolution    time.Duration
}

// Status is where a conversation stands.
type Status string

// Statuses.
const (
	StatusOpen     Status = "open"     // the business owes an answer
	StatusPending  Status = "pending"  // waiting on the customer
	StatusResolved Status = "resolved" // done, until the customer writes again
)

// SLA is a conversation's service-level state: what is due and what was missed.
type SLA struct {
	// FirstResponseDue and ResolutionDue are nil when the team has no
	// target or the target was met.
	FirstResponseDue, ResolutionDue           *time.Time
	FirstResponseBreached, ResolutionBreached bool
}

// Conversation is one room a customer shares with the business account.
type Conversation struct {
	ID       int64
	Room     client.RoomID
	Customer string // as the SDK names users: "bob@blue.example", or "bob" on the business's provider
	Provider string // the customer's provider domain
	Contact  Contact
	Status   Status
	Assignee int64 // 0: unassigned
	Team     int64 // 0: none
	Labels   []string
	Unread   int // customer messages no agent has read
	Created  time.Time
	// LastMessage is when the last message (either way) was seen.
	LastMessage time.Time
	// WaitingSince is when the oldest customer message without an agent
	// reply after it arrived; nil if none.
	WaitingSince  *time.Time
	FirstResponse *time.Time
	Resolved      *time.Time
	SLA           SLA
	CSAT          *int // the customer's satisfaction answer 1..5, if any
	Last          *conversations.Entry
}

// Contact is a customer, who may write from several providers: the
// conversations from one verified phone number share a contact.
type Contact struct {
	ID        int64
	Name      string
	Phone     string // verified, E.164; "" if unknown
	Addresses []string
}

// Filter selects conversations for List. The zero value selects all.
type Filter struct {
	Status   Status // "": any
	Assignee int64  // 0: any; -1: unassigned
	Team     int64  // 0: any
	Label    string // "": any
}

// Note is an agents' private note on a conversation; it never reaches the customer.
type Note struct {
	ID        int64
	Agent     int64
	AgentName string
	Text      string
	At        time.Time
}

// AuditEvent is one entry of a conversation's audit trail.
type AuditEvent struct {
	At     time.Time
	Actor  string // the agent's name, or "system"
	Action string
	Detail string
}

// Canned is a canned response: "/Code" in a reply becomes Text.
type Canned struct{ Code, Text string }

// Hours is the business's weekly schedule in a named time zone (an IANA
// name such as "Europe/Paris"; "" is UTC). Days is indexed by
// time.Weekday; a day without spans is closed.
type Hours struct {
	Zone string
	Days [7][]Span
}

// Span is an opening period of a day, "09:00" to "17:30" local time.
type Span struct{ From, To string }

// Settings are the business's choices.
type Settings struct {
	Hours       Hours
	AwayMessage string // sent to a customer writing outside business hours; "" none
	Greeting    string // sent once to a new customer; "" none
	CSAT        bool   // ask for satisfaction after resolving
	// CSATQuestion is the question asked; "" is a default question.
	CSATQuestion string
	AutoAssign   bool
	// DefaultTeam is the team new conversations join; 0 none.
	DefaultTeam int64
}

// Report is the figures of a period [From, To).
type Report struct {
	From, To                                  time.Time
	PerProvider                               map[string]int // conversations created in the period, by customer provider
	MedianFirstResponse, MedianResolution     time.Duration
	FirstResponseBreaches, ResolutionBreaches int
	Days                                      []DayFigures // one per day of the period, for the chart
}

// DayFigures are one day's figures of a Report.
type DayFigures struct {
	Day           time.Time
	Conversations int
	Resolved      int
	Breaches      int
}

// Hit is one search result.
type Hit struct {
	Conversation int64
	Customer     string
	Entry        conversations.Entry
}

// Event tells the console what changed, so it can redraw.
type Event struct {
	Kind         string // "conversation", "message", "note", "agents"
	Conversation int64
}
