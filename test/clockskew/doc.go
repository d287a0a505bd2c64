// Package clockskew tests that providers and devices whose clocks
// disagree by minutes still deliver every message once and in order,
// federate, sign in, rate-limit and share attachments (issue 11).
//
// Every process on one machine reads one clock, so the skew is made by
// Switchboard itself: each provider runs as a `switchboard serve` process
// with SWITCHBOARD_CLOCK_SKEW set (package clock), and each SDK device has
// a clock of its own (client.Options.Now). See docs/reliability.md,
// "Clock skew".
package clockskew
