package console_test

import (
	"bytes"
	"context"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/conversations"
	"github.com/switchboard-chat/switchboard/inbox/console"
)

// TestAnAgentAnswersACustomer: Bob on blue.test writes to the business
// (with markup in his text); an agent with the console open hears of it
// over the event stream, sees him in the list with his provider, opens
// the conversation, replies with text and a file, writes a private
// note, labels, assigns and resolves it. Bob gets the replies decrypted
// and never the note; the list's filters follow each change, and the
// audit trail records the assignment.
func TestAnAgentAnswersACustomer(t *testing.T) {
	b := newBusiness(t, console.Options{})
	sam := b.browser()
	sam.login("sam", agentPassword)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := sam.events(ctx)
	waitOnline(t, b, b.agent.ID, true)

	bob := b.customer("bob")
	bob.writes(`<script>alert("hi")</script> Where is my order?`)
	conv := bob.conversation()
	id := itoa(conv.ID)
	waitEvent(t, events, "message")

	list := sam.get("/")
	row := rowOf(t, list.body, "bob@blue.test")
	for _, want := range []string{`data-provider="blue.test"`, `data-status="open"`, `data-testid="open-conversation" href="/c/` + id + `"`, `data-testid="unread">1<`} {
		if !strings.Contains(row, want) {
			t.Errorf("bob's row lacks %s:\n%s", want, row)
		}
	}
	if strings.Contains(list.body, "<script>alert") || !strings.Contains(list.body, "&lt;script&gt;alert") {
		t.Error("the customer's markup is not escaped in the list")
	}
	if frag := sam.get("/fragments/list?status=open"); frag.status != http.StatusOK || !strings.Contains(frag.body, `data-customer="bob@blue.test"`) || strings.Contains(frag.body, "<html") {
		t.Errorf("the list fragment: %d %s", frag.status, frag.body)
	}

	// Opening it shows the message, escaped, and marks it read.
	p := sam.get("/c/" + id)
	if p.status != http.StatusOK || count(p.body, `data-testid="message" data-own="false"`) != 1 {
		t.Fatalf("the conversation page: %d\n%s", p.status, p.body)
	}
	if strings.Contains(p.body, "<script>alert") || !strings.Contains(p.body, `&lt;script&gt;alert(&#34;hi&#34;)&lt;/script&gt; Where is my order?`) {
		t.Error("the customer's markup is not escaped in the conversation")
	}
	for _, hook := range []string{"assign-agent", "assign-submit", "reply-text", "reply-send", "reply-file", "note-text", "note-add",
		"label-input", "label-add", "status-open", "status-pending", "status-resolved", "conversation-status"} {
		if !strings.Contains(p.body, `data-testid="`+hook+`"`) {
			t.Errorf("the conversation page lacks the hook %s", hook)
		}
	}
	if c, _ := b.desk.Conversation(ctx, conv.ID); c.Unread != 0 {
		t.Errorf("after opening, %d unread", c.Unread)
	}
	// Fetching the history again, as the script does on every event,
	// changes nothing more: no event, so no endless re-fetching.
	quiet(events, 300*time.Millisecond)
	sam.get("/fragments/c/" + id + "/history")
	if got := quiet(events, 500*time.Millisecond); slices.Contains(got, "conversation") {
		t.Errorf("re-fetching a read conversation's history caused events %q", got)
	}

	// A text reply, sent as the script sends it (204, no redirect) ...
	if p := sam.postFetch("/c/"+id+"/reply", url.Values{"text": {"Thanks Bob, it ships today."}}); p.status != http.StatusNoContent {
		t.Fatalf("replying: %d %s", p.status, p.body)
	}
	// ... and a file, as a plain multipart form.
	if p := sam.postFile("/c/"+id+"/reply", "invoice.txt", []byte("invoice 4711")); p.status != http.StatusSeeOther {
		t.Fatalf("sending a file: %d %s", p.status, p.body)
	}
	// A private note, which must never reach Bob.
	if p := sam.post("/c/"+id+"/notes", url.Values{"text": {"secret: refund approved by Ada"}}); p.status != http.StatusSeeOther {
		t.Fatalf("adding a note: %d %s", p.status, p.body)
	}
	bob.waitFor("the reply and the file", func(es []conversations.Entry) bool {
		return slices.ContainsFunc(es, func(e conversations.Entry) bool { return e.Text == "Thanks Bob, it ships today." }) &&
			slices.ContainsFunc(es, func(e conversations.Entry) bool { return e.File != nil && e.File.Filename == "invoice.txt" })
	})
	// Bob's side: one more message after the note, so the note would have come before it.
	if p := sam.post("/c/"+id+"/reply", url.Values{"text": {"Anything else?"}}); p.status != http.StatusSeeOther {
		t.Fatalf("replying again: %d", p.status)
	}
	history := bob.waitFor("the second reply", func(es []conversations.Entry) bool {
		return slices.ContainsFunc(es, func(e conversations.Entry) bool { return e.Text == "Anything else?" })
	})
	for _, e := range history {
		if strings.Contains(e.Text, "secret") {
			t.Fatalf("the customer received the private note: %+v", e)
		}
	}
	for _, e := range history {
		if e.File != nil {
			data, _, err := bob.m.SaveFile(ctx, bob.room, e.ID)
			if err != nil || string(data) != "invoice 4711" {
				t.Errorf("bob's copy of the file: %q %v", data, err)
			}
		}
	}

	// Bob reads them; the agent sees his read marks.
	ok(t, "bob reads", bob.m.MarkRead(ctx, bob.room))
	deadline := time.Now().Add(15 * time.Second)
	for count(sam.get("/fragments/c/"+id+"/history").body, `data-testid="receipt">read<`) != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("bob's read marks never showed:\n%s", sam.get("/fragments/c/"+id+"/history").body)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Bob reacts to the first reply; the agent sees it under the message.
	for _, e := range history {
		if e.Text == "Thanks Bob, it ships today." {
			ok(t, "bob reacts", bob.m.React(ctx, bob.room, e.ID, "👍"))
		}
	}
	deadline = time.Now().Add(15 * time.Second)
	for !strings.Contains(sam.get("/fragments/c/"+id+"/history").body, `title="bob@blue.test">👍 1</span>`) {
		if time.Now().After(deadline) {
			t.Fatalf("bob's reaction never showed:\n%s", sam.get("/fragments/c/"+id+"/history").body)
		}
		time.Sleep(50 * time.Millisecond)
	}

	p = sam.get("/c/" + id)
	if n := count(p.body, `data-testid="message" data-own="true"`); n != 3 {
		t.Errorf("the page shows %d own messages, want 3", n)
	}
	if !strings.Contains(p.body, `data-testid="note"`) || !strings.Contains(p.body, "secret: refund approved by Ada") {
		t.Error("the note is not shown to agents")
	}
	if !strings.Contains(p.body, `/c/`+id+`/files/`) {
		t.Error("the file has no download link")
	}

	// Labels, assignment, status; the filters follow.
	if p := sam.post("/c/"+id+"/labels", url.Values{"add": {"vip, shipping"}}); p.status != http.StatusSeeOther {
		t.Fatalf("labelling: %d %s", p.status, p.body)
	}
	if p := sam.post("/c/"+id+"/assign", url.Values{"agent": {itoa(b.agent.ID)}}); p.status != http.StatusSeeOther {
		t.Fatalf("assigning: %d %s", p.status, p.body)
	}
	for q, want := range map[string]bool{
		"?label=vip": true, "?label=other": false, "?assignee=me": true, "?assignee=unassigned": false,
		"?assignee=" + itoa(b.admin.ID): false, "?status=open": true, "?status=resolved": false,
	} {
		if got := strings.Contains(sam.get("/"+q).body, `data-customer="bob@blue.test"`); got != want {
			t.Errorf("list %s shows bob: %v, want %v", q, got, want)
		}
	}
	if p := sam.post("/c/"+id+"/status", url.Values{"status": {"resolved"}}); p.status != http.StatusSeeOther {
		t.Fatalf("resolving: %d %s", p.status, p.body)
	}
	if !strings.Contains(sam.get("/?status=resolved").body, `data-customer="bob@blue.test"`) || strings.Contains(sam.get("/?status=open").body, `data-customer="bob@blue.test"`) {
		t.Error("the status filter does not follow the resolution")
	}
	meta := sam.get("/fragments/c/" + id + "/meta").body
	if !strings.Contains(meta, `data-testid="conversation-status">resolved<`) || count(meta, `data-testid="label"`) != 2 {
		t.Errorf("the side panel after labelling and resolving:\n%s", meta)
	}
	if count(meta, `data-testid="audit-event"`) == 0 || !strings.Contains(meta, "Sam Agent") {
		t.Errorf("the audit trail does not show the assignment:\n%s", meta)
	}

	// An admin adds a team and a canned response; the agent transfers the
	// conversation to the team and answers with the short code.
	ada := b.browser()
	ada.login("ada", adminPassword)
	if p := ada.post("/admin/teams", url.Values{"name": {"Billing"}, "first_response": {"30"}, "resolution": {"480"}}); p.status != http.StatusSeeOther {
		t.Fatalf("adding a team: %d %s", p.status, p.body)
	}
	if p := ada.post("/admin/canned", url.Values{"code": {"/bye"}, "text": {"Have a nice day!"}}); p.status != http.StatusSeeOther {
		t.Fatalf("adding a canned response: %d %s", p.status, p.body)
	}
	teams, err := b.desk.Teams(ctx)
	ok(t, "teams", err)
	if len(teams) != 1 || teams[0].FirstResponse != 30*time.Minute || teams[0].Resolution != 8*time.Hour {
		t.Fatalf("the team added: %+v", teams)
	}
	if p := sam.post("/c/"+id+"/transfer", url.Values{"team": {itoa(teams[0].ID)}}); p.status != http.StatusSeeOther {
		t.Fatalf("transferring: %d %s", p.status, p.body)
	}
	if !strings.Contains(sam.get("/?team="+itoa(teams[0].ID)).body, `data-customer="bob@blue.test"`) {
		t.Error("the team filter does not show the transferred conversation")
	}
	if p := sam.get("/c/" + id); !strings.Contains(p.body, "<code>/bye</code>") {
		t.Error("the reply form has no hint of the canned response")
	}
	if p := sam.post("/c/"+id+"/reply", url.Values{"text": {"/bye"}}); p.status != http.StatusSeeOther {
		t.Fatalf("replying with a short code: %d %s", p.status, p.body)
	}
	bob.waitFor("the canned response", func(es []conversations.Entry) bool {
		return slices.ContainsFunc(es, func(e conversations.Entry) bool { return e.Text == "Have a nice day!" })
	})

	// Search finds the customer's words.
	if p := sam.get("/search?q=" + url.QueryEscape("my order")); !strings.Contains(p.body, `data-testid="search-hit"`) || !strings.Contains(p.body, "/c/"+id) {
		t.Errorf("search: %d\n%s", p.status, p.body)
	}

	// Closing the stream sets the agent offline.
	cancel()
	waitOnline(t, b, b.agent.ID, false)
}

// TestACustomersFileIsDownloaded: a file a customer sends is a download
// (not something the browser would render as the console's page).
func TestACustomersFileIsDownloaded(t *testing.T) {
	b := newBusiness(t, console.Options{})
	sam := b.browser()
	sam.login("sam", agentPassword)
	bob := b.customer("bob")
	bob.writes("here is the photo")
	e, err := bob.m.SendFile(context.Background(), bob.room, strings.NewReader("<html><script>alert(1)</script>"), "page.html", "text/html")
	ok(t, "sending a file", err)
	conv := bob.conversation()
	var page string
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(page, e.ID.String()) {
		if time.Now().After(deadline) {
			t.Fatal("the file never showed in the conversation")
		}
		time.Sleep(50 * time.Millisecond)
		page = sam.get("/c/" + itoa(conv.ID)).body
	}
	p := sam.get("/c/" + itoa(conv.ID) + "/files/" + e.ID.String())
	if p.status != http.StatusOK || p.body != "<html><script>alert(1)</script>" {
		t.Fatalf("downloading: %d %q", p.status, p.body)
	}
	if ct, cd := p.header.Get("Content-Type"), p.header.Get("Content-Disposition"); ct != "application/octet-stream" || !strings.HasPrefix(cd, "attachment") {
		t.Errorf("an HTML file is served as %q, %q", ct, cd)
	}
	if !strings.Contains(p.header.Get("Content-Security-Policy"), "sandbox") {
		t.Error("a file is served without a sandbox policy")
	}
	if p := sam.get("/c/" + itoa(conv.ID) + "/files/zz"); p.status != http.StatusBadRequest {
		t.Errorf("a malformed message ID: %d", p.status)
	}
}

// TestBadRequestsChangeNothing: malformed filters, IDs, dates and forms
// get a clear refusal, never a fault.
func TestBadRequestsChangeNothing(t *testing.T) {
	b := newBusiness(t, console.Options{})
	sam := b.browser()
	sam.login("sam", agentPassword)
	for path, want := range map[string]int{
		"/?status=closed":                       http.StatusBadRequest,
		"/?assignee=someone":                    http.StatusBadRequest,
		"/?team=-1":                             http.StatusBadRequest,
		"/c/abc":                                http.StatusBadRequest,
		"/c/999":                                http.StatusNotFound,
		"/report?from=yesterday":                http.StatusBadRequest,
		"/report?from=2026-12-03&to=2026-12-01": http.StatusBadRequest,
		"/report?from=2020-01-01&to=2026-01-01": http.StatusBadRequest,
		"/search?q=" + strings.Repeat("x", 201): http.StatusBadRequest,
	} {
		if p := sam.get(path); p.status != want {
			t.Errorf("GET %s: %d, want %d", path, p.status, want)
		}
	}
	for path, form := range map[string]url.Values{
		"/c/999/notes":  {"text": {"hello"}},
		"/c/999/status": {"status": {"open"}},
	} {
		if p := sam.post(path, form); p.status != http.StatusNotFound {
			t.Errorf("POST %s: %d, want 404", path, p.status)
		}
	}
	ada := b.browser()
	ada.login("ada", adminPassword)
	if p := ada.post("/admin/settings", url.Values{"zone": {"Mars/Olympus"}}); p.status != http.StatusBadRequest {
		t.Errorf("an unknown zone: %d", p.status)
	}
	if p := ada.post("/admin/settings", url.Values{"hours-monday": {"17:00-09:00"}}); p.status != http.StatusBadRequest {
		t.Errorf("hours that end before they start: %d", p.status)
	}
	if p := ada.post("/admin/teams", url.Values{"name": {"Billing"}, "first_response": {"soon"}}); p.status != http.StatusBadRequest {
		t.Errorf("a target that is no number: %d", p.status)
	}
	if teams, _ := b.desk.Teams(context.Background()); len(teams) != 0 {
		t.Errorf("refused forms added teams: %+v", teams)
	}
}

// waitOnline waits until the Desk has the agent online (or offline).
func waitOnline(t *testing.T, b *business, agent int64, online bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		a, err := b.desk.Agent(context.Background(), agent)
		ok(t, "reading the agent", err)
		if a.Online == online {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent never became online=%v", online)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitEvent waits for an event of the kind on the stream.
func waitEvent(t *testing.T, events <-chan string, kind string) {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case e, open := <-events:
			if !open {
				t.Fatal("the event stream closed")
			}
			if e == kind {
				return
			}
		case <-timeout:
			t.Fatalf("no %q event came", kind)
		}
	}
}

// quiet reads events until none has come for d, and returns them.
func quiet(events <-chan string, d time.Duration) []string {
	var got []string
	for {
		select {
		case e := <-events:
			got = append(got, e)
		case <-time.After(d):
			return got
		}
	}
}

// rowOf cuts the customer's row out of the list page.
func rowOf(t *testing.T, body, customer string) string {
	t.Helper()
	i := strings.Index(body, `data-customer="`+customer+`"`)
	if i < 0 {
		t.Fatalf("the list has no row of %s:\n%s", customer, body)
	}
	start := strings.LastIndex(body[:i], "<tr")
	end := strings.Index(body[i:], "</tr>")
	return body[start : i+end]
}

// postFetch posts a form as the console's script does.
func (br *browser) postFetch(path string, form url.Values) page {
	br.t.Helper()
	req, err := http.NewRequest(http.MethodPost, br.base+path, strings.NewReader(form.Encode()))
	ok(br.t, "request", err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Console-Fetch", "1")
	return br.do(req)
}

// postFile posts the reply form with a file, as a browser does.
func (br *browser) postFile(path, name string, data []byte) page {
	br.t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	w.WriteField("text", "")
	fw, err := w.CreateFormFile("file", name)
	ok(br.t, "form", err)
	fw.Write(data)
	w.Close()
	req, err := http.NewRequest(http.MethodPost, br.base+path, &body)
	ok(br.t, "request", err)
	req.Header.Set("Content-Type", w.FormDataContentType())
	return br.do(req)
}

// TestOneCustomerOnTwoProviders: the same person (one verified phone
// number) writes from blue.test and from green.test; the console shows
// one contact with both conversations, and an agent unlinks one.
func TestOneCustomerOnTwoProviders(t *testing.T) {
	b := newBusiness(t, console.Options{})
	sam := b.browser()
	sam.login("sam", agentPassword)
	onBlue := b.customerOn(1, "bob", "+4915112345678")
	onGreen := b.customerOn(2, "robert", "+4915112345678")
	onBlue.writes("hello from blue")
	onGreen.writes("hello from green")
	blue, green := onBlue.conversation(), onGreen.conversation()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := b.desk.Conversation(context.Background(), green.ID)
		ok(t, "the conversation", err)
		if len(c.Contact.Addresses) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the two conversations never shared a contact: %+v", c.Contact)
		}
		time.Sleep(50 * time.Millisecond)
	}

	list := sam.get("/").body
	if !strings.Contains(rowOf(t, list, "robert@green.test"), "2 linked addresses") || !strings.Contains(rowOf(t, list, "bob@blue.test"), `data-provider="blue.test"`) {
		t.Errorf("the list does not show the linked contact:\n%s", list)
	}
	meta := sam.get("/fragments/c/" + itoa(green.ID) + "/meta").body
	if !strings.Contains(meta, `<a href="/c/`+itoa(blue.ID)+`">bob@blue.test</a>`) || !strings.Contains(meta, "4915112345678 (verified)") || !strings.Contains(meta, `data-testid="unlink"`) {
		t.Fatalf("the contact panel:\n%s", meta)
	}
	if p := sam.post("/c/"+itoa(green.ID)+"/unlink", nil); p.status != http.StatusSeeOther {
		t.Fatalf("unlinking: %d %s", p.status, p.body)
	}
	meta = sam.get("/fragments/c/" + itoa(green.ID) + "/meta").body
	if strings.Contains(meta, "bob@blue.test") || strings.Contains(meta, `data-testid="unlink"`) {
		t.Errorf("after unlinking, the contact panel:\n%s", meta)
	}
}

// TestServiceLevels: with a default team whose first-response target is
// five minutes, a new conversation shows the time left, and once the
// clock passes the target the row is marked breached and counted.
func TestServiceLevels(t *testing.T) {
	b := newBusiness(t, console.Options{})
	ctx := context.Background()
	team, err := b.desk.AddTeam(ctx, "Front desk", 5*time.Minute, 0)
	ok(t, "adding a team", err)
	st, err := b.desk.Settings(ctx)
	ok(t, "settings", err)
	st.DefaultTeam = team.ID
	ok(t, "setting the default team", b.desk.SetSettings(ctx, st))
	sam := b.browser()
	sam.login("sam", agentPassword)

	bob := b.customer("bob")
	bob.writes("I need help")
	bob.conversation()
	row := rowOf(t, sam.get("/").body, "bob@blue.test")
	if !strings.Contains(row, "min left") || strings.Contains(row, "breached") {
		t.Errorf("a new conversation's row: %s", row)
	}
	b.clock.advance(6 * time.Minute)
	deadline := time.Now().Add(15 * time.Second)
	for {
		page := sam.get("/").body
		row = rowOf(t, page, "bob@blue.test")
		if strings.Contains(row, `data-testid="sla-breached"`) && strings.Contains(page, `data-testid="breach-count">1 past`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("six minutes later the row is not breached:\n%s", page)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if meta := sam.get("/fragments/c/" + itoa(bob.conversation().ID) + "/meta").body; !strings.Contains(meta, "first response breached") {
		t.Errorf("the side panel does not show the breach:\n%s", meta)
	}
}

// TestUploadsAreLimited: a file over MaxUpload is refused, sending
// nothing: the plain form goes back to the page with the reason, the
// script gets 413.
func TestUploadsAreLimited(t *testing.T) {
	b := newBusiness(t, console.Options{MaxUpload: 1 << 20})
	sam := b.browser()
	sam.login("sam", agentPassword)
	bob := b.customer("bob")
	bob.writes("send me the manual")
	id := itoa(bob.conversation().ID)

	big := bytes.Repeat([]byte("x"), 3<<20)
	p := sam.postFile("/c/"+id+"/reply", "manual.pdf", big)
	if p.status != http.StatusSeeOther || p.location != "/c/"+id+"?error=too_large" {
		t.Fatalf("a 3 MiB file with a 1 MiB limit: %d %q", p.status, p.location)
	}
	if page := sam.get(p.location).body; !strings.Contains(page, "The file is larger than 1 MiB.") {
		t.Error("the page does not say why")
	}
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	fw, _ := w.CreateFormFile("file", "manual.pdf")
	fw.Write(big)
	w.Close()
	req, _ := http.NewRequest(http.MethodPost, b.console.URL+"/c/"+id+"/reply", &body)
	req.Header.Set("Content-Type", w.FormDataContentType())
	req.Header.Set("X-Console-Fetch", "1")
	if p := sam.do(req); p.status != http.StatusRequestEntityTooLarge || !strings.Contains(p.body, "too_large") {
		t.Errorf("the same from the script: %d %q", p.status, p.body)
	}
	es, err := b.desk.History(context.Background(), bob.conversation().ID, 0, 10)
	ok(t, "history", err)
	for _, e := range es {
		if e.Own {
			t.Fatalf("a refused upload sent %+v", e)
		}
	}
}
