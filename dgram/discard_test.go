package dgram_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/dgramlab/dgramlab/dgram"
	"github.com/dgramlab/dgramlab/stack"
)

// What a discardScene has in flight when its loop stops.
const (
	sceneSent    = 100 // datagrams c sends srv before srv's first 'message'
	sceneLate    = 5   // sends c makes in that 'message': still waiting for their ticks
	sceneQueued  = 3   // sends q makes while its bind waits for a lookup
	sceneLooking = 2   // sends r makes whose destination's lookup is in flight
)

// A discardScene is a loop stopped (by stop, on a fatal error or a
// cancellation) while datagrams wait everywhere they can: srv has
// delivered one of c's sceneSent datagrams and holds the others unread (in
// its receive buffer, or on a kernel socket also read into the loop's
// queue); c has sceneLate sends waiting for their ticks, q sceneQueued
// sends waiting for its bind, r sceneLooking sends waiting for the lookup
// of their destination.
type discardScene struct {
	srv, c, q, r *dgram.Socket
	delivered    int
}

// newDiscardScene builds the scene on x. stop runs on the loop in srv's
// first 'message', before c's late sends, and must make the loop stop
// before their ticks run.
func newDiscardScene(t *testing.T, x *harness, stop func(srvPort int)) *discardScene {
	t.Helper()
	sc := &discardScene{}
	// block blocks a lookup until its socket closes; answer answers the
	// address a socket binds at once and blocks the others.
	block := func(ctx context.Context, _ string, _ int) (netip.Addr, error) {
		<-ctx.Done()
		return netip.Addr{}, ctx.Err()
	}
	answer := func(bindTo string) dgram.LookupFunc {
		return func(ctx context.Context, host string, family int) (netip.Addr, error) {
			if host == bindTo {
				return netip.MustParseAddr(host), nil
			}
			return block(ctx, host, family)
		}
	}
	mk := func(opts dgram.SocketOptions) *dgram.Socket {
		t.Helper()
		opts.Type = "udp4"
		s, err := x.loop.CreateSocketWith(opts, nil)
		if err != nil {
			t.Fatalf("CreateSocketWith(%+v) = %v", opts, err)
		}
		return s
	}
	// A buffer that holds the whole burst: every datagram reaches srv, by
	// the time its write returns (a virtual host delivers inside the
	// write, the kernel's loopback inside sendto), so none is in flight
	// when the loop stops.
	sc.srv = mk(dgram.SocketOptions{RecvBufferSize: 1 << 17})
	sc.c = mk(dgram.SocketOptions{})
	sc.q = mk(dgram.SocketOptions{Lookup: block}) // its implicit bind's lookup too
	sc.r = mk(dgram.SocketOptions{Lookup: answer("127.0.0.1")})
	for _, s := range []*dgram.Socket{sc.c, sc.q, sc.r} {
		s.OnMessage(func([]byte, dgram.RemoteInfo) { t.Errorf("a datagram reached a sender") })
	}
	sc.srv.OnMessage(func([]byte, dgram.RemoteInfo) {
		if sc.delivered++; sc.delivered > 1 {
			t.Errorf("'message' %d after the loop was told to stop", sc.delivered)
			return
		}
		p := port(t, sc.srv)
		stop(p)
		for range sceneLate {
			sc.c.Send([]byte("late"), p, "127.0.0.1", func(int, error) { t.Errorf("a late send's callback ran") })
		}
	})
	noCallback := func(name string) func(int, error) {
		return func(n int, err error) { t.Errorf("%s's send callback ran (%d, %v)", name, n, err) }
	}
	sc.srv.Bind(0, "127.0.0.1", func() {
		sc.c.Bind(0, "127.0.0.1", func() {
			sc.r.Bind(0, "127.0.0.1", func() {
				p := port(t, sc.srv)
				for range sceneSent {
					sc.c.Send([]byte("d"), p, "127.0.0.1", nil)
				}
				for range sceneQueued {
					sc.q.Send([]byte("q"), p, "127.0.0.1", noCallback("q"))
				}
				for range sceneLooking {
					sc.r.Send([]byte("r"), p, "blocked.test", noCallback("r"))
				}
			})
		})
	})
	return sc
}

// check says whether every datagram is accounted for: each send was sent
// or counted as discarded, and each datagram srv got was delivered or
// counted as discarded; on a virtual host, the host dropped none of them
// (srv, not the host, counted what it held unread).
func (sc *discardScene) check(t *testing.T, x *harness) {
	t.Helper()
	var errs []error
	sends := func(name string, s *dgram.Socket, calls, sent int) {
		st := s.Stats()
		if st.Sent != uint64(sent) || st.Sent+st.SendErrors+st.SendsDiscarded != uint64(calls) {
			errs = append(errs, fmt.Errorf("%s.Stats() = %+v: want Sent %d, and Sent+SendErrors+SendsDiscarded = %d Send calls", name, st, sent, calls))
		}
	}
	sends("c", sc.c, sceneSent+sceneLate, sceneSent)
	sends("q", sc.q, sceneQueued, 0)
	sends("r", sc.r, sceneLooking, 0)
	st := sc.srv.Stats()
	if got := st.Received + st.ReceivedAfterClose + st.MessagesDiscarded; st.Received != 1 || st.ReceivedAfterClose != 0 || got != sceneSent {
		errs = append(errs, fmt.Errorf("srv.Stats() = %+v: want Received 1, ReceivedAfterClose 0, and Received+MessagesDiscarded = %d datagrams sent", st, sceneSent))
	}
	if sc.delivered != 1 {
		errs = append(errs, fmt.Errorf("srv delivered %d 'message', want 1", sc.delivered))
	}
	if h, ok := x.network.(*stack.Host); ok {
		if hs := h.Stats().UDP; hs.ClosedUnread != 0 || hs.BufferFull != 0 || hs.NoListener != 0 {
			errs = append(errs, fmt.Errorf("host UDP stats = %+v: want no datagram closed unread or dropped by the host", hs))
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Error(err)
	}
}

// A loop that stops on an 'error' with no listener (Node would crash)
// discards what it had queued, closes the sockets without events and
// returns the error; every datagram is still accounted for: the sends
// that never ran are SendsDiscarded (their callbacks are not called), and
// the datagrams srv had read or held unread are MessagesDiscarded. Run
// returns with no goroutine of the sockets left (their readers and
// lookups), so the counters are final.
func TestFatalErrorCountsDiscards(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
		sc := newDiscardScene(t, x, func(p int) {
			// Uncaught: EADDRINUSE with no 'error' listener, in the next tick.
			bad := x.sock("udp4")
			bad.OnListening(func() { t.Errorf("bad socket bound to a port in use") })
			bad.Bind(p, "127.0.0.1", nil)
		})
		closes := 0
		for _, s := range []*dgram.Socket{sc.srv, sc.c, sc.q, sc.r} {
			s.OnClose(func() { closes++ })
		}
		if err := x.run(); !strings.HasPrefix(errString(err), "EADDRINUSE bind EADDRINUSE 127.0.0.1:") {
			t.Fatalf("Run = %s, want the uncaught EADDRINUSE", errString(err))
		}
		if closes != 0 {
			t.Errorf("%d 'close' events after a fatal error, want none", closes)
		}
		sc.check(t, x)
		// The sockets are closed for good; the loop runs on.
		if err := sc.c.Send([]byte("x"), 9, "", nil); errString(err) != "ERR_SOCKET_DGRAM_NOT_RUNNING Not running" {
			t.Errorf("Send after the fatal error = %s, want ERR_SOCKET_DGRAM_NOT_RUNNING", errString(err))
		}
		x.mustRun()
		sc.check(t, x)
	})
}

// Cancelling Run's context closes every socket (with 'close') and finishes
// the queued work; what the sockets will not deliver or send is counted as
// on a fatal error: the datagrams srv held unread are MessagesDiscarded,
// not closed unread, and the sends SendsDiscarded.
func TestCancelCountsDiscards(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		sc := newDiscardScene(t, x, func(int) { cancel() })
		closes := 0
		for _, s := range []*dgram.Socket{sc.srv, sc.c, sc.q, sc.r} {
			s.OnClose(func() { closes++ })
		}
		if err := x.loop.Run(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v, want context.Canceled", err)
		}
		if closes != 4 {
			t.Errorf("%d 'close' events after the cancellation, want 4", closes)
		}
		sc.check(t, x)
	})
}
