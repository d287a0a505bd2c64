package client

import "testing"

// The reader's end reaches the loop even when it came right after frames
// the loop takes in one go (their signals are one).
func TestInboundEndAfterFrames(t *testing.T) {
	in := newInbound()
	in.add(frame{Cursor: 1, Message: &wireMessage{}})
	in.add(frame{Cursor: 2, Message: &wireMessage{}})
	in.end(nil)
	<-in.more
	batch, done, _ := in.take(streamBatch)
	if len(batch) != 2 || done {
		t.Fatalf("took %d frames, done %v", len(batch), done)
	}
	select {
	case <-in.more:
	default:
		t.Fatal("the end was not signalled after the last frames were taken")
	}
	if batch, done, _ := in.take(streamBatch); len(batch) != 0 || !done {
		t.Fatalf("after the end: %d frames, done %v", len(batch), done)
	}
}
