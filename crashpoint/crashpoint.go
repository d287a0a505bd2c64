// Package crashpoint crashes the process at a chosen place, for tests.
//
// Random kills (test/chaos) rarely land in the narrow windows that matter
// most: between storing a commit and answering it, between a partner
// accepting a notify and the outbox deleting it. A crash point names such
// a window. Started with SWITCHBOARD_CRASH_AT=NAME (or NAME@N, the Nth time
// the point is reached), the process kills itself with SIGKILL on the
// spot when it gets there: no deferred function runs and nothing is
// flushed, exactly as a power cut or the kernel's OOM killer would end it.
// Without the variable, Reached is one check of a boolean set at start.
//
// The points are the constants below (docs/reliability.md says what each
// window is); an unknown name in the variable stops the process at start
// rather than silently never crashing.
package crashpoint

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
)

// EnvVar is the environment variable that arms a crash point.
const EnvVar = "SWITCHBOARD_CRASH_AT"

// The crash points.
const (
	// HubCommitStored: the hub has stored a commit (with its deliveries
	// and fan-out, one transaction) and has not answered the committer.
	HubCommitStored = "hub-commit-stored"
	// HubWelcomeStored: the same for a commit that adds members: its
	// Welcome is stored and queued, but neither the local joiners nor
	// the outbox were woken, and the committer has no answer.
	HubWelcomeStored = "hub-welcome-stored"
	// HubMessageStored: the hub has stored an application message and has
	// not answered its sender.
	HubMessageStored = "hub-message-stored"
	// ForwardAccepted: a follower forwarded its device's message or
	// commit, the hub accepted it, and the follower has not answered the
	// device.
	ForwardAccepted = "forward-accepted"
	// FollowerCommitStored, FollowerWelcomeStored, FollowerMessageStored:
	// a follower has stored what the hub's notify brought (a commit, a
	// Welcome, an application message) and has not answered the hub.
	FollowerCommitStored  = "follower-stored-commit"
	FollowerWelcomeStored = "follower-stored-welcome"
	FollowerMessageStored = "follower-stored-application"
	// OutboxSent: a partner accepted outbox entries (one, or a batch) and
	// the sender has not deleted them, so they are sent again.
	OutboxSent = "outbox-sent"
	// OutboxRetrySent: the same, for a retry (an entry that failed
	// before): a partner that came back accepted it.
	OutboxRetrySent = "outbox-retry-sent"
	// OutboxFailureRecorded: an attempt failed and the outbox recorded it
	// and when to retry; the retry is left to the next start.
	OutboxFailureRecorded = "outbox-failure-recorded"
)

// Points lists every crash point.
var Points = []string{
	HubCommitStored, HubWelcomeStored, HubMessageStored, ForwardAccepted,
	FollowerCommitStored, FollowerWelcomeStored, FollowerMessageStored,
	OutboxSent, OutboxRetrySent, OutboxFailureRecorded,
}

// armed is set once, before main, and only read after: no lock needed.
var (
	armed  bool
	target string
	nth    int64
	count  atomic.Int64
)

func init() {
	v, ok := os.LookupEnv(EnvVar)
	if !ok || v == "" {
		return
	}
	name, n, err := Parse(v)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%v\n", err)
		os.Exit(2)
	}
	armed, target, nth = true, name, n
}

// Parse reads the variable's value: NAME or NAME@N, NAME one of Points
// and N a count from 1.
func Parse(v string) (name string, n int64, err error) {
	name, at, hasAt := strings.Cut(v, "@")
	n = 1
	if hasAt {
		n, err = strconv.ParseInt(at, 10, 64)
		if err != nil || n < 1 {
			return "", 0, fmt.Errorf("crashpoint: %s=%q: want NAME or NAME@N, N a count from 1", EnvVar, v)
		}
	}
	for _, p := range Points {
		if p == name {
			return name, n, nil
		}
	}
	return "", 0, fmt.Errorf("crashpoint: %s=%q: no crash point %q (there are: %s)", EnvVar, v, name, strings.Join(Points, ", "))
}

// Armed returns the armed point and its count, or "" if none is.
func Armed() (name string, n int64) {
	if !armed {
		return "", 0
	}
	return target, nth
}

// Reached marks the point name: if it is the armed one and this is the
// time it was armed for, the process dies here by SIGKILL.
func Reached(name string) {
	if armed {
		reached(name)
	}
}

// ReachedIf is Reached when cond holds, for a point that is one case of a
// code path (a commit among the messages stored there).
func ReachedIf(cond bool, name string) {
	if armed && cond {
		reached(name)
	}
}

func reached(name string) {
	if name != target || count.Add(1) != nth {
		return
	}
	// Said on stderr (unbuffered), so that a test can tell this crash
	// from any other.
	fmt.Fprintf(os.Stderr, "crashpoint: %s reached (time %d): SIGKILL\n", name, nth)
	p, err := os.FindProcess(os.Getpid())
	if err == nil {
		p.Kill()
	}
	// The signal is delivered asynchronously: nothing more may happen.
	select {}
}
