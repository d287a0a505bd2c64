// Package crashpoints crashes providers at chosen points of a commit, a
// Welcome, a message and an outbox retry, and stops them gracefully under
// load, and checks that nothing is lost, duplicated or left half done.
//
// Random kills (test/chaos) rarely land in the narrow windows inside an
// operation. Here green.test and blue.test run as `switchboard serve`
// processes, one of them started with SWITCHBOARD_CRASH_AT naming a crash
// point (package crashpoint), and people on both go through a script: a
// room, members added from the other provider (commit and Welcome),
// messages both ways, a member removed, the partner away for a moment so
// that the outbox retries. The armed provider kills itself with SIGKILL
// at its point and is started again without it; afterwards every member
// is at the same epoch, each joiner joined once, and every acknowledged
// message reached every other member once, in order.
//
// TestGracefulShutdownUnderLoad sends SIGTERM to each provider in turn
// while devices send steadily across both, and checks that it exits by
// itself within its drain timeout, that what was acknowledged arrives
// exactly once, and that what was refused meanwhile was refused cleanly,
// as something to retry.
//
// SWITCHBOARD_TEST_LOG=1 echoes the processes' and devices' logs. See
// docs/reliability.md.
package crashpoints
