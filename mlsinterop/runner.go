package mlsinterop

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	mathrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/switchboard-chat/switchboard/mlsinterop/pb"
)

// DefaultRPCTimeout bounds one RPC when Runner.RPCTimeout is zero. It is
// the interop framework's own limit: generous, because a client may be a
// slow implementation under a debugger, but finite, so that a wedged
// client fails a run instead of hanging it.
const DefaultRPCTimeout = 2 * time.Minute

// VerifyMode says when a Runner cross-checks the group's members beyond
// the epoch-authenticator comparisons every commit already gets.
type VerifyMode int

const (
	// VerifyAtEnd checks the group once, after the script's last step.
	VerifyAtEnd VerifyMode = iota
	// VerifyEveryEpoch checks the group after every step that moved some
	// member to a new epoch. It finds a divergence at the step that caused
	// it, at the price of many more RPCs.
	VerifyEveryEpoch
	// VerifyNever leaves only the checks the upstream runner makes.
	VerifyNever
)

// Runner plays scenario scripts against a fixed list of MLS interop
// clients (gRPC servers for mls_client.proto), ours or anyone's.
type Runner struct {
	// RPCTimeout bounds each RPC; zero means DefaultRPCTimeout.
	RPCTimeout time.Duration
	// Verify says when group state is cross-checked; see VerifyMode.
	Verify VerifyMode

	clients []pb.MLSClientClient
	names   []string
	conns   []*grpc.ClientConn

	mu     sync.Mutex
	suites [][]uint16 // per client, filled on first use
}

// NewRunner returns a Runner over already connected clients. The caller
// keeps ownership of the connections; Close closes nothing for them.
func NewRunner(clients ...pb.MLSClientClient) *Runner {
	r := &Runner{
		clients: slices.Clone(clients),
		names:   make([]string, len(clients)),
		suites:  make([][]uint16, len(clients)),
	}
	for i := range r.names {
		r.names[i] = fmt.Sprintf("client %d", i)
	}
	return r
}

// Dial connects to a client at each address (host:port, plaintext gRPC as
// the framework uses) and asks each for its name and cipher suites, so that
// a wrong address fails here rather than in the first script.
func Dial(addrs []string) (*Runner, error) {
	if len(addrs) == 0 {
		return nil, errors.New("mlsinterop: no client addresses")
	}
	r := NewRunner()
	for i, addr := range addrs {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			r.Close() // #nosec G104 -- on an error path: the first error is the one returned
			return nil, fmt.Errorf("mlsinterop: client %d (%s): %w", i, addr, err)
		}
		r.conns = append(r.conns, conn)
		c := pb.NewMLSClientClient(conn)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		name, nerr := c.Name(ctx, &pb.NameRequest{})
		cs, serr := c.SupportedCiphersuites(ctx, &pb.SupportedCiphersuitesRequest{})
		cancel()
		if err := errors.Join(nerr, serr); err != nil {
			r.Close() // #nosec G104 -- on an error path: the first error is the one returned
			return nil, fmt.Errorf("mlsinterop: client %d (%s): %w", i, addr, err)
		}
		r.clients = append(r.clients, c)
		r.names = append(r.names, fmt.Sprintf("%s@%s", name.GetName(), addr))
		r.suites = append(r.suites, toSuites(cs.GetCiphersuites()))
	}
	return r, nil
}

// Close closes the connections Dial opened.
func (r *Runner) Close() error {
	var errs []error
	for _, c := range r.conns {
		errs = append(errs, c.Close())
	}
	r.conns = nil
	return errors.Join(errs...)
}

// Names describes each client, by index, for reports.
func (r *Runner) Names() []string { return slices.Clone(r.names) }

func toSuites(l []uint32) []uint16 {
	out := make([]uint16, 0, len(l))
	for _, s := range l {
		if s <= math.MaxUint16 {
			out = append(out, uint16(s))
		}
	}
	return out
}

// Suites returns the cipher suites client i reports, asking it once.
func (r *Runner) Suites(ctx context.Context, i int) ([]uint16, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if i < 0 || i >= len(r.clients) {
		return nil, fmt.Errorf("mlsinterop: no client %d", i)
	}
	if r.suites[i] == nil {
		ctx, cancel := context.WithTimeout(ctx, r.timeout())
		defer cancel()
		resp, err := r.clients[i].SupportedCiphersuites(ctx, &pb.SupportedCiphersuitesRequest{})
		if err != nil {
			return nil, fmt.Errorf("SupportedCiphersuites on %s: %w", r.names[i], err)
		}
		r.suites[i] = toSuites(resp.GetCiphersuites())
	}
	return slices.Clone(r.suites[i]), nil
}

func (r *Runner) timeout() time.Duration {
	if r.RPCTimeout > 0 {
		return r.RPCTimeout
	}
	return DefaultRPCTimeout
}

// Assignment maps each actor of a script to the index of the client that
// plays it.
type Assignment map[string]int

// RoundRobin assigns a script's actors to clients 0..n-1 in turn, in order
// of first appearance. With two or more clients, the actors that interact
// most (the creator and its first members) land on different clients.
func RoundRobin(s Script, n int) Assignment {
	a := Assignment{}
	for i, actor := range s.Actors() {
		a[actor] = i % n
	}
	return a
}

// AllAssignments lists every way to place a script's actors on n clients
// (n^actors of them), which is what the upstream runner plays by default.
// It refuses when there would be more than limit, since that grows past
// anything playable after a handful of actors.
func AllAssignments(s Script, n, limit int) ([]Assignment, error) {
	actors := s.Actors()
	total := 1
	for range actors {
		if total > limit/max(n, 1) {
			return nil, fmt.Errorf("script %q: %d actors on %d clients is more than %d assignments", s.Name, len(actors), n, limit)
		}
		total *= n
	}
	out := make([]Assignment, 0, total)
	digits := make([]int, len(actors))
	for range total {
		a := Assignment{}
		for i, actor := range actors {
			a[actor] = digits[i]
		}
		out = append(out, a)
		for i := range digits { // count in base n
			digits[i]++
			if digits[i] < n {
				break
			}
			digits[i] = 0
		}
	}
	return out, nil
}

// RandomAssignment places each actor on a client drawn from rng.
func RandomAssignment(s Script, n int, rng *mathrand.Rand) Assignment {
	a := Assignment{}
	for _, actor := range s.Actors() {
		a[actor] = rng.IntN(n)
	}
	return a
}

// StepError reports a failed step: which script, which step (Step equals
// the number of steps for the final group check), its action and actor,
// and the underlying RPC or check error.
type StepError struct {
	Script string
	Step   int
	Action Action
	Actor  string
	Err    error
}

// Error reads "script "name" step N (action, actor A): cause".
func (e *StepError) Error() string {
	actor := e.Actor
	if actor == "" {
		actor = "-"
	}
	return fmt.Sprintf("script %q step %d (%s, actor %s): %v", e.Script, e.Step, e.Action, actor, e.Err)
}

// Unwrap gives the cause, so errors.Is/As and status.Code see through.
func (e *StepError) Unwrap() error { return e.Err }

// ActVerifyGroupState is the pseudo-action StepError names when the
// runner's own cross-check of the group fails.
const ActVerifyGroupState Action = "verifyGroupState"

// Run plays script with its actors assigned round-robin to the clients.
func (r *Runner) Run(ctx context.Context, script Script, suite uint16, encryptHandshake bool) error {
	if len(r.clients) == 0 {
		return errors.New("mlsinterop: runner has no clients")
	}
	return r.RunAssigned(ctx, script, suite, encryptHandshake, RoundRobin(script, len(r.clients)))
}

// RunAssigned plays script with the given actor placement. Every group
// state the clients handed out is freed at the end, whether or not the
// script passed.
func (r *Runner) RunAssigned(ctx context.Context, script Script, suite uint16, encryptHandshake bool, assign Assignment) (err error) {
	p := &play{
		r: r, script: script, suite: suite, encrypt: encryptHandshake, assign: assign,
		state: map[string]uint32{}, txn: map[string]uint32{},
		signerID: map[string]uint32{}, signerIndex: map[string]uint32{},
		auth: map[string][]byte{}, pending: map[string]int{},
		handles: map[handle]bool{},
		out:     make([]map[string][]byte, len(script.Steps)),
	}
	for _, actor := range script.Actors() {
		if c, ok := assign[actor]; !ok || c < 0 || c >= len(r.clients) {
			return &StepError{Script: script.Name, Step: -1, Action: "assign", Actor: actor,
				Err: fmt.Errorf("actor is not placed on one of the %d clients", len(r.clients))}
		}
	}
	defer func() {
		if ferr := p.freeAll(ctx); err == nil && ferr != nil {
			err = &StepError{Script: script.Name, Step: len(script.Steps), Action: "free", Err: ferr}
		}
	}()
	for i, st := range script.Steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		p.out[i] = map[string][]byte{}
		p.moved = false
		if err := p.step(ctx, i, st); err != nil {
			return &StepError{Script: script.Name, Step: i, Action: st.Action, Actor: stepActor(st), Err: err}
		}
		if r.Verify == VerifyEveryEpoch && p.moved {
			if err := p.verifyGroup(ctx); err != nil {
				return &StepError{Script: script.Name, Step: i, Action: ActVerifyGroupState, Actor: stepActor(st), Err: err}
			}
		}
	}
	if r.Verify == VerifyAtEnd {
		if err := p.verifyGroup(ctx); err != nil {
			return &StepError{Script: script.Name, Step: len(script.Steps), Action: ActVerifyGroupState, Err: err}
		}
	}
	return nil
}

// stepActor is who a step is about, for error reports: reinit steps have
// no actor, and their committer is the pivot.
func stepActor(st Step) string {
	if st.Actor != "" {
		return st.Actor
	}
	return st.Committer
}

// Keys of the values a step leaves for later steps to refer to.
const (
	kGroupID      = "groupID"
	kKeyPackage   = "keyPackage"
	kProposal     = "proposal"
	kCommit       = "commit"
	kWelcome      = "welcome"
	kRatchetTree  = "ratchetTree"
	kGroupInfo    = "groupInfo"
	kPSKID        = "pskID"
	kPSKSecret    = "pskSecret"
	kCiphertext   = "ciphertext"
	kAuthData     = "authenticatedData"
	kPlaintext    = "plaintext"
	kEpochAuth    = "epochAuthenticator"
	kReinitAuth   = "reinitEpochAuthenticator"
	exportLabel   = "switchboard interop check"
	exportLength  = 32
	groupIDSuffix = "++"
)

type handle struct {
	client int
	id     uint32
}

// play is the state of one script run: which group state and pending
// transaction each actor holds on its client, and what each step produced.
type play struct {
	r       *Runner
	script  Script
	suite   uint16
	encrypt bool
	assign  Assignment

	state       map[string]uint32 // actor -> its current group state
	txn         map[string]uint32 // actor -> its pending join transaction
	signerID    map[string]uint32 // external signer -> id on its client
	signerIndex map[string]uint32 // external signer -> place in external_senders
	nSigners    uint32
	groupID     []byte
	out         []map[string][]byte

	// auth is the epoch authenticator each actor's state last reported;
	// lastAuth is the newest one anyone reported. The actors whose state is
	// at lastAuth are the group that verifyGroup checks, which keeps removed
	// members, members a script leaves behind and old branches out of it.
	auth     map[string][]byte
	lastAuth []byte
	haveAuth bool
	moved    bool           // some actor changed epoch in the current step
	pending  map[string]int // actor -> step of its commit not yet applied
	handles  map[handle]bool
}

type peer struct {
	actor string
	idx   int
	rpc   pb.MLSClientClient
}

func (p *play) peer(actor string) *peer {
	i := p.assign[actor]
	return &peer{actor: actor, idx: i, rpc: p.r.clients[i]}
}

// invoke makes one RPC under the runner's timeout and names the RPC, the
// actor and the client in any error.
func invoke[Req, Resp any](ctx context.Context, p *play, c *peer, name string,
	f func(context.Context, Req, ...grpc.CallOption) (Resp, error), req Req) (Resp, error) {
	ctx, cancel := context.WithTimeout(ctx, p.r.timeout())
	defer cancel()
	resp, err := f(ctx, req)
	if err != nil {
		var zero Resp
		return zero, fmt.Errorf("%s by %s on %s: %w", name, c.actor, p.r.names[c.idx], err)
	}
	return resp, nil
}

func (p *play) put(i int, key string, v []byte) { p.out[i][key] = slices.Clone(v) }

func (p *play) get(i int, key string) ([]byte, error) {
	v, ok := p.out[i][key]
	if !ok {
		return nil, fmt.Errorf("step %d produced no %s", i, key)
	}
	return v, nil
}

func (p *play) getAll(idx []int, key string) ([][]byte, error) {
	out := make([][]byte, len(idx))
	for n, i := range idx {
		v, err := p.get(i, key)
		if err != nil {
			return nil, err
		}
		out[n] = v
	}
	return out, nil
}

func (p *play) stateOf(actor string) (uint32, error) {
	id, ok := p.state[actor]
	if !ok {
		return 0, fmt.Errorf("%s has no group state yet", actor)
	}
	return id, nil
}

func (p *play) setState(c *peer, id uint32) {
	p.state[c.actor] = id
	p.handles[handle{c.idx, id}] = true
}

func (p *play) setAuth(actor string, auth []byte) {
	p.auth[actor] = slices.Clone(auth)
	p.lastAuth = p.auth[actor]
	p.haveAuth = true
	p.moved = true
}

// agree checks that everyone who reaches the epoch created at step i
// reports the same epoch authenticator as the first to reach it did.
func (p *play) agree(i int, key, actor string, auth []byte) error {
	want, ok := p.out[i][key]
	if !ok {
		p.put(i, key, auth)
		return nil
	}
	if !bytes.Equal(want, auth) {
		return fmt.Errorf("%s reports epoch authenticator %x for the epoch of step %d, others %x", actor, auth, i, want)
	}
	return nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// newGroupID gives printable random group IDs, so transcripts read well.
func newGroupID() []byte { return []byte(hex.EncodeToString(randomBytes(16))) }

func (p *play) extensions(l []Extension) []*pb.Extension {
	out := make([]*pb.Extension, len(l))
	for i, e := range l {
		out[i] = &pb.Extension{ExtensionType: uint32(e.ExtensionType), ExtensionData: slices.Clone(e.ExtensionData)}
	}
	return out
}

// reinitGroupID is the group ID a reinit asks for: the current one, or a
// new one derived from it.
func (p *play) reinitGroupID(change bool) ([]byte, error) {
	if p.groupID == nil {
		return nil, errors.New("reinit before any createGroup")
	}
	id := slices.Clone(p.groupID)
	if change {
		id = append(id, groupIDSuffix...)
	}
	return id, nil
}

// changeSuite moves the run to another cipher suite that every client in
// the assignment supports, as a reinit with changeCipherSuite asks. It picks
// the lowest such suite so that runs are reproducible; later steps of the
// script use it too.
func (p *play) changeSuite(ctx context.Context) error {
	var common []uint16
	for n, idx := range p.usedClients() {
		s, err := p.r.Suites(ctx, idx)
		if err != nil {
			return err
		}
		if n == 0 {
			common = s
			continue
		}
		common = slices.DeleteFunc(common, func(x uint16) bool { return !slices.Contains(s, x) })
	}
	common = slices.DeleteFunc(common, func(x uint16) bool { return x == p.suite })
	if len(common) == 0 {
		return fmt.Errorf("no cipher suite other than %d that all clients support", p.suite)
	}
	p.suite = slices.Min(common)
	return nil
}

func (p *play) usedClients() []int {
	var l []int
	for _, idx := range p.assign {
		if !slices.Contains(l, idx) {
			l = append(l, idx)
		}
	}
	slices.Sort(l)
	return l
}

func (p *play) desc(ctx context.Context, d ProposalDesc) (*pb.ProposalDescription, error) {
	out := &pb.ProposalDescription{ProposalType: []byte(d.ProposalType)}
	var err error
	switch d.ProposalType {
	case "add":
		out.KeyPackage, err = p.get(*d.KeyPackage, kKeyPackage)
	case "remove":
		out.RemovedId = []byte(d.Removed)
	case "externalPSK":
		out.PskId, err = p.get(*d.PSKID, kPSKID)
	case "resumptionPSK":
		out.EpochId = d.EpochID
	case "groupContextExtensions":
		out.Extensions = p.extensions(d.Extensions)
	case "reinit":
		out.Extensions = p.extensions(d.Extensions)
		if d.ChangeCipherSuite {
			err = p.changeSuite(ctx)
		}
		out.CipherSuite = uint32(p.suite)
		if err == nil {
			out.GroupId, err = p.reinitGroupID(d.ChangeGroupID)
		}
	default:
		err = fmt.Errorf("unknown proposal type %q", d.ProposalType)
	}
	return out, err
}

func (p *play) descs(ctx context.Context, l []ProposalDesc) ([]*pb.ProposalDescription, error) {
	out := make([]*pb.ProposalDescription, len(l))
	for i, d := range l {
		var err error
		if out[i], err = p.desc(ctx, d); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// uniq keeps the first occurrence of each non-empty name, minus those in
// drop: the sets of parties a reinit or external join must reach.
func uniq(names []string, drop ...string) []string {
	var out []string
	for _, n := range names {
		if n != "" && !slices.Contains(out, n) && !slices.Contains(drop, n) {
			out = append(out, n)
		}
	}
	return out
}

func (p *play) step(ctx context.Context, i int, st Step) error {
	switch st.Action {
	case ActCreateGroup:
		return p.createGroup(ctx, i, st)
	case ActCreateKeyPackage:
		c := p.peer(st.Actor)
		resp, err := invoke(ctx, p, c, "CreateKeyPackage", c.rpc.CreateKeyPackage,
			&pb.CreateKeyPackageRequest{CipherSuite: uint32(p.suite), Identity: []byte(st.Actor)})
		if err != nil {
			return err
		}
		p.txn[st.Actor] = resp.TransactionId
		p.put(i, kKeyPackage, resp.KeyPackage)
	case ActJoinGroup:
		return p.joinGroup(ctx, i, st)
	case ActExternalJoin:
		return p.externalJoin(ctx, i, st)
	case ActInstallExternalPSK:
		return p.installPSK(ctx, i, st)
	case ActGroupInfo:
		c := p.peer(st.Actor)
		sid, err := p.stateOf(st.Actor)
		if err != nil {
			return err
		}
		resp, err := invoke(ctx, p, c, "GroupInfo", c.rpc.GroupInfo,
			&pb.GroupInfoRequest{StateId: sid, ExternalTree: st.ExternalTree})
		if err != nil {
			return err
		}
		p.put(i, kGroupInfo, resp.GroupInfo)
		p.put(i, kRatchetTree, resp.RatchetTree)
	case ActAddProposal, ActUpdateProposal, ActRemoveProposal, ActExternalPSKProposal,
		ActResumptionPSKProposal, ActGroupContextExtensionsProposal:
		return p.propose(ctx, i, st)
	case ActFullCommit:
		return p.fullCommit(ctx, i, st)
	case ActCommit:
		_, err := p.commit(ctx, i, st)
		return err
	case ActHandleCommit:
		return p.handleCommit(ctx, i, st)
	case ActHandlePendingCommit:
		return p.handlePending(ctx, st.Actor)
	case ActProtect:
		c := p.peer(st.Actor)
		sid, err := p.stateOf(st.Actor)
		if err != nil {
			return err
		}
		ad, pt := []byte(st.AuthenticatedData), []byte(st.Plaintext)
		resp, err := invoke(ctx, p, c, "Protect", c.rpc.Protect,
			&pb.ProtectRequest{StateId: sid, AuthenticatedData: ad, Plaintext: pt})
		if err != nil {
			return err
		}
		p.put(i, kCiphertext, resp.Ciphertext)
		p.put(i, kAuthData, ad)
		p.put(i, kPlaintext, pt)
	case ActUnprotect:
		return p.unprotect(ctx, st)
	case ActReInit:
		return p.reinit(ctx, i, st)
	case ActBranch:
		return p.branch(ctx, i, st)
	case ActNewMemberAddProposal:
		return p.newMemberAdd(ctx, i, st)
	case ActAddExternalSigner:
		return p.addExternalSigner(ctx, i, st)
	case ActExternalSignerProposal:
		return p.externalSignerProposal(ctx, i, st)
	default:
		return fmt.Errorf("unknown action %q", st.Action)
	}
	return nil
}

// createGroup makes the group and, for each of Members, a KeyPackage that
// the creator adds by value in one commit; the members join by its Welcome.
func (p *play) createGroup(ctx context.Context, i int, st Step) error {
	c := p.peer(st.Actor)
	gid := newGroupID()
	resp, err := invoke(ctx, p, c, "CreateGroup", c.rpc.CreateGroup, &pb.CreateGroupRequest{
		GroupId: gid, CipherSuite: uint32(p.suite), EncryptHandshake: p.encrypt, Identity: []byte(st.Actor)})
	if err != nil {
		return err
	}
	p.setState(c, resp.StateId)
	p.groupID = gid
	p.put(i, kGroupID, gid)
	if len(st.Members) == 0 {
		return nil
	}
	adds := make([]*pb.ProposalDescription, len(st.Members))
	for n, m := range st.Members {
		mc := p.peer(m)
		kp, err := invoke(ctx, p, mc, "CreateKeyPackage", mc.rpc.CreateKeyPackage,
			&pb.CreateKeyPackageRequest{CipherSuite: uint32(p.suite), Identity: []byte(m)})
		if err != nil {
			return err
		}
		p.txn[m] = kp.TransactionId
		adds[n] = &pb.ProposalDescription{ProposalType: []byte("add"), KeyPackage: kp.KeyPackage}
	}
	cr, err := invoke(ctx, p, c, "Commit", c.rpc.Commit, &pb.CommitRequest{StateId: resp.StateId, ByValue: adds})
	if err != nil {
		return err
	}
	p.put(i, kCommit, cr.Commit)
	p.put(i, kWelcome, cr.Welcome)
	if err := p.applyPending(ctx, c, i); err != nil {
		return err
	}
	return p.join(ctx, i, st.Members, cr.Welcome, nil)
}

// applyPending applies c's own pending commit, made at step i.
func (p *play) applyPending(ctx context.Context, c *peer, i int) error {
	sid, err := p.stateOf(c.actor)
	if err != nil {
		return err
	}
	resp, err := invoke(ctx, p, c, "HandlePendingCommit", c.rpc.HandlePendingCommit,
		&pb.HandlePendingCommitRequest{StateId: sid})
	if err != nil {
		return err
	}
	p.setState(c, resp.StateId)
	p.setAuth(c.actor, resp.EpochAuthenticator)
	delete(p.pending, c.actor)
	return p.agree(i, kEpochAuth, c.actor, resp.EpochAuthenticator)
}

// join brings each joiner in through welcome, using the transaction of the
// KeyPackage (or self-signed Add) it made earlier.
func (p *play) join(ctx context.Context, i int, joiners []string, welcome, tree []byte) error {
	for _, j := range joiners {
		jc := p.peer(j)
		txn, ok := p.txn[j]
		if !ok {
			return fmt.Errorf("%s has no KeyPackage to join with", j)
		}
		resp, err := invoke(ctx, p, jc, "JoinGroup", jc.rpc.JoinGroup, &pb.JoinGroupRequest{
			TransactionId: txn, Welcome: welcome, EncryptHandshake: p.encrypt,
			Identity: []byte(j), RatchetTree: tree})
		if err != nil {
			return err
		}
		p.setState(jc, resp.StateId)
		p.setAuth(j, resp.EpochAuthenticator)
		if err := p.agree(i, kEpochAuth, j, resp.EpochAuthenticator); err != nil {
			return err
		}
	}
	return nil
}

// handleAt has each member process the commit made at step i.
func (p *play) handleAt(ctx context.Context, i int, members []string, proposals [][]byte, commit []byte) error {
	for _, m := range members {
		mc := p.peer(m)
		sid, err := p.stateOf(m)
		if err != nil {
			return err
		}
		resp, err := invoke(ctx, p, mc, "HandleCommit", mc.rpc.HandleCommit,
			&pb.HandleCommitRequest{StateId: sid, Proposal: proposals, Commit: commit})
		if err != nil {
			return err
		}
		p.setState(mc, resp.StateId)
		p.setAuth(m, resp.EpochAuthenticator)
		if err := p.agree(i, kEpochAuth, m, resp.EpochAuthenticator); err != nil {
			return err
		}
	}
	return nil
}

func (p *play) joinGroup(ctx context.Context, i int, st Step) error {
	w := *st.Welcome
	welcome, err := p.get(w, kWelcome)
	if err != nil {
		return err
	}
	// Upstream sends no tree here; we pass the one the commit step exported,
	// if any, since a joiner cannot do without it.
	tree := p.out[w][kRatchetTree]
	if err := p.join(ctx, w, []string{st.Actor}, welcome, tree); err != nil {
		return err
	}
	return nil
}

// externalJoin: Actor publishes a GroupInfo, Joiner commits itself in with
// it (optionally with PSKs, optionally removing its own earlier leaf), and
// Actor plus Members process that commit.
func (p *play) externalJoin(ctx context.Context, i int, st Step) error {
	c := p.peer(st.Actor)
	sid, err := p.stateOf(st.Actor)
	if err != nil {
		return err
	}
	gi, err := invoke(ctx, p, c, "GroupInfo", c.rpc.GroupInfo,
		&pb.GroupInfoRequest{StateId: sid, ExternalTree: st.ExternalTree})
	if err != nil {
		return err
	}
	p.put(i, kGroupInfo, gi.GroupInfo)
	p.put(i, kRatchetTree, gi.RatchetTree)
	psks := make([]*pb.PreSharedKey, len(st.PSKs))
	for n, k := range st.PSKs {
		id, err := p.get(k, kPSKID)
		if err != nil {
			return err
		}
		secret, err := p.get(k, kPSKSecret)
		if err != nil {
			return err
		}
		psks[n] = &pb.PreSharedKey{PskId: id, PskSecret: secret}
	}
	jc := p.peer(st.Joiner)
	resp, err := invoke(ctx, p, jc, "ExternalJoin", jc.rpc.ExternalJoin, &pb.ExternalJoinRequest{
		GroupInfo: gi.GroupInfo, RatchetTree: gi.RatchetTree, EncryptHandshake: p.encrypt,
		Identity: []byte(st.Joiner), RemovePrior: st.RemovePrior, Psks: psks})
	if err != nil {
		return err
	}
	p.put(i, kCommit, resp.Commit)
	p.setState(jc, resp.StateId)
	p.setAuth(st.Joiner, resp.EpochAuthenticator)
	if err := p.agree(i, kEpochAuth, st.Joiner, resp.EpochAuthenticator); err != nil {
		return err
	}
	members := uniq(append(slices.Clone(st.Members), st.Actor), st.Joiner)
	return p.handleAt(ctx, i, members, nil, resp.Commit)
}

// installPSK draws a fresh external PSK and stores it at each listed
// actor: in its group state if it has one, else with its pending join
// (so that a PSK in a Welcome can be resolved).
func (p *play) installPSK(ctx context.Context, i int, st Step) error {
	id, secret := randomBytes(32), randomBytes(32)
	p.put(i, kPSKID, id)
	p.put(i, kPSKSecret, secret)
	for _, a := range st.Clients {
		c := p.peer(a)
		var target uint32
		if sid, ok := p.state[a]; ok {
			target = sid
		} else if txn, ok := p.txn[a]; ok {
			target = txn
		}
		if _, err := invoke(ctx, p, c, "StorePSK", c.rpc.StorePSK, &pb.StorePSKRequest{
			StateOrTransactionId: target, PskId: id, PskSecret: secret}); err != nil {
			return err
		}
	}
	return nil
}

func (p *play) propose(ctx context.Context, i int, st Step) error {
	c := p.peer(st.Actor)
	sid, err := p.stateOf(st.Actor)
	if err != nil {
		return err
	}
	var resp *pb.ProposalResponse
	switch st.Action {
	case ActAddProposal:
		kp, gerr := p.get(*st.KeyPackage, kKeyPackage)
		if gerr != nil {
			return gerr
		}
		resp, err = invoke(ctx, p, c, "AddProposal", c.rpc.AddProposal,
			&pb.AddProposalRequest{StateId: sid, KeyPackage: kp})
	case ActUpdateProposal:
		resp, err = invoke(ctx, p, c, "UpdateProposal", c.rpc.UpdateProposal,
			&pb.UpdateProposalRequest{StateId: sid})
	case ActRemoveProposal:
		resp, err = invoke(ctx, p, c, "RemoveProposal", c.rpc.RemoveProposal,
			&pb.RemoveProposalRequest{StateId: sid, RemovedId: []byte(st.Removed)})
	case ActExternalPSKProposal:
		id, gerr := p.get(*st.PSKID, kPSKID)
		if gerr != nil {
			return gerr
		}
		resp, err = invoke(ctx, p, c, "ExternalPSKProposal", c.rpc.ExternalPSKProposal,
			&pb.ExternalPSKProposalRequest{StateId: sid, PskId: id})
	case ActResumptionPSKProposal:
		resp, err = invoke(ctx, p, c, "ResumptionPSKProposal", c.rpc.ResumptionPSKProposal,
			&pb.ResumptionPSKProposalRequest{StateId: sid, EpochId: st.EpochID})
	case ActGroupContextExtensionsProposal:
		resp, err = invoke(ctx, p, c, "GroupContextExtensionsProposal", c.rpc.GroupContextExtensionsProposal,
			&pb.GroupContextExtensionsProposalRequest{StateId: sid, Extensions: p.extensions(st.Extensions)})
	}
	if err != nil {
		return err
	}
	p.put(i, kProposal, resp.Proposal)
	return nil
}

// commit creates (but does not apply) Actor's commit of the proposals
// named by reference and described by value; it returns the by-reference
// proposal messages, which the other members need to process it.
func (p *play) commit(ctx context.Context, i int, st Step) ([][]byte, error) {
	c := p.peer(st.Actor)
	sid, err := p.stateOf(st.Actor)
	if err != nil {
		return nil, err
	}
	byRef, err := p.getAll(st.ByReference, kProposal)
	if err != nil {
		return nil, err
	}
	byVal, err := p.descs(ctx, st.ByValue)
	if err != nil {
		return nil, err
	}
	resp, err := invoke(ctx, p, c, "Commit", c.rpc.Commit, &pb.CommitRequest{
		StateId: sid, ByReference: byRef, ByValue: byVal,
		ForcePath: st.ForcePath, ExternalTree: st.ExternalTree})
	if err != nil {
		return nil, err
	}
	p.put(i, kCommit, resp.Commit)
	p.put(i, kWelcome, resp.Welcome)
	if st.ExternalTree {
		p.put(i, kRatchetTree, resp.RatchetTree)
	}
	p.pending[st.Actor] = i
	return byRef, nil
}

// fullCommit is commit, then the committer applies it, Members process it
// and Joiners join by its Welcome, all required to agree on the new epoch.
func (p *play) fullCommit(ctx context.Context, i int, st Step) error {
	byRef, err := p.commit(ctx, i, st)
	if err != nil {
		return err
	}
	if err := p.applyPending(ctx, p.peer(st.Actor), i); err != nil {
		return err
	}
	commit, _ := p.get(i, kCommit)
	if err := p.handleAt(ctx, i, st.Members, byRef, commit); err != nil {
		return err
	}
	welcome, _ := p.get(i, kWelcome)
	var tree []byte
	if st.ExternalTree {
		tree = p.out[i][kRatchetTree]
	}
	return p.join(ctx, i, st.Joiners, welcome, tree)
}

func (p *play) handleCommit(ctx context.Context, i int, st Step) error {
	commit, err := p.get(*st.Commit, kCommit)
	if err != nil {
		return err
	}
	byRef, err := p.getAll(st.ByReference, kProposal)
	if err != nil {
		return err
	}
	return p.handleAt(ctx, *st.Commit, []string{st.Actor}, byRef, commit)
}

func (p *play) handlePending(ctx context.Context, actor string) error {
	at, ok := p.pending[actor]
	if !ok {
		return fmt.Errorf("%s has no pending commit", actor)
	}
	return p.applyPending(ctx, p.peer(actor), at)
}

func (p *play) unprotect(ctx context.Context, st Step) error {
	c := p.peer(st.Actor)
	sid, err := p.stateOf(st.Actor)
	if err != nil {
		return err
	}
	k := *st.Ciphertext
	ct, err := p.get(k, kCiphertext)
	if err != nil {
		return err
	}
	resp, err := invoke(ctx, p, c, "Unprotect", c.rpc.Unprotect, &pb.UnprotectRequest{StateId: sid, Ciphertext: ct})
	if err != nil {
		return err
	}
	if want := p.out[k][kAuthData]; !bytes.Equal(resp.AuthenticatedData, want) {
		return fmt.Errorf("Unprotect by %s: authenticated data %q, want %q", st.Actor, resp.AuthenticatedData, want)
	}
	if want := p.out[k][kPlaintext]; !bytes.Equal(resp.Plaintext, want) {
		return fmt.Errorf("Unprotect by %s: plaintext %q, want %q", st.Actor, resp.Plaintext, want)
	}
	return nil
}

// reinit runs the whole reinitialization: the ReInit proposal (made here
// by Proposer, or made earlier by an external signer), its commit by
// Committer, processing by everyone else in the old group, a Welcome into
// the new group by Welcomer and its processing by everyone else.
func (p *play) reinit(ctx context.Context, i int, st Step) error {
	old := append([]string{st.Proposer}, st.Members...)
	handlers := uniq(append([]string{st.Welcomer}, old...), st.Committer)
	joiners := uniq(append([]string{st.Committer}, old...), st.Welcomer)

	var proposal []byte
	if st.Proposer != "" {
		gid, err := p.reinitGroupID(st.ChangeGroupID)
		if err != nil {
			return err
		}
		if st.ChangeCipherSuite {
			if err := p.changeSuite(ctx); err != nil {
				return err
			}
		}
		c := p.peer(st.Proposer)
		sid, err := p.stateOf(st.Proposer)
		if err != nil {
			return err
		}
		resp, err := invoke(ctx, p, c, "ReInitProposal", c.rpc.ReInitProposal, &pb.ReInitProposalRequest{
			StateId: sid, CipherSuite: uint32(p.suite), GroupId: gid, Extensions: p.extensions(st.Extensions)})
		if err != nil {
			return err
		}
		proposal = resp.Proposal
	} else {
		var err error
		if proposal, err = p.get(*st.ExternalReinitProposal, kProposal); err != nil {
			return err
		}
	}
	proposals := [][]byte{proposal}

	// The commit; every old member ends up with a reinit handle and a fresh
	// KeyPackage for the new group.
	reinitID := map[string]uint32{}
	keyPackage := map[string][]byte{}
	cc := p.peer(st.Committer)
	csid, err := p.stateOf(st.Committer)
	if err != nil {
		return err
	}
	cr, err := invoke(ctx, p, cc, "ReInitCommit", cc.rpc.ReInitCommit,
		&pb.CommitRequest{StateId: csid, ByReference: proposals})
	if err != nil {
		return err
	}
	p.put(i, kCommit, cr.Commit)
	hp, err := invoke(ctx, p, cc, "HandlePendingReInitCommit", cc.rpc.HandlePendingReInitCommit,
		&pb.HandlePendingCommitRequest{StateId: csid})
	if err != nil {
		return err
	}
	reinitID[st.Committer], keyPackage[st.Committer] = hp.ReinitId, hp.KeyPackage
	if err := p.agree(i, kEpochAuth, st.Committer, hp.EpochAuthenticator); err != nil {
		return err
	}
	for _, m := range handlers {
		mc := p.peer(m)
		sid, err := p.stateOf(m)
		if err != nil {
			return err
		}
		resp, err := invoke(ctx, p, mc, "HandleReInitCommit", mc.rpc.HandleReInitCommit,
			&pb.HandleCommitRequest{StateId: sid, Proposal: proposals, Commit: cr.Commit})
		if err != nil {
			return err
		}
		reinitID[m], keyPackage[m] = resp.ReinitId, resp.KeyPackage
		if err := p.agree(i, kEpochAuth, m, resp.EpochAuthenticator); err != nil {
			return err
		}
	}

	// The new group.
	kps := make([][]byte, len(joiners))
	for n, m := range joiners {
		kps[n] = keyPackage[m]
	}
	wc := p.peer(st.Welcomer)
	wr, err := invoke(ctx, p, wc, "ReInitWelcome", wc.rpc.ReInitWelcome, &pb.ReInitWelcomeRequest{
		ReinitId: reinitID[st.Welcomer], KeyPackage: kps, ForcePath: st.ForcePath, ExternalTree: st.ExternalTree})
	if err != nil {
		return err
	}
	p.put(i, kWelcome, wr.Welcome)
	p.setState(wc, wr.StateId)
	p.setAuth(st.Welcomer, wr.EpochAuthenticator)
	if err := p.agree(i, kReinitAuth, st.Welcomer, wr.EpochAuthenticator); err != nil {
		return err
	}
	var tree []byte
	if st.ExternalTree {
		tree = wr.RatchetTree
		p.put(i, kRatchetTree, tree)
	}
	for _, m := range joiners {
		mc := p.peer(m)
		resp, err := invoke(ctx, p, mc, "HandleReInitWelcome", mc.rpc.HandleReInitWelcome,
			&pb.HandleReInitWelcomeRequest{ReinitId: reinitID[m], Welcome: wr.Welcome, RatchetTree: tree})
		if err != nil {
			return err
		}
		p.setState(mc, resp.StateId)
		p.setAuth(m, resp.EpochAuthenticator)
		if err := p.agree(i, kReinitAuth, m, resp.EpochAuthenticator); err != nil {
			return err
		}
	}
	return nil
}

// branch: each of Members makes a fresh KeyPackage, Actor creates a new
// group from the current one with them (resumption PSK of type branch), and
// the members join it.
func (p *play) branch(ctx context.Context, i int, st Step) error {
	txns := make([]uint32, len(st.Members))
	kps := make([][]byte, len(st.Members))
	for n, m := range st.Members {
		mc := p.peer(m)
		resp, err := invoke(ctx, p, mc, "CreateKeyPackage", mc.rpc.CreateKeyPackage,
			&pb.CreateKeyPackageRequest{CipherSuite: uint32(p.suite), Identity: []byte(m)})
		if err != nil {
			return err
		}
		txns[n], kps[n] = resp.TransactionId, resp.KeyPackage
	}
	c := p.peer(st.Actor)
	sid, err := p.stateOf(st.Actor)
	if err != nil {
		return err
	}
	br, err := invoke(ctx, p, c, "CreateBranch", c.rpc.CreateBranch, &pb.CreateBranchRequest{
		StateId: sid, GroupId: newGroupID(), Extensions: p.extensions(st.Extensions),
		KeyPackages: kps, ForcePath: st.ForcePath, ExternalTree: st.ExternalTree})
	if err != nil {
		return err
	}
	p.put(i, kWelcome, br.Welcome)
	p.setState(c, br.StateId)
	p.setAuth(st.Actor, br.EpochAuthenticator)
	if err := p.agree(i, kEpochAuth, st.Actor, br.EpochAuthenticator); err != nil {
		return err
	}
	var tree []byte
	if st.ExternalTree {
		tree = br.RatchetTree
		p.put(i, kRatchetTree, tree)
	}
	for n, m := range st.Members {
		mc := p.peer(m)
		msid, err := p.stateOf(m)
		if err != nil {
			return err
		}
		resp, err := invoke(ctx, p, mc, "HandleBranch", mc.rpc.HandleBranch, &pb.HandleBranchRequest{
			StateId: msid, TransactionId: txns[n], Welcome: br.Welcome, RatchetTree: tree})
		if err != nil {
			return err
		}
		p.setState(mc, resp.StateId)
		p.setAuth(m, resp.EpochAuthenticator)
		if err := p.agree(i, kEpochAuth, m, resp.EpochAuthenticator); err != nil {
			return err
		}
	}
	return nil
}

// newMemberAdd has Joiner build a self-signed Add (new_member_proposal
// sender) from Actor's GroupInfo; a later commit references it and joins
// Joiner with the transaction recorded here.
func (p *play) newMemberAdd(ctx context.Context, i int, st Step) error {
	c := p.peer(st.Actor)
	sid, err := p.stateOf(st.Actor)
	if err != nil {
		return err
	}
	gi, err := invoke(ctx, p, c, "GroupInfo", c.rpc.GroupInfo, &pb.GroupInfoRequest{StateId: sid})
	if err != nil {
		return err
	}
	jc := p.peer(st.Joiner)
	resp, err := invoke(ctx, p, jc, "NewMemberAddProposal", jc.rpc.NewMemberAddProposal,
		&pb.NewMemberAddProposalRequest{GroupInfo: gi.GroupInfo, Identity: []byte(st.Joiner)})
	if err != nil {
		return err
	}
	p.txn[st.Joiner] = resp.TransactionId
	p.put(i, kProposal, resp.Proposal)
	return nil
}

// addExternalSigner creates external sender Signer on its client and has
// Actor propose the GroupContextExtensions that adds it. Signers are
// numbered in the order they are added: that is their index in the
// external_senders extension, given the proposals are committed in order,
// as every shipped script does.
func (p *play) addExternalSigner(ctx context.Context, i int, st Step) error {
	sc := p.peer(st.Signer)
	sr, err := invoke(ctx, p, sc, "CreateExternalSigner", sc.rpc.CreateExternalSigner,
		&pb.CreateExternalSignerRequest{CipherSuite: uint32(p.suite), Identity: []byte(st.Signer)})
	if err != nil {
		return err
	}
	p.signerID[st.Signer] = sr.SignerId
	p.signerIndex[st.Signer] = p.nSigners
	p.nSigners++
	c := p.peer(st.Actor)
	sid, err := p.stateOf(st.Actor)
	if err != nil {
		return err
	}
	resp, err := invoke(ctx, p, c, "AddExternalSigner", c.rpc.AddExternalSigner,
		&pb.AddExternalSignerRequest{StateId: sid, ExternalSender: sr.ExternalSender})
	if err != nil {
		return err
	}
	p.put(i, kProposal, resp.Proposal)
	return nil
}

// externalSignerProposal has external signer Actor make the described
// proposal against the group as Member currently sees it (GroupInfo plus
// tree, since an external party has no tree of its own).
func (p *play) externalSignerProposal(ctx context.Context, i int, st Step) error {
	signer, ok := p.signerID[st.Actor]
	if !ok {
		return fmt.Errorf("%s is not an external signer yet", st.Actor)
	}
	mc := p.peer(st.Member)
	sid, err := p.stateOf(st.Member)
	if err != nil {
		return err
	}
	gi, err := invoke(ctx, p, mc, "GroupInfo", mc.rpc.GroupInfo, &pb.GroupInfoRequest{StateId: sid, ExternalTree: true})
	if err != nil {
		return err
	}
	d, err := p.desc(ctx, *st.Description)
	if err != nil {
		return err
	}
	c := p.peer(st.Actor)
	resp, err := invoke(ctx, p, c, "ExternalSignerProposal", c.rpc.ExternalSignerProposal, &pb.ExternalSignerProposalRequest{
		SignerId: signer, SignerIndex: p.signerIndex[st.Actor], GroupInfo: gi.GroupInfo,
		RatchetTree: gi.RatchetTree, Description: d})
	if err != nil {
		return err
	}
	p.put(i, kProposal, resp.Proposal)
	return nil
}

// members lists the actors whose state is in the newest epoch anyone
// reached, in order of first appearance. Before any epoch change (a group
// of one), it is whoever holds a state.
func (p *play) members() []string {
	var out []string
	for _, a := range p.script.Actors() {
		if _, ok := p.state[a]; !ok {
			continue
		}
		if p.haveAuth && !bytes.Equal(p.auth[a], p.lastAuth) {
			continue
		}
		out = append(out, a)
	}
	return out
}

// verifyGroup checks that the current group's members really share one
// state: the same StateAuth, the same exported secret, and a message
// protected by each member opens, unchanged, at every other member.
func (p *play) verifyGroup(ctx context.Context) error {
	members := p.members()
	if len(members) == 0 {
		return nil
	}
	var firstAuth, firstExport []byte
	for n, m := range members {
		c := p.peer(m)
		sid := p.state[m]
		sa, err := invoke(ctx, p, c, "StateAuth", c.rpc.StateAuth, &pb.StateAuthRequest{StateId: sid})
		if err != nil {
			return err
		}
		ex, err := invoke(ctx, p, c, "Export", c.rpc.Export, &pb.ExportRequest{
			StateId: sid, Label: exportLabel, Context: []byte(p.script.Name), KeyLength: exportLength})
		if err != nil {
			return err
		}
		if len(ex.ExportedSecret) != exportLength {
			return fmt.Errorf("Export by %s gave %d bytes, want %d", m, len(ex.ExportedSecret), exportLength)
		}
		if n == 0 {
			firstAuth, firstExport = sa.StateAuthSecret, ex.ExportedSecret
			continue
		}
		if !bytes.Equal(sa.StateAuthSecret, firstAuth) {
			return fmt.Errorf("StateAuth differs: %s has %x, %s has %x", members[0], firstAuth, m, sa.StateAuthSecret)
		}
		if !bytes.Equal(ex.ExportedSecret, firstExport) {
			return fmt.Errorf("Export differs: %s has %x, %s has %x", members[0], firstExport, m, ex.ExportedSecret)
		}
	}
	for _, from := range members {
		if len(members) < 2 {
			break
		}
		c := p.peer(from)
		ad := []byte("check from " + from)
		pt := []byte(fmt.Sprintf("%s says hello to %s", from, strings.Join(members, ",")))
		pr, err := invoke(ctx, p, c, "Protect", c.rpc.Protect, &pb.ProtectRequest{
			StateId: p.state[from], AuthenticatedData: ad, Plaintext: pt})
		if err != nil {
			return err
		}
		for _, to := range members {
			if to == from {
				continue
			}
			tc := p.peer(to)
			ur, err := invoke(ctx, p, tc, "Unprotect", tc.rpc.Unprotect, &pb.UnprotectRequest{
				StateId: p.state[to], Ciphertext: pr.Ciphertext})
			if err != nil {
				return fmt.Errorf("message from %s: %w", from, err)
			}
			if !bytes.Equal(ur.AuthenticatedData, ad) || !bytes.Equal(ur.Plaintext, pt) {
				return fmt.Errorf("%s opened %s's message as (%q, %q), want (%q, %q)", to, from, ur.AuthenticatedData, ur.Plaintext, ad, pt)
			}
		}
	}
	return nil
}

// freeAll frees every group state handed out during the run. A failure to
// free a state an actor still holds is reported; handles that a later
// state superseded may already be gone, depending on the implementation, so
// their failures are not. The run's context may be done by now (that may
// be why the run ended), so freeing gets its own deadline.
func (p *play) freeAll(ctx context.Context) error {
	current := map[handle]bool{}
	for a, id := range p.state {
		current[handle{p.assign[a], id}] = true
	}
	hs := make([]handle, 0, len(p.handles))
	for h := range p.handles {
		hs = append(hs, h)
	}
	slices.SortFunc(hs, func(a, b handle) int {
		if a.client != b.client {
			return a.client - b.client
		}
		return int(a.id) - int(b.id)
	})
	ctx = context.WithoutCancel(ctx)
	var errs []error
	for _, h := range hs {
		c := &peer{actor: "runner", idx: h.client, rpc: p.r.clients[h.client]}
		_, err := invoke(ctx, p, c, "Free", c.rpc.Free, &pb.FreeRequest{StateId: h.id})
		if err != nil && current[h] {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// AssignMode says how RunConfig places actors on clients.
type AssignMode string

const (
	// AssignRoundRobin plays one placement: actors in order of first
	// appearance go to the clients in turn.
	AssignRoundRobin AssignMode = "roundRobin"
	// AssignAll plays every placement, as the upstream runner does by
	// default (its "allCombinations"); scripts with more placements than
	// RunOptions.MaxAssignments get one random placement instead.
	AssignAll AssignMode = "allCombinations"
	// AssignRandom plays one random placement, as upstream's -random does.
	AssignRandom AssignMode = "random"
)

// RunOptions selects what RunConfig plays. The zero value plays every
// script round-robin, for every suite any client supports, with handshake
// messages both in the clear and encrypted.
type RunOptions struct {
	// Suites to play; empty means every suite any client supports.
	Suites []uint16
	// Encrypt lists the encrypt_handshake settings; empty means both.
	Encrypt []bool
	// Assign is the placement mode; empty means AssignRoundRobin.
	Assign AssignMode
	// MaxAssignments caps AssignAll per script; zero means 4096.
	MaxAssignments int
	// Seed makes AssignRandom reproducible.
	Seed uint64
	// MaxSteps, if positive, plays only each script's first MaxSteps steps.
	MaxSteps int
	// Scripts, if set, plays only the scripts with these names.
	Scripts []string
	// FailFast stops after the first failed run.
	FailFast bool
	// Progress, if set, is told of each result as soon as it is known.
	Progress func(Result)
}

// Result is the outcome of playing one script once.
type Result struct {
	Script           string
	Suite            uint16
	EncryptHandshake bool
	Assignment       Assignment
	// Steps is how many steps were played (fewer than the script's when
	// RunOptions.MaxSteps cut it).
	Steps    int
	Err      error
	Duration time.Duration
}

// String is a one-line report of the result.
func (res Result) String() string {
	status := "PASS"
	if res.Err != nil {
		status = "FAIL: " + res.Err.Error()
	}
	return fmt.Sprintf("%s suite=%d encrypt=%t steps=%d %s %v", res.Script, res.Suite, res.EncryptHandshake, res.Steps, res.Duration.Round(time.Millisecond), status)
}

// RunConfig plays the scripts of cfg over the matrix the options describe,
// in the upstream runner's order: script, then cipher suite, then
// encrypt_handshake, then placement. For each suite only the clients that
// support it take part, as upstream. The error is for a run that could
// not be set up at all; script failures are in the results.
func (r *Runner) RunConfig(ctx context.Context, cfg Config, opts RunOptions) ([]Result, error) {
	if len(r.clients) == 0 {
		return nil, errors.New("mlsinterop: runner has no clients")
	}
	support := make([][]uint16, len(r.clients))
	for i := range r.clients {
		s, err := r.Suites(ctx, i)
		if err != nil {
			return nil, err
		}
		support[i] = s
	}
	suites := opts.Suites
	if len(suites) == 0 {
		// Every suite some client supports, as upstream; a suite only some
		// clients support is played among those alone.
		for _, s := range support {
			suites = append(suites, s...)
		}
		slices.Sort(suites)
		suites = slices.Compact(suites)
	}
	encrypt := opts.Encrypt
	if len(encrypt) == 0 {
		encrypt = []bool{false, true}
	}
	limit := opts.MaxAssignments
	if limit <= 0 {
		limit = 4096
	}
	rng := mathrand.New(mathrand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)) // #nosec G404 -- a reproducible run from a seed, not a secret
	var results []Result
	for _, script := range cfg.Scripts {
		if len(opts.Scripts) > 0 && !slices.Contains(opts.Scripts, script.Name) {
			continue
		}
		script = script.Prefix(opts.MaxSteps)
		for _, suite := range suites {
			var subset []int
			for i, s := range support {
				if slices.Contains(s, suite) {
					subset = append(subset, i)
				}
			}
			for _, enc := range encrypt {
				var placements []Assignment
				if len(subset) == 0 {
					res := Result{Script: script.Name, Suite: suite, EncryptHandshake: enc,
						Err: fmt.Errorf("no client supports cipher suite %d", suite)}
					results = append(results, res)
					if opts.Progress != nil {
						opts.Progress(res)
					}
					if opts.FailFast {
						return results, nil
					}
					continue
				}
				switch opts.Assign {
				case AssignAll:
					all, err := AllAssignments(script, len(subset), limit)
					if err != nil {
						all = []Assignment{RandomAssignment(script, len(subset), rng)}
					}
					placements = all
				case AssignRandom:
					placements = []Assignment{RandomAssignment(script, len(subset), rng)}
				default:
					placements = []Assignment{RoundRobin(script, len(subset))}
				}
				for _, a := range placements {
					for actor, k := range a { // subset positions -> client indices
						a[actor] = subset[k]
					}
					start := time.Now()
					err := r.RunAssigned(ctx, script, suite, enc, a)
					res := Result{Script: script.Name, Suite: suite, EncryptHandshake: enc, Assignment: a,
						Steps: len(script.Steps), Err: err, Duration: time.Since(start)}
					results = append(results, res)
					if opts.Progress != nil {
						opts.Progress(res)
					}
					if err != nil && (opts.FailFast || ctx.Err() != nil) {
						return results, nil
					}
				}
			}
		}
	}
	return results, nil
}

// Failed counts the failed results.
func Failed(results []Result) int {
	n := 0
	for _, r := range results {
		if r.Err != nil {
			n++
		}
	}
	return n
}
