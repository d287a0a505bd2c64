package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/switchboard-chat/switchboard/clock"
	"github.com/switchboard-chat/switchboard/content"
	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/node"
	"github.com/switchboard-chat/switchboard/store"
)

// The operator's abuse report queue (docs/abuse.md): `switchboard admin
// reports` lists it, shows one report, and takes an action on it. It works
// on the data directory while serve runs on it (SQLite in WAL mode).

const reportsUsage = `usage: switchboard admin reports [list] [--data DIR]
       switchboard admin reports show ID [--data DIR]
       switchboard admin reports warn ID [--message TEXT] [--data DIR]
       switchboard admin reports suspend-user ID [--data DIR]
       switchboard admin reports suspend-partner ID (--trust FILE | --config FILE) [--data DIR]
       switchboard admin reports dismiss ID [--data DIR]`

// defaultWarning is the notice a warned user gets without --message.
const defaultWarning = "A message you sent was reported as abusive and the report was verified. Further abuse may get your account suspended."

func runAdminReports(args []string, stdout, stderr io.Writer) int {
	verb := "list"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		verb, args = args[0], args[1:]
	}
	var id int64
	if verb != "list" {
		if len(args) == 0 {
			fmt.Fprintln(stderr, reportsUsage)
			return 2
		}
		n, err := strconv.ParseInt(args[0], 10, 64)
		if err != nil || n <= 0 {
			fmt.Fprintf(stderr, "switchboard: %q is not a report number\n", args[0])
			return 2
		}
		id, args = n, args[1:]
	}
	fs := flag.NewFlagSet("admin reports", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := defaultServeConfig()
	data := fs.String("data", "", "the provider's data directory (default: the config's, else "+cfg.DataDir+")")
	configFile := fs.String("config", "", "serve's configuration file (for data_dir and trust_file)")
	storeDSN := fs.String("store", "", "the provider's store, if not the data directory's SQLite (default: the config's store)")
	trust := fs.String("trust", "", "the provider's trust file (suspend-partner; default: the config's trust_file)")
	message := fs.String("message", defaultWarning, "the warning's text (warn)")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		fmt.Fprintln(stderr, reportsUsage)
		return 2
	}
	if *configFile != "" {
		raw, err := os.ReadFile(*configFile)
		if err != nil {
			fmt.Fprintln(stderr, "switchboard:", err)
			return 1
		}
		if err := decodeServeConfig(raw, &cfg); err != nil {
			fmt.Fprintf(stderr, "switchboard: %s: %v\n", *configFile, err)
			return 1
		}
	}
	if *data != "" {
		cfg.DataDir = *data
	}
	if *trust != "" {
		cfg.TrustFile = *trust
	}
	if *storeDSN != "" {
		cfg.Store = *storeDSN
	}
	a, err := openReportsAdmin(cfg.DataDir, cfg.Store, cfg.TrustFile)
	if err != nil {
		fmt.Fprintln(stderr, "switchboard:", err)
		return 1
	}
	defer a.st.Close()
	ctx := context.Background()
	switch verb {
	case "list":
		err = a.list(ctx, stdout)
	case "show":
		err = a.show(ctx, stdout, id)
	case "warn":
		err = a.warn(ctx, stdout, id, *message)
	case "suspend-user":
		err = a.suspendUser(ctx, stdout, id)
	case "suspend-partner":
		err = a.suspendPartner(ctx, stdout, id)
	case "dismiss":
		err = a.handle(ctx, id, "dismiss", "")
		if err == nil {
			fmt.Fprintf(stdout, "report %d dismissed\n", id)
		}
	default:
		fmt.Fprintln(stderr, reportsUsage)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "switchboard:", err)
		return 1
	}
	return 0
}

// reportsAdmin is the report queue of one data directory.
type reportsAdmin struct {
	st     store.Store
	domain string // this provider's
	trust  string // the trust file, if known
}

// openReportsAdmin opens a data directory that serve has used: its store,
// and its CA for the provider's domain. It makes neither.
func openReportsAdmin(dir, dsn, trust string) (*reportsAdmin, error) {
	certPEM, err1 := os.ReadFile(filepath.Join(dir, "ca.pem"))    // #nosec G304 -- the operator's data directory
	keyPEM, err2 := os.ReadFile(filepath.Join(dir, "ca-key.pem")) // #nosec G304 -- the operator's data directory
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("%s is not a provider's data directory: %w", dir, err)
	}
	ca, err := identity.LoadCA(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	if dsn == "" || dsn == "sqlite" {
		if _, err := os.Stat(filepath.Join(dir, "provider.db")); err != nil {
			return nil, fmt.Errorf("%s is not a provider's data directory: %w", dir, err)
		}
	}
	st, err := node.OpenStore(dir, dsn)
	if err != nil {
		return nil, err
	}
	return &reportsAdmin{st: st, domain: ca.Domain(), trust: trust}, nil
}

func (a *reportsAdmin) list(ctx context.Context, w io.Writer) error {
	rs, err := a.st.Reports(ctx)
	if err != nil {
		return err
	}
	if len(rs) == 0 {
		fmt.Fprintln(w, "no reports")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tWHEN\tROOM\tREPORTER\tALLEGED ABUSER\tREASON\tFROM\tVERIFIED BY\tSTATE")
	for _, r := range rs {
		state := r.State
		if r.State == store.ReportHandled {
			state = r.Action + " " + r.Handled.Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Created.Format(time.DateTime), r.Room, orDash(r.Reporter),
			r.AllegedAbuser, federation.AbuseType(r.Reason), r.From, r.VerifiedBy, state)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (a *reportsAdmin) show(ctx context.Context, w io.Writer, id int64) error {
	r, err := a.report(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "report %d, %s\n", r.ID, r.Created.Format(time.RFC3339))
	fmt.Fprintf(w, "room:           %s\nreporter:       %s\nalleged abuser: %s\nreason:         %s\nfrom:           %s\nverified by:    %s\nnote:           %s\n",
		r.Room, orDash(r.Reporter), r.AllegedAbuser, federation.AbuseType(r.Reason), r.From, r.VerifiedBy, r.Note)
	if r.State == store.ReportHandled {
		fmt.Fprintf(w, "handled:        %s at %s %s\n", r.Action, r.Handled.Format(time.RFC3339), r.ActionNote)
	} else {
		fmt.Fprintln(w, "state:          open")
	}
	var rep federation.AbuseReport
	if err := mls.Unmarshal(r.Body, &rep); err != nil {
		return fmt.Errorf("report %d: stored report does not decode: %w", id, err)
	}
	for i, m := range rep.Messages {
		text := "(not MIMI content)"
		if msg, err := content.Decode(m.MessageContent); err == nil {
			text = msg.Text()
			if text == "" {
				text = fmt.Sprintf("[%s message]", msg.Kind())
			}
		}
		fmt.Fprintf(w, "message %d, accepted %s:\n  %s\n", i+1, time.UnixMilli(int64(m.AcceptedTimestamp)).UTC().Format(time.RFC3339), text) // #nosec G115 -- a millisecond timestamp, far below 2^63
	}
	return nil
}

// report reads an open report, or says why it cannot be acted on.
func (a *reportsAdmin) report(ctx context.Context, id int64) (store.Report, error) {
	r, err := a.st.ReportByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return r, fmt.Errorf("no report %d", id)
	}
	return r, err
}

func (a *reportsAdmin) openReport(ctx context.Context, id int64) (store.Report, identity.URI, error) {
	r, err := a.report(ctx, id)
	if err != nil {
		return r, identity.URI{}, err
	}
	if r.State != store.ReportOpen {
		return r, identity.URI{}, fmt.Errorf("report %d was already handled (%s)", id, r.Action)
	}
	u, err := identity.ParseURI(r.AllegedAbuser)
	if err != nil || u.Kind != identity.KindUser {
		return r, identity.URI{}, fmt.Errorf("report %d names %q, not a user", id, r.AllegedAbuser)
	}
	return r, u, nil
}

// localUser is the alleged abuser as a user of this provider, or an error
// naming the provider that must act instead.
func (a *reportsAdmin) localUser(ctx context.Context, r store.Report, u identity.URI, what string) (store.User, error) {
	if u.Domain != a.domain {
		return store.User{}, fmt.Errorf("%s is a user of %s, not of %s: only %s can %s them (report %d was forwarded there when it was made; use suspend-partner to stop federating with %s)",
			u, u.Domain, a.domain, u.Domain, what, r.ID, u.Domain)
	}
	user, err := a.st.UserByHandle(ctx, u.User)
	if err != nil {
		return store.User{}, fmt.Errorf("no user %s here: %w", u, err)
	}
	return user, nil
}

func (a *reportsAdmin) warn(ctx context.Context, w io.Writer, id int64, text string) error {
	r, u, err := a.openReport(ctx, id)
	if err != nil {
		return err
	}
	user, err := a.localUser(ctx, r, u, "warn")
	if err != nil {
		return err
	}
	if _, err := a.st.AddNotice(ctx, store.Notice{UserID: user.ID, Text: text, Report: r.ID}); err != nil {
		return err
	}
	if err := a.handle(ctx, id, "warn", text); err != nil {
		return err
	}
	fmt.Fprintf(w, "report %d: %s warned\n", id, user.Handle)
	return nil
}

func (a *reportsAdmin) suspendUser(ctx context.Context, w io.Writer, id int64) error {
	r, u, err := a.openReport(ctx, id)
	if err != nil {
		return err
	}
	user, err := a.localUser(ctx, r, u, "suspend")
	if err != nil {
		return err
	}
	if err := a.st.SetSuspended(ctx, user.ID, true); err != nil {
		return err
	}
	if err := a.handle(ctx, id, "suspend-user", ""); err != nil {
		return err
	}
	fmt.Fprintf(w, "report %d: %s suspended: sign-in, sessions and sending are refused\n", id, user.Handle)
	return nil
}

func (a *reportsAdmin) suspendPartner(ctx context.Context, w io.Writer, id int64) error {
	_, u, err := a.openReport(ctx, id)
	if err != nil {
		return err
	}
	if u.Domain == a.domain {
		return fmt.Errorf("%s is a user of this provider: use suspend-user", u)
	}
	if a.trust == "" {
		return errors.New("suspend-partner needs the trust file: give --trust FILE or --config FILE (serve's configuration)")
	}
	if err := federation.SetPartnerSuspended(a.trust, u.Domain, true); err != nil {
		return err
	}
	if err := a.handle(ctx, id, "suspend-partner", u.Domain); err != nil {
		return err
	}
	fmt.Fprintf(w, "report %d: partner %s suspended in %s; a running provider applies it within %s, or at once on SIGHUP\n", id, u.Domain, a.trust, node.TrustWatchInterval)
	return nil
}

func (a *reportsAdmin) handle(ctx context.Context, id int64, action, note string) error {
	err := a.st.HandleReport(ctx, id, action, note, clock.Now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("no report %d", id)
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("report %d was already handled", id)
	}
	return err
}
