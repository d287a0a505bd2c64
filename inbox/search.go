package inbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Search finds messages containing query (case-insensitively) across
// all conversations, the newest first: the business's device holds the
// plaintext, in the Messenger's history, which it searches.
func (d *Desk) Search(ctx context.Context, query string, limit int) ([]Hit, error) {
	query = strings.TrimSpace(query)
	if query == "" || len(query) > 200 || !utf8.ValidString(query) {
		return nil, fmt.Errorf("%w: a search has 1 to 200 bytes of UTF-8", ErrInvalid)
	}
	limit = min(max(limit, 1), 200)
	// Rooms that are no conversation (none yet) are skipped: ask for
	// more than needed.
	entries, err := d.m.Search(ctx, query, limit*2+10)
	if err != nil {
		return nil, err
	}
	var hits []Hit
	for _, e := range entries {
		r, err := d.rowByRoom(ctx, e.Room)
		if errors.Is(err, ErrNotFound) {
			continue
		} else if err != nil {
			return nil, err
		}
		hits = append(hits, Hit{Conversation: r.id, Customer: r.customer, Entry: e})
		if len(hits) == limit {
			break
		}
	}
	return hits, nil
}
