// Package chaos tests that crashes lose and duplicate nothing: two
// providers, green.test and blue.test, run as `switchboard serve`
// processes and are partners over federation; people on both chat under
// steady load in rooms each hosts while green, blue, or both at once are
// killed with SIGKILL at random moments and started again on the same
// data directory and ports. Afterwards every message acknowledged to its
// sender must be on every other member's device exactly once, at the
// same place in the room's order everywhere.
//
// The test kills 3 times; SWITCHBOARD_CHAOS_KILLS=N kills N times (the
// long local run). SWITCHBOARD_TEST_LOG=1 echoes the processes' logs.
// See docs/reliability.md.
package chaos
