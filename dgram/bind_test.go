package dgram_test

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/dgramlab/dgramlab/dgram"
)

// B1, B4: socket types.
func TestCreateSocketTypes(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		for _, typ := range []string{"", "udp5", "UDP4", "udp", "tcp"} {
			_, err := x.loop.CreateSocket(typ, nil)
			if got := errString(err); got != "ERR_SOCKET_BAD_TYPE Bad socket type specified. Valid types are: udp4, udp6" {
				t.Errorf("CreateSocket(%q) = %s", typ, got)
			}
			if !errors.Is(err, dgram.ErrBadType) {
				t.Errorf("CreateSocket(%q): errors.Is(ErrBadType) false", typ)
			}
		}
		for _, typ := range []string{"udp4", "udp6"} {
			s := x.sock(typ)
			if s.Type() != typ {
				t.Errorf("Type() = %q", s.Type())
			}
		}
		// B8: created but never bound sockets do not keep the loop alive.
		x.mustRun()
	})
}

// B2, B3: the message listener given to CreateSocket is the socket's
// 'message' listener (nil adds none, as Node ignores a non-function), and
// the options form takes Node's options.
func TestCreateSocketListener(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		s, _ := x.loop.CreateSocket("udp4", func([]byte, dgram.RemoteInfo) {})
		plain, _ := x.loop.CreateSocket("udp4", nil)
		opts, err := x.loop.CreateSocketWith(dgram.SocketOptions{Type: "udp6", ReuseAddr: true, IPv6Only: true, RecvBufferSize: 1 << 16, SendBufferSize: 1 << 16},
			func([]byte, dgram.RemoteInfo) {})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			s    *dgram.Socket
			want int
		}{{s, 1}, {plain, 0}, {opts, 1}} {
			if n := c.s.ListenerCount("message"); n != c.want {
				t.Errorf("%s socket: %d 'message' listeners, want %d", c.s.Type(), n, c.want)
			}
		}
		x.mustRun()
	})
}

// B17, B83 (ipv6Only): a udp4 socket with IPv6Only cannot bind (libuv
// refuses the flag for an IPv4 address), whether bound explicitly or by a
// send; a bind error names a literal address as written. Measured on Node
// v20: "bind EINVAL 0.0.0.0", "bind EINVAL 0.0.0.0:P", and for udp6
// bind(P, "0::1") on a port in use "bind EADDRINUSE 0::1:P".
func TestBindErrorForms(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		v4only, _ := x.loop.CreateSocketWith(dgram.SocketOptions{Type: "udp4", IPv6Only: true}, nil)
		v4only.OnError(func(err error) { x.log("bind: %s", errString(err)) })
		v4only.Bind(0, "", func() { x.log("bind callback must not run") })
		sender, _ := x.loop.CreateSocketWith(dgram.SocketOptions{Type: "udp4", IPv6Only: true}, nil)
		sender.OnError(func(err error) { x.log("send: %s", errString(err)) })
		sender.Send([]byte("x"), 9, "127.0.0.1", func(int, error) { x.log("send callback must not run") })
		x.mustRun()
		x.want(
			"bind: EINVAL bind EINVAL 0.0.0.0 errno=-22 syscall=bind",
			"send: EINVAL bind EINVAL 0.0.0.0 errno=-22 syscall=bind",
		)
		v4only.Close(nil)
		sender.Close(nil)

		x.events = nil
		holder := x.sock("udp6")
		holder.Bind(0, "::1", func() {
			p := port(t, holder)
			dup := x.sock("udp6")
			dup.OnError(func(err error) {
				x.log("%s", strings.ReplaceAll(errString(err), fmt.Sprint(p), "P"))
				dup.Close(nil)
				holder.Close(nil)
			})
			dup.Bind(p, "0::1", nil)
		})
		x.mustRun()
		x.want("EADDRINUSE bind EADDRINUSE 0::1:P errno=-98 syscall=bind")
	})
}

// B9, B10, B11, B12, B22, B25: bind is asynchronous; 'listening' runs in the
// next tick before I/O events; the callback is a 'listening' listener in
// registration order; the default address is all interfaces.
func TestBindOrderAndDefaults(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		for _, typ := range []string{"udp4", "udp6"} {
			x.events = nil
			s := x.sock(typ)
			s.OnListening(func() { x.log("listening 1") })
			x.loop.Post(func() { x.log("post (setImmediate)") })
			if err := s.Bind(0, "", func() {
				a, err := s.Address()
				x.log("bind cb %s %s port>0=%v err=%v", a.Address, a.Family, a.Port > 0, err)
				s.Close(nil)
			}); err != nil {
				t.Fatalf("Bind = %v", err)
			}
			s.OnListening(func() { x.log("listening 2") })
			_, err := s.Address()
			x.log("address after bind: %s", errString(err))
			x.mustRun()
			wild, fam := "0.0.0.0", "IPv4"
			if typ == "udp6" {
				wild, fam = "::", "IPv6"
			}
			x.want(
				"address after bind: EBADF getsockname EBADF errno=-9 syscall=getsockname",
				"listening 1",
				fmt.Sprintf("bind cb %s %s port>0=true err=<nil>", wild, fam),
				"listening 2",
				"post (setImmediate)",
			)
		}
	})
}

// B14, B59: bind while binding or bound.
func TestBindTwice(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		s := x.sock("udp4")
		s.Bind(0, "127.0.0.1", func() {
			x.log("bound; again: %s", errString(s.Bind(0, "", nil)))
			s.Close(nil)
		})
		x.log("while binding: %s", errString(s.Bind(0, "", nil)))
		x.mustRun()
		x.want(
			"while binding: ERR_SOCKET_ALREADY_BOUND Socket is already bound",
			"bound; again: ERR_SOCKET_ALREADY_BOUND Socket is already bound",
		)
	})
}

// B15, B16, B27: EADDRINUSE is an 'error' event; the bind callback is not
// called; the socket can bind again; with a callback and no listener the
// error is swallowed.
func TestBindAddrInUse(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		a := x.sock("udp4")
		a.Bind(0, "127.0.0.1", func() {
			p := port(t, a)
			b := x.sock("udp4")
			b.OnError(func(err error) {
				x.log("error: %s", errString(err))
				var de *dgram.Error
				errors.As(err, &de)
				x.log("fields: address=%s port=%v is-EADDRINUSE=%v", de.Address, de.Port == p, errors.Is(err, syscall.EADDRINUSE))
				ad, aerr := b.Address()
				x.log("address after failed bind: %v %v", ad, aerr)
				// B16: bind again on a free port.
				if err := b.Bind(0, "127.0.0.1", func() { x.log("rebound"); b.Close(nil); a.Close(nil) }); err != nil {
					x.log("rebind: %v", err)
				}
			})
			b.Bind(p, "127.0.0.1", func() { x.log("bind cb must not run") })
			// B27: with a callback and no 'error' listener: swallowed.
			c := x.sock("udp4")
			c.Bind(p, "127.0.0.1", func() { x.log("c bind cb must not run") })
			c.Close(nil)
			// close in the same tick: no bind attempt at all (B51).
		})
		x.mustRun()
		p := 0 // filled by message comparisons below
		_ = p
		if len(x.events) != 4 {
			t.Fatalf("events: %q", x.events)
		}
		if got := x.events[0]; !matchPrefix(got, "error: EADDRINUSE bind EADDRINUSE 127.0.0.1:") || !matchSuffix(got, "errno=-98 syscall=bind") {
			t.Errorf("error event = %q", got)
		}
		x.events = x.events[1:]
		x.want(
			"fields: address=127.0.0.1 port=true is-EADDRINUSE=true",
			"address after failed bind: {0.0.0.0 IPv4 0} <nil>",
			"rebound",
		)
	})
}

// B27 (second half), B26: with no callback and no listener, Run returns the
// error (Node crashes); with a callback it is swallowed.
func TestBindErrorWithoutListener(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		a := x.sock("udp4")
		a.Bind(0, "127.0.0.1", func() {
			b := x.sock("udp4")
			b.Bind(port(t, a), "127.0.0.1", nil)
		})
		err := x.run()
		if !errors.Is(err, syscall.EADDRINUSE) || !matchPrefix(errString(err), "EADDRINUSE bind EADDRINUSE 127.0.0.1:") {
			t.Fatalf("Run = %v, want the EADDRINUSE error", err)
		}
		// Run closed every socket: a second Run has nothing to do.
		x.mustRun()
		if _, err := a.Address(); !errors.Is(err, dgram.ErrNotRunning) {
			t.Fatalf("Address() after failed Run = %v, want ERR_SOCKET_DGRAM_NOT_RUNNING", err)
		}
	})
}

// B17, B18: non-local address, wrong family, unresolvable name.
func TestBindErrors(t *testing.T) {
	cases := []struct {
		typ, addr string
		want      string
	}{
		{"udp4", "192.0.2.1", "EADDRNOTAVAIL bind EADDRNOTAVAIL 192.0.2.1:%d errno=-99 syscall=bind"},
		{"udp6", "2001:db8::1", "EADDRNOTAVAIL bind EADDRNOTAVAIL 2001:db8::1:%d errno=-99 syscall=bind"},
		{"udp6", "fe80::1", "EINVAL bind EINVAL fe80::1:%d errno=-22 syscall=bind"},
		{"udp4", "::1", "EINVAL bind EINVAL ::1:%d errno=-22 syscall=bind"},
		{"udp6", "127.0.0.1", "EINVAL bind EINVAL 127.0.0.1:%d errno=-22 syscall=bind"},
		{"udp4", "not-a-host.invalid", "ENOTFOUND getaddrinfo ENOTFOUND not-a-host.invalid errno=-3008 syscall=getaddrinfo"},
		{"udp4", "999.1.1.1", "ENOTFOUND getaddrinfo ENOTFOUND 999.1.1.1 errno=-3008 syscall=getaddrinfo"},
	}
	forEachEnv(t, func(t *testing.T, x *harness) {
		for _, c := range cases {
			x.events = nil
			s := x.sock(c.typ)
			s.OnError(func(err error) { x.log("%s", errString(err)); s.Close(nil) })
			s.OnListening(func() { x.log("listening") })
			if err := s.Bind(20520, c.addr, nil); err != nil {
				t.Fatalf("Bind = %v", err)
			}
			x.mustRun()
			want := c.want
			if matchPrefix(want, "E") && !matchPrefix(want, "ENOTFOUND") {
				want = fmt.Sprintf(want, 20520)
			}
			x.want(want)
		}
	})
}

// B13 (Go): ports outside 0..65535 are rejected synchronously.
func TestBindBadPort(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		s := x.sock("udp4")
		for _, p := range []int{-1, 65536, 1 << 30} {
			err := s.Bind(p, "", nil)
			if got, want := errString(err), fmt.Sprintf("ERR_SOCKET_BAD_PORT Port should be >= 0 and < 65536. Received type number (%d).", p); got != want {
				t.Errorf("Bind(%d) = %s, want %s", p, got, want)
			}
		}
		// The socket is still unbound and usable.
		if err := s.Bind(0, "127.0.0.1", func() { s.Close(nil) }); err != nil {
			t.Fatal(err)
		}
		x.mustRun()
	})
}

// B20, B51: close while binding: no 'listening', no bind callback, 'close'.
func TestCloseDuringBind(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		for _, addr := range []string{"127.0.0.1", "localhost"} {
			x.events = nil
			s := x.sock("udp4")
			s.OnListening(func() { x.log("listening") })
			s.Bind(0, addr, func() { x.log("bind cb") })
			s.Close(func() { x.log("close") })
			x.mustRun()
			x.want("close")
		}
	})
}

// B12 (hosts table), B83-ish: 'localhost' binds the loopback address.
func TestBindLocalhost(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		var bind func(types ...string)
		bind = func(types ...string) {
			if len(types) == 0 {
				return
			}
			s := x.sock(types[0])
			s.Bind(0, "localhost", func() {
				a, _ := s.Address()
				x.log("%s %s", a.Address, a.Family)
				s.Close(nil)
				bind(types[1:]...)
			})
		}
		if localhost6(t, x.network) {
			bind("udp4", "udp6")
			x.mustRun()
			x.want("127.0.0.1 IPv4", "::1 IPv6")
		} else {
			bind("udp4")
			x.mustRun()
			x.want("127.0.0.1 IPv4")
		}
	})
}

func matchPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }
func matchSuffix(s, p string) bool { return len(s) >= len(p) && s[len(s)-len(p):] == p }
