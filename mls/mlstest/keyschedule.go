package mlstest

import (
	"errors"
	"fmt"

	"github.com/switchboard-chat/switchboard/mls"
)

// Checkers for the key-schedule, psk_secret and secret-tree vector files
// (test-vectors.md, sections "Key Schedule", "Pre-Shared Keys" and
// "Secret Tree").

func init() {
	register("key-schedule", has("initial_init_secret", "epochs", "group_id"), runKeySchedule)
	register("psk-secret", has("psks", "psk_secret"), runPSKSecret)
	register("secret-tree", has("encryption_secret", "leaves", "sender_data"), runSecretTree)
}

type keyScheduleEpochCase struct {
	TreeHash                Hex `json:"tree_hash"`
	CommitSecret            Hex `json:"commit_secret"`
	PSKSecret               Hex `json:"psk_secret"`
	ConfirmedTranscriptHash Hex `json:"confirmed_transcript_hash"`

	GroupContext Hex `json:"group_context"`

	JoinerSecret  Hex `json:"joiner_secret"`
	WelcomeSecret Hex `json:"welcome_secret"`
	InitSecret    Hex `json:"init_secret"`

	SenderDataSecret   Hex `json:"sender_data_secret"`
	EncryptionSecret   Hex `json:"encryption_secret"`
	ExporterSecret     Hex `json:"exporter_secret"`
	EpochAuthenticator Hex `json:"epoch_authenticator"`
	ExternalSecret     Hex `json:"external_secret"`
	ConfirmationKey    Hex `json:"confirmation_key"`
	MembershipKey      Hex `json:"membership_key"`
	ResumptionPSK      Hex `json:"resumption_psk"`

	ExternalPub Hex `json:"external_pub"`
	Exporter    struct {
		Label   string `json:"label"`
		Context Hex    `json:"context"`
		Length  int    `json:"length"`
		Secret  Hex    `json:"secret"`
	} `json:"exporter"`
}

type keyScheduleCase struct {
	CipherSuite       uint16                 `json:"cipher_suite"`
	GroupID           Hex                    `json:"group_id"`
	InitialInitSecret Hex                    `json:"initial_init_secret"`
	Epochs            []keyScheduleEpochCase `json:"epochs"`
}

func runKeySchedule(data []byte) (Result, error) {
	return runCases(data, func(c *keyScheduleCase) uint16 { return c.CipherSuite }, checkKeySchedule)
}

func checkKeySchedule(c *keyScheduleCase) error {
	s, err := mls.SuiteFor(mls.CipherSuite(c.CipherSuite))
	if err != nil {
		return err
	}
	if len(c.Epochs) == 0 {
		return errors.New("vector has no epochs")
	}
	initSecret := []byte(c.InitialInitSecret)
	for i := range c.Epochs {
		ep := &c.Epochs[i]
		if err := checkKeyScheduleEpoch(s, c.GroupID, uint64(i), initSecret, ep); err != nil {
			return fmt.Errorf("epoch %d: %w", i, err)
		}
		// Each epoch's init_secret feeds the next.
		initSecret = ep.InitSecret
	}
	return nil
}

func checkKeyScheduleEpoch(s *mls.Suite, groupID []byte, epoch uint64, initSecret []byte, ep *keyScheduleEpochCase) error {
	gc := mls.GroupContext{
		Version:                 mls.MLS10,
		CipherSuite:             s.ID,
		GroupID:                 groupID,
		Epoch:                   epoch,
		TreeHash:                ep.TreeHash,
		ConfirmedTranscriptHash: ep.ConfirmedTranscriptHash,
	}
	gcBytes := mls.Marshal(&gc)
	if !equal(gcBytes, ep.GroupContext) {
		return mismatch("group_context", gcBytes, ep.GroupContext)
	}

	e, err := mls.NewEpochSecrets(s, initSecret, ep.CommitSecret, ep.PSKSecret, gcBytes)
	if err != nil {
		return err
	}
	if err := compareEpochSecrets(e, ep); err != nil {
		return err
	}

	// The Welcome path must land on the same secrets: first welcome_secret
	// from joiner_secret alone, then the epoch from joiner_secret and the
	// GroupContext.
	ws, err := mls.DeriveWelcomeSecret(s, ep.JoinerSecret, ep.PSKSecret)
	if err != nil {
		return fmt.Errorf("welcome path: %w", err)
	}
	if !equal(ws, ep.WelcomeSecret) {
		return mismatch("welcome path: welcome_secret", ws, ep.WelcomeSecret)
	}
	j, err := mls.EpochSecretsFromJoiner(s, ep.JoinerSecret, ep.PSKSecret, gcBytes)
	if err != nil {
		return fmt.Errorf("welcome path: %w", err)
	}
	if err := compareEpochSecrets(j, ep); err != nil {
		return fmt.Errorf("welcome path: %w", err)
	}

	_, pub, err := e.ExternalKeyPair()
	if err != nil {
		return fmt.Errorf("external key pair: %w", err)
	}
	if !equal(pub, ep.ExternalPub) {
		return mismatch("external_pub", pub, ep.ExternalPub)
	}

	x := ep.Exporter
	out, err := e.Export(x.Label, x.Context, x.Length)
	if err != nil {
		return fmt.Errorf("exporter: %w", err)
	}
	if !equal(out, x.Secret) {
		return mismatch("exporter.secret", out, x.Secret)
	}
	return nil
}

func compareEpochSecrets(e *mls.EpochSecrets, ep *keyScheduleEpochCase) error {
	for _, f := range []struct {
		name      string
		got, want []byte
	}{
		{"joiner_secret", e.JoinerSecret, ep.JoinerSecret},
		{"welcome_secret", e.WelcomeSecret, ep.WelcomeSecret},
		{"init_secret", e.InitSecret, ep.InitSecret},
		{"sender_data_secret", e.SenderDataSecret, ep.SenderDataSecret},
		{"encryption_secret", e.EncryptionSecret, ep.EncryptionSecret},
		{"exporter_secret", e.ExporterSecret, ep.ExporterSecret},
		{"epoch_authenticator", e.EpochAuthenticator, ep.EpochAuthenticator},
		{"external_secret", e.ExternalSecret, ep.ExternalSecret},
		{"confirmation_key", e.ConfirmationKey, ep.ConfirmationKey},
		{"membership_key", e.MembershipKey, ep.MembershipKey},
		{"resumption_psk", e.ResumptionPSK, ep.ResumptionPSK},
	} {
		if !equal(f.got, f.want) {
			return mismatch(f.name, f.got, f.want)
		}
	}
	return nil
}

type pskSecretCase struct {
	CipherSuite uint16 `json:"cipher_suite"`
	PSKs        []struct {
		PSKID    Hex `json:"psk_id"`
		PSK      Hex `json:"psk"`
		PSKNonce Hex `json:"psk_nonce"`
	} `json:"psks"`
	PSKSecret Hex `json:"psk_secret"`
}

func runPSKSecret(data []byte) (Result, error) {
	return runCases(data, func(c *pskSecretCase) uint16 { return c.CipherSuite }, checkPSKSecret)
}

func checkPSKSecret(c *pskSecretCase) error {
	s, err := mls.SuiteFor(mls.CipherSuite(c.CipherSuite))
	if err != nil {
		return err
	}
	in := make([]mls.PSKInput, len(c.PSKs))
	for i, p := range c.PSKs {
		id := mls.PreSharedKeyID{Type: mls.PSKExternal, ID: p.PSKID, Nonce: p.PSKNonce}
		// The identifier must survive the wire unchanged, or sender and
		// receiver would compute different PSKLabels.
		var back mls.PreSharedKeyID
		if err := mls.Unmarshal(mls.Marshal(&id), &back); err != nil {
			return fmt.Errorf("psk %d: PreSharedKeyID round trip: %w", i, err)
		}
		if !equal(back.ID, id.ID) || !equal(back.Nonce, id.Nonce) || back.Type != id.Type {
			return fmt.Errorf("psk %d: PreSharedKeyID round trip changed the value", i)
		}
		in[i] = mls.PSKInput{ID: id, PSK: p.PSK}
	}
	got, err := mls.PSKSecret(s, in)
	if err != nil {
		return err
	}
	if !equal(got, c.PSKSecret) {
		return mismatch("psk_secret", got, c.PSKSecret)
	}
	return nil
}

type secretTreeCase struct {
	CipherSuite uint16 `json:"cipher_suite"`
	SenderData  struct {
		SenderDataSecret Hex `json:"sender_data_secret"`
		Ciphertext       Hex `json:"ciphertext"`
		Key              Hex `json:"key"`
		Nonce            Hex `json:"nonce"`
	} `json:"sender_data"`
	EncryptionSecret Hex `json:"encryption_secret"`
	Leaves           [][]struct {
		Generation       uint32 `json:"generation"`
		HandshakeKey     Hex    `json:"handshake_key"`
		HandshakeNonce   Hex    `json:"handshake_nonce"`
		ApplicationKey   Hex    `json:"application_key"`
		ApplicationNonce Hex    `json:"application_nonce"`
	} `json:"leaves"`
}

func runSecretTree(data []byte) (Result, error) {
	return runCases(data, func(c *secretTreeCase) uint16 { return c.CipherSuite }, checkSecretTree)
}

func checkSecretTree(c *secretTreeCase) error {
	s, err := mls.SuiteFor(mls.CipherSuite(c.CipherSuite))
	if err != nil {
		return err
	}
	sd := c.SenderData
	key, nonce := mls.SenderDataKeyNonce(s, sd.SenderDataSecret, sd.Ciphertext)
	if !equal(key, sd.Key) {
		return mismatch("sender_data.key", key, sd.Key)
	}
	if !equal(nonce, sd.Nonce) {
		return mismatch("sender_data.nonce", nonce, sd.Nonce)
	}

	tree, err := mls.NewSecretTree(s, c.EncryptionSecret, uint32(len(c.Leaves))) // #nosec G115 -- a test vector's few leaves
	if err != nil {
		return err
	}
	for i, gens := range c.Leaves {
		leaf := mls.LeafIndex(i)
		for _, g := range gens {
			for _, r := range []struct {
				rt         mls.RatchetType
				key, nonce []byte
			}{
				{mls.HandshakeRatchet, g.HandshakeKey, g.HandshakeNonce},
				{mls.ApplicationRatchet, g.ApplicationKey, g.ApplicationNonce},
			} {
				k, err := tree.Key(leaf, r.rt, g.Generation)
				if err != nil {
					return fmt.Errorf("leaf %d: %w", i, err)
				}
				what := fmt.Sprintf("leaf %d generation %d %s", i, g.Generation, r.rt)
				if !equal(k.Key, r.key) {
					return mismatch(what+" key", k.Key, r.key)
				}
				if !equal(k.Nonce, r.nonce) {
					return mismatch(what+" nonce", k.Nonce, r.nonce)
				}
				if err := tree.Consume(leaf, r.rt, g.Generation); err != nil {
					return fmt.Errorf("leaf %d: %w", i, err)
				}
			}
		}
	}
	return nil
}
