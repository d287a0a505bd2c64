package proctest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
)

// FreeAddr returns a loopback address whose port is free right now, below
// the ephemeral range (32768 and up on Linux), for a process that must be
// found at an address fixed before it starts (a partner's trust file names
// it): a port in the ephemeral range could meanwhile be taken as the local
// port of some outgoing connection.
func FreeAddr(t *testing.T) string {
	t.Helper()
	for range 100 {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.N(12000)) // #nosec G404 -- a test port, not a secret
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			return addr
		}
	}
	t.Fatal("no free port below 32000 on 127.0.0.1")
	return ""
}
