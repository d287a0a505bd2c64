package bench

import (
	"context"
	"testing"
	"time"
)

// A room set up in several invitation batches: the members invited first
// process the later batches' commits after their Welcome, and the joins
// begin only once every member is in the room's epoch. With batches of
// two, a room of 6 is made by the creator and three commits (2, 2, 1).
func TestJoinAfterARoomSetUpInBatches(t *testing.T) {
	defer func(n int) { inviteBatch = n }(inviteBatch)
	inviteBatch = 2
	s := Defaults(WorkloadJoin)
	s.Members, s.Joins = 6, 2
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := Run(ctx, s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := rep.Runs[0].Join
	// Epoch 0 is the creator's alone; three batch commits make epoch 3,
	// and the joins epochs 4 and 5.
	if len(f.PerJoin) != 2 || f.PerJoin[0].Epoch != 4 || f.PerJoin[1].Epoch != 5 {
		t.Fatalf("joins: %+v", f.PerJoin)
	}
	if f.MembersReached != 5+6 || f.MembersExpected != 5+6 {
		t.Errorf("%d of %d members reached the new epoch", f.MembersReached, f.MembersExpected)
	}
}
