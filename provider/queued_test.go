package provider_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/provider"
)

// A device sends a burst of messages at once, each posted twice in
// parallel (a retry racing its original). The hub checks and queues each
// room message under the room's lock but waits for its COMMIT without it,
// so many are in flight together. Every post is answered; an original and
// its retry name the same Seq and only one of them is new; the log holds
// every message once, with no gap; the other member's queue has them in
// the log's order. Then every message is retried while new ones are sent:
// the retries get their first answers and the new ones the next Seqs.
func TestABurstOfSendsIsLoggedOnceInOrderWithoutGaps(t *testing.T) {
	p := newProvider(t, provider.Config{})
	alice := p.newRawDevice("alice", "phone")
	victor := p.newRawDevice("victor", "phone")
	victor.uploadKeyPackages(1)
	g, room := alice.createRoom()
	res, err := g.Commit(mls.CommitOptions{Proposals: []*mls.Proposal{{Type: mls.ProposalAdd, Add: alice.claim("victor")[0]}}, InlineTree: true})
	if err != nil {
		t.Fatal(err)
	}
	p.call("POST", "/v1/rooms/"+room+"/messages", alice.token, map[string]any{"client_id": "add-victor-1", "message": mls.Marshal(res.Commit), "welcome": mls.Marshal(res.Welcome)}, nil)
	if _, err := g.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	const first = 3 // after the commit (1) and its Welcome (2)

	const n = 40
	msgs := make([][]byte, n)
	for i := range msgs {
		m, err := g.Encrypt(fmt.Appendf(nil, "message %d", i), nil)
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = mls.Marshal(m)
	}
	type answer struct {
		status    int
		Seq       int64 `json:"seq"`
		Duplicate bool  `json:"duplicate"`
	}
	answers := make([][2]answer, n)
	var wg sync.WaitGroup
	for i := range msgs {
		for k := range 2 {
			wg.Go(func() {
				r := alice.submit(room, fmt.Sprintf("burst-%04d", i), msgs[i])
				a := &answers[i][k]
				a.status = r.status
				if r.status == 200 {
					json.Unmarshal(r.body, a)
				} else {
					t.Errorf("message %d, post %d: %d %s", i, k, r.status, r.body)
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	payloadAt := map[int64][]byte{}
	for i, a := range answers {
		if a[0].Seq != a[1].Seq || a[0].Duplicate == a[1].Duplicate {
			t.Fatalf("message %d: an original and its retry answered %+v and %+v", i, a[0], a[1])
		}
		if _, taken := payloadAt[a[0].Seq]; taken || a[0].Seq < first || a[0].Seq >= first+n {
			t.Fatalf("message %d got seq %d, taken already or outside %d..%d", i, a[0].Seq, first, first+n-1)
		}
		payloadAt[a[0].Seq] = msgs[i]
	}

	var log struct {
		Messages []struct {
			Seq     int64  `json:"seq"`
			Payload []byte `json:"payload"`
		} `json:"messages"`
	}
	p.call("GET", "/v1/rooms/"+room+"/messages?after=0&limit=1000", alice.token, nil, &log)
	if len(log.Messages) != first-1+n {
		t.Fatalf("the log holds %d messages, want %d", len(log.Messages), first-1+n)
	}
	for i, m := range log.Messages {
		if m.Seq != int64(i+1) {
			t.Fatalf("log entry %d has seq %d: a gap or a repeat", i, m.Seq)
		}
		if m.Seq >= first && !bytes.Equal(m.Payload, payloadAt[m.Seq]) {
			t.Fatalf("seq %d holds another message than the one answered with it", m.Seq)
		}
	}

	var inbox struct {
		Entries []struct {
			Cursor  int64 `json:"cursor"`
			Message struct {
				Seq  int64  `json:"seq"`
				Kind string `json:"kind"`
			} `json:"message"`
		} `json:"entries"`
	}
	p.call("GET", "/v1/inbox?after=0&limit=1000", victor.token, nil, &inbox)
	var seqs []int64
	for _, e := range inbox.Entries {
		if e.Message.Kind == "application" {
			seqs = append(seqs, e.Message.Seq)
		}
	}
	if len(seqs) != n {
		t.Fatalf("victor's queue has %d application messages, want %d", len(seqs), n)
	}
	for i, s := range seqs {
		if s != int64(first+i) {
			t.Fatalf("victor's queue, entry %d: seq %d, want %d (in the log's order)", i, s, first+i)
		}
	}

	// Every message is posted again (its device never saw the answer,
	// say) while new ones are posted: the retries get their first
	// answers, the new ones the next Seqs, and nobody gets an error.
	fresh := make([][]byte, n/2)
	for i := range fresh {
		m, err := g.Encrypt(fmt.Appendf(nil, "fresh %d", i), nil)
		if err != nil {
			t.Fatal(err)
		}
		fresh[i] = mls.Marshal(m)
	}
	freshSeqs := make([]int64, len(fresh))
	for i := range msgs {
		wg.Go(func() {
			var a answer
			r := alice.submit(room, fmt.Sprintf("burst-%04d", i), msgs[i])
			if r.status != 200 || json.Unmarshal(r.body, &a) != nil || !a.Duplicate || a.Seq != answers[i][0].Seq {
				t.Errorf("message %d again: %d %s, want seq %d again", i, r.status, r.body, answers[i][0].Seq)
			}
		})
	}
	for i := range fresh {
		wg.Go(func() {
			var a answer
			r := alice.submit(room, fmt.Sprintf("fresh-%04d", i), fresh[i])
			if r.status != 200 || json.Unmarshal(r.body, &a) != nil || a.Duplicate {
				t.Errorf("fresh message %d: %d %s", i, r.status, r.body)
			}
			freshSeqs[i] = a.Seq
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	slices.Sort(freshSeqs)
	for i, s := range freshSeqs {
		if s != int64(first+n+i) {
			t.Fatalf("the fresh messages got seqs %v, want %d..%d", freshSeqs, first+n, first+n+len(fresh)-1)
		}
	}

	next, err := g.Encrypt([]byte("after the burst"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var a answer
	if r := alice.submit(room, "after-burst", mls.Marshal(next)); r.status != 200 || json.Unmarshal(r.body, &a) != nil || a.Seq != first+n+int64(len(fresh)) {
		t.Fatalf("the message after the burst: %d %s, want seq %d", r.status, r.body, first+n+len(fresh))
	}
}
