// Package clock is the one source of wall-clock time for Switchboard's
// product code: timestamps sent to partners and devices, expiry checks,
// certificates, KeyPackage lifetimes, tokens, rate-limit, replay and
// retention windows all read Now.
//
// Now is time.Now shifted by an offset that the process takes once, at
// start, from the environment variable SWITCHBOARD_CLOCK_SKEW (a Go
// duration such as "-7m" or "2h"). It is a testing hook: every process on
// one machine shares one clock, and Go reads it without a system call that
// a tool like libfaketime could intercept, so the clock-skew tests
// (test/clockskew) make a provider's or a device's clock run ahead or
// behind through this variable. Unset, Now is time.Now.
//
// The reading keeps its monotonic part (time.Time.Add keeps it), so
// durations measured between two readings of Now are as exact as with
// time.Now.
package clock

import (
	"fmt"
	"os"
	"time"
)

// EnvSkew names the environment variable read at start.
const EnvSkew = "SWITCHBOARD_CLOCK_SKEW"

var skew, skewErr = parseSkew(os.Getenv(EnvSkew))

// parseSkew reads the variable's value; empty is no skew.
func parseSkew(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("clock: %s=%q is not a duration such as -7m or 2h: %w", EnvSkew, v, err)
	}
	return d, nil
}

// Now returns the current wall-clock time, shifted by the process's skew.
func Now() time.Time { return time.Now().Add(skew) }

// Skew returns the offset Now adds to time.Now, and an error if the
// environment variable was set to something that is not a duration (the
// offset is then zero). A command checks it at start so that a mistyped
// value is refused instead of ignored.
func Skew() (time.Duration, error) { return skew, skewErr }

// Skewed returns a clock like Now that is skew ahead of the real one (behind
// if skew is negative), for a component given its own clock in a test.
func Skewed(d time.Duration) func() time.Time {
	return func() time.Time { return time.Now().Add(d) }
}
