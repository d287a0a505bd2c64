package mls

import (
	"fmt"
	"slices"
)

// Leaf node validation (§7.3).

// LeafNodeCheck carries what validating a leaf node needs to know about the
// group, so that the check does not depend on a full group state.
type LeafNodeCheck struct {
	// GroupID binds the signature of leaves from updates and commits.
	GroupID []byte
	// Leaf is the position the leaf takes (or holds) in the tree; it binds
	// the signature of leaves from updates and commits.
	Leaf LeafIndex
	// Source is the leaf_node_source the context requires (key_package for
	// an Add or a KeyPackage, update for an Update, commit for an
	// UpdatePath); zero accepts any source, as when validating a whole tree.
	Source LeafNodeSource
	// RequiredExtensions, RequiredProposals and RequiredCredentials come from
	// the group's required_capabilities extension, if any.
	RequiredExtensions  []ExtensionType
	RequiredProposals   []ProposalType
	RequiredCredentials []CredentialType
	// Tree, if set, supplies the other members: their signature and
	// encryption keys must differ from the leaf's, and their credential
	// types and capabilities must be compatible with it.
	Tree *RatchetTree
	// InTree says the leaf is already in Tree at Leaf (validating a tree
	// one has received), so that slot is not compared with itself. Otherwise
	// the leaf is new at Leaf: it may keep the signature key of the leaf it
	// replaces but must bring a new encryption key (§7.3, Update).
	InTree bool
	// Now, if not zero, is the current time in seconds since the Unix epoch;
	// the lifetime of a key_package leaf must then contain it. The check is
	// optional for received leaves, so zero skips it.
	Now uint64
}

// isDefaultExtension reports the extension types every client implements,
// which capabilities MUST NOT list (§7.2).
func isDefaultExtension(e ExtensionType) bool { return e >= 1 && e <= 5 }

// isDefaultProposal reports the proposal types every client implements.
func isDefaultProposal(p ProposalType) bool { return p >= 1 && p <= 7 }

// ValidateLeafNode checks a leaf node as §7.3 requires, with the group's
// parameters in c. Credential validation by an authentication service is the
// application's duty and is not done here.
func ValidateLeafNode(s *Suite, leaf *LeafNode, c *LeafNodeCheck) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: leaf %d: "+format, append([]any{ErrInvalidLeafNode, c.Leaf}, args...)...)
	}
	if leaf == nil {
		return fail("blank")
	}
	switch leaf.Credential.Type {
	case CredentialBasic, CredentialX509:
	default:
		return fail("unknown credential type 0x%04x", uint16(leaf.Credential.Type))
	}
	if c.Source != 0 && leaf.Source != c.Source {
		return fail("leaf_node_source %d, want %d", leaf.Source, c.Source)
	}
	if err := s.CheckHPKEPublicKey(leaf.EncryptionKey); err != nil {
		return fmt.Errorf("%w: leaf %d: encryption key: %w", ErrInvalidLeafNode, c.Leaf, err)
	}
	if err := s.CheckSignaturePublicKey(leaf.SignatureKey); err != nil {
		return fmt.Errorf("%w: leaf %d: signature key: %w", ErrInvalidLeafNode, c.Leaf, err)
	}
	if err := leaf.VerifySignature(s, c.GroupID, c.Leaf); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidLeafNode, err)
	}
	caps := &leaf.Capabilities
	if !slices.Contains(caps.Credentials, leaf.Credential.Type) {
		return fail("credential type 0x%04x not in its capabilities", uint16(leaf.Credential.Type))
	}
	for _, e := range leaf.Extensions {
		if !isDefaultExtension(e.Type) && !slices.Contains(caps.Extensions, e.Type) {
			return fail("extension 0x%04x not in its capabilities", uint16(e.Type))
		}
	}
	for _, e := range c.RequiredExtensions {
		if !isDefaultExtension(e) && !slices.Contains(caps.Extensions, e) {
			return fail("lacks required extension 0x%04x", uint16(e))
		}
	}
	for _, p := range c.RequiredProposals {
		if !isDefaultProposal(p) && !slices.Contains(caps.Proposals, p) {
			return fail("lacks required proposal 0x%04x", uint16(p))
		}
	}
	for _, ct := range c.RequiredCredentials {
		if !slices.Contains(caps.Credentials, ct) {
			return fail("lacks required credential type 0x%04x", uint16(ct))
		}
	}
	if c.Now != 0 && leaf.Source == SourceKeyPackage {
		if c.Now < leaf.Lifetime.NotBefore || c.Now > leaf.Lifetime.NotAfter {
			return fail("lifetime [%d, %d] does not contain now (%d)", leaf.Lifetime.NotBefore, leaf.Lifetime.NotAfter, c.Now)
		}
	}
	if c.Tree != nil {
		if err := c.Tree.checkAgainstMembers(leaf, c); err != nil {
			return err
		}
	}
	return nil
}

// checkAgainstMembers compares the leaf with every other member: unique keys
// and mutually supported credential types. It uses the tree's member index,
// so it costs a few map look-ups however large the group; no signature is
// checked.
func (t *RatchetTree) checkAgainstMembers(leaf *LeafNode, c *LeafNodeCheck) error {
	m := t.index()
	// self is the leaf now at the position, whose contributions to the
	// counts are not those of "another member".
	self := t.Leaf(c.Leaf)
	others := m.members
	if self != nil {
		others--
	}
	sameKey := func(a, b []byte) bool { return string(a) == string(b) }

	if self != nil && sameKey(self.EncryptionKey, leaf.EncryptionKey) && !c.InTree {
		return fmt.Errorf("%w: leaf %d: encryption key is not new", ErrInvalidLeafNode, c.Leaf)
	}
	// conflict finds another member holding key, when the hashed count says
	// there may be one (beyond the slot's own leaf when it is excluded).
	conflict := func(counts map[uint64]int, key []byte, selfKey func(*LeafNode) []byte, excludeSelf bool) (LeafIndex, bool) {
		h := treeKeyHash(key)
		n := counts[h]
		if excludeSelf && self != nil && treeKeyHash(selfKey(self)) == h {
			n--
		}
		if n <= 0 {
			return 0, false
		}
		return t.findLeaf(c.Leaf, func(x *LeafNode) bool { return sameKey(selfKey(x), key) })
	}
	encKey := func(x *LeafNode) []byte { return x.EncryptionKey }
	sigKey := func(x *LeafNode) []byte { return x.SignatureKey }
	if o, dup := conflict(m.encKeys, leaf.EncryptionKey, encKey, c.InTree); dup {
		return fmt.Errorf("%w: leaf %d: encryption key already in the tree at leaf %d", ErrInvalidLeafNode, c.Leaf, o)
	}
	// The member being replaced may keep its signature key.
	if o, dup := conflict(m.sigKeys, leaf.SignatureKey, sigKey, true); dup {
		return fmt.Errorf("%w: leaf %d: signature key already in the tree at leaf %d", ErrInvalidLeafNode, c.Leaf, o)
	}

	ct := leaf.Credential.Type
	supporters := m.credSupports[ct]
	if self != nil && treeSupportsCredential(self, ct) {
		supporters--
	}
	if supporters < others {
		o, _ := t.findLeaf(c.Leaf, func(x *LeafNode) bool { return !treeSupportsCredential(x, ct) })
		return fmt.Errorf("%w: leaf %d: credential type 0x%04x not supported by leaf %d", ErrInvalidLeafNode, c.Leaf, uint16(ct), o)
	}
	for used, n := range m.credInUse {
		if self != nil && self.Credential.Type == used {
			n--
		}
		if n > 0 && !treeSupportsCredential(leaf, used) {
			o, _ := t.findLeaf(c.Leaf, func(x *LeafNode) bool { return x.Credential.Type == used })
			return fmt.Errorf("%w: leaf %d: does not support credential type 0x%04x of leaf %d", ErrInvalidLeafNode, c.Leaf, uint16(used), o)
		}
	}
	return nil
}

// ValidateLeaves validates every member's leaf in place, as a client joining
// a group must (§7.3, §12.4.3.1). c supplies the group's parameters; its
// Leaf, Source, Tree and InTree fields are ignored. Uniqueness and credential
// compatibility are checked with one pass over the members, not one per leaf,
// so validating a large tree stays linear.
func (t *RatchetTree) ValidateLeaves(c LeafNodeCheck) error {
	c.Tree, c.InTree, c.Source = nil, true, 0
	encKeys := map[string]LeafIndex{}
	sigKeys := map[string]LeafIndex{}
	var inUse []CredentialType
	for i := 0; i < len(t.nodes); i += 2 {
		leaf := t.nodes[i].leaf
		if leaf == nil {
			continue
		}
		l := NodeIndex(i).Leaf()
		c.Leaf = l
		if err := ValidateLeafNode(t.suite, leaf, &c); err != nil {
			return err
		}
		if o, dup := encKeys[string(leaf.EncryptionKey)]; dup {
			return fmt.Errorf("%w: leaf %d: encryption key already in the tree at leaf %d", ErrInvalidLeafNode, l, o)
		}
		encKeys[string(leaf.EncryptionKey)] = l
		if o, dup := sigKeys[string(leaf.SignatureKey)]; dup {
			return fmt.Errorf("%w: leaf %d: signature key already in the tree at leaf %d", ErrInvalidLeafNode, l, o)
		}
		sigKeys[string(leaf.SignatureKey)] = l
		if !slices.Contains(inUse, leaf.Credential.Type) {
			inUse = append(inUse, leaf.Credential.Type)
		}
	}
	// Every member must support every credential type in use; that is the
	// same as each member's type being supported by all the others.
	for i := 0; i < len(t.nodes); i += 2 {
		leaf := t.nodes[i].leaf
		if leaf == nil {
			continue
		}
		for _, ct := range inUse {
			if !slices.Contains(leaf.Capabilities.Credentials, ct) {
				return fmt.Errorf("%w: leaf %d: does not support credential type 0x%04x in use in the group", ErrInvalidLeafNode, NodeIndex(i).Leaf(), uint16(ct))
			}
		}
	}
	return nil
}
