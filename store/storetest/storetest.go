// Package storetest is the conformance suite for store.Store. Every
// implementation runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.RunWithReopen(t, func(t *testing.T, dir string) store.Store {
//			s, err := sqlite.Open(filepath.Join(dir, "db"))
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
//
// The suite is the contract: where store.go's comments leave a choice
// open, the scenarios here make it, so that every implementation makes the
// same one and the provider can rely on it.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/store"
)

// Run runs every scenario that needs only fresh stores. open must return
// a new, empty store each time it is called; the suite closes it.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			sc.run(t, newEnv(t, open(t)))
		})
	}
}

// RunWithReopen runs Run and then the scenarios that close a store and
// open it again on the same data. open(t, dir) opens the store whose data
// lives in dir, creating it if dir is empty; the suite gives each scenario
// a fresh directory and closes every store it opens. An implementation
// that does not keep its data in files may use dir as a key, say to name
// a database schema.
func RunWithReopen(t *testing.T, open func(t *testing.T, dir string) store.Store) {
	Run(t, func(t *testing.T) store.Store { return open(t, t.TempDir()) })
	for _, sc := range reopenScenarios {
		t.Run(sc.name, func(t *testing.T) {
			dir := t.TempDir()
			sc.run(t, func() *env { return newEnv(t, open(t, dir)) })
		})
	}
}

type scenario struct {
	name string
	run  func(t *testing.T, e *env)
}

type reopenScenario struct {
	name string
	run  func(t *testing.T, open func() *env)
}

// env is one open store and the helpers that make scenarios short.
type env struct {
	t   *testing.T
	s   store.Store
	ctx context.Context
}

func newEnv(t *testing.T, s store.Store) *env {
	t.Cleanup(func() { s.Close() }) // #nosec G104 -- the test is over; Close is tested on its own
	return &env{t: t, s: s, ctx: t.Context()}
}

func (e *env) ok(err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
}

// is fails the test unless err is target (by errors.Is).
func is(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func (e *env) user(handle string) store.User {
	e.t.Helper()
	u, err := e.s.CreateUser(e.ctx, handle, "")
	e.ok(err)
	return u
}

// device enrolls and registers a device for the user.
func (e *env) device(userID int64, name string) store.Device {
	e.t.Helper()
	code := random(32)
	e.ok(e.s.CreateEnrollment(e.ctx, store.Enrollment{CodeHash: code, UserID: userID, Expires: time.Now().Add(time.Hour)}))
	d, err := e.s.RegisterDevice(e.ctx, code, name, random(32), time.Now())
	e.ok(err)
	return d
}

// room creates a room whose creator is an admin and the others members.
func (e *env) room(id string, creator int64, others ...int64) store.Room {
	e.t.Helper()
	r := store.Room{ID: id, CreatorID: creator, Epoch: 0, Version: 0, State: []byte("state-0"),
		Created: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)}
	members := []store.RoomMember{{UserID: creator, Role: store.RoleAdmin}}
	for _, o := range others {
		members = append(members, store.RoomMember{UserID: o, Role: store.RoleMember})
	}
	e.ok(e.s.CreateRoom(e.ctx, r, members))
	return r
}

// app is an application message from sender to the recipients.
func app(room, clientID string, sender int64, recipients ...int64) store.Submission {
	return store.Submission{RoomID: room, ClientID: clientID, SenderDevice: sender, Kind: store.KindApplication,
		Epoch: 1, Payload: []byte("ciphertext of " + clientID), Recipients: recipients}
}

// commit is a commit moving the room from prev to prev+1.
func commit(room, clientID string, sender int64, prev int64, epoch uint64, recipients ...int64) store.Submission {
	return store.Submission{RoomID: room, ClientID: clientID, SenderDevice: sender, Kind: store.KindCommit,
		Epoch: epoch - 1, Payload: []byte("commit " + clientID), PrevVersion: prev,
		NewState: []byte(fmt.Sprintf("state after %s", clientID)), NewEpoch: epoch, Recipients: recipients}
}

func (e *env) submit(sub store.Submission) store.SubmitResult {
	e.t.Helper()
	res, err := e.s.Submit(e.ctx, sub)
	e.ok(err)
	return res
}

func (e *env) deliveries(dev int64) []store.Delivery {
	e.t.Helper()
	ds, err := e.s.Deliveries(e.ctx, dev, 0, 10000)
	e.ok(err)
	return ds
}

func (e *env) log(room string) []store.Message {
	e.t.Helper()
	ms, err := e.s.RoomMessages(e.ctx, room, 0, 10000)
	e.ok(err)
	return ms
}

// clientIDs lists the deliveries' messages by ClientID.
func clientIDs(ds []store.Delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Message.ClientID)
	}
	return out
}

// stamped checks a time the store set itself: between before and after,
// allowing for a store that keeps only microseconds.
func stamped(t *testing.T, what string, got, before, after time.Time) {
	t.Helper()
	if got.Before(before.Truncate(time.Microsecond)) || got.After(after) {
		t.Errorf("%s = %v, want between %v and %v", what, got, before, after)
	}
}

func sameMessage(t *testing.T, got store.Message, sub store.Submission, seq int64) {
	t.Helper()
	if got.RoomID != sub.RoomID || got.Seq != seq || got.ClientID != sub.ClientID ||
		got.SenderDevice != sub.SenderDevice || got.Sender != sub.Sender || got.Kind != sub.Kind || got.Epoch != sub.Epoch ||
		!bytes.Equal(got.Payload, sub.Payload) || got.Created.IsZero() {
		t.Errorf("message = %+v, want seq %d of %+v", got, seq, sub)
	}
}

var scenarios = []scenario{
	// Accounts.
	{"UsersAreFoundByIDHandleAndPhone", usersFound},
	{"HandlesAndPhonesAreUnique", handlesUnique},
	{"UsersChooseWhetherTheyAreDiscoverable", discoverableSettings},
	{"UsersChooseWhichPartnersMayReachThem", reachabilitySettings},
	{"EnrollmentCodeRegistersOneDevice", enrollmentSingleUse},
	{"EnrollmentCodesExpire", enrollmentExpires},
	{"DeviceNamesAndAuthKeysAreUnique", devicesUnique},
	{"SessionsAuthenticateUntilTheyExpire", sessions},
	// KeyPackages.
	{"FreshKeyPackagesAreHandedOutOnceThenLastResort", keyPackagesOnce},
	{"KeyPackagesAreSeparatedByDeviceAndSuite", keyPackagesSeparated},
	{"AddingKeyPackagesIsAllOrNothing", keyPackagesAllOrNothing},
	{"NewLastResortReplacesTheOld", keyPackagesLastResortReplaced},
	{"KeyPackageDeviceFindsClaimedPackages", keyPackageDevice},
	{"ConcurrentClaimsHandOutEachFreshPackageOnce", keyPackagesConcurrent},
	// Rooms and the log.
	{"RoomsHaveMembers", rooms},
	{"SubmitAppendsInOrderAndQueuesForRecipients", submitAppends},
	{"SubmitIsIdempotentByClientID", submitIdempotent},
	{"CommitAndItsWelcomeLandTogether", submitWelcome},
	{"StaleHandshakeIsRefusedAndChangesNothing", submitStale},
	{"HandshakeMovesRoomStateAndMembers", submitHandshake},
	{"ConcurrentCommitsOnOneVersionOneWins", submitConcurrentCommits},
	{"ConcurrentSubmitsAreAllLoggedAndDeliveredInOrder", submitConcurrent},
	{"FailingSubmitsDoNotDisturbOthers", submitFailuresIsolated},
	{"PayloadsStatesAndEpochsRoundTripExactly", roundTrip},
	{"LastSeqIsTheSeqOfTheLogsLastMessage", lastSeq},
	{"SenderRoundTripsThroughLogLookupAndQueues", senderRoundTrip},
	{"SubmissionSeqMustComeAfterTheLog", submitSeq},
	{"WelcomeSubmittedOnItsOwnIsQueuedAndMovesNothing", submitWelcomeAlone},
	{"AWelcomeUsesAKeyPackageOnce", welcomeUsesAKeyPackageOnce},
	{"RoomsRacingForOneKeyPackageOneWins", roomsRacingForOneKeyPackage},
	// Followers' copies of rooms hosted elsewhere.
	{"FollowerCopyKeepsItsHubAndHasNoCreator", followerCopy},
	// Delivery queues.
	{"DeliveriesArePerDeviceInOrderAndPage", deliveriesPaged},
	{"AckRemovesUpToCursorOnly", ack},
	{"CursorsNeverGoBackAfterAQueueEmpties", cursorsMonotonic},
	{"TrimQueuesRemovesOnlyOldEntries", trim},
	// The federation outbox and inbound de-duplication.
	{"OutboxHandsOutEachDestinationInOrder", outboxOrder},
	{"OutboxBatchesAreTheOldestEntriesInOrder", outboxBatches},
	{"OutboxRecordsFailedAttempts", outboxFailed},
	{"EnqueueOutboundIsAllOrNothingAndIdempotent", outboxEnqueue},
	{"SubmitStoresOutboundAtomically", outboxWithSubmit},
	{"OutboundHeadersRoundTrip", outboxHeaders},
	{"InboundIDsAreSeenOncePerSender", inboundSeen},
	{"ConcurrentSeenInboundAnswersFalseOnce", inboundConcurrent},
	// Consent.
	{"MessageRequestsArePendingUntilAnswered", consentRequests},
	{"ContactsAreAcceptedBlockedOrNone", consentContacts},
	{"BlockDeclinesThePeersRequestsAndDropsTheirQueues", consentBlockDropsRequests},
	// Attachments.
	{"AttachmentsAreReadInRanges", attachmentRanges},
	{"TrimAttachmentsRemovesOnlyOldOnes", attachmentTrim},
	// Franking and abuse reports.
	{"FranksAreStoredWithTheirMessagesAndFindThem", frankedMessages},
	{"FirstFrankingKeyOfASchemeStays", frankingKeys},
	{"ReportsAreQueuedAndHandledOnce", reportQueue},
	{"ReportAndItsOutboundAreStoredTogether", reportWithOutbound},
	{"NoticesAndSuspensionArePerUser", noticesAndSuspension},
	// Life cycle.
	{"ClosedStoreRefusesCalls", closed},
}

var reopenScenarios = []reopenScenario{
	{"ReopenedStoreKeepsEverything", reopenKeeps},
	{"SubmitsThatReturnedSurviveClose", reopenAfterConcurrentClose},
	{"OutboxAndInboundIDsSurviveReopen", reopenOutbox},
	{"FollowerCopiesSendersAndHeadersSurviveReopen", reopenFollowerCopy},
	{"DiscoverabilitySurvivesReopen", reopenDiscoverable},
	{"ReachabilitySurvivesReopen", reopenReachability},
	{"AttachmentsSurviveReopen", reopenAttachments},
	{"ContactsAndRequestsSurviveReopen", reopenConsent},
	{"FranksReportsNoticesAndSuspensionSurviveReopen", reopenAbuse},
}

func usersFound(t *testing.T, e *env) {
	before := time.Now()
	alice, err := e.s.CreateUser(e.ctx, "alice", "+441632960001")
	e.ok(err)
	bob, err := e.s.CreateUser(e.ctx, "bob", "")
	e.ok(err)
	after := time.Now()
	if alice.ID == bob.ID || alice.Handle != "alice" || alice.Phone != "+441632960001" || bob.Phone != "" {
		t.Fatalf("created %+v and %+v", alice, bob)
	}
	stamped(t, "alice.Created", alice.Created, before, after)

	for _, lookup := range []struct {
		what string
		get  func() (store.User, error)
		want store.User
	}{
		{"by ID", func() (store.User, error) { return e.s.UserByID(e.ctx, alice.ID) }, alice},
		{"by handle", func() (store.User, error) { return e.s.UserByHandle(e.ctx, "bob") }, bob},
		{"by phone", func() (store.User, error) { return e.s.UserByPhone(e.ctx, "+441632960001") }, alice},
	} {
		got, err := lookup.get()
		e.ok(err)
		if got.ID != lookup.want.ID || got.Handle != lookup.want.Handle || got.Phone != lookup.want.Phone ||
			!got.Created.Equal(lookup.want.Created) {
			t.Errorf("%s: got %+v, want %+v", lookup.what, got, lookup.want)
		}
	}
	_, err = e.s.UserByID(e.ctx, alice.ID+bob.ID+100)
	is(t, err, store.ErrNotFound, "unknown ID")
	_, err = e.s.UserByHandle(e.ctx, "carol")
	is(t, err, store.ErrNotFound, "unknown handle")
	_, err = e.s.UserByPhone(e.ctx, "+441632960999")
	is(t, err, store.ErrNotFound, "unknown phone")
	// Bob has no phone; the empty phone must not find him.
	_, err = e.s.UserByPhone(e.ctx, "")
	is(t, err, store.ErrNotFound, "empty phone")
}

func handlesUnique(t *testing.T, e *env) {
	_, err := e.s.CreateUser(e.ctx, "alice", "+441632960001")
	e.ok(err)
	_, err = e.s.CreateUser(e.ctx, "alice", "+441632960002")
	is(t, err, store.ErrExists, "second alice")
	_, err = e.s.CreateUser(e.ctx, "alicia", "+441632960001")
	is(t, err, store.ErrExists, "second user with alice's phone")
	// Having no phone is not a phone: any number of users may have none.
	_, err = e.s.CreateUser(e.ctx, "bob", "")
	e.ok(err)
	_, err = e.s.CreateUser(e.ctx, "carol", "")
	e.ok(err)
	// The refused attempts left nothing behind.
	_, err = e.s.UserByHandle(e.ctx, "alicia")
	is(t, err, store.ErrNotFound, "refused user")
}

func enrollmentSingleUse(t *testing.T, e *env) {
	alice := e.user("alice")
	code, key := random(32), random(32)
	e.ok(e.s.CreateEnrollment(e.ctx, store.Enrollment{CodeHash: code, UserID: alice.ID, Expires: time.Now().Add(time.Hour)}))
	is(t, e.s.CreateEnrollment(e.ctx, store.Enrollment{CodeHash: code, UserID: alice.ID, Expires: time.Now().Add(time.Hour)}),
		store.ErrExists, "same code twice")
	is(t, e.s.CreateEnrollment(e.ctx, store.Enrollment{CodeHash: random(32), UserID: alice.ID + 100, Expires: time.Now().Add(time.Hour)}),
		store.ErrNotFound, "enrollment for an unknown user")

	before := time.Now()
	d, err := e.s.RegisterDevice(e.ctx, code, "laptop", key, time.Now())
	e.ok(err)
	stamped(t, "device.Created", d.Created, before, time.Now())
	if d.ID == 0 || d.UserID != alice.ID || d.Name != "laptop" || !bytes.Equal(d.AuthKey, key) {
		t.Fatalf("registered %+v", d)
	}
	_, err = e.s.RegisterDevice(e.ctx, code, "phone", random(32), time.Now())
	is(t, err, store.ErrNotFound, "second use of the code")
	_, err = e.s.RegisterDevice(e.ctx, random(32), "phone", random(32), time.Now())
	is(t, err, store.ErrNotFound, "unknown code")

	for what, get := range map[string]func() (store.Device, error){
		"by ID":       func() (store.Device, error) { return e.s.DeviceByID(e.ctx, d.ID) },
		"by auth key": func() (store.Device, error) { return e.s.DeviceByAuthKey(e.ctx, key) },
	} {
		got, err := get()
		e.ok(err)
		if got.ID != d.ID || got.UserID != d.UserID || got.Name != d.Name || !bytes.Equal(got.AuthKey, key) || !got.Created.Equal(d.Created) {
			t.Errorf("%s: got %+v, want %+v", what, got, d)
		}
	}
	_, err = e.s.DeviceByID(e.ctx, d.ID+100)
	is(t, err, store.ErrNotFound, "unknown device ID")
	_, err = e.s.DeviceByAuthKey(e.ctx, random(32))
	is(t, err, store.ErrNotFound, "unknown auth key")

	// DevicesOfUser lists in the order devices were added; a user with
	// none has an empty list; an unknown user is not found.
	d2 := e.device(alice.ID, "phone")
	ds, err := e.s.DevicesOfUser(e.ctx, alice.ID)
	e.ok(err)
	if len(ds) != 2 || ds[0].ID != d.ID || ds[1].ID != d2.ID {
		t.Errorf("DevicesOfUser = %+v, want laptop then phone", ds)
	}
	bob := e.user("bob")
	ds, err = e.s.DevicesOfUser(e.ctx, bob.ID)
	e.ok(err)
	if len(ds) != 0 {
		t.Errorf("bob's devices = %+v, want none", ds)
	}
	_, err = e.s.DevicesOfUser(e.ctx, bob.ID+100)
	is(t, err, store.ErrNotFound, "devices of an unknown user")
}

func enrollmentExpires(t *testing.T, e *env) {
	alice := e.user("alice")
	code := random(32)
	expires := time.Now().Add(time.Hour)
	e.ok(e.s.CreateEnrollment(e.ctx, store.Enrollment{CodeHash: code, UserID: alice.ID, Expires: expires}))
	_, err := e.s.RegisterDevice(e.ctx, code, "laptop", random(32), expires.Add(time.Second))
	is(t, err, store.ErrExpired, "code used after it expired")
	// Refusing it did not use it up: it is still expired, not gone.
	_, err = e.s.RegisterDevice(e.ctx, code, "laptop", random(32), expires.Add(time.Minute))
	is(t, err, store.ErrExpired, "expired code, again")
	// The store judges by the now it is given, not by its own clock.
	_, err = e.s.RegisterDevice(e.ctx, code, "laptop", random(32), expires.Add(-time.Second))
	e.ok(err)
}

func devicesUnique(t *testing.T, e *env) {
	alice, bob := e.user("alice"), e.user("bob")
	laptop := e.device(alice.ID, "laptop")

	code := random(32)
	e.ok(e.s.CreateEnrollment(e.ctx, store.Enrollment{CodeHash: code, UserID: alice.ID, Expires: time.Now().Add(time.Hour)}))
	_, err := e.s.RegisterDevice(e.ctx, code, "laptop", random(32), time.Now())
	is(t, err, store.ErrExists, "alice's second laptop")
	_, err = e.s.RegisterDevice(e.ctx, code, "tablet", laptop.AuthKey, time.Now())
	is(t, err, store.ErrExists, "a device with the laptop's auth key")
	// A refused registration does not use up the code.
	_, err = e.s.RegisterDevice(e.ctx, code, "tablet", random(32), time.Now())
	e.ok(err)
	// Names are unique per user only.
	e.device(bob.ID, "laptop")
}

func sessions(t *testing.T, e *env) {
	alice := e.user("alice")
	d := e.device(alice.ID, "laptop")
	token := random(32)
	expires := time.Now().Add(time.Hour)
	e.ok(e.s.CreateSession(e.ctx, store.Session{TokenHash: token, DeviceID: d.ID, Expires: expires}))
	is(t, e.s.CreateSession(e.ctx, store.Session{TokenHash: token, DeviceID: d.ID, Expires: expires}),
		store.ErrExists, "same token twice")
	is(t, e.s.CreateSession(e.ctx, store.Session{TokenHash: random(32), DeviceID: d.ID + 100, Expires: expires}),
		store.ErrNotFound, "session of an unknown device")

	got, err := e.s.SessionDevice(e.ctx, token, expires.Add(-time.Minute))
	e.ok(err)
	if got.ID != d.ID || got.UserID != alice.ID || !bytes.Equal(got.AuthKey, d.AuthKey) {
		t.Errorf("SessionDevice = %+v, want %+v", got, d)
	}
	_, err = e.s.SessionDevice(e.ctx, token, expires.Add(time.Minute))
	is(t, err, store.ErrExpired, "session after its expiry")
	sess, got, err := e.s.LiveSession(e.ctx, token, expires.Add(-time.Minute))
	e.ok(err)
	if got.ID != d.ID || sess.DeviceID != d.ID || !sess.Expires.Equal(expires) {
		t.Errorf("LiveSession = %+v, %+v; want device %d, expiry %v", sess, got, d.ID, expires)
	}
	_, _, err = e.s.LiveSession(e.ctx, token, expires)
	is(t, err, store.ErrExpired, "LiveSession at its expiry")
	_, err = e.s.SessionDevice(e.ctx, random(32), time.Now())
	is(t, err, store.ErrNotFound, "unknown session")

	e.ok(e.s.DeleteSession(e.ctx, token))
	_, err = e.s.SessionDevice(e.ctx, token, time.Now())
	is(t, err, store.ErrNotFound, "deleted session")
	is(t, e.s.DeleteSession(e.ctx, token), store.ErrNotFound, "deleting it again")
}

// kps makes n fresh KeyPackages for a device, with random refs and data.
func kps(dev int64, suite uint16, n int) []store.KeyPackage {
	out := make([]store.KeyPackage, n)
	for i := range out {
		out[i] = store.KeyPackage{Ref: random(32), DeviceID: dev, Suite: suite, Data: random(300)}
	}
	return out
}

func lastResort(dev int64, suite uint16) store.KeyPackage {
	return store.KeyPackage{Ref: random(32), DeviceID: dev, Suite: suite, Data: random(300), LastResort: true}
}

func keyPackagesOnce(t *testing.T, e *env) {
	d := e.device(e.user("alice").ID, "laptop")
	fresh := kps(d.ID, 1, 3)
	lr := lastResort(d.ID, 1)
	e.ok(e.s.AddKeyPackages(e.ctx, append(slices.Clone(fresh), lr)))
	if n, err := e.s.CountKeyPackages(e.ctx, d.ID, 1); err != nil || n != 3 {
		t.Fatalf("CountKeyPackages = %d, %v; want 3 (the last resort does not count)", n, err)
	}

	seen := map[string]bool{}
	for want := 2; want >= 0; want-- {
		kp, remaining, err := e.s.ClaimKeyPackage(e.ctx, d.ID, 1)
		e.ok(err)
		if kp.LastResort || remaining != want || seen[string(kp.Ref)] {
			t.Fatalf("claim: %x last resort %v, %d remaining; want a new fresh one and %d", kp.Ref, kp.LastResort, remaining, want)
		}
		seen[string(kp.Ref)] = true
		i := slices.IndexFunc(fresh, func(f store.KeyPackage) bool { return bytes.Equal(f.Ref, kp.Ref) })
		if i < 0 || !bytes.Equal(kp.Data, fresh[i].Data) || kp.DeviceID != d.ID || kp.Suite != 1 {
			t.Fatalf("claimed %+v, not one of those added", kp)
		}
		if n, err := e.s.CountKeyPackages(e.ctx, d.ID, 1); err != nil || n != want {
			t.Fatalf("CountKeyPackages = %d, %v; want %d", n, err, want)
		}
	}
	// Out of fresh ones: the last resort, again and again.
	for range 3 {
		kp, remaining, err := e.s.ClaimKeyPackage(e.ctx, d.ID, 1)
		e.ok(err)
		if !kp.LastResort || !bytes.Equal(kp.Ref, lr.Ref) || !bytes.Equal(kp.Data, lr.Data) || remaining != 0 {
			t.Fatalf("claim after fresh ran out = %+v, %d; want the last resort, 0", kp, remaining)
		}
	}
	// A device with nothing at all to hand out.
	d2 := e.device(d.UserID, "phone")
	_, _, err := e.s.ClaimKeyPackage(e.ctx, d2.ID, 1)
	is(t, err, store.ErrNotFound, "claim from a device without KeyPackages")
	if n, err := e.s.CountKeyPackages(e.ctx, d2.ID, 1); err != nil || n != 0 {
		t.Errorf("CountKeyPackages of a device without any = %d, %v", n, err)
	}
}

func keyPackagesSeparated(t *testing.T, e *env) {
	alice := e.user("alice")
	laptop, phone := e.device(alice.ID, "laptop"), e.device(alice.ID, "phone")
	e.ok(e.s.AddKeyPackages(e.ctx, kps(laptop.ID, 1, 2)))
	e.ok(e.s.AddKeyPackages(e.ctx, kps(laptop.ID, 3, 1)))
	e.ok(e.s.AddKeyPackages(e.ctx, kps(phone.ID, 1, 4)))
	for _, c := range []struct {
		dev   int64
		suite uint16
		want  int
	}{{laptop.ID, 1, 2}, {laptop.ID, 3, 1}, {laptop.ID, 2, 0}, {phone.ID, 1, 4}, {phone.ID, 3, 0}} {
		if n, err := e.s.CountKeyPackages(e.ctx, c.dev, c.suite); err != nil || n != c.want {
			t.Errorf("CountKeyPackages(%d, %d) = %d, %v; want %d", c.dev, c.suite, n, err, c.want)
		}
	}
	kp, remaining, err := e.s.ClaimKeyPackage(e.ctx, laptop.ID, 3)
	e.ok(err)
	if kp.DeviceID != laptop.ID || kp.Suite != 3 || remaining != 0 {
		t.Errorf("claimed %+v, %d remaining", kp, remaining)
	}
	_, _, err = e.s.ClaimKeyPackage(e.ctx, laptop.ID, 3)
	is(t, err, store.ErrNotFound, "suite 3 used up, suite 1 does not stand in")
	if n, _ := e.s.CountKeyPackages(e.ctx, laptop.ID, 1); n != 2 {
		t.Errorf("suite 1 count changed to %d by a suite 3 claim", n)
	}
	if n, _ := e.s.CountKeyPackages(e.ctx, phone.ID, 1); n != 4 {
		t.Errorf("phone's count changed to %d by the laptop's claim", n)
	}
}

func keyPackagesAllOrNothing(t *testing.T, e *env) {
	d := e.device(e.user("alice").ID, "laptop")
	first := kps(d.ID, 1, 2)
	e.ok(e.s.AddKeyPackages(e.ctx, first))
	batch := append(kps(d.ID, 1, 3), first[1])
	is(t, e.s.AddKeyPackages(e.ctx, batch), store.ErrExists, "batch holding an already stored ref")
	is(t, e.s.AddKeyPackages(e.ctx, kps(d.ID+100, 1, 1)), store.ErrNotFound, "KeyPackages of an unknown device")
	if n, err := e.s.CountKeyPackages(e.ctx, d.ID, 1); err != nil || n != 2 {
		t.Errorf("after refused batches: %d, %v; want the first 2 only", n, err)
	}
	_, err := e.s.KeyPackageDevice(e.ctx, batch[0].Ref)
	is(t, err, store.ErrNotFound, "a package from the refused batch")
	e.ok(e.s.AddKeyPackages(e.ctx, nil))
}

func keyPackagesLastResortReplaced(t *testing.T, e *env) {
	d := e.device(e.user("alice").ID, "laptop")
	old, current := lastResort(d.ID, 1), lastResort(d.ID, 1)
	e.ok(e.s.AddKeyPackages(e.ctx, []store.KeyPackage{old}))
	e.ok(e.s.AddKeyPackages(e.ctx, []store.KeyPackage{current}))
	for range 2 {
		kp, _, err := e.s.ClaimKeyPackage(e.ctx, d.ID, 1)
		e.ok(err)
		if !bytes.Equal(kp.Ref, current.Ref) {
			t.Fatalf("claimed %x, want the newest last resort %x", kp.Ref, current.Ref)
		}
	}
	// The replaced one may have been handed out already: a Welcome for it
	// must still find its device.
	dev, err := e.s.KeyPackageDevice(e.ctx, old.Ref)
	e.ok(err)
	if dev != d.ID {
		t.Errorf("KeyPackageDevice(old last resort) = %d, want %d", dev, d.ID)
	}
}

func keyPackageDevice(t *testing.T, e *env) {
	alice := e.user("alice")
	laptop, phone := e.device(alice.ID, "laptop"), e.device(alice.ID, "phone")
	lk, pk := kps(laptop.ID, 1, 1), kps(phone.ID, 1, 1)
	e.ok(e.s.AddKeyPackages(e.ctx, append(lk, pk...)))
	claimed, _, err := e.s.ClaimKeyPackage(e.ctx, laptop.ID, 1)
	e.ok(err)
	for _, c := range []struct {
		ref  []byte
		want int64
	}{{claimed.Ref, laptop.ID}, {pk[0].Ref, phone.ID}} {
		dev, err := e.s.KeyPackageDevice(e.ctx, c.ref)
		e.ok(err)
		if dev != c.want {
			t.Errorf("KeyPackageDevice(%x) = %d, want %d", c.ref, dev, c.want)
		}
	}
	_, err = e.s.KeyPackageDevice(e.ctx, random(32))
	is(t, err, store.ErrNotFound, "unknown ref")
}

func keyPackagesConcurrent(t *testing.T, e *env) {
	const workers, packages = 8, 100
	d := e.device(e.user("alice").ID, "laptop")
	fresh := kps(d.ID, 1, packages)
	e.ok(e.s.AddKeyPackages(e.ctx, append(fresh, lastResort(d.ID, 1))))

	var mu sync.Mutex
	refs := map[string]int{}
	remainders := map[int]int{}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			// Bounded, so that a store which hands packages out again
			// fails the test instead of looping for ever.
			for range 2 * packages {
				kp, remaining, err := e.s.ClaimKeyPackage(e.ctx, d.ID, 1)
				if err != nil {
					t.Error(err)
					return
				}
				if kp.LastResort {
					return
				}
				mu.Lock()
				refs[string(kp.Ref)]++
				remainders[remaining]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, kp := range fresh {
		if n := refs[string(kp.Ref)]; n != 1 {
			t.Errorf("package %x handed out %d times, want once", kp.Ref[:4], n)
		}
	}
	// Claims happen one after another, so each count from packages-1
	// down to 0 is reported exactly once.
	for r := range packages {
		if remainders[r] != 1 {
			t.Errorf("%d claims reported %d remaining, want exactly one", remainders[r], r)
		}
	}
	if len(refs) != packages {
		t.Errorf("%d distinct packages handed out, want %d", len(refs), packages)
	}
}

func rooms(t *testing.T, e *env) {
	alice, bob, carol := e.user("alice"), e.user("bob"), e.user("carol")
	r := e.room("!room", alice.ID, carol.ID, bob.ID)
	got, err := e.s.Room(e.ctx, "!room")
	e.ok(err)
	if got.ID != r.ID || got.Hub != "" || got.CreatorID != alice.ID || got.Epoch != 0 || got.Version != 0 ||
		!bytes.Equal(got.State, r.State) || !got.Created.Equal(r.Created) || got.LastSeq != 0 {
		t.Errorf("Room = %+v, want %+v: hosted here, with an empty log", got, r)
	}
	members, err := e.s.RoomMembers(e.ctx, "!room")
	e.ok(err)
	want := []store.RoomMember{
		{RoomID: "!room", UserID: alice.ID, Role: store.RoleAdmin},
		{RoomID: "!room", UserID: bob.ID, Role: store.RoleMember},
		{RoomID: "!room", UserID: carol.ID, Role: store.RoleMember},
	}
	if !slices.Equal(members, want) {
		t.Errorf("RoomMembers = %+v, want %+v (ordered by user ID)", members, want)
	}
	is(t, e.s.CreateRoom(e.ctx, store.Room{ID: "!room", CreatorID: bob.ID}, nil), store.ErrExists, "a second !room")

	// A zero Created is stamped by the store.
	before := time.Now()
	e.ok(e.s.CreateRoom(e.ctx, store.Room{ID: "!empty", CreatorID: bob.ID}, nil))
	empty, err := e.s.Room(e.ctx, "!empty")
	e.ok(err)
	stamped(t, "Room.Created", empty.Created, before, time.Now())
	if members, err := e.s.RoomMembers(e.ctx, "!empty"); err != nil || len(members) != 0 {
		t.Errorf("members of a room created without any = %+v, %v", members, err)
	}
	if log, err := e.s.RoomMessages(e.ctx, "!empty", 0, 10); err != nil || len(log) != 0 {
		t.Errorf("log of a new room = %+v, %v", log, err)
	}

	_, err = e.s.Room(e.ctx, "!nowhere")
	is(t, err, store.ErrNotFound, "Room of an unknown room")
	_, err = e.s.RoomMembers(e.ctx, "!nowhere")
	is(t, err, store.ErrNotFound, "RoomMembers of an unknown room")
	_, err = e.s.RoomMessages(e.ctx, "!nowhere", 0, 10)
	is(t, err, store.ErrNotFound, "RoomMessages of an unknown room")
	_, err = e.s.Submit(e.ctx, app("!nowhere", "m1", 1))
	is(t, err, store.ErrNotFound, "Submit to an unknown room")
}

func submitAppends(t *testing.T, e *env) {
	alice, bob, carol := e.user("alice"), e.user("bob"), e.user("carol")
	a, b1, b2, c := e.device(alice.ID, "a"), e.device(bob.ID, "b1"), e.device(bob.ID, "b2"), e.device(carol.ID, "c")
	e.room("!r", alice.ID, bob.ID)

	subs := []store.Submission{
		app("!r", "m1", a.ID, b1.ID, b2.ID),
		app("!r", "m2", a.ID, b1.ID, b2.ID),
		app("!r", "m3", b1.ID, a.ID, b2.ID),
	}
	before := time.Now()
	for i, sub := range subs {
		res := e.submit(sub)
		if res.Seq != int64(i+1) || res.Duplicate {
			t.Fatalf("submit %s = %+v, want seq %d", sub.ClientID, res, i+1)
		}
	}
	after := time.Now()
	log := e.log("!r")
	if len(log) != 3 {
		t.Fatalf("log has %d messages, want 3", len(log))
	}
	for i, m := range log {
		sameMessage(t, m, subs[i], int64(i+1))
		stamped(t, "Message.Created", m.Created, before, after)
	}
	// Paging through the log.
	page, err := e.s.RoomMessages(e.ctx, "!r", 1, 1)
	e.ok(err)
	if len(page) != 1 || page[0].Seq != 2 {
		t.Errorf("RoomMessages(after 1, limit 1) = %+v, want seq 2", page)
	}
	page, err = e.s.RoomMessages(e.ctx, "!r", 3, 10)
	e.ok(err)
	if len(page) != 0 {
		t.Errorf("RoomMessages after the end = %+v", page)
	}

	// Exactly the recipients got each message: the sender's own device
	// only when named, and carol, who is not in the room, never.
	for dev, want := range map[int64][]string{a.ID: {"m3"}, b1.ID: {"m1", "m2"}, b2.ID: {"m1", "m2", "m3"}, c.ID: nil} {
		ds := e.deliveries(dev)
		if got := clientIDs(ds); !slices.Equal(got, want) {
			t.Errorf("device %d got %v, want %v", dev, got, want)
		}
		for _, d := range ds {
			sameMessage(t, d.Message, subs[d.Message.Seq-1], d.Message.Seq)
		}
	}

	// A recipient named twice is queued once.
	e.submit(app("!r", "m4", a.ID, c.ID, c.ID))
	if got := clientIDs(e.deliveries(c.ID)); !slices.Equal(got, []string{"m4"}) {
		t.Errorf("device named twice got %v, want m4 once", got)
	}
	// A message for nobody is still logged.
	if res := e.submit(app("!r", "m5", a.ID)); res.Seq != 5 {
		t.Errorf("message without recipients: seq %d, want 5", res.Seq)
	}
}

func submitIdempotent(t *testing.T, e *env) {
	alice := e.user("alice")
	a, b := e.device(alice.ID, "a"), e.device(alice.ID, "b")
	e.room("!r", alice.ID)
	e.room("!other", alice.ID)
	first := e.submit(app("!r", "m1", a.ID, b.ID))
	e.submit(app("!r", "m2", a.ID, b.ID))
	again := e.submit(app("!r", "m1", a.ID, b.ID))
	if !again.Duplicate || again.Seq != first.Seq {
		t.Fatalf("resubmitted m1 = %+v, want duplicate of seq %d", again, first.Seq)
	}
	if len(e.log("!r")) != 2 {
		t.Errorf("log grew on a duplicate")
	}
	if m, err := e.s.MessageByClientID(e.ctx, "!r", "m1"); err != nil || m.Seq != first.Seq || m.ClientID != "m1" {
		t.Errorf("MessageByClientID(m1) = %+v, %v; want seq %d", m, err, first.Seq)
	}
	if _, err := e.s.MessageByClientID(e.ctx, "!r", "never"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("MessageByClientID(unknown) = %v, want ErrNotFound", err)
	}
	if got := clientIDs(e.deliveries(b.ID)); !slices.Equal(got, []string{"m1", "m2"}) {
		t.Errorf("queue after duplicate = %v, want m1 and m2 once each", got)
	}
	// ClientIDs are unique per room only.
	if res := e.submit(app("!other", "m1", a.ID, b.ID)); res.Duplicate || res.Seq != 1 {
		t.Errorf("m1 in another room = %+v, want a new message at seq 1", res)
	}
}

func submitStale(t *testing.T, e *env) {
	alice, bob := e.user("alice"), e.user("bob")
	a, b := e.device(alice.ID, "a"), e.device(bob.ID, "b")
	e.room("!r", alice.ID, bob.ID)
	won := e.submit(commit("!r", "c1", a.ID, 0, 1, b.ID))
	roomBefore, err := e.s.Room(e.ctx, "!r")
	e.ok(err)
	membersBefore, err := e.s.RoomMembers(e.ctx, "!r")
	e.ok(err)

	for _, kind := range []store.Kind{store.KindCommit, store.KindProposal} {
		lost := commit("!r", "c2-"+string(kind), b.ID, 0, 1, a.ID, b.ID)
		lost.Kind = kind
		lost.Members = []store.RoomMember{{UserID: bob.ID, Role: store.RoleAdmin}}
		_, err = e.s.Submit(e.ctx, lost)
		is(t, err, store.ErrConflict, "stale "+string(kind))
	}

	roomAfter, err := e.s.Room(e.ctx, "!r")
	e.ok(err)
	if roomAfter.Version != roomBefore.Version || roomAfter.Epoch != roomBefore.Epoch || !bytes.Equal(roomAfter.State, roomBefore.State) {
		t.Errorf("room moved by refused commits: %+v, was %+v", roomAfter, roomBefore)
	}
	if members, _ := e.s.RoomMembers(e.ctx, "!r"); !slices.Equal(members, membersBefore) {
		t.Errorf("members changed by a refused commit: %+v", members)
	}
	if log := e.log("!r"); len(log) != 1 {
		t.Errorf("log has %d messages, want only the winner", len(log))
	}
	if got := clientIDs(e.deliveries(a.ID)); len(got) != 0 {
		t.Errorf("refused commits were queued: %v", got)
	}
	if got := clientIDs(e.deliveries(b.ID)); !slices.Equal(got, []string{"c1"}) {
		t.Errorf("b's queue = %v, want c1 only", got)
	}
	// The winner's retry is a duplicate, not a conflict, even though its
	// PrevVersion is now stale: it is the commit that moved the room.
	res, err := e.s.Submit(e.ctx, commit("!r", "c1", a.ID, 0, 1, b.ID))
	e.ok(err)
	if !res.Duplicate || res.Seq != won.Seq {
		t.Errorf("retry of the winning commit = %+v, want duplicate of %d", res, won.Seq)
	}
	// An application message does not take part in versioning.
	e.submit(store.Submission{RoomID: "!r", ClientID: "app", SenderDevice: a.ID, Kind: store.KindApplication,
		PrevVersion: 99, Payload: []byte("x")})
}

func submitHandshake(t *testing.T, e *env) {
	alice, bob, carol := e.user("alice"), e.user("bob"), e.user("carol")
	a := e.device(alice.ID, "a")
	e.room("!r", alice.ID, bob.ID)

	c1 := commit("!r", "c1", a.ID, 0, 1)
	c1.Members = []store.RoomMember{{UserID: alice.ID, Role: store.RoleAdmin}, {UserID: carol.ID, Role: store.RoleMember}}
	e.submit(c1)
	r, err := e.s.Room(e.ctx, "!r")
	e.ok(err)
	if r.Version != 1 || r.Epoch != 1 || !bytes.Equal(r.State, c1.NewState) {
		t.Errorf("after commit: %+v, want version 1, epoch 1, state %q", r, c1.NewState)
	}
	members, err := e.s.RoomMembers(e.ctx, "!r")
	e.ok(err)
	if want := []store.RoomMember{{RoomID: "!r", UserID: alice.ID, Role: store.RoleAdmin}, {RoomID: "!r", UserID: carol.ID, Role: store.RoleMember}}; !slices.Equal(members, want) {
		t.Errorf("members after commit = %+v, want %+v", members, want)
	}

	// A proposal moves the version and state too; nil Members keeps them.
	p := commit("!r", "p1", a.ID, 1, 1)
	p.Kind = store.KindProposal
	p.NewState = []byte("state with a pending proposal")
	e.submit(p)
	r, _ = e.s.Room(e.ctx, "!r")
	if r.Version != 2 || r.Epoch != 1 || !bytes.Equal(r.State, p.NewState) {
		t.Errorf("after proposal: %+v", r)
	}
	if got, _ := e.s.RoomMembers(e.ctx, "!r"); !slices.Equal(got, members) {
		t.Errorf("members changed by a submission without Members: %+v", got)
	}

	// Application messages and Welcomes move nothing.
	e.submit(app("!r", "m1", a.ID))
	e.submit(store.Submission{RoomID: "!r", ClientID: "w1", SenderDevice: a.ID, Kind: store.KindWelcome, Epoch: 1, Payload: []byte("welcome")})
	if r2, _ := e.s.Room(e.ctx, "!r"); r2.Version != 2 || !bytes.Equal(r2.State, p.NewState) {
		t.Errorf("room moved by an application message or Welcome: %+v", r2)
	}

	// Members that are empty but not nil empty the room.
	c2 := commit("!r", "c2", a.ID, 2, 2)
	c2.Members = []store.RoomMember{}
	e.submit(c2)
	if got, err := e.s.RoomMembers(e.ctx, "!r"); err != nil || len(got) != 0 {
		t.Errorf("members after a commit with empty Members = %+v, %v", got, err)
	}
	kinds := []store.Kind{}
	for _, m := range e.log("!r") {
		kinds = append(kinds, m.Kind)
	}
	if want := []store.Kind{store.KindCommit, store.KindProposal, store.KindApplication, store.KindWelcome, store.KindCommit}; !slices.Equal(kinds, want) {
		t.Errorf("log kinds = %v, want %v", kinds, want)
	}
}

func submitConcurrentCommits(t *testing.T, e *env) {
	const n = 8
	alice := e.user("alice")
	devs := make([]store.Device, n)
	for i := range devs {
		devs[i] = e.device(alice.ID, fmt.Sprint("d", i))
	}
	e.room("!r", alice.ID)
	for round := range int64(3) {
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				_, errs[i] = e.s.Submit(e.ctx, commit("!r", fmt.Sprintf("c%d-%d", round, i), devs[i].ID, round, uint64(round+1), devs[0].ID)) // #nosec G115 -- a small round number
			})
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, store.ErrConflict):
				t.Fatalf("round %d: %v, want nil or ErrConflict", round, err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d commits won, want exactly one", round, won)
		}
		r, _ := e.s.Room(e.ctx, "!r")
		if r.Version != round+1 {
			t.Fatalf("round %d: version %d, want %d", round, r.Version, round+1)
		}
	}
	if log := e.log("!r"); len(log) != 3 {
		t.Errorf("log has %d commits, want 3", len(log))
	}
	if ds := e.deliveries(devs[0].ID); len(ds) != 3 {
		t.Errorf("%d commits queued, want 3", len(ds))
	}
}

func submitConcurrent(t *testing.T, e *env) {
	const senders, each = 8, 25
	alice := e.user("alice")
	reader := e.device(alice.ID, "reader")
	devs := make([]store.Device, senders)
	for i := range devs {
		devs[i] = e.device(alice.ID, fmt.Sprint("d", i))
	}
	e.room("!r", alice.ID)
	var wg sync.WaitGroup
	for i := range senders {
		wg.Go(func() {
			last := int64(0)
			for j := range each {
				res, err := e.s.Submit(e.ctx, app("!r", fmt.Sprintf("s%d-%d", i, j), devs[i].ID, reader.ID))
				if err != nil {
					t.Error(err)
					return
				}
				// One sender's messages, sent one after another, keep
				// their order in the log.
				if res.Seq <= last {
					t.Errorf("sender %d: seq %d after %d", i, res.Seq, last)
				}
				last = res.Seq
			}
		})
	}
	wg.Wait()
	log := e.log("!r")
	if len(log) != senders*each {
		t.Fatalf("log has %d messages, want %d", len(log), senders*each)
	}
	for i, m := range log {
		if m.Seq != int64(i+1) {
			t.Fatalf("log[%d].Seq = %d: seqs must run 1, 2, 3… without gaps", i, m.Seq)
		}
	}
	// The queue is in log order: cursor order and seq order agree.
	ds := e.deliveries(reader.ID)
	if len(ds) != len(log) {
		t.Fatalf("%d queued, want %d", len(ds), len(log))
	}
	for i, d := range ds {
		if d.Message.Seq != int64(i+1) || (i > 0 && d.Cursor <= ds[i-1].Cursor) {
			t.Fatalf("delivery %d: seq %d cursor %d after cursor %d", i, d.Message.Seq, d.Cursor, ds[max(i-1, 0)].Cursor)
		}
	}
}

func submitFailuresIsolated(t *testing.T, e *env) {
	alice := e.user("alice")
	a, b := e.device(alice.ID, "a"), e.device(alice.ID, "b")
	e.room("!r", alice.ID)
	e.submit(commit("!r", "c0", a.ID, 0, 1))

	type attempt struct {
		sub  store.Submission
		want error
	}
	var attempts []attempt
	for i := range 10 {
		attempts = append(attempts,
			attempt{app("!r", fmt.Sprint("good", i), a.ID, b.ID), nil},
			attempt{app("!nowhere", fmt.Sprint("lost", i), a.ID, b.ID), store.ErrNotFound},
			attempt{app("!r", fmt.Sprint("unknown-recipient", i), a.ID, b.ID, b.ID+1000), store.ErrNotFound},
			attempt{commit("!r", fmt.Sprint("stale", i), a.ID, 0, 1, b.ID), store.ErrConflict},
		)
	}
	errs := make([]error, len(attempts))
	var wg sync.WaitGroup
	for i, at := range attempts {
		wg.Go(func() { _, errs[i] = e.s.Submit(e.ctx, at.sub) })
	}
	wg.Wait()
	for i, at := range attempts {
		if at.want == nil && errs[i] != nil || at.want != nil && !errors.Is(errs[i], at.want) {
			t.Errorf("%s: %v, want %v", at.sub.ClientID, errs[i], at.want)
		}
	}
	log := e.log("!r")
	if len(log) != 11 {
		t.Errorf("log has %d messages, want c0 and the 10 good ones", len(log))
	}
	for i, m := range log {
		if m.Seq != int64(i+1) {
			t.Errorf("failed submissions left a gap: log[%d].Seq = %d", i, m.Seq)
		}
	}
	if ds := e.deliveries(b.ID); len(ds) != 10 {
		t.Errorf("b has %d queued, want the 10 good ones: %v", len(ds), clientIDs(ds))
	}
	if r, _ := e.s.Room(e.ctx, "!r"); r.Version != 1 {
		t.Errorf("version %d, want 1", r.Version)
	}
}

func roundTrip(t *testing.T, e *env) {
	alice := e.user("alice")
	a := e.device(alice.ID, "a")
	every := make([]byte, 512)
	for i := range every {
		every[i] = byte(i)
	}
	state := append([]byte{0, 0, 0xff}, every...)
	r := store.Room{ID: "!r", CreatorID: alice.ID, Epoch: math.MaxUint64 - 1, Version: 7, State: state,
		Created: time.Date(2026, 8, 1, 0, 0, 0, 123456000, time.UTC)}
	e.ok(e.s.CreateRoom(e.ctx, r, nil))
	got, err := e.s.Room(e.ctx, "!r")
	e.ok(err)
	if got.Epoch != r.Epoch || got.Version != 7 || !bytes.Equal(got.State, state) || !got.Created.Equal(r.Created) {
		t.Errorf("Room round trip = %+v", got)
	}

	subs := []store.Submission{
		{RoomID: "!r", ClientID: "every byte", SenderDevice: a.ID, Kind: store.KindCommit, Epoch: math.MaxUint64 - 1,
			Payload: every, PrevVersion: 7, NewState: every[:3], NewEpoch: math.MaxUint64, Recipients: []int64{a.ID}},
		{RoomID: "!r", ClientID: "empty", SenderDevice: a.ID, Kind: store.KindApplication, Epoch: math.MaxUint64,
			Payload: []byte{}, Recipients: []int64{a.ID}},
		{RoomID: "!r", ClientID: "ünïcødé ✓", SenderDevice: a.ID, Kind: store.KindApplication, Epoch: math.MaxUint64,
			Payload: []byte{0}, Recipients: []int64{a.ID}},
	}
	for _, s := range subs {
		e.submit(s)
	}
	got, _ = e.s.Room(e.ctx, "!r")
	if got.Epoch != math.MaxUint64 || !bytes.Equal(got.State, every[:3]) || got.Version != 8 {
		t.Errorf("room after commit = %+v", got)
	}
	for i, m := range e.log("!r") {
		sameMessage(t, m, subs[i], int64(i+1))
	}
	for i, d := range e.deliveries(a.ID) {
		sameMessage(t, d.Message, subs[i], int64(i+1))
	}
	e.ok(e.s.AddKeyPackages(e.ctx, []store.KeyPackage{{Ref: []byte{0, 0}, DeviceID: a.ID, Suite: math.MaxUint16, Data: every}}))
	kp, _, err := e.s.ClaimKeyPackage(e.ctx, a.ID, math.MaxUint16)
	e.ok(err)
	if !bytes.Equal(kp.Ref, []byte{0, 0}) || !bytes.Equal(kp.Data, every) || kp.Suite != math.MaxUint16 {
		t.Errorf("KeyPackage round trip = %+v", kp)
	}
}

func deliveriesPaged(t *testing.T, e *env) {
	alice, bob := e.user("alice"), e.user("bob")
	a, b, idle := e.device(alice.ID, "a"), e.device(bob.ID, "b"), e.device(bob.ID, "idle")
	e.room("!one", alice.ID, bob.ID)
	e.room("!two", alice.ID, bob.ID)
	var want []string
	for i := range 6 {
		room := []string{"!one", "!two"}[i%2]
		id := fmt.Sprintf("%s/%d", room, i)
		e.submit(app(room, id, a.ID, b.ID))
		want = append(want, id)
	}
	all := e.deliveries(b.ID)
	if got := clientIDs(all); !slices.Equal(got, want) {
		t.Fatalf("b's queue = %v, want %v (in the order submitted, across rooms)", got, want)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Cursor <= all[i-1].Cursor {
			t.Fatalf("cursors not strictly increasing: %d then %d", all[i-1].Cursor, all[i].Cursor)
		}
	}
	// Pages of two, each starting after the last cursor seen.
	var paged []store.Delivery
	after := int64(0)
	for {
		page, err := e.s.Deliveries(e.ctx, b.ID, after, 2)
		e.ok(err)
		if len(page) > 2 {
			t.Fatalf("page of %d, limit 2", len(page))
		}
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
		after = page[len(page)-1].Cursor
	}
	if !slices.EqualFunc(paged, all, func(x, y store.Delivery) bool {
		return x.Cursor == y.Cursor && x.Message.ClientID == y.Message.ClientID
	}) {
		t.Errorf("paged = %v, want %v", clientIDs(paged), clientIDs(all))
	}
	// Others' queues are their own.
	if ds := e.deliveries(a.ID); len(ds) != 0 {
		t.Errorf("sender's own queue = %v", clientIDs(ds))
	}
	if ds := e.deliveries(idle.ID); len(ds) != 0 {
		t.Errorf("idle device's queue = %v", clientIDs(ds))
	}
	_, err := e.s.Deliveries(e.ctx, idle.ID+1000, 0, 10)
	is(t, err, store.ErrNotFound, "Deliveries of an unknown device")
}

func ack(t *testing.T, e *env) {
	alice := e.user("alice")
	a, b := e.device(alice.ID, "a"), e.device(alice.ID, "b")
	e.room("!r", alice.ID)
	for i := range 5 {
		e.submit(app("!r", fmt.Sprint("m", i), a.ID, a.ID, b.ID))
	}
	ds := e.deliveries(a.ID)
	e.ok(e.s.Ack(e.ctx, a.ID, ds[1].Cursor))
	// Acked entries are gone even for a reader that starts from 0.
	if got := clientIDs(e.deliveries(a.ID)); !slices.Equal(got, []string{"m2", "m3", "m4"}) {
		t.Errorf("after ack of m1: %v, want m2 m3 m4", got)
	}
	// b's queue is untouched by a's ack.
	if got := e.deliveries(b.ID); len(got) != 5 {
		t.Errorf("b lost entries to a's ack: %v", clientIDs(got))
	}
	// Acking again, or an older cursor, changes nothing; acking past the
	// end empties the queue.
	e.ok(e.s.Ack(e.ctx, a.ID, ds[1].Cursor))
	e.ok(e.s.Ack(e.ctx, a.ID, ds[0].Cursor))
	if got := e.deliveries(a.ID); len(got) != 3 {
		t.Errorf("repeated ack removed more: %v", clientIDs(got))
	}
	e.ok(e.s.Ack(e.ctx, a.ID, ds[4].Cursor+1000))
	if got := e.deliveries(a.ID); len(got) != 0 {
		t.Errorf("after ack past the end: %v", clientIDs(got))
	}
	e.ok(e.s.Ack(e.ctx, a.ID, ds[4].Cursor))
	is(t, e.s.Ack(e.ctx, b.ID+1000, 1), store.ErrNotFound, "Ack of an unknown device")
	// The log keeps what the queues drop.
	if len(e.log("!r")) != 5 {
		t.Errorf("ack removed messages from the log")
	}
}

func cursorsMonotonic(t *testing.T, e *env) {
	alice := e.user("alice")
	a := e.device(alice.ID, "a")
	e.room("!r", alice.ID)
	e.submit(app("!r", "m1", a.ID, a.ID))
	first := e.deliveries(a.ID)
	e.ok(e.s.Ack(e.ctx, a.ID, first[0].Cursor))
	// The queue is empty now. A device that remembers its last cursor
	// must still see what comes next.
	e.submit(app("!r", "m2", a.ID, a.ID))
	next, err := e.s.Deliveries(e.ctx, a.ID, first[0].Cursor, 10)
	e.ok(err)
	if got := clientIDs(next); !slices.Equal(got, []string{"m2"}) {
		t.Fatalf("after emptying the queue, Deliveries(after last cursor) = %v, want m2", got)
	}
}

func trim(t *testing.T, e *env) {
	alice := e.user("alice")
	a, b := e.device(alice.ID, "a"), e.device(alice.ID, "b")
	e.room("!r", alice.ID)
	e.submit(app("!r", "old1", a.ID, a.ID, b.ID))
	e.submit(app("!r", "old2", a.ID, b.ID))
	// Message times come from the store's clock; make sure the next one
	// is later than the last, whatever its resolution.
	last := e.log("!r")[1].Created
	for !time.Now().After(last.Add(2 * time.Millisecond)) {
		time.Sleep(time.Millisecond)
	}
	e.submit(app("!r", "new", a.ID, a.ID, b.ID))
	cut := e.log("!r")[2].Created
	if !cut.After(last) {
		t.Fatalf("store stamped %v after %v", cut, last)
	}
	n, err := e.s.TrimQueues(e.ctx, cut)
	e.ok(err)
	if n != 3 {
		t.Errorf("TrimQueues removed %d, want 3", n)
	}
	for _, dev := range []int64{a.ID, b.ID} {
		if got := clientIDs(e.deliveries(dev)); !slices.Equal(got, []string{"new"}) {
			t.Errorf("device %d after trim: %v, want new only", dev, got)
		}
	}
	if n, err := e.s.TrimQueues(e.ctx, cut); err != nil || n != 0 {
		t.Errorf("second trim = %d, %v", n, err)
	}
	if len(e.log("!r")) != 3 {
		t.Errorf("trim removed messages from the log")
	}
}

func closed(t *testing.T, e *env) {
	alice := e.user("alice")
	a := e.device(alice.ID, "a")
	e.room("!r", alice.ID)
	e.ok(e.s.Close())
	_, err := e.s.Submit(e.ctx, app("!r", "late", a.ID, a.ID))
	is(t, err, store.ErrClosed, "Submit after Close")
	_, err = e.s.CreateUser(e.ctx, "bob", "")
	is(t, err, store.ErrClosed, "CreateUser after Close")
	_, err = e.s.UserByID(e.ctx, alice.ID)
	is(t, err, store.ErrClosed, "UserByID after Close")
	_, err = e.s.Deliveries(e.ctx, a.ID, 0, 10)
	is(t, err, store.ErrClosed, "Deliveries after Close")
	e.s.Close() // #nosec G104 -- a second Close must be harmless, whatever it returns
}

func reopenKeeps(t *testing.T, open func() *env) {
	e := open()
	alice, err := e.s.CreateUser(e.ctx, "alice", "+441632960001")
	e.ok(err)
	a, b := e.device(alice.ID, "a"), e.device(alice.ID, "b")
	token := random(32)
	e.ok(e.s.CreateSession(e.ctx, store.Session{TokenHash: token, DeviceID: a.ID, Expires: time.Now().Add(time.Hour)}))
	fresh := kps(b.ID, 1, 3)
	e.ok(e.s.AddKeyPackages(e.ctx, fresh))
	claimed, _, err := e.s.ClaimKeyPackage(e.ctx, b.ID, 1)
	e.ok(err)
	e.room("!r", alice.ID)
	e.submit(commit("!r", "c1", a.ID, 0, 1, a.ID, b.ID))
	e.submit(app("!r", "m1", a.ID, a.ID, b.ID))
	e.submit(app("!r", "m2", a.ID, a.ID, b.ID))
	aq := e.deliveries(a.ID)
	e.ok(e.s.Ack(e.ctx, a.ID, aq[len(aq)-1].Cursor)) // a's queue is empty
	bq := e.deliveries(b.ID)
	e.ok(e.s.Ack(e.ctx, b.ID, bq[0].Cursor)) // b has m1, m2 left
	e.ok(e.s.Close())

	e = open()
	if u, err := e.s.UserByPhone(e.ctx, "+441632960001"); err != nil || u.ID != alice.ID || !u.Created.Equal(alice.Created) {
		t.Errorf("user after reopen = %+v, %v", u, err)
	}
	if d, err := e.s.SessionDevice(e.ctx, token, time.Now()); err != nil || d.ID != a.ID {
		t.Errorf("session after reopen = %+v, %v", d, err)
	}
	if n, _ := e.s.CountKeyPackages(e.ctx, b.ID, 1); n != 2 {
		t.Errorf("%d KeyPackages after reopen, want 2", n)
	}
	if dev, err := e.s.KeyPackageDevice(e.ctx, claimed.Ref); err != nil || dev != b.ID {
		t.Errorf("claimed KeyPackage after reopen: %d, %v", dev, err)
	}
	for range 2 {
		kp, _, err := e.s.ClaimKeyPackage(e.ctx, b.ID, 1)
		e.ok(err)
		if bytes.Equal(kp.Ref, claimed.Ref) {
			t.Errorf("a claimed KeyPackage was handed out again after reopen")
		}
	}
	if r, err := e.s.Room(e.ctx, "!r"); err != nil || r.Version != 1 || r.Epoch != 1 {
		t.Errorf("room after reopen = %+v, %v", r, err)
	}
	if log := e.log("!r"); len(log) != 3 {
		t.Errorf("log after reopen has %d, want 3", len(log))
	}
	if got := clientIDs(e.deliveries(b.ID)); !slices.Equal(got, []string{"m1", "m2"}) {
		t.Errorf("b's queue after reopen = %v, want m1 m2 (c1 was acked)", got)
	}
	if res := e.submit(app("!r", "m1", a.ID, a.ID)); !res.Duplicate || res.Seq != 2 {
		t.Errorf("retry after reopen = %+v, want duplicate of 2", res)
	}
	_, err = e.s.Submit(e.ctx, commit("!r", "stale", a.ID, 0, 1))
	is(t, err, store.ErrConflict, "stale commit after reopen")
	// Cursors go on from where they were, though a's queue was empty.
	e.submit(app("!r", "m3", a.ID, a.ID))
	next, err := e.s.Deliveries(e.ctx, a.ID, aq[len(aq)-1].Cursor, 10)
	e.ok(err)
	if got := clientIDs(next); !slices.Equal(got, []string{"m3"}) {
		t.Errorf("after reopen, Deliveries(after last acked) = %v, want m3", got)
	}
}

func reopenAfterConcurrentClose(t *testing.T, open func() *env) {
	const senders, each = 8, 40
	e := open()
	alice := e.user("alice")
	a := e.device(alice.ID, "a")
	e.room("!r", alice.ID)

	var mu sync.Mutex
	accepted := map[string]int64{}
	var wg sync.WaitGroup
	for i := range senders {
		wg.Go(func() {
			for j := range each {
				id := fmt.Sprintf("s%d-%d", i, j)
				res, err := e.s.Submit(e.ctx, app("!r", id, a.ID, a.ID))
				if errors.Is(err, store.ErrClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				accepted[id] = res.Seq
				mu.Unlock()
			}
		})
	}
	// Close while submissions are in flight.
	for {
		mu.Lock()
		n := len(accepted)
		mu.Unlock()
		if n >= senders*each/4 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	e.ok(e.s.Close())
	wg.Wait()

	e = open()
	logged := map[string]int64{}
	for _, m := range e.log("!r") {
		logged[m.ClientID] = m.Seq
	}
	for id, seq := range accepted {
		if logged[id] != seq {
			t.Errorf("%s was accepted at seq %d but after reopen is at %d", id, seq, logged[id])
		}
	}
	queued := map[string]bool{}
	for _, d := range e.deliveries(a.ID) {
		queued[d.Message.ClientID] = true
	}
	for id := range accepted {
		if !queued[id] {
			t.Errorf("%s was accepted but is not queued after reopen", id)
		}
	}
	t.Logf("%d of %d submissions accepted before Close", len(accepted), senders*each)
}

// submitWelcome: a commit that adds a member carries its Welcome; both are
// stored in one transaction, the Welcome right after the commit and queued
// only for the joiner; a commit that loses its epoch stores neither.
func submitWelcome(t *testing.T, e *env) {
	alice, bob := e.user("alice"), e.user("bob")
	a, b := e.device(alice.ID, "a"), e.device(bob.ID, "b")
	e.room("!w", alice.ID)
	fresh, last := kps(b.ID, 1, 2), lastResort(b.ID, 1)
	e.ok(e.s.AddKeyPackages(e.ctx, append(fresh, last)))
	c := commit("!w", "c1", a.ID, 0, 1)
	c.Welcome = &store.Welcome{Payload: []byte("welcome for bob"), Recipients: []int64{b.ID}, KeyPackages: [][]byte{fresh[0].Ref, last.Ref}}
	res := e.submit(c)
	// The fresh KeyPackage is used with the Welcome; the last-resort one
	// may be used again.
	for _, k := range []struct {
		ref  []byte
		want bool
	}{{fresh[0].Ref, true}, {last.Ref, false}, {fresh[1].Ref, false}} {
		if used, err := e.s.KeyPackageWelcomed(e.ctx, k.ref); err != nil || used != k.want {
			t.Errorf("KeyPackageWelcomed(%x) = %v, %v; want %v", k.ref, used, err, k.want)
		}
	}
	_, err := e.s.KeyPackageWelcomed(e.ctx, random(32))
	is(t, err, store.ErrNotFound, "KeyPackageWelcomed of an unknown ref")
	log := e.log("!w")
	if len(log) != 2 || log[1].Seq != res.Seq+1 || log[1].Kind != store.KindWelcome || string(log[1].Payload) != "welcome for bob" || log[1].ClientID != "c1/welcome" {
		t.Fatalf("log after a commit with a welcome = %+v", log)
	}
	if got := clientIDs(e.deliveries(b.ID)); !slices.Equal(got, []string{"c1/welcome"}) {
		t.Errorf("bob's queue = %v, want only the welcome", got)
	}
	if got := e.deliveries(a.ID); len(got) != 0 {
		t.Errorf("the committer's queue = %v, want empty", clientIDs(got))
	}
	// A second commit for the same version loses, and its welcome with it.
	lost := commit("!w", "c2", a.ID, 0, 1)
	lost.Welcome = &store.Welcome{Payload: []byte("welcome that never was"), Recipients: []int64{b.ID}, KeyPackages: [][]byte{fresh[1].Ref}}
	if _, err := e.s.Submit(e.ctx, lost); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale commit with welcome: %v, want ErrConflict", err)
	}
	if used, err := e.s.KeyPackageWelcomed(e.ctx, fresh[1].Ref); err != nil || used {
		t.Errorf("the refused commit's KeyPackage is marked used: %v, %v", used, err)
	}
	if len(e.log("!w")) != 2 || len(e.deliveries(b.ID)) != 1 {
		t.Errorf("a refused commit left its welcome behind")
	}
	// A retry of the first commit is a duplicate and adds nothing.
	if again := e.submit(c); !again.Duplicate || again.Seq != res.Seq || len(e.log("!w")) != 2 {
		t.Errorf("retried commit with welcome = %+v", again)
	}
}
