package chat

import (
	"context"
	"log/slog"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/conversations"
)

// OpenMessenger opens the Messenger of a client, with its history in dir,
// and applies the person's kept choices that the Messenger takes at Open
// (typing indicators off).
func OpenMessenger(ctx context.Context, c *client.Client, dir string, logger *slog.Logger) (*conversations.Messenger, error) {
	opts := conversations.Options{Logger: logger}
	ms, err := conversations.Open(c, dir, opts)
	if err != nil {
		return nil, err
	}
	v, err := ms.Setting(ctx, SettingTyping)
	if err != nil {
		ms.Close() // #nosec G104 -- on an error path: the first error is the one returned
		return nil, err
	}
	if v != "off" {
		return ms, nil
	}
	ms.Close() // #nosec G104 -- a first look at a setting, reopened below
	opts.NoTyping = true
	return conversations.Open(c, dir, opts)
}
