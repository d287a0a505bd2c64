package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/switchboard-chat/switchboard/federation"
)

// The federation listener of `serve` (package node runs it): the
// provider's MIMI API for its partners, on a port of its own with mutual
// TLS. SIGHUP reloads the trust file at once.

// reloadOnHangup reloads the trust file on SIGHUP until ctx ends. Reload
// logs each change, and keeps the previous configuration if the file is
// bad. It listens for SIGHUP before it returns: a SIGHUP sent as soon as
// the provider says it serves must not meet the default action, which is
// to exit.
func reloadOnHangup(ctx context.Context, trust *federation.Trust, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := trust.Reload(); err != nil {
					log.Error("SIGHUP: the trust file was not reloaded", "err", err)
				} else {
					log.Info("SIGHUP: trust file reloaded")
				}
			}
		}
	}()
}
