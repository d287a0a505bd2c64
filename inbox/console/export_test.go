package console

import (
	"net/http"
	"time"

	"github.com/switchboard-chat/switchboard/inbox"
)

// NewWithHeartbeat is New with the event stream's heartbeat set, so a
// test need not wait 20 seconds for a stream to notice a session ended.
func NewWithHeartbeat(desk *inbox.Desk, opts Options, heartbeat time.Duration) http.Handler {
	return newHandler(desk, opts, heartbeat)
}
