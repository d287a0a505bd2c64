package console

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchboard-chat/switchboard/inbox"
)

// listQuery is the list's filter as the query string gives it, kept to
// redraw the filter form and to re-fetch the same list live.
type listQuery struct {
	Status, Assignee, Team, Label string
	Filter                        inbox.Filter
}

// parseFilter reads the list's filters from a query string: status (open,
// pending, resolved), assignee ("me", "unassigned" or an agent's ID),
// team (an ID) and label. Empty values mean any.
func parseFilter(q url.Values, me int64) (listQuery, error) {
	lq := listQuery{
		Status:   q.Get("status"),
		Assignee: q.Get("assignee"),
		Team:     q.Get("team"),
		Label:    strings.TrimSpace(q.Get("label")),
	}
	switch inbox.Status(lq.Status) {
	case "", inbox.StatusOpen, inbox.StatusPending, inbox.StatusResolved:
		lq.Filter.Status = inbox.Status(lq.Status)
	default:
		return listQuery{}, badInput("status must be open, pending or resolved")
	}
	switch lq.Assignee {
	case "":
	case "me":
		lq.Filter.Assignee = me
	case "unassigned":
		lq.Filter.Assignee = -1
	default:
		id, err := strconv.ParseInt(lq.Assignee, 10, 64)
		if err != nil || id <= 0 {
			return listQuery{}, badInput(`assignee must be "me", "unassigned" or an agent's number`)
		}
		lq.Filter.Assignee = id
	}
	if lq.Team != "" {
		id, err := strconv.ParseInt(lq.Team, 10, 64)
		if err != nil || id <= 0 {
			return listQuery{}, badInput("team must be a team's number")
		}
		lq.Filter.Team = id
	}
	if utf8.RuneCountInString(lq.Label) > 64 || !utf8.ValidString(lq.Label) {
		return listQuery{}, badInput("a label has at most 64 characters")
	}
	lq.Filter.Label = lq.Label
	return lq, nil
}

// Encode is the filter as a query string, for the live re-fetch.
func (lq listQuery) Encode() string {
	v := url.Values{}
	for k, s := range map[string]string{"status": lq.Status, "assignee": lq.Assignee, "team": lq.Team, "label": lq.Label} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v.Encode()
}

// row is one conversation of the list, with the names it shows.
type row struct {
	inbox.Conversation
	AssigneeName string
	TeamName     string
	Waiting      string
	SLALeft      string
	Breached     bool
	Preview      string
}

// directory names agents and teams by ID for the pages.
type directory struct {
	Agents     []inbox.Agent
	Teams      []inbox.Team
	agentNames map[int64]string
	teamNames  map[int64]string
}

func (s *server) directory(ctx context.Context) (*directory, error) {
	agents, err := s.desk.Agents(ctx)
	if err != nil {
		return nil, err
	}
	teams, err := s.desk.Teams(ctx)
	if err != nil {
		return nil, err
	}
	d := &directory{Agents: agents, Teams: teams, agentNames: map[int64]string{}, teamNames: map[int64]string{}}
	for _, a := range agents {
		d.agentNames[a.ID] = a.Name
	}
	for _, t := range teams {
		d.teamNames[t.ID] = t.Name
	}
	return d, nil
}

// AgentName is an agent's name, or "#ID" for one since removed.
func (d *directory) AgentName(id int64) string {
	if id == 0 {
		return ""
	}
	if n, ok := d.agentNames[id]; ok {
		return n
	}
	return "#" + strconv.FormatInt(id, 10)
}

// TeamName is a team's name, or "#ID".
func (d *directory) TeamName(id int64) string {
	if id == 0 {
		return ""
	}
	if n, ok := d.teamNames[id]; ok {
		return n
	}
	return "#" + strconv.FormatInt(id, 10)
}

// newRow fills in what the list shows of a conversation at now.
func newRow(c inbox.Conversation, d *directory, now time.Time) row {
	r := row{Conversation: c, AssigneeName: d.AgentName(c.Assignee), TeamName: d.TeamName(c.Team)}
	if c.WaitingSince != nil && c.Status != inbox.StatusResolved {
		r.Waiting = human(now.Sub(*c.WaitingSince))
	}
	r.Breached = c.SLA.FirstResponseBreached || c.SLA.ResolutionBreached
	// The nearer of the two deadlines still running.
	var due *time.Time
	for _, t := range []*time.Time{c.SLA.FirstResponseDue, c.SLA.ResolutionDue} {
		if t != nil && (due == nil || t.Before(*due)) {
			due = t
		}
	}
	if due != nil && c.Status != inbox.StatusResolved {
		r.SLALeft = until(now, due)
		if due.Before(now) {
			r.Breached = true
		}
	}
	if c.Last != nil {
		switch {
		case c.Last.Deleted:
			r.Preview = "(deleted)"
		case c.Last.File != nil:
			r.Preview = "📎 " + c.Last.File.Filename
			if c.Last.Text != "" {
				r.Preview += " " + c.Last.Text
			}
		default:
			r.Preview = c.Last.Text
		}
		r.Preview = preview(80, r.Preview)
	}
	return r
}

// listData is the list page's data.
type listData struct {
	Query  listQuery
	Rows   []row
	Dir    *directory
	Labels []string
}

func (s *server) list(r *http.Request) (*listData, error) {
	ctx := r.Context()
	lq, err := parseFilter(r.URL.Query(), agentOf(ctx).ID)
	if err != nil {
		return nil, err
	}
	convs, err := s.desk.List(ctx, lq.Filter)
	if err != nil {
		return nil, err
	}
	d, err := s.directory(ctx)
	if err != nil {
		return nil, err
	}
	labels, err := s.desk.Labels(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	data := &listData{Query: lq, Dir: d, Labels: labels}
	for _, c := range convs {
		data.Rows = append(data.Rows, newRow(c, d, now))
	}
	return data, nil
}

func (s *server) listPage(w http.ResponseWriter, r *http.Request) {
	data, err := s.list(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "list", &view{Title: "Conversations", Data: data})
}

// listFragment is the list's table alone, which the script swaps in.
func (s *server) listFragment(w http.ResponseWriter, r *http.Request) {
	data, err := s.list(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.renderTemplate(w, r, http.StatusOK, "list", "rows", &view{Data: data})
}
