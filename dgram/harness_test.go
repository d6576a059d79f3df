package dgram_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dgramlab/dgramlab/dgram"
	"github.com/dgramlab/dgramlab/stack"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// env is one place the conformance cases run: a virtual host, or the
// kernel's loopback.
type env struct {
	name    string
	network func(t *testing.T) dgram.Network
}

var envs = []env{
	{"virtual", func(t *testing.T) dgram.Network {
		h, err := stack.NewHost(stack.HostOptions{Name: "conformance", Hosts: map[string][]netip.Addr{
			"peer.test": {netip.MustParseAddr("127.0.0.1")},
		}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return h
	}},
	{"kernel", func(t *testing.T) dgram.Network {
		if os.Getenv("DGRAMLAB_NO_KERNEL") != "" {
			t.Skip("DGRAMLAB_NO_KERNEL is set: kernel sockets are not used")
		}
		return dgram.System()
	}},
}

// localhost6 reports whether "localhost" resolves to an IPv6 address on
// network: Node's measurements assume ::1 in /etc/hosts, which not every
// machine has (Node fails the same way without it).
func localhost6(t *testing.T, n dgram.Network) bool {
	addrs, err := n.LookupNetIP(context.Background(), "ip6", "localhost")
	if err != nil || len(addrs) == 0 {
		t.Logf("this machine does not resolve localhost to IPv6 (%v): skipping that part", err)
		return false
	}
	return true
}

// forEachEnv runs fn as a subtest in every env.
func forEachEnv(t *testing.T, fn func(t *testing.T, x *harness)) {
	for _, e := range envs {
		t.Run(e.name, func(t *testing.T) {
			n := e.network(t)
			x := &harness{t: t, loop: dgram.NewLoop(n), network: n}
			fn(t, x)
		})
	}
}

// harness records events in the order the loop runs them.
type harness struct {
	t       *testing.T
	network dgram.Network
	loop    *dgram.Loop
	events  []string
}

// log records an event; it runs on the loop goroutine (or before Run).
func (x *harness) log(format string, args ...any) {
	x.events = append(x.events, fmt.Sprintf(format, args...))
}

// sock creates a socket, failing the test on error, and closes it (if still
// open) when the test ends.
func (x *harness) sock(typ string) *dgram.Socket {
	x.t.Helper()
	s, err := x.loop.CreateSocket(typ, nil)
	if err != nil {
		x.t.Fatalf("CreateSocket(%q) = %v", typ, err)
	}
	return s
}

// run runs the loop to completion with a generous timeout and returns its
// error.
func (x *harness) run() error {
	x.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := x.loop.Run(ctx)
	if ctx.Err() != nil {
		x.t.Fatalf("loop did not finish: events so far:\n%s", strings.Join(x.events, "\n"))
	}
	return err
}

// mustRun runs the loop and fails on an error.
func (x *harness) mustRun() {
	x.t.Helper()
	if err := x.run(); err != nil {
		x.t.Fatalf("Run = %v; events:\n%s", err, strings.Join(x.events, "\n"))
	}
}

// want compares the recorded events with want.
func (x *harness) want(want ...string) {
	x.t.Helper()
	if strings.Join(x.events, "\n") != strings.Join(want, "\n") {
		x.t.Fatalf("events:\n  %s\nwant:\n  %s", strings.Join(x.events, "\n  "), strings.Join(want, "\n  "))
	}
}

// wantUnordered compares the recorded events with want, in any order (for
// events of independent sockets whose order depends on lookups).
func (x *harness) wantUnordered(want ...string) {
	x.t.Helper()
	got := slices.Sorted(slices.Values(x.events))
	if w := slices.Sorted(slices.Values(want)); !slices.Equal(got, w) {
		x.t.Fatalf("events (sorted):\n  %s\nwant (sorted):\n  %s", strings.Join(got, "\n  "), strings.Join(w, "\n  "))
	}
}

// errString describes an error the way the tests compare it: code and
// message, plus Node's address fields when present.
func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	e, ok := err.(*dgram.Error)
	if !ok {
		return fmt.Sprintf("non-dgram error %T: %v", err, err)
	}
	s := e.Code + " " + e.Message
	if e.Errno != 0 {
		s += fmt.Sprintf(" errno=%d syscall=%s", e.Errno, e.Syscall)
	}
	return s
}

// port returns the socket's bound port (the socket must be bound).
func port(t *testing.T, s *dgram.Socket) int {
	t.Helper()
	a, err := s.Address()
	if err != nil {
		t.Fatalf("Address() = %v", err)
	}
	return a.Port
}

// A virtual host's conns have every optional capability.
var (
	_ dgram.Network       = (*stack.Host)(nil)
	_ dgram.Conn          = (*stack.UDPConn)(nil)
	_ dgram.ConnectConn   = (*stack.UDPConn)(nil)
	_ dgram.OptionConn    = (*stack.UDPConn)(nil)
	_ dgram.MulticastConn = (*stack.UDPConn)(nil)
	_ dgram.BufferConn    = (*stack.UDPConn)(nil)
	_ dgram.PollConn      = (*stack.UDPConn)(nil)
)
