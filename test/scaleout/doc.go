// Package scaleout tests a provider deployed as docs/deploy.md says, with
// real processes: the switchboard binary is built once, three
// `switchboard serve` replicas of green.test share a PostgreSQL schema and
// a NATS server of the test's own behind a TCP load balancer (client API
// and federation), and blue.test runs as one process on SQLite. People on
// both chat under steady load while a replica is killed with SIGKILL and
// later started again, and while NATS restarts; every acknowledged message
// must reach every other device of its room exactly once, at the same
// place in the room's order everywhere.
//
// Without PostgreSQL or a nats-server binary the test skips saying why,
// unless SWITCHBOARD_REQUIRE_SERVICES=1; SWITCHBOARD_TEST_LOG=1 echoes the
// processes' logs.
package scaleout
