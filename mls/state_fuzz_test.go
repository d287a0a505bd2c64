package mls

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"slices"
	"testing"
)

// FuzzRestoreGroup feeds RestoreGroup mutations of real saved states. Any
// input must either restore or fail with ErrInvalidState, never panic; and
// a state it accepts must save back to exactly the same bytes, since the
// format has one encoding per state.
//
// A mutated state almost never matches its checksum, which would stop the
// fuzzer at the first check. So the fuzzed bytes are a state without its
// checksum, and each is tried twice: as given (checksum failure, or a lucky
// match) and with a correct checksum appended, which lets the mutation reach
// the decoder and the consistency checks.
func FuzzRestoreGroup(f *testing.F) {
	for _, saved := range stateSamples(f) {
		f.Add(saved[:len(saved)-sha256.Size])
	}
	f.Add([]byte{})
	f.Add([]byte{stateFormat})
	f.Fuzz(func(t *testing.T, body []byte) {
		if _, err := RestoreGroup(body, GroupConfig{}); err != nil && !errors.Is(err, ErrInvalidState) {
			t.Fatalf("error not wrapping ErrInvalidState: %v", err)
		}
		sum := sha256.Sum256(body)
		data := append(slices.Clip(body), sum[:]...)
		g, err := RestoreGroup(data, GroupConfig{})
		if err != nil {
			if !errors.Is(err, ErrInvalidState) {
				t.Fatalf("error not wrapping ErrInvalidState: %v", err)
			}
			return
		}
		again, err := g.MarshalState()
		if err != nil {
			t.Fatalf("a restored group cannot be saved: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("accepted state saves differently:\n in  %x\n out %x", data, again)
		}
	})
}

// FuzzRestoreGroupApart is FuzzRestoreGroup for a state saved with its
// tree apart: mutations of both parts either restore, and save back to the
// same two parts, or fail with ErrInvalidState.
func FuzzRestoreGroupApart(f *testing.F) {
	for _, saved := range stateSamples(f) {
		g, err := RestoreGroup(saved, GroupConfig{})
		if err != nil {
			f.Fatal(err)
		}
		state, err := g.MarshalStateApart()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(state[:len(state)-sha256.Size], g.MarshalTree())
	}
	f.Add([]byte{stateFormatTreeApart}, []byte{})
	f.Fuzz(func(t *testing.T, body, tree []byte) {
		sum := sha256.Sum256(body)
		data := append(slices.Clip(body), sum[:]...)
		g, err := RestoreGroupApart(data, tree, GroupConfig{})
		if err != nil {
			if !errors.Is(err, ErrInvalidState) {
				t.Fatalf("error not wrapping ErrInvalidState: %v", err)
			}
			return
		}
		state, err := g.MarshalStateApart()
		if err != nil {
			t.Fatalf("a restored group cannot be saved: %v", err)
		}
		if !bytes.Equal(state, data) || !bytes.Equal(g.MarshalTree(), tree) {
			t.Fatalf("accepted state saves differently")
		}
	})
}
