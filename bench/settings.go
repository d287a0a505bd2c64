package bench

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Workloads and payload modes.
const (
	WorkloadPairs = "pairs"
	WorkloadGroup = "group"
	WorkloadIdle  = "idle"
	WorkloadJoin  = "join"

	PayloadRelay = "relay"
	PayloadE2EE  = "e2ee"

	// How relay devices submit: as send frames on their stream, or as
	// POSTs. (The SDK, for e2ee, sends over its stream while it has one.)
	SubmitStream = "stream"
	SubmitHTTP   = "http"

	// Where the SDK devices keep their state (Settings.DeviceStorage).
	StorageDisk   = "disk"
	StorageMemory = "memory"
)

// Bounds on the settings: a run is bounded in count and time whatever it
// is asked.
const (
	MaxDuration = 10 * time.Minute
	MaxDrain    = 2 * time.Minute
	MaxPairs    = 5000
	MaxMembers  = 1000
	MaxJoins    = 1000
	MaxConns    = 100_000
	MaxRate     = 100000
	MaxWindow   = 1000
	MaxMessages = 10_000_000
	// MaxSize keeps a message within a provider's default body limit
	// (1 MiB of JSON, in which the message is base64).
	MaxSize = 512 << 10
	// HeaderSize is what every measured message carries first: who sent
	// it, its number and its intended send time.
	HeaderSize = 16
)

// Settings say what to run. The zero value is not valid; Defaults gives
// the command's defaults. The report carries them as SettingsJSON.
type Settings struct {
	Workload string
	// Pairs is the number of 1:1 pairs (pairs); Cross puts the two sides
	// of each pair on different providers.
	Pairs int
	Cross bool
	// Members is the size of the room (group, join: before the first
	// join); Joins is how many devices join it one after another (join).
	Members int
	Joins   int
	// Conns is the number of devices holding a stream open (idle).
	Conns int
	// Payloads are the payload modes to run, one run each.
	Payloads []string
	// Size is the payload in bytes: the ciphertext of a relay message, the
	// body content of an e2ee one.
	Size int
	// Rate is the offered load of the open-loop mode, in messages a second
	// over all senders. Window > 0 selects saturation instead: each sender
	// keeps at most Window sends unacknowledged by the provider.
	Rate   float64
	Window int
	// Submit is how relay devices send: SubmitStream or SubmitHTTP.
	Submit string
	// DeviceStorage is where the SDK devices keep their state:
	// StorageDisk (under Dir) or StorageMemory (a directory in /dev/shm).
	// The devices stand for people's phones, each with a disk of its own;
	// on disk here, hundreds of them share one disk, and their fsyncs
	// queue up behind one another and the providers'. In memory, only the
	// providers write to the disk, and each device's saves cost what
	// encoding them costs.
	DeviceStorage string
	// Duration bounds the load (idle: how long the streams are held);
	// Messages, if set, bounds the messages sent in all. Drain is how long
	// deliveries are waited for after the last send.
	Duration time.Duration
	Messages int
	Drain    time.Duration
	// Targets are running providers to use instead of starting them here.
	Targets []Target
	// Spawn starts the providers as `switchboard serve` processes (Binary,
	// default this program), partners of one another, instead of in this
	// process: their CPU and memory are then theirs alone.
	Spawn  bool
	Binary string
	// logDir is where spawned providers' logs go (set by Run).
	logDir string
	// Dir keeps the providers' data and the devices' state (default: a
	// temporary directory, removed after the run).
	Dir string
}

// Target is a running provider (`switchboard serve`) on this machine.
type Target struct {
	// URL is its client API.
	URL string `json:"url"`
	// DataDir is its data directory and Store its store (as `switchboard
	// admin` takes them): the bench creates its users there, as the
	// operator's `admin user add` does.
	DataDir string `json:"data_dir"`
	Store   string `json:"store,omitempty"`
	// PID, if set, is the provider's process, whose CPU time and memory
	// are then measured (from /proc).
	PID int `json:"pid,omitempty"`
}

// Defaults returns the command's defaults for a workload.
func Defaults(workload string) Settings {
	return Settings{
		Workload: workload,
		Pairs:    10,
		Members:  20,
		Joins:    10,
		Conns:    200,
		Payloads: []string{PayloadRelay, PayloadE2EE},
		Size:     256,
		Rate:     100,
		Submit:   SubmitStream,

		DeviceStorage: StorageDisk,
		Duration:      10 * time.Second,
		Drain:         10 * time.Second,
	}
}

// ErrSettings is what every invalid setting wraps.
var ErrSettings = errors.New("bench: invalid settings")

func bad(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrSettings, fmt.Sprintf(format, args...))
}

// Saturation reports whether the run is in saturation mode.
func (s *Settings) Saturation() bool { return s.Window > 0 }

// Validate checks the settings against the workload and the bounds.
func (s *Settings) Validate() error {
	switch s.Workload {
	case WorkloadPairs:
		if s.Pairs < 1 || s.Pairs > MaxPairs {
			return bad("pairs must be 1 to %d", MaxPairs)
		}
	case WorkloadGroup:
		if s.Members < 2 || s.Members > MaxMembers {
			return bad("members must be 2 to %d", MaxMembers)
		}
	case WorkloadJoin:
		if s.Members < 2 || s.Members > MaxMembers {
			return bad("members must be 2 to %d", MaxMembers)
		}
		if s.Joins < 1 || s.Joins > MaxJoins {
			return bad("joins must be 1 to %d", MaxJoins)
		}
		// The new member's first message is an e2ee one of this size.
		if s.Size < HeaderSize || s.Size > MaxSize {
			return bad("size must be %d to %d bytes", HeaderSize, MaxSize)
		}
	case WorkloadIdle:
		if s.Conns < 1 || s.Conns > MaxConns {
			return bad("conns must be 1 to %d", MaxConns)
		}
	default:
		return bad("unknown workload %q: want pairs, group, join or idle", s.Workload)
	}
	if s.Cross && s.Workload != WorkloadPairs {
		return bad("cross is for the pairs workload")
	}
	if s.Duration <= 0 || s.Duration > MaxDuration {
		return bad("duration must be more than 0 and at most %s", MaxDuration)
	}
	if s.Drain < 0 || s.Drain > MaxDrain {
		return bad("drain must be 0 to %s", MaxDrain)
	}
	if s.DeviceStorage != StorageDisk && s.DeviceStorage != StorageMemory {
		return bad("device-storage must be disk or memory")
	}
	if s.Workload == WorkloadPairs || s.Workload == WorkloadGroup {
		if len(s.Payloads) == 0 {
			return bad("payload: name relay, e2ee or both")
		}
		for i, p := range s.Payloads {
			if p != PayloadRelay && p != PayloadE2EE {
				return bad("unknown payload %q: want relay or e2ee", p)
			}
			if slices.Contains(s.Payloads[:i], p) {
				return bad("payload %q named twice", p)
			}
		}
		if s.Size < HeaderSize || s.Size > MaxSize {
			return bad("size must be %d to %d bytes", HeaderSize, MaxSize)
		}
		if s.Window < 0 || s.Window > MaxWindow {
			return bad("window must be 0 (open loop) to %d", MaxWindow)
		}
		if s.Window == 0 && (s.Rate <= 0 || s.Rate > MaxRate) {
			return bad("rate must be more than 0 and at most %d messages a second", MaxRate)
		}
		if s.Submit != SubmitStream && s.Submit != SubmitHTTP {
			return bad("submit must be stream or http")
		}
		if s.Messages < 0 || s.Messages > MaxMessages {
			return bad("messages must be 0 (no limit but the duration) to %d", MaxMessages)
		}
	}
	for i, t := range s.Targets {
		if err := checkLoopback(t.URL); err != nil {
			return bad("target %d: %v", i+1, err)
		}
		if t.DataDir == "" {
			return bad("target %s: its data directory is needed to create the bench's users (--data)", t.URL)
		}
		if t.PID < 0 {
			return bad("target %s: pid must be positive", t.URL)
		}
	}
	if s.Spawn && len(s.Targets) > 0 {
		return bad("spawn starts the providers; targets are providers already running: choose one")
	}
	if len(s.Targets) > 0 && s.providers() > len(s.Targets) {
		return bad("the %s workload needs %d providers; %d targets given", s.Workload, s.providers(), len(s.Targets))
	}
	return nil
}

// devices is how many devices a pairs or group run sets up.
func (s *Settings) devices() int {
	if s.Workload == WorkloadPairs {
		return 2 * s.Pairs
	}
	return s.Members
}

// providers is how many providers the workload spreads over.
func (s *Settings) providers() int {
	switch {
	case s.Workload == WorkloadPairs && s.Cross:
		return 2
	case s.Workload == WorkloadGroup || s.Workload == WorkloadJoin:
		if len(s.Targets) > 0 {
			return min(len(s.Targets), 3)
		}
		return 3
	}
	return 1
}

// checkLoopback refuses a target that is not on this machine: the bench
// sends load to loopback addresses only.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", raw)
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%q is not a loopback address: the bench sends load to this machine only", raw)
}
