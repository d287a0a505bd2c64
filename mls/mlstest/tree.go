package mlstest

import (
	"fmt"

	"github.com/switchboard-chat/switchboard/mls"
)

func init() {
	register("tree-validation", has("tree", "group_id", "resolutions", "tree_hashes"), runTreeValidation)
	register("tree-operations", has("tree_before", "proposal", "proposal_sender"), runTreeOperations)
	register("treekem", has("leaves_private", "update_paths", "ratchet_tree"), runTreeKEM)
}

func suiteOf(id uint16) (*mls.Suite, error) { return mls.SuiteFor(mls.CipherSuite(id)) }

type treeValidationCase struct {
	CipherSuite uint16     `json:"cipher_suite"`
	Tree        Hex        `json:"tree"`
	GroupID     Hex        `json:"group_id"`
	Resolutions [][]uint32 `json:"resolutions"`
	TreeHashes  []Hex      `json:"tree_hashes"`
}

func runTreeValidation(data []byte) (Result, error) {
	return runCases(data, func(c *treeValidationCase) uint16 { return c.CipherSuite }, checkTreeValidation)
}

func checkTreeValidation(c *treeValidationCase) error {
	s, err := suiteOf(c.CipherSuite)
	if err != nil {
		return err
	}
	t, err := mls.ParseRatchetTree(s, c.Tree)
	if err != nil {
		return err
	}
	if got := mls.Marshal(t); !equal(got, c.Tree) {
		return mismatch("re-serialized tree", got, c.Tree)
	}
	w := int(t.Width())
	if len(c.Resolutions) != w {
		return fmt.Errorf("vector has %d resolutions for %d nodes", len(c.Resolutions), w)
	}
	for i, want := range c.Resolutions {
		got := t.Resolution(mls.NodeIndex(i))
		ok := len(got) == len(want)
		for k := 0; ok && k < len(got); k++ {
			ok = uint32(got[k]) == want[k]
		}
		if !ok {
			return fmt.Errorf("resolution of node %d: got %v, want %v", i, got, want)
		}
	}
	if len(c.TreeHashes) != w {
		return fmt.Errorf("vector has %d tree hashes for %d nodes", len(c.TreeHashes), w)
	}
	for i, want := range c.TreeHashes {
		if got := t.NodeTreeHash(mls.NodeIndex(i)); !equal(got, want) {
			return mismatch(fmt.Sprintf("tree hash of node %d", i), got, want)
		}
	}
	if err := t.VerifyParentHashes(); err != nil {
		return err
	}
	for _, l := range t.Members() {
		if err := t.Leaf(l).VerifySignature(s, c.GroupID, l); err != nil {
			return err
		}
	}
	// The full §7.3 check of a joiner, beyond what the vector asks: unique
	// keys, compatible credentials and capabilities.
	if err := t.ValidateLeaves(mls.LeafNodeCheck{GroupID: c.GroupID}); err != nil {
		return fmt.Errorf("leaf validation: %w", err)
	}
	return nil
}

type treeOperationsCase struct {
	CipherSuite    uint16 `json:"cipher_suite"`
	TreeBefore     Hex    `json:"tree_before"`
	Proposal       Hex    `json:"proposal"`
	ProposalSender uint32 `json:"proposal_sender"`
	TreeHashBefore Hex    `json:"tree_hash_before"`
	TreeAfter      Hex    `json:"tree_after"`
	TreeHashAfter  Hex    `json:"tree_hash_after"`
}

func runTreeOperations(data []byte) (Result, error) {
	return runCases(data, func(c *treeOperationsCase) uint16 { return c.CipherSuite }, checkTreeOperations)
}

// treeProposal is the part of a Proposal the tree-operations vectors use:
// Add, Update or Remove. (The full Proposal type lives elsewhere in mls.)
type treeProposal struct {
	typ     mls.ProposalType
	add     mls.KeyPackage
	update  mls.LeafNode
	removed mls.LeafIndex
}

func decodeTreeProposal(b []byte) (*treeProposal, error) {
	p := &treeProposal{}
	r := mls.NewReader(b)
	p.typ = mls.ProposalType(r.U16())
	switch p.typ {
	case mls.ProposalAdd:
		p.add.UnmarshalMLS(r)
	case mls.ProposalUpdate:
		p.update.UnmarshalMLS(r)
	case mls.ProposalRemove:
		p.removed = mls.LeafIndex(r.U32())
	default:
		if r.Err() == nil {
			return nil, fmt.Errorf("proposal type 0x%04x is not add, update or remove", uint16(p.typ))
		}
	}
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("proposal: %w", err)
	}
	return p, nil
}

func checkTreeOperations(c *treeOperationsCase) error {
	s, err := suiteOf(c.CipherSuite)
	if err != nil {
		return err
	}
	t, err := mls.ParseRatchetTree(s, c.TreeBefore)
	if err != nil {
		return fmt.Errorf("tree_before: %w", err)
	}
	if got := t.TreeHash(); !equal(got, c.TreeHashBefore) {
		return mismatch("tree_hash_before", got, c.TreeHashBefore)
	}
	p, err := decodeTreeProposal(c.Proposal)
	if err != nil {
		return err
	}
	switch p.typ {
	case mls.ProposalAdd:
		_, err = t.AddLeaf(&p.add.LeafNode)
	case mls.ProposalUpdate:
		err = t.UpdateLeaf(mls.LeafIndex(c.ProposalSender), &p.update)
	case mls.ProposalRemove:
		err = t.RemoveLeaf(p.removed)
	}
	if err != nil {
		return err
	}
	if got := mls.Marshal(t); !equal(got, c.TreeAfter) {
		return mismatch("tree_after", got, c.TreeAfter)
	}
	// The hash after the change uses the incremental cache; compare it with
	// both the vector and a tree built afresh from tree_after.
	if got := t.TreeHash(); !equal(got, c.TreeHashAfter) {
		return mismatch("tree_hash_after", got, c.TreeHashAfter)
	}
	fresh, err := mls.ParseRatchetTree(s, c.TreeAfter)
	if err != nil {
		return fmt.Errorf("tree_after: %w", err)
	}
	if got := fresh.TreeHash(); !equal(got, c.TreeHashAfter) {
		return mismatch("tree_hash_after of a fresh tree", got, c.TreeHashAfter)
	}
	return nil
}

type treeKEMCase struct {
	CipherSuite             uint16 `json:"cipher_suite"`
	GroupID                 Hex    `json:"group_id"`
	Epoch                   uint64 `json:"epoch"`
	ConfirmedTranscriptHash Hex    `json:"confirmed_transcript_hash"`
	RatchetTree             Hex    `json:"ratchet_tree"`
	LeavesPrivate           []struct {
		Index          uint32 `json:"index"`
		EncryptionPriv Hex    `json:"encryption_priv"`
		SignaturePriv  Hex    `json:"signature_priv"`
		PathSecrets    []struct {
			Node       uint32 `json:"node"`
			PathSecret Hex    `json:"path_secret"`
		} `json:"path_secrets"`
	} `json:"leaves_private"`
	UpdatePaths []struct {
		Sender        uint32 `json:"sender"`
		UpdatePath    Hex    `json:"update_path"`
		PathSecrets   []Hex  `json:"path_secrets"`
		CommitSecret  Hex    `json:"commit_secret"`
		TreeHashAfter Hex    `json:"tree_hash_after"`
	} `json:"update_paths"`
}

func runTreeKEM(data []byte) (Result, error) {
	return runCases(data, func(c *treeKEMCase) uint16 { return c.CipherSuite }, checkTreeKEM)
}

func checkTreeKEM(c *treeKEMCase) error {
	s, err := suiteOf(c.CipherSuite)
	if err != nil {
		return err
	}
	tree, err := mls.ParseRatchetTree(s, c.RatchetTree)
	if err != nil {
		return fmt.Errorf("ratchet_tree: %w", err)
	}

	// Private states, checked against the tree.
	states := map[mls.LeafIndex]*mls.TreePrivateState{}
	signers := map[mls.LeafIndex]*mls.SignaturePrivateKey{}
	for _, lp := range c.LeavesPrivate {
		l := mls.LeafIndex(lp.Index)
		enc, err := s.ParseHPKEPrivateKey(lp.EncryptionPriv)
		if err != nil {
			return fmt.Errorf("leaf %d: %w", l, err)
		}
		sig, err := s.ParseSignaturePrivateKey(lp.SignaturePriv)
		if err != nil {
			return fmt.Errorf("leaf %d: %w", l, err)
		}
		st := mls.NewTreePrivateState(l, enc)
		for _, ps := range lp.PathSecrets {
			if err := st.SetPathSecret(s, mls.NodeIndex(ps.Node), ps.PathSecret); err != nil {
				return fmt.Errorf("leaf %d: %w", l, err)
			}
		}
		if err := st.CheckConsistent(tree); err != nil {
			return fmt.Errorf("leaf %d: private state: %w", l, err)
		}
		states[l], signers[l] = st, sig
	}
	members := tree.Members()
	for _, l := range members {
		if states[l] == nil {
			return fmt.Errorf("vector has no private state for member %d", l)
		}
	}
	context := func(treeHash []byte) *mls.GroupContext {
		return &mls.GroupContext{
			Version:                 mls.MLS10,
			CipherSuite:             s.ID,
			GroupID:                 c.GroupID,
			Epoch:                   c.Epoch,
			TreeHash:                treeHash,
			ConfirmedTranscriptHash: c.ConfirmedTranscriptHash,
		}
	}
	check := mls.LeafNodeCheck{GroupID: c.GroupID}

	for k, u := range c.UpdatePaths {
		i := mls.LeafIndex(u.Sender)
		where := func(format string, args ...any) error {
			return fmt.Errorf("update_paths[%d] (sender %d): "+format, append([]any{k, i}, args...)...)
		}
		var up mls.UpdatePath
		if err := mls.Unmarshal(u.UpdatePath, &up); err != nil {
			return where("update_path: %w", err)
		}
		if len(u.PathSecrets) != int(tree.LeafCount()) && len(u.PathSecrets) < len(members) {
			return where("vector has %d path secrets", len(u.PathSecrets))
		}

		// The given path: merge it (checking parent hashes and the leaf),
		// then every other member decrypts it.
		after := tree.Clone()
		if err := after.ApplyUpdatePath(i, &up, nil, check); err != nil {
			return where("%w", err)
		}
		if got := after.TreeHash(); !equal(got, u.TreeHashAfter) {
			return where("%w", mismatch("tree_hash_after", got, u.TreeHashAfter))
		}
		gc := context(after.TreeHash())
		for _, j := range members {
			if j == i {
				continue
			}
			next, ps, cs, err := states[j].DecryptPath(after, i, &up, gc, nil)
			if err != nil {
				return where("leaf %d: %w", j, err)
			}
			if int(j) >= len(u.PathSecrets) {
				return where("vector has no path secret for leaf %d", j)
			}
			if !equal(ps, u.PathSecrets[j]) {
				return where("leaf %d: %w", j, mismatch("path secret", ps, u.PathSecrets[j]))
			}
			if !equal(cs, u.CommitSecret) {
				return where("leaf %d: %w", j, mismatch("commit secret", cs, u.CommitSecret))
			}
			if err := next.CheckConsistent(after); err != nil {
				return where("leaf %d: new private state: %w", j, err)
			}
		}

		// A fresh path from the same sender, processed by every other member.
		if signers[i] == nil {
			return where("vector has no signature key for the sender")
		}
		mine := tree.Clone()
		gen, err := mine.GeneratePath(i, mls.PathOptions{GroupID: c.GroupID, Signer: signers[i]})
		if err != nil {
			return where("new path: %w", err)
		}
		newGC := context(mine.TreeHash())
		newUP, err := gen.Encrypt(mine, newGC, nil)
		if err != nil {
			return where("new path: %w", err)
		}
		if err := gen.State.CheckConsistent(mine); err != nil {
			return where("new path: committer state: %w", err)
		}
		var sent mls.UpdatePath
		if err := mls.Unmarshal(mls.Marshal(newUP), &sent); err != nil {
			return where("new path does not round-trip: %w", err)
		}
		theirs := tree.Clone()
		if err := theirs.ApplyUpdatePath(i, &sent, nil, check); err != nil {
			return where("new path: %w", err)
		}
		if got, want := theirs.TreeHash(), mine.TreeHash(); !equal(got, want) {
			return where("new path: %w", mismatch("receiver's tree hash", got, want))
		}
		for _, j := range members {
			if j == i {
				continue
			}
			_, _, cs, err := states[j].DecryptPath(theirs, i, &sent, newGC, nil)
			if err != nil {
				return where("new path: leaf %d: %w", j, err)
			}
			if !equal(cs, gen.CommitSecret) {
				return where("new path: leaf %d: %w", j, mismatch("commit secret", cs, gen.CommitSecret))
			}
		}
	}
	return nil
}
