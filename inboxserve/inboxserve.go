// Package inboxserve runs a business inbox: the business account's own
// device (an SDK client and its Messenger), the Desk of package inbox on
// top of it, and an HTTP handler (the agents' console) on a listener, all
// kept in one data directory. It is what `switchboard inbox` runs, and
// what tests start to drive the console the same way.
package inboxserve

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/conversations"
	"github.com/switchboard-chat/switchboard/inbox"
)

// The layout of the data directory.
const (
	// deviceDir holds the business device's keys, rooms and message
	// history (client and conversations state).
	deviceDir = "device"
	// serverFile keeps the provider's client API URL, so later runs need
	// only the directory.
	serverFile = "server-url"
)

// DefaultAdminLogin is the login of the first admin agent when none is
// given.
const DefaultAdminLogin = "admin"

// Options say how to start an inbox.
type Options struct {
	// Dir is the inbox's data directory; it is created if missing.
	Dir string
	// Server is the provider's client API URL. Needed the first time; a
	// later run may give a new one (it replaces the saved one).
	Server string
	// Code is an enrollment code of the business account, needed the
	// first time only: the inbox registers its device with it.
	Code string
	// Device names the business device at registration (default "inbox").
	Device string
	// Listen is the console's address (default 127.0.0.1:8088; port 0
	// picks a free one).
	Listen string
	// BodyTimeout bounds the time an agent's browser has to send a
	// request's body (default 2 min, enough for the largest attachment on
	// a slow link), so that a client sending it byte by byte cannot hold
	// a connection for good.
	BodyTimeout time.Duration
	// Admin is the login of the first admin agent (default "admin").
	Admin string
	// Handler makes the HTTP handler served on Listen: the console.
	Handler func(*inbox.Desk) http.Handler
	// Log receives the inbox's log (nil: discarded).
	Log *slog.Logger
}

// FirstAdmin is the first admin agent, made when the inbox had no agent.
// Its password is generated and known only here: the caller shows it
// once.
type FirstAdmin struct {
	Login, Password string
}

// Inbox is a started inbox. Run it, then Close it.
type Inbox struct {
	Client    *client.Client
	Messenger *conversations.Messenger
	Desk      *inbox.Desk
	// Account is the business account's address as other providers'
	// users write to it: handle@domain.
	Account string
	// URL is the console's base URL, http://HOST:PORT/.
	URL string
	// Admin is set when this start created the first admin agent.
	Admin *FirstAdmin
	// Registered says this start registered the business device.
	Registered bool

	ln  net.Listener
	srv *http.Server
	log *slog.Logger
}

// Start opens the inbox in opts.Dir, registering the business device with
// opts.Code the first time. The first time it also makes the business
// account reachable from every partner provider and discoverable by
// handle (a business wants to be found and written to), and creates the
// first admin agent with a generated password. It listens on opts.Listen
// but serves nothing until Run.
func Start(ctx context.Context, opts Options) (_ *Inbox, err error) {
	if opts.Dir == "" {
		return nil, errors.New("inbox: no data directory")
	}
	if opts.Handler == nil {
		return nil, errors.New("inbox: no console handler")
	}
	if opts.Device == "" {
		opts.Device = "inbox"
	}
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:8088"
	}
	if opts.Admin == "" {
		opts.Admin = DefaultAdminLogin
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	in := &Inbox{log: opts.Log}
	defer func() {
		if err != nil {
			in.Close() // #nosec G104 -- on an error path: the first error is the one returned
		}
	}()
	if in.Client, in.Registered, err = openDevice(ctx, opts); err != nil {
		return nil, err
	}
	in.Account = in.Client.User() + "@" + in.Client.Domain()
	if in.Messenger, err = conversations.Open(in.Client, filepath.Join(opts.Dir, deviceDir), conversations.Options{Logger: opts.Log}); err != nil {
		return nil, fmt.Errorf("inbox: open the conversations: %w", err)
	}
	if in.Desk, err = inbox.Open(ctx, inbox.Config{Dir: opts.Dir, Messenger: in.Messenger, Log: opts.Log}); err != nil {
		return nil, fmt.Errorf("inbox: open the desk: %w", err)
	}
	agents, err := in.Desk.Agents(ctx)
	if err != nil {
		return nil, fmt.Errorf("inbox: agents: %w", err)
	}
	if len(agents) == 0 {
		// No agent yet: this is the first run, or one that stopped before
		// it was done, so the first-run choices are (re)applied too.
		if err := in.Client.SetReachability(ctx, client.ReachAll, nil); err != nil {
			return nil, fmt.Errorf("inbox: make the business reachable from partners: %w", err)
		}
		if err := in.Client.SetDiscovery(ctx, true, false); err != nil {
			return nil, fmt.Errorf("inbox: make the business discoverable by handle: %w", err)
		}
		pw := rand.Text()
		if _, err := in.Desk.AddAgent(ctx, opts.Admin, "Administrator", pw, inbox.RoleAdmin); err != nil {
			return nil, fmt.Errorf("inbox: create the first admin agent %q: %w", opts.Admin, err)
		}
		in.Admin = &FirstAdmin{Login: opts.Admin, Password: pw}
	}
	if in.ln, err = net.Listen("tcp", opts.Listen); err != nil {
		return nil, fmt.Errorf("inbox: console address: %w", err)
	}
	in.URL = "http://" + in.ln.Addr().String() + "/"
	if opts.BodyTimeout <= 0 {
		opts.BodyTimeout = 2 * time.Minute
	}
	// No ReadTimeout or WriteTimeout of the server's: the console's event
	// stream stays open for as long as an agent looks at it. Headers,
	// bodies and idle keep-alives are bounded instead.
	in.srv = &http.Server{
		Handler:           boundBodies(opts.Handler(in.Desk), opts.BodyTimeout),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(opts.Log.Handler(), slog.LevelWarn),
	}
	return in, nil
}

// openDevice reopens the business device, or registers it with the
// enrollment code the first time.
func openDevice(ctx context.Context, opts Options) (*client.Client, bool, error) {
	dir := filepath.Join(opts.Dir, deviceDir)
	saved, err := os.ReadFile(filepath.Join(opts.Dir, serverFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("inbox: %w", err)
	}
	url := strings.TrimSpace(opts.Server)
	if url == "" {
		url = strings.TrimSpace(string(saved))
	}
	if url == "" {
		return nil, false, fmt.Errorf("inbox: no business device in %s yet: start it once with --server URL --code CODE", opts.Dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("inbox: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	copts := client.Options{Logger: opts.Log}
	c, err := client.Open(ctx, url, dir, copts)
	registered := false
	if errors.Is(err, client.ErrNoState) {
		if opts.Code == "" {
			return nil, false, fmt.Errorf("inbox: no business device in %s yet: give the account's enrollment code with --code", opts.Dir)
		}
		c, err = client.Register(ctx, url, opts.Code, opts.Device, dir, copts)
		if err != nil {
			return nil, false, fmt.Errorf("inbox: register the business device: %w", err)
		}
		registered = true
	} else if err != nil {
		return nil, false, fmt.Errorf("inbox: open the business device: %w", err)
	} else if opts.Code != "" {
		c.Close() // #nosec G104 -- on an error path: the first error is the one returned
		return nil, false, fmt.Errorf("inbox: %s already holds the business device; leave out --code (or use another --data)", opts.Dir)
	}
	if url != strings.TrimSpace(string(saved)) {
		if err := os.WriteFile(filepath.Join(opts.Dir, serverFile), []byte(url+"\n"), 0o600); err != nil { // #nosec G703 -- the operator's data directory and a constant name
			_ = c.Close() // on an error path: the first error is the one returned
			return nil, false, fmt.Errorf("inbox: %w", err)
		}
	}
	return c, registered, nil
}

// Run serves the console and runs the Desk (and with it the business
// device's stream) until ctx ends, then stops the console, waiting up to
// five seconds for requests in flight.
func (in *Inbox) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	deskDone := make(chan error, 1)
	go func() { deskDone <- in.Desk.Run(ctx) }()
	serveDone := make(chan error, 1)
	go func() { serveDone <- in.srv.Serve(in.ln) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-deskDone:
		deskDone <- err
		if ctx.Err() == nil {
			err = fmt.Errorf("inbox: the desk stopped: %w", err)
		}
	case err = <-serveDone:
		serveDone <- err
		err = fmt.Errorf("inbox: the console stopped: %w", err)
	}
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if serr := in.srv.Shutdown(sctx); serr != nil {
		in.log.Warn("console shutdown", "err", serr)
	}
	<-serveDone
	<-deskDone
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// Close closes the Desk, the Messenger and the client (after Run, or
// instead of it).
func (in *Inbox) Close() error {
	var errs []error
	if in.ln != nil && in.srv != nil {
		in.srv.Close() // #nosec G104 -- shutting down: nothing is left to do with a failed close
	} else if in.ln != nil {
		in.ln.Close()
	}
	if in.Desk != nil {
		errs = append(errs, in.Desk.Close())
	}
	if in.Messenger != nil {
		errs = append(errs, in.Messenger.Close())
	}
	if in.Client != nil {
		errs = append(errs, in.Client.Close())
	}
	return errors.Join(errs...)
}

// PrintWelcome writes what the operator needs: where the console is, and
// the first admin's login and password when this start created them.
func (in *Inbox) PrintWelcome(w io.Writer) {
	fmt.Fprintf(w, "Inbox of %s (device %q)\n", in.Account, in.Client.Device())
	fmt.Fprintf(w, "Console: %s\n", in.URL)
	if in.Admin != nil {
		fmt.Fprintln(w, "First admin agent created; log in to the console with")
		fmt.Fprintf(w, "  login:    %s\n", in.Admin.Login)
		fmt.Fprintf(w, "  password: %s\n", in.Admin.Password)
		fmt.Fprintln(w, "The password is shown only this once: keep it.")
	}
	fmt.Fprintf(w, "Customers write to %s. Stop with Ctrl-C.\n", in.Account)
}

// boundBodies gives each request with a body d to deliver all of it; past
// that its reads fail and the connection is closed. The deadline is
// lifted once the body has been read to its end, since net/http keeps
// reading in the background while the handler runs and a deadline
// passing then would cancel the request. A request without a body (the
// event stream among them) gets none.
func boundBodies(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
			rc := http.NewResponseController(w)
			if rc.SetReadDeadline(time.Now().Add(d)) == nil {
				r.Body = &liftingBody{ReadCloser: r.Body, lift: func() { _ = rc.SetReadDeadline(time.Time{}) }} // the deadline was set on this connection just above
			}
		}
		h.ServeHTTP(w, r)
	})
}

// liftingBody lifts the read deadline at the body's end.
type liftingBody struct {
	io.ReadCloser
	lift func()
	done bool
}

func (b *liftingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) && !b.done {
		b.done = true
		b.lift()
	}
	return n, err
}
