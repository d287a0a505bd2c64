package mls

// ProtocolVersion is the MLS protocol version; only mls10 exists.
type ProtocolVersion uint16

const MLS10 ProtocolVersion = 1

// ExtensionType identifies an extension (RFC 9420 §17.3).
type ExtensionType uint16

const (
	ExtApplicationID        ExtensionType = 0x0001
	ExtRatchetTree          ExtensionType = 0x0002
	ExtRequiredCapabilities ExtensionType = 0x0003
	ExtExternalPub          ExtensionType = 0x0004
	ExtExternalSenders      ExtensionType = 0x0005
)

// Extension is a typed, opaque extension value.
type Extension struct {
	Type ExtensionType
	Data []byte
}

// Extensions is an ordered list of extensions, as on the wire.
type Extensions []Extension

func (e Extensions) MarshalMLS(w *Writer) {
	w.Vector(func(w *Writer) {
		for _, x := range e {
			w.U16(uint16(x.Type))
			w.Opaque(x.Data)
		}
	})
}

func (e *Extensions) UnmarshalMLS(r *Reader) {
	*e = nil
	r.Each(func(r *Reader) {
		*e = append(*e, Extension{Type: ExtensionType(r.U16()), Data: r.OpaqueCopy()})
	})
}

// Find returns the data of the first extension of type t.
func (e Extensions) Find(t ExtensionType) ([]byte, bool) {
	for _, x := range e {
		if x.Type == t {
			return x.Data, true
		}
	}
	return nil, false
}

// GroupContext is the summary of a group's state that every member agrees on
// in an epoch (RFC 9420 §8.1).
type GroupContext struct {
	Version                 ProtocolVersion
	CipherSuite             CipherSuite
	GroupID                 []byte
	Epoch                   uint64
	TreeHash                []byte
	ConfirmedTranscriptHash []byte
	Extensions              Extensions
}

func (g *GroupContext) MarshalMLS(w *Writer) {
	w.U16(uint16(g.Version))
	w.U16(uint16(g.CipherSuite))
	w.Opaque(g.GroupID)
	w.U64(g.Epoch)
	w.Opaque(g.TreeHash)
	w.Opaque(g.ConfirmedTranscriptHash)
	g.Extensions.MarshalMLS(w)
}

func (g *GroupContext) UnmarshalMLS(r *Reader) {
	g.Version = ProtocolVersion(r.U16())
	g.CipherSuite = CipherSuite(r.U16())
	g.GroupID = r.OpaqueCopy()
	g.Epoch = r.U64()
	g.TreeHash = r.OpaqueCopy()
	g.ConfirmedTranscriptHash = r.OpaqueCopy()
	g.Extensions.UnmarshalMLS(r)
	if r.Err() == nil && g.Version != MLS10 {
		r.Failf("protocol version %d", g.Version)
	}
}
