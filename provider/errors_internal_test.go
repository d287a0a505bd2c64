package provider

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/store"
)

// TestAFullDiskIsStorageFull: a store error caused by a full disk, however
// deeply wrapped, is answered 507 storage_full with a Retry-After, on the
// client API, the stream and the federation API alike (they share
// apiError); other store faults stay what they were.
func TestAFullDiskIsStorageFull(t *testing.T) {
	full := fmt.Errorf("sqlite: submit: %w", fmt.Errorf("sqlite: commit: %w (database or disk is full (13))", store.ErrStorageFull))
	for _, err := range []error{full, errInternal(full)} {
		e := apiError(err)
		if e.Code != "storage_full" || e.Status != http.StatusInsufficientStorage || e.retryAfter <= 0 || !errors.Is(e, store.ErrStorageFull) {
			t.Errorf("apiError(%v) = %+v, want storage_full, 507, a Retry-After", err, e)
		}
	}
	if e := apiError(fmt.Errorf("x: %w", store.ErrUnavailable)); e.Code != "unavailable" || e.Status != http.StatusServiceUnavailable {
		t.Errorf("storage unreachable: %+v, want unavailable 503", e)
	}
	if e := apiError(errors.New("boom")); e.Code != "internal" || e.retryAfter != 0 {
		t.Errorf("another fault: %+v, want internal without Retry-After", e)
	}
	// A room's hub on another provider whose disk is full: the device
	// hears storage_full from its own provider.
	hub := &federation.PeerError{Domain: "blue.test", Status: http.StatusInsufficientStorage, Code: "storage_full"}
	if e := hubFull("blue.test", hub); e == nil || e.Code != "storage_full" || e.Status != http.StatusInsufficientStorage || e.retryAfter <= 0 {
		t.Errorf("a full hub: %+v", e)
	}
	if e := hubFull("blue.test", &federation.PeerError{Domain: "blue.test", Status: http.StatusServiceUnavailable}); e != nil {
		t.Errorf("an unavailable hub: %+v, want it left to hub_unreachable", e)
	}
	// A refusal that already has its code keeps it.
	if e := apiError(errConflict("taken")); e.Code != "conflict" {
		t.Errorf("a conflict: %+v", e)
	}
}
