package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/switchboard-chat/switchboard/inbox"
	"github.com/switchboard-chat/switchboard/inbox/console"
	"github.com/switchboard-chat/switchboard/inboxserve"
)

func init() {
	commands["inbox"] = command{summary: "a business inbox: 'inbox --server URL --code CODE --data DIR' once, then 'inbox --data DIR'; agents answer in a web console", run: runInbox}
}

// runInbox starts the business inbox in a data directory and serves the
// agents' console until SIGINT or SIGTERM.
func runInbox(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("inbox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "", "the business account's provider: its client API URL (needed the first time; saved in DIR)")
	code := fs.String("code", "", "the business account's enrollment code ('switchboard admin user add' prints it), the first time only")
	data := fs.String("data", "", "the inbox's data directory: the business device, its history and inbox.db (required)")
	listen := fs.String("listen", "127.0.0.1:8088", "the console's address")
	admin := fs.String("admin", inboxserve.DefaultAdminLogin, "the login of the first admin agent, made on the first run")
	device := fs.String("device", "inbox", "the business device's name, the first time")
	verbose := fs.Bool("v", false, "log to stderr")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: switchboard inbox --server URL --code CODE --data DIR [--listen ADDR] [--admin LOGIN]   (first run)")
		fmt.Fprintln(stderr, "       switchboard inbox --data DIR [--server URL] [--listen ADDR]                              (later runs)")
		fmt.Fprint(stderr, `
The first run registers the business account's device with the enrollment
code, makes the account reachable from every partner provider and
discoverable by handle, and creates the first admin agent with a generated
password, printed once with the console's URL. Later runs reopen everything
from DIR. Customers write to the business account from any provider; agents
answer in the console. Messages are end-to-end encrypted up to this process:
DIR holds the business's keys and the plaintext history, so keep it private.
SIGINT (Ctrl-C) or SIGTERM stops it cleanly.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 || *data == "" {
		fs.Usage()
		return 2
	}
	logger := slog.New(slog.DiscardHandler)
	if *verbose {
		logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	in, err := inboxserve.Start(ctx, inboxserve.Options{
		Dir: *data, Server: *server, Code: *code, Device: *device, Listen: *listen, Admin: *admin, Log: logger,
		Handler: func(d *inbox.Desk) http.Handler { return console.New(d, console.Options{Log: logger}) },
	})
	if err != nil {
		fmt.Fprintln(stderr, "switchboard", err) // err says "inbox: ..."
		return 1
	}
	defer in.Close()
	in.PrintWelcome(stdout)
	if err := in.Run(ctx); err != nil {
		fmt.Fprintln(stderr, "switchboard", err)
		return 1
	}
	fmt.Fprintln(stdout, "Inbox stopped.")
	return 0
}
