package client

import (
	"errors"
	"net/http"
	"testing"
	"time"
)

// TestStorageFullIsRetried: a provider whose disk is full answers 507
// storage_full with a Retry-After, over HTTP or on the stream. The SDK
// reads it as ErrStorageFull with the Retry-After, and sends again with
// the same client_id (retryable): the provider stored nothing.
func TestStorageFullIsRetried(t *testing.T) {
	resp := &http.Response{StatusCode: http.StatusInsufficientStorage, Header: http.Header{"Retry-After": {"30"}}}
	overHTTP := decodeAPIError(resp, []byte(`{"error":{"code":"storage_full","message":"full","request_id":"r1"}}`))
	bare := decodeAPIError(&http.Response{StatusCode: http.StatusInsufficientStorage, Header: http.Header{}}, []byte("Insufficient Storage"))
	onStream := (&sendAnswer{Type: "send_error", Status: 507, Code: "storage_full", Message: "full", RetryAfter: 30}).err()
	for name, err := range map[string]error{"over HTTP": overHTTP, "without a body": bare, "on the stream": onStream} {
		if !errors.Is(err, ErrStorageFull) || !retryable(err) {
			t.Errorf("%s: %v: ErrStorageFull %v, retryable %v; want both", name, err, errors.Is(err, ErrStorageFull), retryable(err))
		}
	}
	for name, err := range map[string]error{"over HTTP": overHTTP, "on the stream": onStream} {
		var ae *APIError
		if !errors.As(err, &ae) || ae.RetryAfter != 30*time.Second {
			t.Errorf("%s: %v: want a Retry-After of 30 s", name, err)
		}
	}
}
