// Package chatsim simulates the people in the process-level scenario tests
// (chaos, partition, crash points, full disk, clock skew, scale-out): a
// Device is a person's app on one device, an SDK client with its stream
// open, recording everything it receives; a SendLog records what each
// send was told (its seq, or its error); and Verify checks that every
// acknowledged message reached every other device of its room exactly
// once, in seq order, the same message at each seq everywhere, with no
// decryption failures. What is particular to one scenario (its faults,
// its extra checks) stays in that scenario's package.
package chatsim
