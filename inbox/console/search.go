package console

import (
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/switchboard-chat/switchboard/inbox"
)

// searchData is the search page's data.
type searchData struct {
	Query string
	Hits  []inbox.Hit
}

// searchPage finds messages across every conversation (the business holds
// their plaintext): /search?q=TEXT, at most 100 hits, newest first.
func (s *server) searchPage(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	data := &searchData{Query: q}
	if utf8.RuneCountInString(q) > 200 || !utf8.ValidString(q) {
		s.fail(w, r, badInput("a search has at most 200 characters"))
		return
	}
	if q != "" {
		hits, err := s.desk.Search(r.Context(), q, 100)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		data.Hits = hits
	}
	s.render(w, r, http.StatusOK, "search", &view{Title: "Search", Data: data})
}
