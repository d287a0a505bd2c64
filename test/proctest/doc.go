// Package proctest runs Switchboard as an operator does, for tests that
// need real processes: it builds the switchboard binary, runs `switchboard
// admin` commands, and starts `switchboard serve` processes whose logs it
// keeps, ends by SIGTERM or, as a crash does, by SIGKILL. Used by the
// scale-out and chaos tests.
package proctest
