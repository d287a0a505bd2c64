package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/switchboard-chat/switchboard/mlsinterop"
)

// runInteropClient serves the IETF MLS interop framework's gRPC service
// until interrupted, so that the framework's test runner (or ours) can drive
// Switchboard's MLS against other implementations.
func runInteropClient(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mls interop-client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := fs.Int("port", 50051, "TCP port to listen on")
	host := fs.String("host", "127.0.0.1", "address to listen on")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *port < 0 || *port > 65535 {
		fmt.Fprintf(stderr, "switchboard: port %d out of range\n", *port)
		return 2
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		fmt.Fprintln(stderr, "switchboard:", err)
		return 1
	}
	srv := mlsinterop.NewServer(mlsinterop.NewClient())
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-stop
		srv.GracefulStop()
	}()
	fmt.Fprintf(stdout, "MLS interop client listening on %s\n", ln.Addr())
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(stderr, "switchboard:", err)
		return 1
	}
	return 0
}
