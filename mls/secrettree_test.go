package mls

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
)

func stTestTree(t testing.TB, leaves uint32) (*SecretTree, []byte) {
	t.Helper()
	s := ksTestSuite(t)
	secret := bytes.Repeat([]byte{7}, s.HashSize())
	tree, err := NewSecretTree(s, secret, leaves)
	if err != nil {
		t.Fatal(err)
	}
	return tree, secret
}

// The sender's NextKey sequence and a receiver's Key lookups in any order
// within the window give the same keys.
func TestSecretTreeOutOfOrderWithinWindow(t *testing.T) {
	sender, secret := stTestTree(t, 4)
	var sent []RatchetKey
	for range 12 {
		k, err := sender.NextKey(1, ApplicationRatchet)
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, RatchetKey{Generation: k.Generation, Key: slices.Clone(k.Key), Nonce: slices.Clone(k.Nonce)})
	}
	receiver, err := NewSecretTree(sender.Suite(), secret, 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []uint32{5, 2, 0, 11, 1, 3, 4, 10, 6, 9, 8, 7} {
		k, err := receiver.Key(1, ApplicationRatchet, g)
		if err != nil {
			t.Fatalf("generation %d: %v", g, err)
		}
		if k.Generation != g || !bytes.Equal(k.Key, sent[g].Key) || !bytes.Equal(k.Nonce, sent[g].Nonce) {
			t.Fatalf("generation %d: receiver key differs from sender's", g)
		}
		if err := receiver.Consume(1, ApplicationRatchet, g); err != nil {
			t.Fatal(err)
		}
	}
	// The handshake ratchet of the same leaf is untouched and distinct.
	h, err := receiver.Key(1, HandshakeRatchet, 0)
	if err != nil || bytes.Equal(h.Key, sent[0].Key) {
		t.Fatalf("handshake ratchet: %v", err)
	}
}

func TestSecretTreeReusedGenerationRefused(t *testing.T) {
	tree, _ := stTestTree(t, 3)
	if _, err := tree.Key(2, ApplicationRatchet, 5); err != nil {
		t.Fatal(err)
	}
	if err := tree.Consume(2, ApplicationRatchet, 5); err != nil {
		t.Fatal(err)
	}
	_, err := tree.Key(2, ApplicationRatchet, 5)
	var ge *GenerationError
	if !errors.As(err, &ge) || !errors.Is(err, ErrGenerationUsed) || ge.Leaf != 2 || ge.Generation != 5 {
		t.Fatalf("reuse: got %v", err)
	}
	if want := "generation 5 of leaf 2's application ratchet already used"; !strings.Contains(err.Error(), want) {
		t.Fatalf("message %q lacks %q", err, want)
	}
	if err := tree.Consume(2, ApplicationRatchet, 5); !errors.Is(err, ErrGenerationUsed) {
		t.Fatalf("double consume: %v", err)
	}
	// A key the sender used is gone for the sender too.
	k, _ := tree.NextKey(0, HandshakeRatchet)
	if _, err := tree.Key(0, HandshakeRatchet, k.Generation); !errors.Is(err, ErrGenerationUsed) {
		t.Fatalf("own generation: %v", err)
	}
}

func TestSecretTreeForwardJumpLimit(t *testing.T) {
	tree, _ := stTestTree(t, 2)
	_, err := tree.Key(1, ApplicationRatchet, 3000)
	if !errors.Is(err, ErrGenerationTooFar) {
		t.Fatalf("jump of 3000: %v", err)
	}
	if want := "generation 3000 is more than 1000 ahead of leaf 1's application ratchet"; !strings.Contains(err.Error(), want) {
		t.Fatalf("message %q lacks %q", err, want)
	}
	if _, err := tree.Key(1, ApplicationRatchet, MaxForwardJump+1); !errors.Is(err, ErrGenerationTooFar) {
		t.Fatalf("jump just past the limit: %v", err)
	}
	if _, err := tree.Key(1, ApplicationRatchet, MaxForwardJump); err != nil {
		t.Fatalf("jump at the limit: %v", err)
	}
	// Every generation skipped by an accepted jump is still usable.
	if _, err := tree.Key(1, ApplicationRatchet, 0); err != nil {
		t.Fatalf("oldest skipped generation: %v", err)
	}
}

func TestSecretTreeWindowExpiry(t *testing.T) {
	tree, _ := stTestTree(t, 2)
	for g := uint32(0); g <= 1500; g += 500 {
		if _, err := tree.Key(0, ApplicationRatchet, g); err != nil {
			t.Fatal(err)
		}
	}
	// The newest generation is now 1500: generations below 500 are forgotten.
	if _, err := tree.Key(0, ApplicationRatchet, 499); !errors.Is(err, ErrGenerationExpired) {
		t.Fatalf("expired generation: %v", err)
	}
	if _, err := tree.Key(0, ApplicationRatchet, 500); err != nil {
		t.Fatalf("oldest generation in the window: %v", err)
	}
	r, _ := tree.ratchet(0, ApplicationRatchet)
	if len(r.keys) > OutOfOrderWindow+1 {
		t.Fatalf("%d keys kept, window is %d", len(r.keys), OutOfOrderWindow)
	}
	for g := range r.keys {
		if uint64(g)+OutOfOrderWindow < r.next-1 {
			t.Fatalf("generation %d kept outside the window", g)
		}
	}
}

// §9.2: starting a leaf consumes the node secrets on its path and keeps only
// the copath; in the RFC's four-member example, a message from D leaves E
// and C, and deletes G, F and D.
func TestSecretTreeDeletionSchedule(t *testing.T) {
	tree, _ := stTestTree(t, 4)
	if _, err := tree.Key(3, ApplicationRatchet, 1); err != nil {
		t.Fatal(err)
	}
	held := slices.Sorted(func(yield func(NodeIndex) bool) {
		for x := range tree.nodes {
			if !yield(x) {
				return
			}
		}
	})
	if !slices.Equal(held, []NodeIndex{1, 4}) { // E and C
		t.Fatalf("held node secrets %v, want [1 4]", held)
	}
	r, _ := tree.ratchet(3, ApplicationRatchet)
	if r.next != 2 || len(r.keys) != 2 {
		t.Fatalf("ratchet at %d with %d keys, want 2 and 2 (K0, K1)", r.next, len(r.keys))
	}
	if err := tree.Consume(3, ApplicationRatchet, 1); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.keys[1]; ok || len(r.keys) != 1 {
		t.Fatal("consumed key kept")
	}
}

func TestSecretTreeOddSizes(t *testing.T) {
	for _, n := range []uint32{1, 3, 5, 7, 33} {
		tree, _ := stTestTree(t, n)
		for l := range n {
			if _, err := tree.NextKey(LeafIndex(l), HandshakeRatchet); err != nil {
				t.Fatalf("%d leaves, leaf %d: %v", n, l, err)
			}
		}
		if len(tree.nodes) != 0 {
			t.Fatalf("%d leaves: %d node secrets left after every leaf started", n, len(tree.nodes))
		}
		if _, err := tree.NextKey(LeafIndex(n), HandshakeRatchet); !errors.Is(err, ErrSecretTree) {
			t.Fatalf("%d leaves: leaf out of range: %v", n, err)
		}
	}
	tree, _ := stTestTree(t, 2)
	if _, err := tree.Key(0, RatchetType(3), 0); !errors.Is(err, ErrSecretTree) {
		t.Fatalf("bad ratchet type: %v", err)
	}
	if _, err := NewSecretTree(tree.Suite(), []byte{1}, 2); !errors.Is(err, ErrSecretTree) {
		t.Fatalf("short secret: %v", err)
	}
	if _, err := NewSecretTree(tree.Suite(), make([]byte, 32), 0); !errors.Is(err, ErrSecretTree) {
		t.Fatalf("no leaves: %v", err)
	}
}

func TestSecretTreeExhaustion(t *testing.T) {
	tree, _ := stTestTree(t, 1)
	r, _ := tree.ratchet(0, ApplicationRatchet)
	r.next = ratchetEnd - 1
	k, err := tree.NextKey(0, ApplicationRatchet)
	if err != nil || k.Generation != ^uint32(0) {
		t.Fatalf("last generation: %d, %v", k.Generation, err)
	}
	if _, err := tree.NextKey(0, ApplicationRatchet); !errors.Is(err, ErrRatchetExhausted) {
		t.Fatalf("past the last generation: %v", err)
	}
	if _, err := tree.Key(0, ApplicationRatchet, ^uint32(0)); !errors.Is(err, ErrGenerationUsed) {
		t.Fatalf("lookup of the last generation: %v", err)
	}
}

func TestSecretTreeCloneAndMarshal(t *testing.T) {
	tree, _ := stTestTree(t, 5)
	tree.NextKey(0, ApplicationRatchet)
	tree.Key(3, ApplicationRatchet, 7)
	tree.Consume(3, ApplicationRatchet, 4)
	tree.Key(3, HandshakeRatchet, 0)

	c := tree.Clone()
	if err := c.Consume(3, ApplicationRatchet, 2); err != nil {
		t.Fatal(err)
	}
	if k, err := tree.Key(3, ApplicationRatchet, 2); err != nil || bytes.Equal(k.Key, make([]byte, len(k.Key))) {
		t.Fatalf("consuming in the clone affected the original: %v", err)
	}

	enc := Marshal(tree)
	var back SecretTree
	if err := Unmarshal(enc, &back); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(Marshal(&back), enc) || !bytes.Equal(Marshal(tree.Clone()), enc) {
		t.Fatal("round trip or clone changed the state")
	}
	for _, l := range []LeafIndex{1, 4} {
		a, err1 := tree.Key(l, ApplicationRatchet, 3)
		b, err2 := back.Key(l, ApplicationRatchet, 3)
		if err1 != nil || err2 != nil || !bytes.Equal(a.Key, b.Key) {
			t.Fatalf("leaf %d: restored tree derives different keys (%v, %v)", l, err1, err2)
		}
	}
	if _, err := back.Key(3, ApplicationRatchet, 4); !errors.Is(err, ErrGenerationUsed) {
		t.Fatalf("restored tree forgot a consumed generation: %v", err)
	}

	for i := range enc {
		if err := Unmarshal(enc[:i], &back); err == nil {
			t.Fatalf("truncation at %d accepted", i)
		}
	}
}

func TestSecretTreeUnmarshalRejectsResurrectedSecrets(t *testing.T) {
	tree, secret := stTestTree(t, 4)
	tree.NextKey(2, ApplicationRatchet)
	// Put the (consumed) root secret back: a state no honest tree reaches.
	tree.nodes[rootOf(4)] = secret
	var back SecretTree
	if err := Unmarshal(Marshal(tree), &back); !errors.Is(err, ErrInvalidValue) {
		t.Fatalf("resurrected root accepted: %v", err)
	}
}

func TestSenderDataKeyNonce(t *testing.T) {
	s := ksTestSuite(t)
	secret := RandomBytes(s.HashSize())
	long := RandomBytes(3 * s.HashSize())
	k1, n1 := SenderDataKeyNonce(s, secret, long)
	k2, n2 := SenderDataKeyNonce(s, secret, long[:s.HashSize()])
	if !bytes.Equal(k1, k2) || !bytes.Equal(n1, n2) {
		t.Fatal("bytes past the first Nh changed the sender data key")
	}
	k3, _ := SenderDataKeyNonce(s, secret, long[:5])
	if bytes.Equal(k1, k3) || len(k3) != s.AEADKeySize() || len(n1) != s.AEADNonceSize() {
		t.Fatal("short ciphertext sample not used as is")
	}
}

func FuzzSecretTreeUnmarshal(f *testing.F) {
	tree, _ := stTestTree(f, 3)
	f.Add(Marshal(tree))
	tree.Key(1, ApplicationRatchet, 3)
	tree.NextKey(2, HandshakeRatchet)
	f.Add(Marshal(tree))
	f.Fuzz(func(t *testing.T, b []byte) {
		var st SecretTree
		if Unmarshal(b, &st) != nil {
			return
		}
		if !bytes.Equal(Marshal(&st), b) {
			t.Fatalf("accepted %x but re-encodes differently", b)
		}
		// An accepted state must be usable without panicking.
		for l := range min(st.LeafCount(), 8) {
			st.Key(LeafIndex(l), ApplicationRatchet, 2)
			st.NextKey(LeafIndex(l), HandshakeRatchet)
		}
	})
}

func BenchmarkSecretTreeNextKey(b *testing.B) {
	tree, _ := stTestTree(b, 64)
	for b.Loop() {
		if _, err := tree.NextKey(5, ApplicationRatchet); err != nil {
			b.Fatal(err)
		}
	}
}

// A receiver decrypting in order: look up the next generation, then consume it.
func BenchmarkSecretTreeKeyInOrder(b *testing.B) {
	tree, _ := stTestTree(b, 64)
	g := uint32(0)
	for b.Loop() {
		if _, err := tree.Key(5, ApplicationRatchet, g); err != nil {
			b.Fatal(err)
		}
		if err := tree.Consume(5, ApplicationRatchet, g); err != nil {
			b.Fatal(err)
		}
		g++
	}
}

// The worst case a single message can force: a jump of MaxForwardJump.
func BenchmarkSecretTreeMaxJump(b *testing.B) {
	s := ksTestSuite(b)
	secret := RandomBytes(s.HashSize())
	for b.Loop() {
		tree, _ := NewSecretTree(s, secret, 2)
		if _, err := tree.Key(1, ApplicationRatchet, MaxForwardJump); err != nil {
			b.Fatal(err)
		}
	}
}

// Starting a leaf deep in a large tree: log2(n) node derivations.
func BenchmarkSecretTreeStartLeaf(b *testing.B) {
	s := ksTestSuite(b)
	secret := RandomBytes(s.HashSize())
	for b.Loop() {
		tree, _ := NewSecretTree(s, secret, 1<<16)
		if _, err := tree.NextKey(12345, ApplicationRatchet); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSecretTreeMarshal(b *testing.B) {
	tree, _ := stTestTree(b, 64)
	for l := range LeafIndex(64) {
		tree.Key(l, ApplicationRatchet, 20)
	}
	var back SecretTree
	for b.Loop() {
		if err := Unmarshal(Marshal(tree), &back); err != nil {
			b.Fatal(err)
		}
	}
}
