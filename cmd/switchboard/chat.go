package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/switchboard-chat/switchboard/chat"
	"github.com/switchboard-chat/switchboard/client"
)

func init() {
	commands["chat"] = command{summary: "the terminal chat client: 'chat --server URL --dir DIR --code CODE' once, then 'chat --dir DIR'", run: runChat}
}

// chatServerFile keeps, in the device's directory, the provider's client
// API URL, so that later runs need only --dir.
const chatServerFile = "server-url"

// chatLogFile takes the client's log: the terminal belongs to the screen.
const chatLogFile = "chat.log"

// runChat opens (or, the first time, registers) a device and runs the
// terminal client on it until the person quits.
func runChat(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "", "the provider's client API URL (needed the first time; saved in DIR)")
	dir := fs.String("dir", defaultChatDir(), "the device's directory: its keys, rooms and history")
	code := fs.String("code", "", "enrollment code, to register this device the first time")
	device := fs.String("device", defaultDeviceName(), "the device's name, the first time")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: switchboard chat --server URL --dir DIR --code CODE [--device NAME]   (first run: registers the device)")
		fmt.Fprintln(stderr, "       switchboard chat [--dir DIR] [--server URL]                          (later runs)")
		fs.PrintDefaults()
		fmt.Fprintln(stderr, "\nKeys (press ? in the client for all):\n"+indent(chat.Keys))
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := openChatDevice(ctx, *server, *dir, *code, *device)
	if err != nil {
		fmt.Fprintln(stderr, "switchboard chat:", err)
		return 1
	}
	defer c.Close()
	logf, err := os.OpenFile(filepath.Join(*dir, chatLogFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		fmt.Fprintln(stderr, "switchboard chat:", err)
		return 1
	}
	defer logf.Close()
	logger := slog.New(slog.NewTextHandler(logf, nil))
	ms, err := chat.OpenMessenger(ctx, c, *dir, logger)
	if err != nil {
		fmt.Fprintln(stderr, "switchboard chat:", err)
		return 1
	}
	defer ms.Close()

	p := tea.NewProgram(chat.New(ms), tea.WithContext(ctx), tea.WithOutput(stdout))
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		err := ms.Run(ctx)
		if ctx.Err() == nil {
			logger.Error("the stream stopped", "err", err)
			p.Send(chat.ConnectionMsg{Err: err})
		}
	}()
	_, err = p.Run()
	cancel()
	<-runDone
	if err != nil && !errors.Is(err, tea.ErrProgramKilled) && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "switchboard chat:", err)
		return 1
	}
	return 0
}

// openChatDevice reopens the device in dir, or registers it there with
// an enrollment code. A given server URL replaces the saved one (a
// provider's address can change, as the demo's do on every run).
func openChatDevice(ctx context.Context, server, dir, code, device string) (*client.Client, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	saved, err := os.ReadFile(filepath.Join(dir, chatServerFile)) // #nosec G304 -- the user's own data directory
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	url := strings.TrimSpace(server)
	if url == "" {
		url = strings.TrimSpace(string(saved))
	}
	if url == "" {
		return nil, fmt.Errorf("no device in %s yet: register one with --server URL --code CODE", dir)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var c *client.Client
	if code != "" && len(saved) == 0 {
		c, err = client.Register(ctx, url, code, device, dir, client.Options{})
	} else {
		if code != "" {
			return nil, fmt.Errorf("%s already holds a registered device; leave out --code (or use another --dir)", dir)
		}
		c, err = client.Open(ctx, url, dir, client.Options{})
	}
	if err != nil {
		return nil, err
	}
	if url != strings.TrimSpace(string(saved)) {
		if err := os.WriteFile(filepath.Join(dir, chatServerFile), []byte(url+"\n"), 0o600); err != nil { // #nosec G703 -- the user's own data directory and a constant name
			_ = c.Close() // on an error path: the first error is the one returned
			return nil, err
		}
	}
	return c, nil
}

func defaultChatDir() string {
	if d, err := os.UserConfigDir(); err == nil {
		return filepath.Join(d, "switchboard", "chat")
	}
	return "switchboard-chat"
}

func defaultDeviceName() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "terminal"
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}
