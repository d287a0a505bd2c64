package bus

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Leases. A destination's lease is a key in the bucket, created only if
// absent, holding the holder's name. The bucket's max age is the TTL, so
// a lease nobody renews disappears by itself; the holder renews it every
// TTL/4 with a compare-and-set on the revision it last wrote, and stops
// sending (held ends) as soon as a renewal finds another revision, or when
// renewals have failed for so long that the next one would come after
// the key may already have expired on the server. The holder's deadline
// is counted from before each renewal was sent, so it ends no later than
// the server's copy does: two replicas never both believe they hold it.

// opTimeout bounds each call to NATS made for a lease.
const opTimeout = 5 * time.Second

// leaseKey makes any destination a valid key (keys allow letters, digits
// and -/_=. only, and no empty tokens).
func leaseKey(dest string) string { return base64.RawURLEncoding.EncodeToString([]byte(dest)) }

func (b *NATS) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	b.kvMu.Lock()
	defer b.kvMu.Unlock()
	if b.kv != nil {
		return b.kv, nil
	}
	kv, err := b.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      b.bucketName,
		Description: "Switchboard: which replica sends to each federation destination",
		History:     1,
		TTL:         b.ttl,
		// On disk, so a NATS restart shorter than the TTL keeps the
		// leases (and their holders keep sending).
		Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("bus: lease bucket %s: %w", b.bucketName, err)
	}
	b.kv = kv
	return kv, nil
}

// Acquire takes dest's lease if nobody holds it.
func (b *NATS) Acquire(ctx context.Context, dest string) (context.Context, func(), bool, error) {
	if b.root.Err() != nil {
		return nil, nil, false, errClosed
	}
	octx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	kv, err := b.bucket(octx)
	if err != nil {
		return nil, nil, false, err
	}
	key := leaseKey(dest)
	// The value names this holding: the replica and a nonce, so that a
	// renewal can recognise its own write (see hold) and never another
	// process's of the same name.
	value := []byte(b.origin + " " + randomID())
	sent := time.Now()
	rev, err := kv.Create(octx, key, value)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil, nil, false, nil
	}
	if err != nil {
		return nil, nil, false, fmt.Errorf("bus: taking the lease of %s: %w", dest, err)
	}
	held, stop := context.WithCancel(ctx)
	unhook := context.AfterFunc(b.root, stop)
	done := make(chan struct{})
	b.leases.Add(1)
	go func() {
		defer b.leases.Done()
		defer close(done)
		defer unhook()
		b.hold(held, stop, kv, key, value, dest, rev, sent.Add(b.ttl))
	}()
	release := func() {
		stop()
		<-done
	}
	return held, release, true, nil
}

// hold renews the lease until held ends, then deletes it if it is still
// ours (a replica that stopped sending frees the destination at once,
// without waiting for the TTL).
func (b *NATS) hold(held context.Context, stop context.CancelFunc, kv jetstream.KeyValue, key string, value []byte, dest string, rev uint64, deadline time.Time) {
	every := b.ttl / 4
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-held.Done():
			if rev != 0 {
				dctx, cancel := context.WithTimeout(context.Background(), opTimeout)
				if err := kv.Delete(dctx, key, jetstream.LastRevision(rev)); err != nil {
					b.log.Debug("bus: lease not deleted, it expires by itself", "destination", dest, "err", err)
				}
				cancel()
			}
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(held, min(opTimeout, every))
		sent := time.Now()
		r, err := kv.Update(rctx, key, value, rev)
		cancel()
		adopted := false
		if err != nil && (errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists)) {
			// A renewal that timed out while NATS was away may have been
			// applied since (nats.go sends what it buffered on
			// reconnecting): if the key still holds our value, it is
			// still ours, at a revision we did not see.
			gctx, gcancel := context.WithTimeout(held, min(opTimeout, every))
			if e, gerr := kv.Get(gctx, key); gerr == nil && string(e.Value()) == string(value) {
				r, err, adopted = e.Revision(), nil, true
			}
			gcancel()
		}
		switch {
		case err == nil:
			rev = r
			// Only a renewal whose send time we know moves the deadline;
			// an adopted one is renewed properly at the next tick.
			if !adopted {
				deadline = sent.Add(b.ttl)
			}
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyExists):
			b.log.Warn("bus: lease lost (taken over after it expired)", "destination", dest)
			rev = 0 // not ours to delete
			stop()
		case held.Err() != nil:
			// Released while renewing: the select above deletes it.
		case time.Now().Add(every).After(deadline):
			b.log.Warn("bus: lease given up: it could not be renewed before it expires", "destination", dest, "err", err)
			stop()
		default:
			b.log.Warn("bus: renewing a lease failed, will retry", "destination", dest, "err", err)
		}
	}
}
