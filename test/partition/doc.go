// Package partition tests that network faults between providers lose and
// duplicate nothing, and that a broken partner does not slow a healthy
// one: three providers, green.test, blue.test and red.test, run as
// `switchboard serve` processes; green and blue reach each other only
// through fault proxies (test/faultproxy) that delay, drop, reset,
// truncate and blackhole their traffic, both ways and one way, while
// people on all three chat under steady load. Afterwards every message
// acknowledged to its sender must be on every other member's device
// exactly once, in the same order everywhere, and green–red messages must
// have kept flowing during every fault.
//
// The test runs every fault once; SWITCHBOARD_PARTITION_ROUNDS=N runs them
// N times (the long local run). SWITCHBOARD_TEST_LOG=1 echoes the
// processes' and devices' logs. See docs/reliability.md.
package partition
