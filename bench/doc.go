// Package bench measures a Switchboard deployment under load, as
// `switchboard bench` runs it: it starts providers in this process (or
// uses running ones given as targets), creates the users and devices a
// workload needs through the same paths an operator and a device use,
// drives the workload, and reports what it measured.
//
// Workloads: pairs (devices chatting 1:1, on one provider or across two),
// group (one room over three providers, one sender, every member
// receiving), join (devices invited one at a time into such a room: until
// the committer merged, the new device joined and sent, every member
// processed the commit) and idle (devices holding their WebSocket stream
// open). Load
// is open-loop at a fixed rate, latency counted from each message's
// intended send time so that a slow server cannot hide its slowness by
// slowing the load (no coordinated omission), or saturation with a bounded
// number of unacknowledged sends per sender. Payloads are relay (devices
// post MLS PrivateMessages made without MLS work: the server's path alone)
// or e2ee (every device encrypts and decrypts with the SDK).
//
// A message counts as delivered only when the receiving device has it
// (in e2ee: decrypted); latency runs from the intended send time to then.
// Everything is bounded in count and time and stops by itself;
// docs/performance.md has the commands and the figures.
package bench
