package conversations

import (
	"context"
	"errors"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/content"
)

// ErrNotReportable is returned for a message that cannot be reported: one
// of this person's own, or one that arrived without the hub's frank.
var ErrNotReportable = errors.New("conversations: the message cannot be reported (own, or not franked by the hub)")

// Report reports a received message of a room as abusive to this
// person's provider, revealing its content (docs/abuse.md). The provider
// verifies the message with the frank the hub stamped on it before it
// accepts the report, and returns its number in the operator's queue.
func (m *Messenger) Report(ctx context.Context, room client.RoomID, id content.ID, note string) (int64, error) {
	sender, data, frank, err := m.h.evidence(ctx, room, id)
	if err != nil {
		return 0, err
	}
	if frank == nil || len(data) == 0 {
		return 0, ErrNotReportable
	}
	return m.c.Report(ctx, room, client.AbuseReport{
		AllegedAbuser: sender,
		Note:          note,
		Messages:      []client.ReportedMessage{{Content: data, Frank: *frank}},
	})
}
