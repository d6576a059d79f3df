package dgram_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/dgramlab/dgramlab/dgram"
)

// B23, B49, B50, B52: close returns at once, 'close' comes in the next tick
// with listeners in registration order; a second close returns
// ERR_SOCKET_DGRAM_NOT_RUNNING but its callback still runs; calls after
// close fail with NOT_RUNNING.
func TestCloseSemantics(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		s := x.sock("udp4")
		s.Bind(0, "127.0.0.1", func() {
			s.OnClose(func() { x.log("close listener 1") })
			x.log("close: %v", s.Close(func() { x.log("close cb 1") }))
			s.OnClose(func() { x.log("close listener 2") })
			x.log("second close: %s", errString(s.Close(func() { x.log("close cb 2") })))
			_, err := s.Address()
			x.log("address: %s", errString(err))
			x.log("bind: %s", errString(s.Bind(0, "", nil)))
			x.log("send: %s", errString(s.Send([]byte("x"), 9, "", nil)))
			x.log("setBroadcast: %s", errString(s.SetBroadcast(true)))
			x.loop.Post(func() { x.log("post") })
		})
		x.mustRun()
		x.want(
			"close: <nil>",
			"second close: ERR_SOCKET_DGRAM_NOT_RUNNING Not running",
			"address: ERR_SOCKET_DGRAM_NOT_RUNNING Not running",
			"bind: ERR_SOCKET_DGRAM_NOT_RUNNING Not running",
			"send: ERR_SOCKET_DGRAM_NOT_RUNNING Not running",
			"setBroadcast: ERR_SOCKET_DGRAM_NOT_RUNNING Not running",
			"close listener 1",
			"close cb 1",
			"close listener 2",
			"close cb 2",
			"post",
		)
	})
}

// B41: no 'message' after close, even for datagrams already received;
// closing inside a 'message' listener stops further deliveries.
func TestNoMessageAfterClose(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		srv := x.sock("udp4")
		srv.OnMessage(func(msg []byte, _ dgram.RemoteInfo) {
			x.log("message %s", msg)
			srv.Close(nil)
		})
		srv.Bind(0, "127.0.0.1", func() {
			c := x.sock("udp4")
			p := port(t, srv)
			c.Send([]byte("1"), p, "", nil)
			c.Send([]byte("2"), p, "", nil)
			c.Send([]byte("3"), p, "", func(int, error) { c.Close(nil) })
		})
		x.mustRun()
		x.want("message 1")
		st := srv.Stats()
		if st.Received != 1 {
			t.Errorf("Received = %d", st.Received)
		}
	})
}

// B51: closing a socket that was never bound emits 'close'.
func TestCloseNeverBound(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		s := x.sock("udp6")
		s.Close(func() { x.log("close") })
		x.mustRun()
		x.want("close")
	})
}

// B54, B55: setBroadcast needs a bound socket; broadcast needs it.
func TestBroadcastFlag(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		s := x.sock("udp4")
		x.log("before bind: %s", errString(s.SetBroadcast(true)))
		var rx *dgram.Socket
		rx = x.server("udp4", func(p int) {
			s.Bind(0, "", func() {
				x.log("after bind: %v", s.SetBroadcast(false))
				s.Send([]byte("b"), p, "127.255.255.255", func(n int, err error) {
					x.log("without flag: %s", errString(err))
					s.SetBroadcast(true)
					s.Send([]byte("bcast"), p, "127.255.255.255", func(n int, err error) {
						x.log("with flag: %d %v", n, err)
						s.Close(nil)
					})
				})
			})
			rx.OnMessage(func([]byte, dgram.RemoteInfo) { rx.Close(nil) })
		})
		x.mustRun()
		if len(x.events) != 5 {
			t.Fatalf("events %q", x.events)
		}
		if x.events[0] != "before bind: EBADF setBroadcast EBADF errno=-9 syscall=setBroadcast" ||
			x.events[1] != "after bind: <nil>" ||
			!matchPrefix(x.events[2], "without flag: EACCES send EACCES 127.255.255.255:") ||
			x.events[3] != "with flag: 5 <nil>" ||
			x.events[4] != `message "bcast" from 127.0.0.1 IPv4 size=5` {
			t.Fatalf("events %q", x.events)
		}
	})
}

// B79, B8: an unref'd bound socket does not keep Run alive; Ref restores it.
func TestRefUnref(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		s := x.sock("udp4")
		s.Unref()
		s.Bind(0, "127.0.0.1", func() { x.log("listening") })
		x.mustRun() // returns although s is open
		x.want("listening")
		s.Ref()
		x.loop.Post(func() { s.Close(func() { x.log("closed") }) })
		x.mustRun()
		x.want("listening", "closed")
	})
}

// Loop: an 'error' listener added later still catches errors; ctx
// cancellation closes the sockets with their 'close' events.
func TestLoopCancel(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		s := x.sock("udp4")
		s.OnClose(func() { x.log("closed") })
		ctx, cancel := context.WithCancel(context.Background())
		s.Bind(0, "127.0.0.1", func() { x.log("listening"); cancel() })
		if err := x.loop.Run(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v, want context.Canceled", err)
		}
		x.want("listening", "closed")
	})
}

// Run with a nil context is an error, not a panic; the loop can run after.
func TestLoopRunNilContext(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		var nilCtx context.Context
		if err := x.loop.Run(nilCtx); err == nil || !strings.Contains(err.Error(), "nil context") {
			t.Fatalf("Run(nil) = %v, want a nil-context error", err)
		}
		s := x.sock("udp4")
		s.Bind(0, "127.0.0.1", func() { x.log("listening"); s.Close(nil) })
		x.mustRun()
		x.want("listening")
	})
}

// Run refuses to run twice at once; Hold keeps it alive.
func TestLoopHold(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		release := x.loop.Hold()
		x.loop.Post(func() {
			x.log("second Run: %v", x.loop.Run(context.Background()))
			release()
		})
		x.mustRun()
		x.want("second Run: dgram: loop is already running")
	})
}
