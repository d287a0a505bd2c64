package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/switchboard-chat/switchboard/content"
	"github.com/switchboard-chat/switchboard/conversations"
	"github.com/switchboard-chat/switchboard/inbox"
)

// historyLimit is how many of the latest messages the page shows.
const historyLimit = 200

// message is one history entry as the page shows it.
type message struct {
	conversations.Entry
	MsgID   string
	Quote   string // the start of the message replied to
	Image   bool   // a file shown inline
	Mark    string // the customer's delivered/read mark of an own message
	SizeKiB uint64
}

// convData is the conversation page's data.
type convData struct {
	Conv     row
	Messages []message
	Notes    []inbox.Note
	Audit    []inbox.AuditEvent
	Canned   []inbox.Canned
	Dir      *directory
	Linked   []inbox.Conversation // the contact's other conversations
	Statuses []inbox.Status
}

// inlineImages are the image types shown in the page; any other file is
// a download, so nothing a customer sends can run as the console's page.
var inlineImages = []string{"image/png", "image/jpeg", "image/gif", "image/webp"}

func convID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, badInput("a conversation is named by its number")
	}
	return id, nil
}

// conversation gathers what the page or its fragments show.
func (s *server) conversation(ctx context.Context, id int64) (*convData, error) {
	c, err := s.desk.Conversation(ctx, id)
	if err != nil {
		return nil, err
	}
	d, err := s.directory(ctx)
	if err != nil {
		return nil, err
	}
	data := &convData{Conv: newRow(c, d, s.now()), Dir: d,
		Statuses: []inbox.Status{inbox.StatusOpen, inbox.StatusPending, inbox.StatusResolved}}
	entries, err := s.desk.History(ctx, id, 0, historyLimit)
	if err != nil {
		return nil, err
	}
	byID := map[content.ID]*conversations.Entry{}
	for i := range entries {
		byID[entries[i].ID] = &entries[i]
	}
	for _, e := range entries {
		m := message{Entry: e, MsgID: e.ID.String()}
		if e.ReplyTo != nil {
			if q, ok := byID[*e.ReplyTo]; ok {
				m.Quote = preview(120, q.Text)
				if q.Deleted {
					m.Quote = "(deleted)"
				}
			} else {
				m.Quote = "(an earlier message)"
			}
		}
		if e.File != nil {
			m.Image = slices.Contains(inlineImages, e.File.MediaType)
			m.SizeKiB = (e.File.Size + 1023) / 1024
		}
		if e.Own {
			switch e.Status {
			case conversations.StatusRead:
				m.Mark = "read"
			case conversations.StatusDelivered:
				m.Mark = "delivered"
			case conversations.StatusSent:
				m.Mark = "sent"
			}
		}
		data.Messages = append(data.Messages, m)
	}
	if data.Notes, err = s.desk.Notes(ctx, id); err != nil {
		return nil, err
	}
	if data.Audit, err = s.desk.Audit(ctx, id); err != nil {
		return nil, err
	}
	if data.Canned, err = s.desk.Canned(ctx); err != nil {
		return nil, err
	}
	if len(c.Contact.Addresses) > 1 {
		// The contact's other conversations: few, so the whole list is read.
		all, err := s.desk.List(ctx, inbox.Filter{})
		if err != nil {
			return nil, err
		}
		for _, o := range all {
			if o.Contact.ID == c.Contact.ID && o.ID != c.ID {
				data.Linked = append(data.Linked, o)
			}
		}
	}
	return data, nil
}

// conversationPage shows a conversation and marks it read by the agent.
func (s *server) conversationPage(w http.ResponseWriter, r *http.Request) {
	s.showConversation(w, r, "page")
}

// historyFragment is the messages alone; metaFragment the side panel
// (status, assignment, labels, SLA, notes, audit, contact). Fetching the
// history means the agent has the conversation open: it is marked read.
func (s *server) historyFragment(w http.ResponseWriter, r *http.Request) {
	s.showConversation(w, r, "history")
}

func (s *server) metaFragment(w http.ResponseWriter, r *http.Request) {
	s.showConversation(w, r, "meta")
}

func (s *server) showConversation(w http.ResponseWriter, r *http.Request, tmpl string) {
	ctx := r.Context()
	id, err := convID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if tmpl != "meta" {
		// Only when something is unread: marking read is itself a change
		// the event stream reports, and the script would fetch again.
		c, err := s.desk.Conversation(ctx, id)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if c.Unread > 0 {
			if err := s.desk.MarkRead(ctx, id, agentOf(ctx).ID); err != nil {
				s.fail(w, r, err)
				return
			}
		}
	}
	data, err := s.conversation(ctx, id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	v := &view{Title: data.Conv.Customer, Data: data}
	switch r.URL.Query().Get("error") {
	case "":
	case "too_large":
		v.Error = fmt.Sprintf("The file is larger than %d MiB.", s.opts.MaxUpload>>20)
	default:
		v.Error = "That did not work; nothing was changed."
	}
	s.renderTemplate(w, r, http.StatusOK, "conversation", tmpl, v)
}

// file serves a message's file: known image types inline, everything
// else as an attachment, under a sandbox policy either way.
func (s *server) file(w http.ResponseWriter, r *http.Request) {
	id, err := convID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	msg, err := content.ParseID(r.PathValue("msg"))
	if err != nil {
		s.fail(w, r, badInput("a message is named by its 64-hex-digit ID"))
		return
	}
	data, att, err := s.desk.File(r.Context(), id, msg)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	name := safeFilename(att.Filename)
	h := w.Header()
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	h.Set("Cache-Control", "private, no-store")
	disposition := "attachment"
	h.Set("Content-Type", "application/octet-stream")
	if slices.Contains(inlineImages, att.MediaType) {
		disposition = "inline"
		h.Set("Content-Type", att.MediaType)
	}
	if d := mime.FormatMediaType(disposition, map[string]string{"filename": name}); d != "" {
		disposition = d
	}
	h.Set("Content-Disposition", disposition)
	h.Set("Content-Length", strconv.Itoa(len(data)))
	w.Write(data)
}

// safeFilename keeps a file name a customer chose to its last path
// element, printable, at most 100 characters.
func safeFilename(name string) string {
	name = path.Base(strings.ReplaceAll(name, `\`, "/"))
	name = strings.Map(func(c rune) rune {
		if c < 0x20 || c == 0x7f || c == '"' {
			return -1
		}
		return c
	}, name)
	if name == "" || name == "." || name == "/" {
		name = "file"
	}
	if utf8.RuneCountInString(name) > 100 {
		name = string([]rune(name)[:100])
	}
	return name
}

// reply sends the agent's reply: a file, text, or both (file first). The
// form is multipart, limited to MaxUpload plus room for the text.
func (s *server) reply(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, err := convID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	back := "/c/" + strconv.FormatInt(id, 10)
	r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxUpload+1<<20)
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		err = r.ParseMultipartForm(1 << 20)
	} else {
		err = r.ParseForm() // a form without a file input still works
	}
	if err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe) && !fromScript(r):
			http.Redirect(w, r, back+"?error=too_large", http.StatusSeeOther)
		case errors.As(err, &mbe):
			s.fail(w, r, err)
		default:
			s.fail(w, r, badInput("the form could not be read"))
		}
		return
	}
	if r.MultipartForm != nil {
		defer r.MultipartForm.RemoveAll()
	}
	agent := agentOf(ctx).ID
	text := strings.TrimSpace(r.FormValue("text"))
	sent := false
	if r.MultipartForm != nil && len(r.MultipartForm.File["file"]) > 0 {
		fh := r.MultipartForm.File["file"][0]
		if fh.Size > 0 || fh.Filename != "" {
			if fh.Size > s.opts.MaxUpload {
				s.fail(w, r, badInput("the file is larger than %d MiB", s.opts.MaxUpload>>20))
				return
			}
			f, err := fh.Open()
			if err != nil {
				s.fail(w, r, err)
				return
			}
			mediaType := fh.Header.Get("Content-Type")
			if _, _, err := mime.ParseMediaType(mediaType); err != nil || mediaType == "" {
				mediaType = "application/octet-stream"
			}
			_, err = s.desk.ReplyFile(ctx, id, agent, io.LimitReader(f, s.opts.MaxUpload), safeFilename(fh.Filename), mediaType)
			f.Close() // #nosec G104 -- an upload opened for reading
			if err != nil {
				s.fail(w, r, err)
				return
			}
			sent = true
		}
	}
	if text != "" {
		if _, err := s.desk.Reply(ctx, id, agent, text); err != nil {
			s.fail(w, r, err)
			return
		}
		sent = true
	}
	if !sent {
		s.fail(w, r, badInput("write a reply or choose a file"))
		return
	}
	done(w, r, back)
}

// formAction runs a conversation action on a parsed url-encoded form.
func (s *server) formAction(w http.ResponseWriter, r *http.Request, act func(ctx context.Context, id, agent int64) error) {
	id, err := convID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		s.fail(w, r, badInput("the form could not be read"))
		return
	}
	if err := act(r.Context(), id, agentOf(r.Context()).ID); err != nil {
		s.fail(w, r, err)
		return
	}
	done(w, r, "/c/"+strconv.FormatInt(id, 10))
}

func (s *server) addNote(w http.ResponseWriter, r *http.Request) {
	s.formAction(w, r, func(ctx context.Context, id, agent int64) error {
		text := strings.TrimSpace(r.PostForm.Get("text"))
		if text == "" {
			return badInput("a note needs text")
		}
		_, err := s.desk.AddNote(ctx, id, agent, text)
		return err
	})
}

// labels adds the labels of "add" (comma-separated) and removes "remove".
func (s *server) labels(w http.ResponseWriter, r *http.Request) {
	s.formAction(w, r, func(ctx context.Context, id, agent int64) error {
		c, err := s.desk.Conversation(ctx, id)
		if err != nil {
			return err
		}
		labels := slices.Clone(c.Labels)
		for l := range strings.SplitSeq(r.PostForm.Get("add"), ",") {
			if l = strings.TrimSpace(l); l != "" && !slices.Contains(labels, l) {
				labels = append(labels, l)
			}
		}
		if rm := strings.TrimSpace(r.PostForm.Get("remove")); rm != "" {
			labels = slices.DeleteFunc(labels, func(l string) bool { return l == rm })
		}
		return s.desk.SetLabels(ctx, id, agent, labels)
	})
}

// formID reads an optional ID field: "" is 0.
func formID(r *http.Request, field string) (int64, error) {
	v := r.PostForm.Get(field)
	if v == "" {
		return 0, nil
	}
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id < 0 {
		return 0, badInput("%s must be a number", field)
	}
	return id, nil
}

func (s *server) assign(w http.ResponseWriter, r *http.Request) {
	s.formAction(w, r, func(ctx context.Context, id, agent int64) error {
		to, err := formID(r, "agent")
		if err != nil {
			return err
		}
		return s.desk.Assign(ctx, id, agent, to)
	})
}

func (s *server) transfer(w http.ResponseWriter, r *http.Request) {
	s.formAction(w, r, func(ctx context.Context, id, agent int64) error {
		to, err := formID(r, "agent")
		if err != nil {
			return err
		}
		team, err := formID(r, "team")
		if err != nil {
			return err
		}
		if to == 0 && team == 0 {
			return badInput("choose an agent or a team to transfer to")
		}
		return s.desk.Transfer(ctx, id, agent, to, team)
	})
}

func (s *server) setStatus(w http.ResponseWriter, r *http.Request) {
	s.formAction(w, r, func(ctx context.Context, id, agent int64) error {
		st := inbox.Status(r.PostForm.Get("status"))
		switch st {
		case inbox.StatusOpen, inbox.StatusPending, inbox.StatusResolved:
		default:
			return badInput("status must be open, pending or resolved")
		}
		return s.desk.SetStatus(ctx, id, agent, st)
	})
}

func (s *server) unlink(w http.ResponseWriter, r *http.Request) {
	s.formAction(w, r, func(ctx context.Context, id, agent int64) error {
		return s.desk.Unlink(ctx, id)
	})
}
