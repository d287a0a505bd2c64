package mls

import (
	"bytes"
	"fmt"
	"slices"
)

// TreeKEM (§7.4–7.6): refreshing a member's direct path, encrypting the path
// secrets to the rest of the group, and the inverse at each receiver.
//
// The work is split into steps because the ciphertexts are bound to the
// provisional GroupContext, whose tree_hash is that of the tree *after* the
// path is merged:
//
//	committer: GeneratePath (merges into the tree) → caller builds the
//	           GroupContext from TreeHash → GeneratedPath.Encrypt
//	receiver:  ApplyUpdatePath (checks and merges) → caller builds the
//	           GroupContext → TreePrivateState.DecryptPath

// TreePrivateState is one member's private view of the tree: its leaf's HPKE
// private key and the private keys it knows for parent nodes, which are all
// on its direct path (the tree invariant, §4.2).
type TreePrivateState struct {
	Leaf    LeafIndex
	LeafKey HPKEPrivateKey
	keys    map[NodeIndex]HPKEPrivateKey
}

// NewTreePrivateState returns the state of a member who knows only its leaf
// key, as after joining by a KeyPackage.
func NewTreePrivateState(leaf LeafIndex, leafKey HPKEPrivateKey) *TreePrivateState {
	return &TreePrivateState{Leaf: leaf, LeafKey: leafKey, keys: map[NodeIndex]HPKEPrivateKey{}}
}

// Clone returns a copy whose set of keys can change independently.
func (p *TreePrivateState) Clone() *TreePrivateState {
	c := NewTreePrivateState(p.Leaf, p.LeafKey)
	for x, k := range p.keys {
		c.keys[x] = k
	}
	return c
}

// PrivateKey returns the private key the member holds for node x: its leaf
// key for its own leaf node, or a parent node's key.
func (p *TreePrivateState) PrivateKey(x NodeIndex) (HPKEPrivateKey, bool) {
	if x == p.Leaf.Node() {
		return p.LeafKey, p.LeafKey != nil
	}
	k, ok := p.keys[x]
	return k, ok
}

// Nodes lists the parent nodes the member holds a private key for, in
// increasing order.
func (p *TreePrivateState) Nodes() []NodeIndex {
	out := make([]NodeIndex, 0, len(p.keys))
	for x := range p.keys {
		out = append(out, x)
	}
	slices.Sort(out)
	return out
}

// nodeKeyFromPathSecret derives a node's key pair from its path secret:
// node_secret = DeriveSecret(path_secret, "node"), then DeriveKeyPair.
func nodeKeyFromPathSecret(s *Suite, pathSecret []byte) (HPKEPrivateKey, []byte, error) {
	return s.DeriveHPKEKey(s.DeriveSecret(pathSecret, "node"))
}

// SetPathSecret stores the key derived from the path secret of parent node x
// (as a joiner does with the path secret of a Welcome, or a test with given
// secrets). It does not derive the keys above x.
func (p *TreePrivateState) SetPathSecret(s *Suite, x NodeIndex, pathSecret []byte) error {
	if x.IsLeaf() {
		return fmt.Errorf("%w: path secret for leaf node %d", ErrInvalidUpdatePath, x)
	}
	k, _, err := nodeKeyFromPathSecret(s, pathSecret)
	if err != nil {
		return err
	}
	p.keys[x] = k
	return nil
}

// CheckConsistent verifies that every key of the state belongs to the tree:
// the node is not blank, lies on the member's direct path (or is its leaf),
// and holds the matching public key.
func (p *TreePrivateState) CheckConsistent(t *RatchetTree) error {
	check := func(x NodeIndex, k HPKEPrivateKey) error {
		pub := t.EncryptionKey(x)
		if pub == nil {
			return fmt.Errorf("%w: private key for blank node %d", ErrInvalidUpdatePath, x)
		}
		if !isAncestor(x, p.Leaf.Node()) {
			return fmt.Errorf("%w: private key for node %d, which is not above leaf %d", ErrInvalidUpdatePath, x, p.Leaf)
		}
		if !bytes.Equal(k.PublicKey().Bytes(), pub) {
			return fmt.Errorf("%w: private key for node %d does not match its public key", ErrInvalidUpdatePath, x)
		}
		return nil
	}
	if p.LeafKey != nil {
		if err := check(p.Leaf.Node(), p.LeafKey); err != nil {
			return err
		}
	}
	for _, x := range p.Nodes() {
		if err := check(x, p.keys[x]); err != nil {
			return err
		}
	}
	return nil
}

// Pruned returns a copy of the state without the keys that no longer fit t:
// those of nodes that are blank (blanked by a Remove or an Update), outside
// the tree (after truncation), not above the member's leaf, or whose public
// key has changed. Call it after a commit without a path; DecryptPath and
// ImplantPathSecret prune on their own.
func (p *TreePrivateState) Pruned(t *RatchetTree) *TreePrivateState {
	c := NewTreePrivateState(p.Leaf, p.LeafKey)
	for x, k := range p.keys {
		pub := t.EncryptionKey(x)
		if pub != nil && isAncestor(x, p.Leaf.Node()) && bytes.Equal(k.PublicKey().Bytes(), pub) {
			c.keys[x] = k
		}
	}
	return c
}

// PathOptions says how a committer refreshes its direct path.
type PathOptions struct {
	// GroupID and the committer's leaf index are signed into the new leaf.
	GroupID []byte
	// Signer signs the new leaf; its public key must be the new leaf's
	// signature key.
	Signer *SignaturePrivateKey
	// Leaf, if set, supplies the new leaf's signature key, credential,
	// capabilities and extensions; otherwise the current leaf's are kept.
	Leaf *LeafNode
	// LeafSecret seeds the new leaf key and all path secrets; nil draws a
	// fresh random one. Set it only for reproducible tests.
	LeafSecret []byte
}

// GeneratedPath is a committer's refreshed direct path, already merged into
// its tree, with the secrets needed to encrypt it and to go on.
type GeneratedPath struct {
	Committer LeafIndex
	// LeafNode is the committer's new, signed leaf (also in the tree).
	LeafNode *LeafNode
	// Path is the committer's filtered direct path, Copath the copath child
	// under each of its nodes, PathSecrets the secret of each path node.
	Path        []NodeIndex
	Copath      []NodeIndex
	PathSecrets [][]byte
	// CommitSecret is DeriveSecret of the last path secret with "path".
	CommitSecret []byte
	// State is the committer's new private state.
	State *TreePrivateState
	keys  [][]byte // public keys of Path
}

// GeneratePath refreshes the committer's direct path (§7.4) in t, which
// should already reflect the commit's proposals: it blanks the direct path,
// draws a leaf secret and derives path secrets and key pairs up the filtered
// direct path, sets parent hashes from the root down (§7.9), and signs the
// new leaf with source commit. Encrypt the result after computing the new
// GroupContext. On error t is unchanged.
func (t *RatchetTree) GeneratePath(committer LeafIndex, o PathOptions) (*GeneratedPath, error) {
	s := t.suite
	old := t.Leaf(committer)
	if old == nil {
		return nil, fmt.Errorf("%w: committer leaf %d is blank or outside the tree", ErrInvalidUpdatePath, committer)
	}
	if o.Signer == nil {
		return nil, fmt.Errorf("%w: no signing key", ErrInvalidUpdatePath)
	}
	tmpl := old
	if o.Leaf != nil {
		tmpl = o.Leaf
	}
	if !bytes.Equal(o.Signer.PublicKey(), tmpl.SignatureKey) {
		return nil, fmt.Errorf("%w: leaf %d: signing key does not match the leaf's signature key", ErrInvalidUpdatePath, committer)
	}
	leafSecret := o.LeafSecret
	if leafSecret == nil {
		leafSecret = RandomBytes(s.HashSize())
	}
	leafKey, leafPub, err := nodeKeyFromPathSecret(s, leafSecret)
	if err != nil {
		return nil, err
	}

	path, copath := t.FilteredDirectPath(committer)
	g := &GeneratedPath{
		Committer:   committer,
		Path:        path,
		Copath:      copath,
		PathSecrets: make([][]byte, len(path)),
		keys:        make([][]byte, len(path)),
		State:       NewTreePrivateState(committer, leafKey),
	}
	secret := s.DeriveSecret(leafSecret, "path")
	for i, x := range path {
		g.PathSecrets[i] = secret
		k, pub, err := nodeKeyFromPathSecret(s, secret)
		if err != nil {
			return nil, err
		}
		g.State.keys[x] = k
		g.keys[i] = pub
		secret = s.DeriveSecret(secret, "path")
	}
	g.CommitSecret = secret

	parents, leafPH := t.pathParentHashes(g.keys, copath)

	leaf := cloneLeafNode(tmpl)
	leaf.EncryptionKey = leafPub
	leaf.Source = SourceCommit
	leaf.Lifetime = Lifetime{}
	leaf.ParentHash = leafPH
	if err := leaf.Sign(s, o.Signer, o.GroupID, committer); err != nil {
		return nil, err
	}
	g.LeafNode = leaf
	t.mergePath(committer, leaf, path, parents)
	return g, nil
}

// pathParentHashes builds the parent nodes of a new filtered direct path
// with the given public keys, setting each parent_hash from the root down,
// and returns them with the parent hash the new leaf must carry. The copath
// children are not on the path, so their tree hashes are the same before and
// after the merge, and the new nodes have no unmerged leaves: the plain
// cached tree hash is the original sibling tree hash.
func (t *RatchetTree) pathParentHashes(keys [][]byte, copath []NodeIndex) ([]*ParentNode, []byte) {
	parents := make([]*ParentNode, len(keys))
	var ph []byte // the parent hash of the node above; empty above the root
	for i := len(keys) - 1; i >= 0; i-- {
		parents[i] = &ParentNode{EncryptionKey: keys[i], ParentHash: ph}
		ph = t.parentHashOf(keys[i], parents[i].ParentHash, t.hashNode(copath[i]))
	}
	if ph == nil {
		ph = []byte{}
	}
	return parents, ph
}

// mergePath blanks leaf l's direct path and writes the new leaf and parents.
func (t *RatchetTree) mergePath(l LeafIndex, leaf *LeafNode, path []NodeIndex, parents []*ParentNode) {
	t.blankPath(l)
	for i, x := range path {
		t.nodes[x].parent = parents[i]
	}
	t.setLeaf(l, leaf)
}

// Encrypt builds the UpdatePath (§7.6): for each node of the filtered direct
// path, its public key and its path secret encrypted to every node of the
// copath child's resolution, leaving out the leaves added by this commit
// (they get the path secret in their Welcome). groupContext is the
// provisional GroupContext, whose tree hash is t's after GeneratePath.
func (g *GeneratedPath) Encrypt(t *RatchetTree, groupContext *GroupContext, excluded []LeafIndex) (*UpdatePath, error) {
	s := t.suite
	ctx := Marshal(groupContext)
	up := &UpdatePath{LeafNode: *g.LeafNode, Nodes: make([]UpdatePathNode, len(g.Path))}
	for i := range g.Path {
		res := t.copathResolution(g.Copath[i], excluded)
		n := &up.Nodes[i]
		n.EncryptionKey = g.keys[i]
		n.EncryptedPathSecret = make([]HPKECiphertext, len(res))
		for j, x := range res {
			kem, ct, err := s.EncryptWithLabel(t.EncryptionKey(x), "UpdatePathNode", ctx, g.PathSecrets[i])
			if err != nil {
				return nil, fmt.Errorf("%w: encrypting to node %d: %w", ErrInvalidUpdatePath, x, err)
			}
			n.EncryptedPathSecret[j] = HPKECiphertext{KEMOutput: kem, Ciphertext: ct}
		}
	}
	return up, nil
}

// PathSecretFor returns the path secret a new member at leaf l needs in its
// Welcome: that of the lowest node of the filtered direct path above l. ok is
// false if no such node exists (l is the committer).
func (g *GeneratedPath) PathSecretFor(l LeafIndex) (node NodeIndex, secret []byte, ok bool) {
	for i, x := range g.Path {
		if isAncestor(x, l.Node()) {
			return x, g.PathSecrets[i], true
		}
	}
	return 0, nil, false
}

// copathResolution is the resolution of x without the excluded leaves.
func (t *RatchetTree) copathResolution(x NodeIndex, excluded []LeafIndex) []NodeIndex {
	res := t.Resolution(x)
	if len(excluded) == 0 {
		return res
	}
	return slices.DeleteFunc(res, func(y NodeIndex) bool {
		return y.IsLeaf() && slices.Contains(excluded, y.Leaf())
	})
}

// ApplyUpdatePath checks a received UpdatePath from member sender against t
// and merges its public part (§7.5): the path must have one node per node of
// the sender's filtered direct path, each with one ciphertext per node of the
// copath child's resolution minus the excluded (newly added) leaves; its keys
// must be valid; its leaf node must pass validation as a commit leaf (c
// supplies the group's parameters; Leaf, Source, Tree and InTree are set
// here); and the leaf's parent_hash must match the parent hashes recomputed
// from the new keys. Only the new leaf's signature is checked. On error t is
// unchanged.
func (t *RatchetTree) ApplyUpdatePath(sender LeafIndex, up *UpdatePath, excluded []LeafIndex, c LeafNodeCheck) error {
	s := t.suite
	if t.Leaf(sender) == nil {
		return fmt.Errorf("%w: sender leaf %d is blank or outside the tree", ErrInvalidUpdatePath, sender)
	}
	path, copath := t.FilteredDirectPath(sender)
	if len(up.Nodes) != len(path) {
		return fmt.Errorf("%w: sender %d: %d path nodes, filtered direct path has %d", ErrInvalidUpdatePath, sender, len(up.Nodes), len(path))
	}
	keys := make([][]byte, len(path))
	for i, x := range path {
		n := &up.Nodes[i]
		if err := s.CheckHPKEPublicKey(n.EncryptionKey); err != nil {
			return fmt.Errorf("%w: node %d: %w", ErrInvalidUpdatePath, x, err)
		}
		if want := len(t.copathResolution(copath[i], excluded)); len(n.EncryptedPathSecret) != want {
			return fmt.Errorf("%w: node %d: %d encrypted path secrets, copath resolution has %d", ErrInvalidUpdatePath, x, len(n.EncryptedPathSecret), want)
		}
		keys[i] = n.EncryptionKey
	}
	c.Leaf, c.Source, c.Tree, c.InTree = sender, SourceCommit, t, false
	if err := ValidateLeafNode(s, &up.LeafNode, &c); err != nil {
		return err
	}
	if err := t.checkFreshPathKeys(sender, up.LeafNode.EncryptionKey, path, keys); err != nil {
		return err
	}
	parents, leafPH := t.pathParentHashes(keys, copath)
	if !bytes.Equal(leafPH, up.LeafNode.ParentHash) {
		return fmt.Errorf("%w at leaf %d (node %d): leaf parent_hash does not match the path", ErrParentHash, sender, sender.Node())
	}
	for i := range parents {
		parents[i].EncryptionKey = slices.Clone(keys[i])
	}
	t.mergePath(sender, cloneLeafNode(&up.LeafNode), path, parents)
	return nil
}

// DecryptPath is a receiver's second step (§7.5): in t, into which the
// sender's UpdatePath has been merged, it finds the lowest node of the
// sender's filtered direct path above this member, decrypts that node's path
// secret with the key of the member's node in the copath child's resolution
// (excluded lists the leaves added by the commit, as for ApplyUpdatePath),
// derives the path secrets and keys above it, and checks them against the
// public keys in t. It returns the member's new state, the decrypted path
// secret and the commit secret; p itself is not changed.
func (p *TreePrivateState) DecryptPath(t *RatchetTree, sender LeafIndex, up *UpdatePath, groupContext *GroupContext, excluded []LeafIndex) (next *TreePrivateState, pathSecret, commitSecret []byte, err error) {
	s := t.suite
	if sender == p.Leaf {
		return nil, nil, nil, fmt.Errorf("%w: leaf %d cannot decrypt its own path", ErrInvalidUpdatePath, sender)
	}
	if slices.Contains(excluded, p.Leaf) {
		return nil, nil, nil, fmt.Errorf("%w: leaf %d was added by this commit; its path secret comes in the Welcome", ErrInvalidUpdatePath, p.Leaf)
	}
	path, copath := t.FilteredDirectPath(sender)
	if len(up.Nodes) != len(path) {
		return nil, nil, nil, fmt.Errorf("%w: sender %d: %d path nodes, filtered direct path has %d", ErrInvalidUpdatePath, sender, len(up.Nodes), len(path))
	}
	i := slices.IndexFunc(path, func(x NodeIndex) bool { return isAncestor(x, p.Leaf.Node()) })
	if i < 0 {
		return nil, nil, nil, fmt.Errorf("%w: no node of sender %d's filtered direct path is above leaf %d", ErrInvalidUpdatePath, sender, p.Leaf)
	}
	res := t.copathResolution(copath[i], excluded)
	cts := up.Nodes[i].EncryptedPathSecret
	if len(cts) != len(res) {
		return nil, nil, nil, fmt.Errorf("%w: node %d: %d encrypted path secrets, copath resolution has %d", ErrInvalidUpdatePath, path[i], len(cts), len(res))
	}
	j, key := -1, HPKEPrivateKey(nil)
	for k, x := range res {
		if priv, ok := p.PrivateKey(x); ok && isAncestor(x, p.Leaf.Node()) {
			j, key = k, priv
			break
		}
	}
	if j < 0 {
		return nil, nil, nil, fmt.Errorf("%w: leaf %d holds no key in the resolution of node %d", ErrInvalidUpdatePath, p.Leaf, copath[i])
	}
	pathSecret, err = s.DecryptWithLabel(key, "UpdatePathNode", Marshal(groupContext), cts[j].KEMOutput, cts[j].Ciphertext)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: node %d: path secret: %w", ErrInvalidUpdatePath, path[i], err)
	}
	next, commitSecret, err = p.deriveUp(t, sender, path[i:], pathSecret)
	if err != nil {
		return nil, nil, nil, err
	}
	return next, pathSecret, commitSecret, nil
}

// deriveUp derives keys from pathSecret for the given tail of sender's
// filtered direct path, checks them against t, and returns a new state with
// them in place of the keys of the sender's (now replaced) direct path.
func (p *TreePrivateState) deriveUp(t *RatchetTree, sender LeafIndex, path []NodeIndex, pathSecret []byte) (*TreePrivateState, []byte, error) {
	s := t.suite
	next := p.Pruned(t)
	for _, x := range directPath(sender.Node(), t.LeafCount()) {
		delete(next.keys, x)
	}
	secret := pathSecret
	for _, x := range path {
		k, pub, err := nodeKeyFromPathSecret(s, secret)
		if err != nil {
			return nil, nil, err
		}
		if !bytes.Equal(pub, t.EncryptionKey(x)) {
			return nil, nil, fmt.Errorf("%w: node %d: key derived from the path secret does not match the path's public key", ErrInvalidUpdatePath, x)
		}
		next.keys[x] = k
		secret = s.DeriveSecret(secret, "path")
	}
	return next, secret, nil
}

// ImplantPathSecret is the joiner's use of the path secret in its Welcome
// (§12.4.3.1): the secret belongs to the lowest node of the committer's
// filtered direct path above this member, in t after the commit. It derives
// the keys of that node and those above it on the path, checks them against
// t, and returns the new state and the commit secret.
func (p *TreePrivateState) ImplantPathSecret(t *RatchetTree, committer LeafIndex, pathSecret []byte) (*TreePrivateState, []byte, error) {
	path, _ := t.FilteredDirectPath(committer)
	i := slices.IndexFunc(path, func(x NodeIndex) bool { return isAncestor(x, p.Leaf.Node()) })
	if i < 0 {
		return nil, nil, fmt.Errorf("%w: no node of committer %d's filtered direct path is above leaf %d", ErrInvalidUpdatePath, committer, p.Leaf)
	}
	return p.deriveUp(t, committer, path[i:], pathSecret)
}

// checkFreshPathKeys refuses an UpdatePath whose public keys repeat one
// another, repeat its new leaf's key, or appear anywhere else in the tree
// (§12.4.2): a reused key would hand whoever can decrypt one node the
// private key of another. The sender's own direct path is about to be
// replaced, so only nodes off it are compared. One pass over the tree.
func (t *RatchetTree) checkFreshPathKeys(sender LeafIndex, leafKey []byte, path []NodeIndex, keys [][]byte) error {
	seen := make(map[string]NodeIndex, len(keys)+1)
	seen[string(leafKey)] = sender.Node()
	for i, k := range keys {
		if prev, dup := seen[string(k)]; dup {
			return fmt.Errorf("%w: node %d reuses the key of node %d of the same path", ErrInvalidUpdatePath, path[i], prev)
		}
		seen[string(k)] = path[i]
	}
	onPath := map[NodeIndex]bool{sender.Node(): true}
	for _, x := range directPath(sender.Node(), t.LeafCount()) {
		onPath[x] = true
	}
	for i := range t.nodes {
		x := NodeIndex(i)
		if onPath[x] || t.nodes[i].blank() {
			continue
		}
		var k []byte
		if l := t.nodes[i].leaf; l != nil {
			if x.IsLeaf() && x.Leaf() == sender {
				continue
			}
			k = l.EncryptionKey
		} else {
			k = t.nodes[i].parent.EncryptionKey
		}
		if at, dup := seen[string(k)]; dup {
			return fmt.Errorf("%w: node %d's new key is already in the tree at node %d", ErrInvalidUpdatePath, at, x)
		}
	}
	return nil
}
