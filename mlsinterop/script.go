package mlsinterop

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// Action names one kind of scenario step. The names are the interop
// framework's; what each one does is documented on the constants and
// implemented in runner.go.
type Action string

// The actions a scenario step may name.
const (
	// ActCreateGroup creates a group at Actor and, when Members is set, adds
	// them all with one commit of by-value Adds that they join by Welcome.
	ActCreateGroup Action = "createGroup"
	// ActCreateKeyPackage makes a KeyPackage at Actor (its transaction is
	// remembered for a later join).
	ActCreateKeyPackage Action = "createKeyPackage"
	// ActJoinGroup joins Actor through the Welcome produced at step Welcome.
	ActJoinGroup Action = "joinGroup"
	// ActExternalJoin has Joiner join by external commit from Actor's
	// GroupInfo; Actor and Members then process the commit.
	ActExternalJoin Action = "externalJoin"
	// ActInstallExternalPSK draws a fresh external PSK and stores it at every
	// actor in Clients.
	ActInstallExternalPSK Action = "installExternalPSK"
	// ActGroupInfo fetches Actor's GroupInfo (and tree, with ExternalTree).
	ActGroupInfo Action = "groupInfo"
	// ActAddProposal proposes adding the KeyPackage made at step KeyPackage.
	ActAddProposal Action = "addProposal"
	// ActUpdateProposal proposes an update of Actor's own leaf.
	ActUpdateProposal Action = "updateProposal"
	// ActRemoveProposal proposes removing the member whose identity is Removed.
	ActRemoveProposal Action = "removeProposal"
	// ActExternalPSKProposal proposes the PSK installed at step PSKID.
	ActExternalPSKProposal Action = "externalPSKProposal"
	// ActResumptionPSKProposal proposes the resumption PSK of epoch EpochID.
	ActResumptionPSKProposal Action = "resumptionPSKProposal"
	// ActGroupContextExtensionsProposal proposes replacing the group context
	// extensions with Extensions.
	ActGroupContextExtensionsProposal Action = "groupContextExtensionsProposal"
	// ActFullCommit commits at Actor, applies the commit at Actor and at
	// Members, and joins Joiners through its Welcome, checking that all of
	// them reach the same epoch authenticator.
	ActFullCommit Action = "fullCommit"
	// ActCommit only creates a commit at Actor (see ActHandleCommit and
	// ActHandlePendingCommit).
	ActCommit Action = "commit"
	// ActHandleCommit applies the commit made at step Commit at Actor.
	ActHandleCommit Action = "handleCommit"
	// ActHandlePendingCommit applies Actor's own pending commit.
	ActHandlePendingCommit Action = "handlePendingCommit"
	// ActProtect encrypts Plaintext with AuthenticatedData at Actor.
	ActProtect Action = "protect"
	// ActUnprotect decrypts the message made at step Ciphertext at Actor and
	// checks that the plaintext and authenticated data come back unchanged.
	ActUnprotect Action = "unprotect"
	// ActReInit reinitializes the group: Proposer (or the external proposal
	// at step ExternalReinitProposal) proposes, Committer commits, everyone
	// else handles the commit, and Welcomer welcomes all the others into the
	// new group.
	ActReInit Action = "reinit"
	// ActBranch has Actor branch the group into a new one with Members.
	ActBranch Action = "branch"
	// ActNewMemberAddProposal has Joiner make a self-signed external Add from
	// Actor's GroupInfo.
	ActNewMemberAddProposal Action = "newMemberAddProposal"
	// ActAddExternalSigner creates external sender Signer and has Actor
	// propose adding it to the group's external senders.
	ActAddExternalSigner Action = "addExternalSigner"
	// ActExternalSignerProposal has external sender Actor make the proposal
	// Description for the group, as seen from Member's GroupInfo.
	ActExternalSignerProposal Action = "externalSignerProposal"
)

var knownActions = map[Action]bool{
	ActCreateGroup: true, ActCreateKeyPackage: true, ActJoinGroup: true,
	ActExternalJoin: true, ActInstallExternalPSK: true, ActGroupInfo: true,
	ActAddProposal: true, ActUpdateProposal: true, ActRemoveProposal: true,
	ActExternalPSKProposal: true, ActResumptionPSKProposal: true,
	ActGroupContextExtensionsProposal: true, ActFullCommit: true,
	ActCommit: true, ActHandleCommit: true, ActHandlePendingCommit: true,
	ActProtect: true, ActUnprotect: true, ActReInit: true, ActBranch: true,
	ActNewMemberAddProposal: true, ActAddExternalSigner: true,
	ActExternalSignerProposal: true,
}

// Config is one scenario file: named scripts, in file order.
type Config struct {
	// Mode is the file's optional client-assignment mode ("allCombinations"
	// or "random" upstream); empty in the shipped files.
	Mode string
	// Scripts holds every script in the order the file lists them, so runs
	// and reports are reproducible.
	Scripts []Script
}

// Script returns the script called name.
func (c Config) Script(name string) (Script, bool) {
	for _, s := range c.Scripts {
		if s.Name == name {
			return s, true
		}
	}
	return Script{}, false
}

// Script is one named sequence of steps. Steps refer to each other by
// index, starting at 0.
type Script struct {
	Name  string
	Steps []Step
}

// Prefix returns the script cut to its first n steps (all of it when n <= 0
// or n is past the end). A prefix is always playable because steps only
// refer back to earlier steps.
func (s Script) Prefix(n int) Script {
	if n <= 0 || n >= len(s.Steps) {
		return s
	}
	return Script{Name: s.Name, Steps: s.Steps[:n:n]}
}

// Extension is one extension given in a script; ExtensionData is base64
// in the file, as encoding/json does for []byte.
type Extension struct {
	ExtensionType uint16 `json:"extension_type"`
	ExtensionData []byte `json:"extension_data"`
}

// ProposalDesc describes a proposal to be made by value (in a commit's
// byValue list) or by an external signer.
type ProposalDesc struct {
	// ProposalType is "add", "remove", "externalPSK", "resumptionPSK",
	// "groupContextExtensions" or "reinit".
	ProposalType string `json:"proposalType"`
	// KeyPackage is the step whose KeyPackage an "add" adds.
	KeyPackage *int `json:"keyPackage"`
	// Removed is the identity a "remove" removes.
	Removed string `json:"removed"`
	// PSKID is the installExternalPSK step whose PSK an "externalPSK" uses.
	PSKID *int `json:"pskID"`
	// EpochID is the epoch a "resumptionPSK" refers to.
	EpochID uint64 `json:"epochID"`
	// Extensions go into "groupContextExtensions" and "reinit".
	Extensions []Extension `json:"extensions"`
	// ChangeGroupID and ChangeCipherSuite shape a "reinit": a new group ID
	// and another cipher suite that every assigned client supports.
	ChangeGroupID     bool `json:"changeGroupID"`
	ChangeCipherSuite bool `json:"changeCipherSuite"`
}

// Step is one scenario step. Which fields matter depends on Action; see
// the Action constants. Fields that name a step (*int, []int) hold that
// step's index; Raw keeps the step's JSON for reports.
type Step struct {
	Action Action `json:"action"`
	Actor  string `json:"actor"`

	Members     []string       `json:"members"`
	Joiners     []string       `json:"joiners"`
	Joiner      string         `json:"joiner"`
	KeyPackage  *int           `json:"keyPackage"`
	ByReference []int          `json:"byReference"`
	ByValue     []ProposalDesc `json:"byValue"`
	Removed     string         `json:"removed"`
	PSKID       *int           `json:"pskID"`
	EpochID     uint64         `json:"epochID"`
	Extensions  []Extension    `json:"extensions"`
	Welcome     *int           `json:"welcome"`
	Commit      *int           `json:"commit"`

	// ForcePath and ExternalTree are spelled force_path/external_tree in
	// fullCommit steps and forcePath/externalTree in reinit, branch and
	// externalJoin steps. LoadConfig accepts either spelling for every
	// action; see forcePathAlt.
	ForcePath    bool `json:"force_path"`
	ExternalTree bool `json:"external_tree"`

	Proposer               string `json:"proposer"`
	Committer              string `json:"committer"`
	Welcomer               string `json:"welcomer"`
	ChangeCipherSuite      bool   `json:"changeCipherSuite"`
	ChangeGroupID          bool   `json:"changeGroupID"`
	ExternalReinitProposal *int   `json:"externalReinitProposal"`

	Signer      string        `json:"signer"`
	Member      string        `json:"member"`
	Description *ProposalDesc `json:"description"`
	PSKs        []int         `json:"psks"`
	RemovePrior bool          `json:"removePrior"`
	Clients     []string      `json:"clients"`

	// AuthenticatedData and Plaintext are a protect step's inputs, taken as
	// UTF-8 text; Ciphertext is the protect step an unprotect step decrypts.
	AuthenticatedData string `json:"authenticatedData"`
	Plaintext         string `json:"plaintext"`
	Ciphertext        *int   `json:"ciphertext"`

	Raw json.RawMessage `json:"-"`
}

// stepJSON is Step plus the second spelling of two flags. encoding/json
// matches keys case-insensitively, so "changeCiphersuite" (reinit.json)
// already lands in ChangeCipherSuite; forcePath and force_path differ by
// more than case and need their own fields.
type stepJSON struct {
	Step
	ForcePathAlt    bool `json:"forcePath"`
	ExternalTreeAlt bool `json:"externalTree"`
}

// LoadConfig reads and checks a scenario file.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path) // #nosec G304 -- the script file given on the command line
	if err != nil {
		return Config{}, err
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig parses and checks a scenario file's contents. Unknown
// actions, unknown keys and references to missing or later steps are
// errors naming the script and step, so a typo fails before any client is
// contacted rather than as an obscure RPC error halfway through a run.
func ParseConfig(data []byte) (Config, error) {
	var top struct {
		Mode    string          `json:"mode"`
		Scripts json.RawMessage `json:"scripts"`
	}
	if err := strictUnmarshal(data, &top); err != nil {
		return Config{}, err
	}
	if len(top.Scripts) == 0 {
		return Config{}, errors.New("no \"scripts\" object")
	}
	cfg := Config{Mode: top.Mode}
	dec := json.NewDecoder(bytes.NewReader(top.Scripts))
	// Walk the object by tokens: a map would lose the file's order.
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return Config{}, errors.New("\"scripts\" is not an object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Config{}, err
		}
		name := tok.(string)
		if seen[name] {
			return Config{}, fmt.Errorf("script %q appears twice", name)
		}
		seen[name] = true
		var raws []json.RawMessage
		if err := dec.Decode(&raws); err != nil {
			return Config{}, fmt.Errorf("script %q: %w", name, err)
		}
		s := Script{Name: name, Steps: make([]Step, len(raws))}
		for i, raw := range raws {
			st, err := parseStep(raw)
			if err == nil {
				err = checkStep(i, st)
			}
			if err != nil {
				return Config{}, fmt.Errorf("script %q step %d: %w", name, i, err)
			}
			s.Steps[i] = st
		}
		cfg.Scripts = append(cfg.Scripts, s)
	}
	if _, err := dec.Token(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

func parseStep(raw json.RawMessage) (Step, error) {
	var sj stepJSON
	if err := strictUnmarshal(raw, &sj); err != nil {
		return Step{}, err
	}
	st := sj.Step
	st.ForcePath = st.ForcePath || sj.ForcePathAlt
	st.ExternalTree = st.ExternalTree || sj.ExternalTreeAlt
	st.Raw = append(json.RawMessage(nil), raw...)
	return st, nil
}

// checkStep validates what can be validated without clients: the action,
// the names each action needs, and that every step reference points back.
func checkStep(i int, st Step) error {
	if st.Action == "" {
		return errors.New("no action")
	}
	if !knownActions[st.Action] {
		return fmt.Errorf("unknown action %q", st.Action)
	}
	need := func(field, v string) error {
		if v == "" {
			return fmt.Errorf("%s needs %q", st.Action, field)
		}
		return nil
	}
	ref := func(field string, p *int, required bool) error {
		if p == nil {
			if required {
				return fmt.Errorf("%s needs %q", st.Action, field)
			}
			return nil
		}
		if *p < 0 || *p >= i {
			return fmt.Errorf("%q = %d does not name an earlier step", field, *p)
		}
		return nil
	}
	refs := func(field string, l []int) error {
		for _, x := range l {
			if err := ref(field, &x, true); err != nil {
				return err
			}
		}
		return nil
	}
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	if st.Action != ActInstallExternalPSK && st.Action != ActReInit {
		add(need("actor", st.Actor))
	}
	switch st.Action {
	case ActJoinGroup:
		add(ref("welcome", st.Welcome, true))
	case ActExternalJoin:
		add(need("joiner", st.Joiner))
		add(refs("psks", st.PSKs))
	case ActInstallExternalPSK:
		if len(st.Clients) == 0 {
			add(errors.New("installExternalPSK needs \"clients\""))
		}
	case ActAddProposal:
		add(ref("keyPackage", st.KeyPackage, true))
	case ActRemoveProposal:
		add(need("removed", st.Removed))
	case ActExternalPSKProposal:
		add(ref("pskID", st.PSKID, true))
	case ActFullCommit, ActCommit:
		add(refs("byReference", st.ByReference))
		for _, d := range st.ByValue {
			add(checkDesc(i, d))
		}
	case ActHandleCommit:
		add(ref("commit", st.Commit, true))
		add(refs("byReference", st.ByReference))
	case ActUnprotect:
		add(ref("ciphertext", st.Ciphertext, true))
	case ActReInit:
		add(need("committer", st.Committer))
		add(need("welcomer", st.Welcomer))
		if st.Proposer == "" {
			add(ref("externalReinitProposal", st.ExternalReinitProposal, true))
		} else if st.ExternalReinitProposal != nil {
			add(errors.New("reinit has both \"proposer\" and \"externalReinitProposal\""))
		}
	case ActNewMemberAddProposal:
		add(need("joiner", st.Joiner))
	case ActAddExternalSigner:
		add(need("signer", st.Signer))
	case ActExternalSignerProposal:
		add(need("member", st.Member))
		if st.Description == nil {
			add(errors.New("externalSignerProposal needs \"description\""))
		} else {
			add(checkDesc(i, *st.Description))
		}
	}
	return errors.Join(errs...)
}

func checkDesc(i int, d ProposalDesc) error {
	inRange := func(field string, p *int) error {
		if p == nil {
			return fmt.Errorf("%s proposal needs %q", d.ProposalType, field)
		}
		if *p < 0 || *p >= i {
			return fmt.Errorf("%s proposal: %q = %d does not name an earlier step", d.ProposalType, field, *p)
		}
		return nil
	}
	switch d.ProposalType {
	case "add":
		return inRange("keyPackage", d.KeyPackage)
	case "remove":
		if d.Removed == "" {
			return errors.New("remove proposal needs \"removed\"")
		}
	case "externalPSK":
		return inRange("pskID", d.PSKID)
	case "resumptionPSK", "groupContextExtensions", "reinit":
	default:
		return fmt.Errorf("unknown proposal type %q", d.ProposalType)
	}
	return nil
}

// Actors lists every actor the script names, in order of first
// appearance: step actors and every other field that names a party
// (members, joiners, signers, reinit roles, PSK holders). The order is what
// makes round-robin assignment reproducible.
func (s Script) Actors() []string {
	var out []string
	seen := map[string]bool{}
	add := func(names ...string) {
		for _, n := range names {
			if n != "" && !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	for _, st := range s.Steps {
		add(st.Actor)
		add(st.Proposer, st.Committer, st.Welcomer)
		add(st.Members...)
		add(st.Joiner, st.Signer, st.Member)
		add(st.Joiners...)
		add(st.Clients...)
	}
	return out
}
