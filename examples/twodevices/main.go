// Command twodevices shows the Go SDK (package client) at work: alice and
// bob each register a device with a Switchboard provider, alice creates a
// room and invites bob, and they exchange a few end-to-end encrypted
// messages. It prints what each side decrypts.
//
// On its own it starts a provider of its own in a temporary directory and
// creates the two accounts there, as `switchboard admin user add` does:
//
//	go run ./examples/twodevices
//
// Against a running provider (`switchboard serve`), give it the enrollment
// codes that `switchboard admin user add alice` and `... add bob` printed:
//
//	go run ./examples/twodevices -server http://127.0.0.1:8080 -alice CODE -bob CODE
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/content"
	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/provider"
	"github.com/switchboard-chat/switchboard/store/sqlite"
)

func main() {
	server := flag.String("server", "", "URL of a running provider (default: start one in a temporary directory)")
	aliceCode := flag.String("alice", "", "alice's enrollment code, with -server")
	bobCode := flag.String("bob", "", "bob's enrollment code, with -server")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, *server, *aliceCode, *bobCode, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "twodevices:", err)
		os.Exit(1)
	}
}

// run is the whole example; main only reads the flags, so that a test can
// run it too.
func run(ctx context.Context, server, aliceCode, bobCode string, out io.Writer) error {
	dir, err := os.MkdirTemp("", "twodevices-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	if server == "" {
		p, err := startProvider(ctx, filepath.Join(dir, "provider"))
		if err != nil {
			return err
		}
		defer p.stop()
		server, aliceCode, bobCode = p.url, p.codes["alice"], p.codes["bob"]
		fmt.Fprintf(out, "started a provider at %s\n", server)
	} else if aliceCode == "" || bobCode == "" {
		return errors.New("with -server, give -alice and -bob enrollment codes (from `switchboard admin user add`)")
	}

	// Each device keeps its keys and group state in a directory of its
	// own; a real application would keep it across runs and use
	// client.Open next time.
	alice, err := client.Register(ctx, server, aliceCode, "phone", filepath.Join(dir, "alice"), client.Options{})
	if err != nil {
		return err
	}
	defer alice.Close()
	bob, err := client.Register(ctx, server, bobCode, "laptop", filepath.Join(dir, "bob"), client.Options{})
	if err != nil {
		return err
	}
	defer bob.Close()
	fmt.Fprintf(out, "registered %s/%s and %s/%s on %s\n", alice.User(), alice.Device(), bob.User(), bob.Device(), alice.Domain())

	room, err := alice.CreateRoom(ctx)
	if err != nil {
		return err
	}
	// Invite adds every device of bob's to the room's MLS group and sends
	// them a Welcome.
	if err := alice.Invite(ctx, room, bob.User()); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s created room %s and invited %s\n", alice.User(), room, bob.User())

	chat := []struct {
		from, to *client.Client
		text     string
	}{
		{alice, bob, "Hi Bob! Only our two devices can read this."},
		{bob, alice, "Hi Alice. The provider only sees ciphertext."},
		{alice, bob, "Then let us meet at noon."},
	}
	for _, line := range chat {
		// Bodies are MIMI content messages, as every Switchboard client
		// sends them.
		body, err := content.Text(line.text).Encode()
		if err != nil {
			return err
		}
		if _, err := line.from.Send(ctx, room, body); err != nil {
			return err
		}
		// Sync fetches and decrypts what is queued for the device; Run
		// would do the same over a WebSocket as messages arrive.
		if err := line.to.Sync(ctx); err != nil {
			return err
		}
		if err := receive(ctx, line.to, out); err != nil {
			return err
		}
	}
	return nil
}

// receive prints the device's events until a message has arrived.
func receive(ctx context.Context, c *client.Client, out io.Writer) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev := <-c.Events():
			switch ev := ev.(type) {
			case *client.RoomJoined:
				fmt.Fprintf(out, "%s joined room %s\n", c.User(), ev.Room)
			case *client.Message:
				text := "(not a text message)"
				if msg, err := content.Decode(ev.Body); err == nil && msg.Kind() == content.KindText {
					text = msg.Text()
				}
				fmt.Fprintf(out, "%s decrypted from %s/%s: %q\n", c.User(), ev.Sender.User, ev.Sender.Device, text)
				return nil
			case *client.DeliveryFailed:
				return fmt.Errorf("%s could not read message %d: %w", c.User(), ev.Seq, ev.Err)
			}
		}
	}
}

// localProvider is a provider of the example's own, on loopback.
type localProvider struct {
	url   string
	codes map[string]string // enrollment code by handle
	stop  func()
}

// startProvider runs a provider on SQLite in dir, with accounts for alice
// and bob, which is what `switchboard serve` and `switchboard admin user
// add` do in separate processes.
func startProvider(ctx context.Context, dir string) (*localProvider, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	st, err := sqlite.Open(filepath.Join(dir, "provider.db"))
	if err != nil {
		return nil, err
	}
	ca, err := identity.NewCA("localhost")
	if err != nil {
		st.Close() // #nosec G104 -- on an error path: the first error is the one returned
		return nil, err
	}
	p, err := provider.New(provider.Config{Domain: "localhost"}, st, ca, nil)
	if err != nil {
		st.Close() // #nosec G104 -- on an error path: the first error is the one returned
		return nil, err
	}
	codes := map[string]string{}
	for _, handle := range []string{"alice", "bob"} {
		if _, codes[handle], err = provider.AddUser(ctx, st, handle, "", 0); err != nil {
			st.Close() // #nosec G104 -- on an error path: the first error is the one returned
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		st.Close() // #nosec G104 -- on an error path: the first error is the one returned
		return nil, err
	}
	srv := &http.Server{Handler: p.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	stop := func() {
		p.Drain()
		srv.Shutdown(context.Background()) // #nosec G104 -- shutting down: nothing is left to do with a failed close
		st.Close()                         // #nosec G104 -- shutting down: nothing is left to do with a failed close
	}
	return &localProvider{url: "http://" + ln.Addr().String(), codes: codes, stop: stop}, nil
}
