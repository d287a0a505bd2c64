package mlsinterop

import (
	"bytes"
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/switchboard-chat/switchboard/mlsinterop/pb"
)

// startClients serves n independent clients on loopback and returns
// connections to them.
func startClients(t *testing.T, n int) []pb.MLSClientClient {
	t.Helper()
	var out []pb.MLSClientClient
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := NewServer(NewClient())
		go srv.Serve(ln)
		t.Cleanup(srv.Stop)
		conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		out = append(out, pb.NewMLSClientClient(conn))
	}
	return out
}

func TestTwoInstancesChatOverGRPC(t *testing.T) {
	ctx := context.Background()
	c := startClients(t, 2)
	alice, bob := c[0], c[1]
	for _, encrypt := range []bool{false, true} {
		g, err := alice.CreateGroup(ctx, &pb.CreateGroupRequest{GroupId: []byte("room"), CipherSuite: 1, EncryptHandshake: encrypt, Identity: []byte("alice")})
		if err != nil {
			t.Fatal(err)
		}
		kp, err := bob.CreateKeyPackage(ctx, &pb.CreateKeyPackageRequest{CipherSuite: 1, Identity: []byte("bob")})
		if err != nil {
			t.Fatal(err)
		}
		prop, err := alice.AddProposal(ctx, &pb.AddProposalRequest{StateId: g.StateId, KeyPackage: kp.KeyPackage})
		if err != nil {
			t.Fatal(err)
		}
		commit, err := alice.Commit(ctx, &pb.CommitRequest{StateId: g.StateId, ByReference: [][]byte{prop.Proposal}})
		if err != nil {
			t.Fatal(err)
		}
		merged, err := alice.HandlePendingCommit(ctx, &pb.HandlePendingCommitRequest{StateId: g.StateId})
		if err != nil {
			t.Fatal(err)
		}
		joined, err := bob.JoinGroup(ctx, &pb.JoinGroupRequest{TransactionId: kp.TransactionId, Welcome: commit.Welcome, EncryptHandshake: encrypt, Identity: []byte("bob")})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(merged.EpochAuthenticator, joined.EpochAuthenticator) {
			t.Fatal("alice and bob disagree after the join")
		}
		ct, err := bob.Protect(ctx, &pb.ProtectRequest{StateId: joined.StateId, AuthenticatedData: []byte("ad"), Plaintext: []byte("hi alice")})
		if err != nil {
			t.Fatal(err)
		}
		pt, err := alice.Unprotect(ctx, &pb.UnprotectRequest{StateId: g.StateId, Ciphertext: ct.Ciphertext})
		if err != nil || string(pt.Plaintext) != "hi alice" || string(pt.AuthenticatedData) != "ad" {
			t.Fatalf("unprotect: %v %q", err, pt.GetPlaintext())
		}
	}
}

func TestBadRequestsGetClearErrors(t *testing.T) {
	ctx := context.Background()
	c := startClients(t, 1)[0]
	_, err := c.StateAuth(ctx, &pb.StateAuthRequest{StateId: 42})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("unknown state: %v", err)
	}
	_, err = c.CreateGroup(ctx, &pb.CreateGroupRequest{GroupId: []byte("g"), CipherSuite: 4, Identity: []byte("x")})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("unsupported suite: %v", err)
	}
	g, err := c.CreateGroup(ctx, &pb.CreateGroupRequest{GroupId: []byte("g"), CipherSuite: 1, Identity: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Unprotect(ctx, &pb.UnprotectRequest{StateId: g.StateId, Ciphertext: []byte{0, 1, 0, 2, 9}}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("garbage ciphertext: %v", err)
	}
	if _, err := c.Free(ctx, &pb.FreeRequest{StateId: g.StateId}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Export(ctx, &pb.ExportRequest{StateId: g.StateId, Label: "x", KeyLength: 32}); status.Code(err) != codes.NotFound {
		t.Fatalf("freed state: %v", err)
	}
}
