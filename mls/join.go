package mls

import (
	"bytes"
	"fmt"
)

// JoinFromWelcome joins a group with the Welcome a committer sent for one of
// this client's KeyPackages (RFC 9420 §12.4.3.1). tree is the ratchet tree
// when the Welcome's GroupInfo does not carry it (nil otherwise). The
// client's KeyPackage must not be used again afterwards.
func JoinFromWelcome(w *Welcome, kp *KeyPackagePrivate, tree TreeNodes, config GroupConfig) (*Group, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidWelcome}, args...)...)
	}
	s, err := SuiteFor(w.CipherSuite)
	if err != nil {
		return nil, err
	}
	if kp.KeyPackage.CipherSuite != w.CipherSuite {
		return nil, fail("Welcome of suite %v for a KeyPackage of suite %v", w.CipherSuite, kp.KeyPackage.CipherSuite)
	}
	secrets, err := FindWelcomeSecrets(s, w, kp.KeyPackage.Ref(s), kp.InitKey)
	if err != nil {
		return nil, err
	}
	psks, special, err := resolvePSKs(s, secrets.PSKs, config.PSKs, nil, true)
	if err != nil {
		return nil, err
	}
	pskSecret, err := PSKSecret(s, psks)
	if err != nil {
		return nil, err
	}
	welcomeSecret, err := DeriveWelcomeSecret(s, secrets.JoinerSecret, pskSecret)
	if err != nil {
		return nil, err
	}
	info, err := OpenGroupInfo(s, w, welcomeSecret)
	if err != nil {
		return nil, err
	}
	ctx := &info.GroupContext
	if ctx.CipherSuite != w.CipherSuite {
		return nil, fail("GroupInfo of suite %v in a Welcome of suite %v", ctx.CipherSuite, w.CipherSuite)
	}
	if special != nil && ctx.Epoch != 1 {
		return nil, fail("a %v resumption PSK joins epoch %d, want epoch 1", special.Usage, ctx.Epoch)
	}
	rt, err := treeFromGroupInfo(s, info, tree)
	if err != nil {
		return nil, err
	}
	self, ok := findLeaf(rt, &kp.KeyPackage.LeafNode)
	if !ok {
		return nil, fail("the tree has no leaf matching the KeyPackage")
	}
	g := &Group{
		suite:      s,
		ctx:        *ctx,
		tree:       rt,
		priv:       NewTreePrivateState(self, kp.EncryptionKey),
		self:       self,
		signer:     kp.SignatureKey,
		config:     config,
		resumption: map[uint64][]byte{},
	}
	if secrets.PathSecret != nil {
		priv, _, err := g.priv.ImplantPathSecret(rt, info.Signer, secrets.PathSecret)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidWelcome, err)
		}
		g.priv = priv
	}
	epoch, err := EpochSecretsFromJoiner(s, secrets.JoinerSecret, pskSecret, Marshal(ctx))
	if err != nil {
		return nil, err
	}
	if err := VerifyConfirmationTag(s, epoch.ConfirmationKey, ctx.ConfirmedTranscriptHash, info.ConfirmationTag); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidWelcome, err)
	}
	if err := g.enterEpoch(epoch, info.ConfirmationTag); err != nil {
		return nil, err
	}
	return g, nil
}

// treeFromGroupInfo builds the ratchet tree from the GroupInfo's
// ratchet_tree extension or, failing that, from the one given out of band,
// and checks it as a joiner must (§12.4.3.1): tree hash, signer and
// signature, parent hashes, and every leaf.
func treeFromGroupInfo(s *Suite, info *GroupInfo, given TreeNodes) (*RatchetTree, error) {
	nodes := given
	if data, ok := info.Extensions.Find(ExtRatchetTree); ok {
		nodes = nil
		if err := Unmarshal(data, &nodes); err != nil {
			return nil, fmt.Errorf("%w: ratchet_tree extension: %w", ErrInvalidWelcome, err)
		}
	}
	if nodes == nil {
		return nil, fmt.Errorf("%w: no ratchet tree in the GroupInfo and none given", ErrInvalidWelcome)
	}
	rt, err := NewRatchetTree(s, nodes)
	if err != nil {
		return nil, err
	}
	ctx := &info.GroupContext
	if h := rt.TreeHash(); !bytes.Equal(h, ctx.TreeHash) {
		return nil, fmt.Errorf("%w: tree hash %x does not match the GroupContext's %x", ErrInvalidWelcome, h, ctx.TreeHash)
	}
	signer := rt.Leaf(info.Signer)
	if signer == nil {
		return nil, fmt.Errorf("%w: GroupInfo signer leaf %d is blank", ErrInvalidWelcome, info.Signer)
	}
	if err := info.VerifySignature(s, signer.SignatureKey); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidWelcome, err)
	}
	if err := rt.VerifyParentHashes(); err != nil {
		return nil, err
	}
	rc, err := requiredCapabilities(ctx.Extensions)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidWelcome, err)
	}
	if err := rt.ValidateLeaves(LeafNodeCheck{
		GroupID:             ctx.GroupID,
		RequiredExtensions:  rc.Extensions,
		RequiredProposals:   rc.Proposals,
		RequiredCredentials: rc.Credentials,
	}); err != nil {
		return nil, err
	}
	return rt, nil
}

// resolvePSKs looks up the PSKs named in a commit or Welcome. own answers for
// this group's resumption PSKs (nil when joining). joining allows one
// resumption PSK of usage reinit or branch, which it returns as special;
// proposals may only carry application resumption PSKs.
func resolvePSKs(s *Suite, ids []PreSharedKeyID, store PSKStore, own func(groupID []byte, epoch uint64) ([]byte, bool), joining bool) (inputs []PSKInput, special *PreSharedKeyID, err error) {
	seen := map[string]bool{}
	for i := range ids {
		id := &ids[i]
		if err := id.Validate(s); err != nil {
			return nil, nil, fmt.Errorf("%w: psk %d: %w", ErrInvalidProposal, i, err)
		}
		key := string(Marshal(id))
		if seen[key] {
			return nil, nil, fmt.Errorf("%w: psk %d is listed twice", ErrInvalidProposal, i)
		}
		seen[key] = true
		var psk []byte
		var ok bool
		switch id.Type {
		case PSKExternal:
			if store != nil {
				psk, ok = store.ExternalPSK(id.ID)
			}
			if !ok {
				return nil, nil, fmt.Errorf("%w: external PSK %x", ErrMissingPSK, id.ID)
			}
		case PSKResumption:
			if id.Usage != ResumptionApplication {
				if !joining {
					return nil, nil, fmt.Errorf("%w: resumption PSK of usage %v outside a reinit or branch", ErrInvalidProposal, id.Usage)
				}
				if special != nil {
					return nil, nil, fmt.Errorf("%w: more than one reinit or branch PSK", ErrInvalidWelcome)
				}
				special = id
			}
			if own != nil {
				psk, ok = own(id.GroupID, id.Epoch)
			}
			if !ok && store != nil {
				psk, ok = store.ResumptionPSK(id.GroupID, id.Epoch)
			}
			if !ok {
				return nil, nil, fmt.Errorf("%w: resumption PSK of group %x epoch %d", ErrMissingPSK, id.GroupID, id.Epoch)
			}
		}
		inputs = append(inputs, PSKInput{ID: *id, PSK: psk})
	}
	return inputs, special, nil
}

// ownResumptionPSK answers for this group's kept resumption PSKs.
func (g *Group) ownResumptionPSK(groupID []byte, epoch uint64) ([]byte, bool) {
	if !bytes.Equal(groupID, g.ctx.GroupID) {
		return nil, false
	}
	psk, ok := g.resumption[epoch]
	return psk, ok
}

// pskSecret resolves a commit's PSKs (external ones from the configured
// store, resumption ones from this group's history or the store) and
// chains them into the psk_secret.
func (g *Group) pskSecret(ids []PreSharedKeyID, extra ...PSKInput) ([]byte, error) {
	psks, _, err := resolvePSKs(g.suite, ids, g.config.PSKs, g.ownResumptionPSK, false)
	if err != nil {
		return nil, err
	}
	return PSKSecret(g.suite, append(psks, extra...))
}
