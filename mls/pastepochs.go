package mls

import "fmt"

// Application messages sent just before a commit may arrive just after it.
// RFC 9420 §12.4.2 lets a member keep the previous epochs' secret trees for
// a short time to read them; a member keeps the last GroupConfig.PastEpochs
// epochs' keys, and uses them for application messages only: proposals and
// commits of a past epoch are stale by definition.

// pastEpoch is what reading a late message of an earlier epoch needs: the
// epoch's GroupContext (signatures cover it), its tree (the sender's
// signature key), and its message keys.
type pastEpoch struct {
	ctx              GroupContext
	tree             *RatchetTree
	keys             *SecretTree
	senderDataSecret []byte
}

func (c *GroupConfig) pastEpochs() int {
	switch {
	case c.PastEpochs < 0:
		return 0
	case c.PastEpochs == 0:
		return 2
	}
	return c.PastEpochs
}

// retire keeps the current epoch's message keys before the group moves on,
// and forgets (wipes) epochs beyond the configured number.
func (g *Group) retire() {
	if g.keys == nil || g.secrets == nil {
		return
	}
	g.past = append(g.past, pastEpoch{ctx: g.ctx, tree: g.tree, keys: g.keys, senderDataSecret: g.secrets.SenderDataSecret})
	for len(g.past) > g.config.pastEpochs() {
		g.past[0].keys.Wipe()
		g.past = g.past[1:]
	}
	g.keys = nil
}

func (g *Group) pastEpoch(epoch uint64) *pastEpoch {
	for i := range g.past {
		if g.past[i].ctx.Epoch == epoch {
			return &g.past[i]
		}
	}
	return nil
}

// processLate reads an application message of a past epoch.
func (g *Group) processLate(p *pastEpoch, pm *PrivateMessage) (*Received, error) {
	a, err := UnprotectPrivate(g.suite, pm, p.keys, p.senderDataSecret)
	if err != nil {
		return nil, err
	}
	sender := a.Content.Sender
	leaf := p.tree.Leaf(sender.Leaf)
	if sender.Type != SenderMember || leaf == nil {
		return nil, fmt.Errorf("%w: leaf %d was not a member in epoch %d", ErrInvalidSender, sender.Leaf, p.ctx.Epoch)
	}
	if err := a.VerifySignature(g.suite, leaf.SignatureKey, &p.ctx); err != nil {
		return nil, err
	}
	c := &a.Content
	return &Received{ContentType: c.ContentType, Sender: c.Sender, AuthenticatedData: c.AuthenticatedData, ApplicationData: c.ApplicationData}, nil
}
