package node_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/bus/natstest"
	"github.com/switchboard-chat/switchboard/node"
	"github.com/switchboard-chat/switchboard/provider"
	"github.com/switchboard-chat/switchboard/store/postgres/pgtest"
)

// TestSignOutOnOneReplicaEndsTheSessionOnAll: each replica keeps the
// sessions it has seen in memory, so that a request costs no store read.
// The cache is made to trust an entry for an hour here, so only the
// sign-out's notice over the bus can end the session on the other
// replica. Alice's laptop signs in on replica 1 and is known to replica
// 2; it signs out on replica 1, and replica 2 refuses its token from
// then on, while her phone's session, on the same replicas, goes on.
func TestSignOutOnOneReplicaEndsTheSessionOnAll(t *testing.T) {
	natsURL, dsn, dir := natstest.URL(t), pgtest.DSN(t), t.TempDir()
	first := filepath.Join(dir, "green-1")
	must(t, "data directory", os.MkdirAll(first, 0o700))
	_, err := node.LoadOrCreateCA(first, "green.test")
	must(t, "green's CA", err)
	var replicas []*node.Node
	for i, name := range []string{"green-1", "green-2"} {
		data := filepath.Join(dir, name)
		if i > 0 {
			must(t, "copying the data directory", os.CopyFS(data, os.DirFS(first)))
		}
		n, err := node.Start(node.Config{Domain: "green.test", DataDir: data, StoreDSN: dsn, Listen: "127.0.0.1:0",
			Bus: natsURL, BusName: name, Provider: provider.Config{SessionCacheTTL: time.Hour}})
		must(t, "starting "+name, err)
		t.Cleanup(func() { n.Close() })
		replicas = append(replicas, n)
	}
	one, two := replicas[0].ClientURL, replicas[1].ClientURL

	ctx := context.Background()
	_, err = replicas[0].Store.CreateUser(ctx, "alice", "")
	must(t, "adding alice", err)
	laptop := signedInDevice(t, replicas[0], "laptop")
	phone := signedInDevice(t, replicas[0], "phone")
	for _, tok := range []string{laptop, phone} {
		for _, url := range []string{one, two} {
			if code := call(t, "GET", url+"/v1/me", tok); code != http.StatusOK {
				t.Fatalf("GET /v1/me on %s before signing out: %d, want 200", url, code)
			}
		}
	}

	if code := call(t, "DELETE", one+"/v1/auth/session", laptop); code != http.StatusNoContent {
		t.Fatalf("signing out on replica 1: %d, want 204", code)
	}
	if code := call(t, "GET", one+"/v1/me", laptop); code != http.StatusUnauthorized {
		t.Errorf("the laptop's token on replica 1 after signing out: %d, want 401", code)
	}
	// The notice crosses NATS as the answer to the sign-out crosses
	// HTTP; a replica that never heard it would keep the session for the
	// cache's hour, far past this wait.
	deadline := time.Now().Add(10 * time.Second)
	taken := 0
	for call(t, "GET", two+"/v1/me", laptop) != http.StatusUnauthorized {
		if time.Now().After(deadline) {
			t.Fatal("replica 2 still takes the laptop's token 10 s after it signed out on replica 1")
		}
		taken++
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("replica 2 took the signed-out token %d times before refusing it", taken)
	for _, url := range []string{one, two} {
		if code := call(t, "GET", url+"/v1/me", phone); code != http.StatusOK {
			t.Errorf("the phone's token on %s after the laptop signed out: %d, want 200", url, code)
		}
	}
}

// signedInDevice registers a device of alice through replica n and signs
// it in there, returning its token.
func signedInDevice(t *testing.T, n *node.Node, name string) string {
	t.Helper()
	ctx := context.Background()
	u, err := n.Store.UserByHandle(ctx, "alice")
	must(t, "finding alice", err)
	code, err := provider.AddEnrollment(ctx, n.Store, u.ID, time.Hour)
	must(t, "an enrollment code", err)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	post(t, n.ClientURL+"/v1/devices", map[string]any{"enrollment_code": code, "device_name": name, "auth_key": []byte(pub)}, nil)
	var ch struct {
		Challenge []byte `json:"challenge"`
	}
	post(t, n.ClientURL+"/v1/auth/challenge", map[string]any{"auth_key": []byte(pub)}, &ch)
	var sess struct {
		Token string `json:"token"`
	}
	sig := ed25519.Sign(priv, provider.SignInMessage("green.test", ch.Challenge))
	post(t, n.ClientURL+"/v1/auth/session", map[string]any{"auth_key": []byte(pub), "challenge": ch.Challenge, "signature": sig}, &sess)
	return sess.Token
}

func post(t *testing.T, url string, in, out any) {
	t.Helper()
	body, _ := json.Marshal(in)
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	must(t, "POST "+url, err)
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("POST %s: %s", url, resp.Status)
	}
	if out != nil {
		must(t, "decoding the answer of "+url, json.NewDecoder(resp.Body).Decode(out))
	}
}

// call sends a bodiless request with a bearer token and returns the status.
func call(t *testing.T, method, url, token string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	must(t, method+" "+url, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	must(t, method+" "+url, err)
	resp.Body.Close()
	return resp.StatusCode
}
