package mls

import (
	"bytes"
	"errors"
	"testing"
)

func ksTestSuite(t testing.TB) *Suite {
	t.Helper()
	s, err := SuiteFor(X25519AES128GCMSHA256Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ksTestContext(s *Suite, epoch uint64) []byte {
	gc := GroupContext{Version: MLS10, CipherSuite: s.ID, GroupID: []byte("group"), Epoch: epoch,
		TreeHash: bytes.Repeat([]byte{1}, s.HashSize()), ConfirmedTranscriptHash: bytes.Repeat([]byte{2}, s.HashSize())}
	return Marshal(&gc)
}

// A member processing a Commit and a new member joining by Welcome must reach
// the same epoch, and the joiner must get welcome_secret before it knows the
// GroupContext.
func TestKeyScheduleCommitAndWelcomePathsAgree(t *testing.T) {
	s := ksTestSuite(t)
	gc := ksTestContext(s, 1)
	init := RandomBytes(s.HashSize())
	commit := RandomBytes(s.HashSize())
	psk := RandomBytes(s.HashSize())

	m, err := NewEpochSecrets(s, init, commit, psk, gc)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := DeriveWelcomeSecret(s, m.JoinerSecret, psk)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ws, m.WelcomeSecret) {
		t.Fatal("welcome_secret differs between paths")
	}
	j, err := EpochSecretsFromJoiner(s, m.JoinerSecret, psk, gc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(Marshal(m), Marshal(j)) {
		t.Fatal("epoch secrets differ between the commit and welcome paths")
	}
	k1, n1 := WelcomeKeyNonce(s, m.WelcomeSecret)
	if len(k1) != s.AEADKeySize() || len(n1) != s.AEADNonceSize() {
		t.Fatalf("welcome key %d bytes, nonce %d bytes", len(k1), len(n1))
	}

	// A different GroupContext must change everything after joiner_secret.
	other, err := NewEpochSecrets(s, init, commit, psk, ksTestContext(s, 2))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(other.EpochSecret, m.EpochSecret) || bytes.Equal(other.JoinerSecret, m.JoinerSecret) {
		t.Fatal("GroupContext does not bind the epoch secrets")
	}
}

func TestKeyScheduleZeroDefaults(t *testing.T) {
	s := ksTestSuite(t)
	gc := ksTestContext(s, 0)
	init := RandomBytes(s.HashSize())
	zero := make([]byte, s.HashSize())
	a, err := NewEpochSecrets(s, init, nil, nil, gc)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewEpochSecrets(s, init, zero, zero, gc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(Marshal(a), Marshal(b)) {
		t.Fatal("empty commit/psk secrets do not default to Nh zero bytes")
	}
}

func TestKeyScheduleRejectsBadInputs(t *testing.T) {
	s := ksTestSuite(t)
	gc := ksTestContext(s, 0)
	good := RandomBytes(s.HashSize())
	short := good[:5]
	for name, f := range map[string]func() error{
		"short init":    func() error { _, err := NewEpochSecrets(s, short, nil, nil, gc); return err },
		"short commit":  func() error { _, err := NewEpochSecrets(s, good, short, nil, gc); return err },
		"short psk":     func() error { _, err := NewEpochSecrets(s, good, nil, short, gc); return err },
		"empty context": func() error { _, err := NewEpochSecrets(s, good, nil, nil, nil); return err },
		"short joiner":  func() error { _, err := EpochSecretsFromJoiner(s, short, nil, gc); return err },
		"welcome short": func() error { _, err := DeriveWelcomeSecret(s, short, nil); return err },
	} {
		if err := f(); !errors.Is(err, ErrKeySchedule) {
			t.Errorf("%s: got %v, want ErrKeySchedule", name, err)
		}
	}
}

func TestExporter(t *testing.T) {
	s := ksTestSuite(t)
	e, err := NewEpochSecrets(s, RandomBytes(s.HashSize()), nil, nil, ksTestContext(s, 3))
	if err != nil {
		t.Fatal(err)
	}
	a, err := e.Export("switchboard test", []byte("ctx"), 42)
	if err != nil || len(a) != 42 {
		t.Fatalf("export: %d bytes, %v", len(a), err)
	}
	b, _ := e.Export("switchboard test", []byte("ctx"), 42)
	c, _ := e.Export("switchboard other", []byte("ctx"), 42)
	d, _ := e.Export("switchboard test", []byte("ctx2"), 42)
	if !bytes.Equal(a, b) || bytes.Equal(a, c) || bytes.Equal(a, d) {
		t.Fatal("exporter is not a deterministic function of label and context")
	}
	for _, n := range []int{-1, 255*s.HashSize() + 1, 1 << 16} {
		if _, err := e.Export("x", nil, n); !errors.Is(err, ErrKeySchedule) {
			t.Errorf("length %d: got %v, want ErrKeySchedule", n, err)
		}
	}
	if _, err := e.Export("x", nil, 255*s.HashSize()); err != nil {
		t.Errorf("maximum length: %v", err)
	}
}

func TestEpochSecretsCloneMarshalForget(t *testing.T) {
	s := ksTestSuite(t)
	e, err := NewEpochSecrets(s, RandomBytes(s.HashSize()), RandomBytes(s.HashSize()), nil, ksTestContext(s, 7))
	if err != nil {
		t.Fatal(err)
	}
	enc := Marshal(e)
	var back EpochSecrets
	if err := Unmarshal(enc, &back); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(Marshal(&back), enc) || back.Suite() != s {
		t.Fatal("round trip changed the secrets")
	}

	c := e.Clone()
	e.ForgetConsumed()
	if e.JoinerSecret != nil || e.EpochSecret != nil || e.EncryptionSecret != nil || e.WelcomeSecret != nil {
		t.Fatal("ForgetConsumed kept a consumed secret")
	}
	if c.EpochSecret == nil || bytes.Equal(c.EpochSecret, make([]byte, s.HashSize())) {
		t.Fatal("clone shares buffers with the original")
	}
	if e.ExporterSecret == nil || e.InitSecret == nil {
		t.Fatal("ForgetConsumed dropped a secret still needed")
	}
	// A forgotten secret survives a round trip as forgotten.
	if err := Unmarshal(Marshal(e), &back); err != nil || back.EpochSecret != nil {
		t.Fatalf("round trip after forgetting: %v", err)
	}

	// Malformed encodings are errors, never panics.
	for i := range enc {
		if err := Unmarshal(enc[:i], &back); err == nil {
			t.Fatalf("truncation at %d accepted", i)
		}
	}
	bad := append([]byte{}, enc...)
	bad[3] = 5 // first secret's length prefix
	if err := Unmarshal(bad, &back); err == nil {
		t.Fatal("wrong secret length accepted")
	}
	bad = append([]byte{}, enc...)
	bad[2] = 0x99 // cipher suite
	if err := Unmarshal(bad, &back); !errors.Is(err, ErrUnsupportedSuite) {
		t.Fatalf("unknown suite: %v", err)
	}
}

func TestExternalKeyPairDeterministic(t *testing.T) {
	s := ksTestSuite(t)
	e, err := NewEpochSecrets(s, RandomBytes(s.HashSize()), nil, nil, ksTestContext(s, 1))
	if err != nil {
		t.Fatal(err)
	}
	_, p1, err := e.ExternalKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	_, p2, _ := e.Clone().ExternalKeyPair()
	if !bytes.Equal(p1, p2) {
		t.Fatal("external key pair is not derived deterministically")
	}
}

func TestPreSharedKeyIDWire(t *testing.T) {
	s := ksTestSuite(t)
	for _, id := range []PreSharedKeyID{
		NewExternalPSKID(s, []byte("psk-1")),
		NewResumptionPSKID(s, ResumptionBranch, []byte("group"), 1<<40),
	} {
		enc := Marshal(&id)
		var back PreSharedKeyID
		if err := Unmarshal(enc, &back); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(Marshal(&back), enc) {
			t.Fatalf("%v: round trip changed the value", id.Type)
		}
		if err := back.Validate(s); err != nil {
			t.Fatal(err)
		}
	}

	for name, enc := range map[string][]byte{
		"reserved type":  {0, 0, 0},
		"unknown type":   {3, 0, 0},
		"reserved usage": {2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"unknown usage":  {2, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"truncated":      {1, 5, 'a'},
	} {
		var id PreSharedKeyID
		if err := Unmarshal(enc, &id); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}

	id := NewExternalPSKID(s, []byte("x"))
	id.Nonce = id.Nonce[:4]
	if err := id.Validate(s); !errors.Is(err, ErrInvalidPSK) {
		t.Errorf("short nonce: %v", err)
	}
}

func TestPSKSecret(t *testing.T) {
	s := ksTestSuite(t)
	none, err := PSKSecret(s, nil)
	if err != nil || !bytes.Equal(none, make([]byte, s.HashSize())) {
		t.Fatalf("no PSKs: %x, %v", none, err)
	}
	a := PSKInput{ID: NewExternalPSKID(s, []byte("a")), PSK: []byte("secret a")}
	b := PSKInput{ID: NewExternalPSKID(s, []byte("b")), PSK: []byte("secret b")}
	ab, _ := PSKSecret(s, []PSKInput{a, b})
	ba, _ := PSKSecret(s, []PSKInput{b, a})
	onlyA, _ := PSKSecret(s, []PSKInput{a})
	if bytes.Equal(ab, ba) || bytes.Equal(ab, onlyA) {
		t.Fatal("psk_secret does not bind the order and number of PSKs")
	}
	if _, err := PSKSecret(s, make([]PSKInput, maxPSKs+1)); !errors.Is(err, ErrInvalidPSK) {
		t.Fatalf("too many PSKs: %v", err)
	}
}

func FuzzPreSharedKeyIDUnmarshal(f *testing.F) {
	s, _ := SuiteFor(X25519AES128GCMSHA256Ed25519)
	ext := NewExternalPSKID(s, []byte("id"))
	res := NewResumptionPSKID(s, ResumptionReinit, []byte("g"), 9)
	f.Add(Marshal(&ext))
	f.Add(Marshal(&res))
	f.Fuzz(func(t *testing.T, b []byte) {
		var id PreSharedKeyID
		if Unmarshal(b, &id) == nil && !bytes.Equal(Marshal(&id), b) {
			t.Fatalf("accepted %x but re-encodes as %x", b, Marshal(&id))
		}
	})
}

func FuzzEpochSecretsUnmarshal(f *testing.F) {
	s, _ := SuiteFor(X25519AES128GCMSHA256Ed25519)
	e, _ := NewEpochSecrets(s, make([]byte, s.HashSize()), nil, nil, []byte{1})
	f.Add(Marshal(e))
	f.Fuzz(func(t *testing.T, b []byte) {
		var e EpochSecrets
		if Unmarshal(b, &e) == nil && !bytes.Equal(Marshal(&e), b) {
			t.Fatalf("accepted %x but re-encodes differently", b)
		}
	})
}

func BenchmarkNewEpochSecrets(b *testing.B) {
	s := ksTestSuite(b)
	gc := ksTestContext(s, 1)
	init, commit := RandomBytes(s.HashSize()), RandomBytes(s.HashSize())
	for b.Loop() {
		if _, err := NewEpochSecrets(s, init, commit, nil, gc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkExport(b *testing.B) {
	s := ksTestSuite(b)
	e, _ := NewEpochSecrets(s, RandomBytes(s.HashSize()), nil, nil, ksTestContext(s, 1))
	for b.Loop() {
		if _, err := e.Export("bench", []byte("context"), 32); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPSKSecret(b *testing.B) {
	s := ksTestSuite(b)
	psks := []PSKInput{
		{ID: NewExternalPSKID(s, []byte("a")), PSK: RandomBytes(32)},
		{ID: NewResumptionPSKID(s, ResumptionApplication, []byte("g"), 3), PSK: RandomBytes(32)},
	}
	for b.Loop() {
		if _, err := PSKSecret(s, psks); err != nil {
			b.Fatal(err)
		}
	}
}
