package dgram_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/dgramlab/dgramlab/dgram"
)

// server binds a udp4 or udp6 socket on the loopback and logs what it
// receives; ready runs once it is listening, with its port.
func (x *harness) server(typ string, ready func(port int)) *dgram.Socket {
	s := x.sock(typ)
	s.OnMessage(func(msg []byte, r dgram.RemoteInfo) {
		x.log("message %q from %s %s size=%d", trunc(msg), r.Address, r.Family, r.Size)
	})
	s.Bind(0, "", func() { ready(port(x.t, s)) })
	return s
}

func trunc(b []byte) string {
	if len(b) > 16 {
		return fmt.Sprintf("%d bytes", len(b))
	}
	return string(b)
}

// B21, B25, B31, B32, B33, B38, B39: implicit bind on send; 'listening' first,
// then the callbacks in send order, then the messages; rinfo fields.
func TestSendImplicitBind(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		var srv *dgram.Socket
		srv = x.server("udp4", func(p int) {
			c := x.sock("udp4")
			c.OnListening(func() {
				a, _ := c.Address()
				x.log("client listening %s", a.Address)
			})
			got := 0
			srv.OnMessage(func([]byte, dgram.RemoteInfo) {
				if got++; got == 2 {
					c.Close(nil)
					srv.Close(nil)
				}
			})
			c.Send([]byte("one"), p, "", func(n int, err error) { x.log("cb1 %d %v", n, err) })
			c.Send([]byte("two"), p, "127.0.0.1", func(n int, err error) { x.log("cb2 %d %v", n, err) })
			_, err := c.Address()
			x.log("address right after send: %s", errString(err))
		})
		x.mustRun()
		x.want(
			"address right after send: EBADF getsockname EBADF errno=-9 syscall=getsockname",
			"client listening 0.0.0.0",
			"cb1 3 <nil>",
			"cb2 3 <nil>",
			`message "one" from 127.0.0.1 IPv4 size=3`,
			`message "two" from 127.0.0.1 IPv4 size=3`,
		)
	})
}

// B31: glibc's numeric shorthands resolve as Node's getaddrinfo reads them
// ("127.1" is 127.0.0.1 for udp4) and fail for udp6 with EAI_ADDRFAMILY;
// a trailing space is a name, and not found (measured on Node v20).
func TestSendNumericShorthand(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		var srv *dgram.Socket
		srv = x.server("udp4", func(p int) {
			c := x.sock("udp4")
			c6 := x.sock("udp6")
			c.Send([]byte("via 127.1"), p, "127.1", func(n int, err error) {
				x.log("udp4 cb %d %v", n, err)
				c.Send([]byte("x"), p, "127.0.0.1 ", func(n int, err error) {
					x.log("udp4 space cb %s", errString(err))
					c.Close(nil)
				})
			})
			c6.Send([]byte("x"), p, "0x7f.1", func(n int, err error) {
				x.log("udp6 cb %s", errString(err))
				c6.Close(nil)
			})
			srv.OnMessage(func([]byte, dgram.RemoteInfo) { srv.Close(nil) })
		})
		x.mustRun()
		x.wantUnordered(
			"udp4 cb 9 <nil>",
			"udp4 space cb ENOTFOUND getaddrinfo ENOTFOUND 127.0.0.1  errno=-3008 syscall=getaddrinfo",
			"udp6 cb EAI_ADDRFAMILY getaddrinfo EAI_ADDRFAMILY 0x7f.1 errno=-3000 syscall=getaddrinfo",
			`message "via 127.1" from 127.0.0.1 IPv4 size=9`,
		)
	})
}

// B34: a send while an explicit bind is in progress waits for it and goes
// after the bind callback.
func TestSendQueuedBehindBind(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		var srv *dgram.Socket
		srv = x.server("udp4", func(p int) {
			c := x.sock("udp4")
			c.Bind(0, "127.0.0.1", func() { x.log("bind cb") })
			c.OnListening(func() { x.log("listening (added after bind)") })
			c.Send([]byte("q"), p, "", func(n int, err error) {
				x.log("send cb %d %v", n, err)
				c.Close(nil)
			})
			srv.OnMessage(func([]byte, dgram.RemoteInfo) { srv.Close(nil) })
		})
		x.mustRun()
		x.want("bind cb", "listening (added after bind)", "send cb 1 <nil>", `message "q" from 127.0.0.1 IPv4 size=1`)
	})
}

// B35: send then a synchronous close drops the datagram without calling
// back; on an unbound socket 'listening' still comes, then 'close'.
func TestSendThenClose(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		var srv *dgram.Socket
		srv = x.server("udp4", func(p int) {
			bound := x.sock("udp4")
			bound.Bind(0, "", func() {
				bound.Send([]byte("lost"), p, "", func(int, error) { x.log("bound cb must not run") })
				bound.Close(func() {
					x.log("bound close, discarded=%d", bound.Stats().SendsDiscarded)
					unbound := x.sock("udp4")
					unbound.OnListening(func() { x.log("unbound listening") })
					unbound.Send([]byte("lost too"), p, "", func(int, error) { x.log("unbound cb must not run") })
					unbound.Close(func() {
						x.log("unbound close, discarded=%d", unbound.Stats().SendsDiscarded)
						// A datagram sent now proves nothing came before it.
						last := x.sock("udp4")
						last.Send([]byte("last"), p, "", func(int, error) { last.Close(nil) })
					})
				})
			})
			srv.OnMessage(func([]byte, dgram.RemoteInfo) { srv.Close(nil) })
		})
		x.mustRun()
		x.want("bound close, discarded=1", "unbound listening", "unbound close, discarded=1", `message "last" from 127.0.0.1 IPv4 size=4`)
	})
}

// B36: a Close queued behind a failing bind is forgotten with the queued
// sends, as in Node (its enqueue drops the whole queue on the bind's
// error: the socket stays open, unbound); SendsDiscarded counts the sends
// only.
func TestQueuedCloseBindFails(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		s := x.sock("udp4")
		s.OnError(func(err error) { x.log("error %s", errString(err)) })
		s.OnClose(func() { x.log("close") })
		s.Bind(0, "not-a-host.invalid", nil)
		s.Send([]byte("x"), 9, "", func(int, error) { x.log("cb must not run") })
		x.log("close while binding: %v", s.Close(nil))
		x.mustRun()
		x.want("close while binding: <nil>", "error ENOTFOUND getaddrinfo ENOTFOUND not-a-host.invalid errno=-3008 syscall=getaddrinfo")
		if got := s.Stats().SendsDiscarded; got != 1 {
			t.Errorf("SendsDiscarded = %d, want 1", got)
		}
		x.events = nil
		x.log("close again: %v", s.Close(nil))
		x.mustRun()
		x.want("close again: <nil>", "close")
	})
}

// B36: a queued send whose implicit bind fails is discarded; the failure is
// an 'error' event; a later send binds again.
func TestQueuedSendBindFails(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		s := x.sock("udp4")
		s.OnError(func(err error) { x.log("error %s", errString(err)) })
		s.Bind(0, "not-a-host.invalid", nil)
		s.Send([]byte("x"), 9, "", func(int, error) { x.log("cb must not run") })
		x.mustRun()
		x.want("error ENOTFOUND getaddrinfo ENOTFOUND not-a-host.invalid errno=-3008 syscall=getaddrinfo")
		if got := s.Stats().SendsDiscarded; got != 1 {
			t.Errorf("SendsDiscarded = %d, want 1", got)
		}
		x.events = nil
		s.Send([]byte("x"), 9, "127.0.0.1", func(n int, err error) { x.log("cb %d %v", n, err); s.Close(nil) })
		x.mustRun()
		x.want("cb 1 <nil>")
	})
}

// B37: a udp6 socket cannot send to an IPv4 literal (EINVAL) but can to its
// mapped form; a udp4 socket cannot send to an IPv6 literal.
func TestSendWrongFamily(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		var srv *dgram.Socket
		srv = x.server("udp4", func(p int) {
			s6 := x.sock("udp6")
			s6.Send([]byte("a"), p, "127.0.0.1", func(n int, err error) {
				x.log("udp6→127.0.0.1: %s", errString(err))
				s6.Send([]byte("mapped"), p, "::ffff:127.0.0.1", func(n int, err error) {
					x.log("udp6→::ffff:127.0.0.1: %d %v", n, err)
					s4 := x.sock("udp4")
					s4.Send([]byte("b"), p, "::1", func(n int, err error) {
						x.log("udp4→::1: %s", errString(err))
						s4.Close(nil)
						s6.Close(nil)
					})
				})
			})
			srv.OnMessage(func([]byte, dgram.RemoteInfo) { srv.Close(nil) })
		})
		x.mustRun()
		p := x.events // ports vary: check shapes
		if len(p) != 4 || !matchPrefix(p[0], "udp6→127.0.0.1: EINVAL send EINVAL 127.0.0.1:") ||
			p[1] != "udp6→::ffff:127.0.0.1: 6 <nil>" || !matchPrefix(p[2], "udp4→::1: EINVAL send EINVAL ::1:") ||
			p[3] != `message "mapped" from 127.0.0.1 IPv4 size=6` {
			t.Fatalf("events: %q", p)
		}
	})
}

// B39: a dual-stack udp6 socket sees IPv4 senders as ::ffff:a.b.c.d.
func TestDualStackRinfo(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		var srv *dgram.Socket
		srv = x.server("udp6", func(p int) {
			c := x.sock("udp4")
			c.Send([]byte("v4"), p, "127.0.0.1", func(int, error) { c.Close(nil) })
			srv.OnMessage(func([]byte, dgram.RemoteInfo) { srv.Close(nil) })
		})
		x.mustRun()
		x.want(`message "v4" from ::ffff:127.0.0.1 IPv6 size=2`)
	})
}

// B40: zero-length datagrams are sent and delivered.
func TestSendEmpty(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		for _, typ := range []string{"udp4", "udp6"} {
			x.events = nil
			var srv *dgram.Socket
			srv = x.server(typ, func(p int) {
				c := x.sock(typ)
				c.Send(nil, p, "", func(n int, err error) { x.log("cb %d %v", n, err) })
				c.SendRange([]byte("abc"), 3, 0, p, "", func(n int, err error) { x.log("cb %d %v", n, err); c.Close(nil) })
				n := 0
				srv.OnMessage(func([]byte, dgram.RemoteInfo) {
					if n++; n == 2 {
						srv.Close(nil)
					}
				})
			})
			x.mustRun()
			lo := "127.0.0.1 IPv4"
			if typ == "udp6" {
				lo = "::1 IPv6"
			}
			x.want("cb 0 <nil>", "cb 0 <nil>", `message "" from `+lo+` size=0`, `message "" from `+lo+` size=0`)
		}
	})
}

// B28, B42a-d: the largest datagrams arrive whole; one byte more is EMSGSIZE in
// the callback (with the address as passed), and nothing without one.
func TestSendSizes(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		for _, c := range []struct {
			typ string
			max int
		}{{"udp4", 65507}, {"udp6", 65527}} {
			x.events = nil
			var srv *dgram.Socket
			var p int
			srv = x.server(c.typ, func(port int) {
				p = port
				cl := x.sock(c.typ)
				big := bytes.Repeat([]byte{7}, c.max)
				srv.OnMessage(func(msg []byte, _ dgram.RemoteInfo) {
					if !bytes.Equal(msg, big) {
						t.Errorf("datagram of %d bytes corrupted", len(msg))
					}
					srv.Close(nil)
				})
				cl.Send(make([]byte, c.max+1), p, "", nil) // B42c: no error event
				cl.Send(make([]byte, c.max+1), p, "", func(n int, err error) {
					x.log("omitted address: %s is-EMSGSIZE=%v", errString(err), errors.Is(err, syscall.EMSGSIZE))
				})
				name := "localhost"
				if c.typ == "udp6" && !localhost6(t, x.network) {
					name = "::1" // the message then shows ::1
				}
				cl.Send(make([]byte, c.max+1), p, name, func(n int, err error) {
					x.log("named: %s", errString(err))
					cl.Send(big, p, "", func(n int, err error) { x.log("max: %d %v", n, err); cl.Close(nil) })
				})
			})
			x.mustRun()
			name := "localhost"
			if c.typ == "udp6" && !localhost6(t, x.network) {
				name = "::1"
			}
			x.want(
				fmt.Sprintf("omitted address: EMSGSIZE send EMSGSIZE undefined:%d errno=-90 syscall=send is-EMSGSIZE=true", p),
				fmt.Sprintf("named: EMSGSIZE send EMSGSIZE %s:%d errno=-90 syscall=send", name, p),
				fmt.Sprintf("max: %d <nil>", c.max),
				fmt.Sprintf(`message "%d bytes" from %s size=%d`, c.max, map[string]string{"udp4": "127.0.0.1 IPv4", "udp6": "::1 IPv6"}[c.typ], c.max),
			)
		}
	})
}

// B43, B44, B47 (B84: Node's legacy sendto has no Go counterpart; SendRange,
// with typed offset, length, port and address, is that call): argument
// validation is synchronous; on a closed socket bad
// arguments still report themselves first.
func TestSendValidation(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		s := x.sock("udp4")
		buf := []byte("hello")
		for _, p := range []int{-1, 0, 65536} {
			want := fmt.Sprintf("ERR_SOCKET_BAD_PORT Port should be > 0 and < 65536. Received type number (%d).", p)
			if got := errString(s.Send(buf, p, "127.0.0.1", nil)); got != want {
				t.Errorf("Send(port %d) = %s", p, got)
			}
		}
		// Port 0 and no address is Node's send(buf): no port given (B65).
		if got, want := errString(s.Send(buf, 0, "", nil)), "ERR_SOCKET_BAD_PORT Port should be > 0 and < 65536. Received undefined."; got != want {
			t.Errorf("Send(no port) = %s, want %s", got, want)
		}
		for _, c := range []struct {
			off, n int
			want   string
		}{
			{6, 0, `"offset"`}, {-1, 1, `"offset"`}, {0, 6, `"length"`}, {1, 5, `"length"`}, {4, 2, `"length"`}, {0, -1, `"length"`},
		} {
			want := "ERR_BUFFER_OUT_OF_BOUNDS " + c.want + " is outside of buffer bounds"
			if got := errString(s.SendRange(buf, c.off, c.n, 9, "", nil)); got != want {
				t.Errorf("SendRange(%d, %d) = %s, want %s", c.off, c.n, got, want)
			}
		}
		s.Close(nil)
		if got := errString(s.Send(buf, 0, "", nil)); !matchPrefix(got, "ERR_SOCKET_BAD_PORT") {
			t.Errorf("closed Send(port 0) = %s", got)
		}
		if err := s.Send(buf, 9, "", nil); !errors.Is(err, dgram.ErrNotRunning) {
			t.Errorf("closed Send = %v", err)
		}
		x.mustRun()
	})
}

// B48: an unresolvable destination goes to the callback, or to 'error'
// without one.
func TestSendLookupFailure(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		s := x.sock("udp4")
		s.Send([]byte("x"), 9, "not-a-host.invalid", func(n int, err error) {
			x.log("cb %s", errString(err))
			s.OnError(func(err error) { x.log("error %s", errString(err)); s.Close(nil) })
			s.Send([]byte("x"), 9, "not-a-host.invalid", nil)
		})
		x.mustRun()
		x.want(
			"cb ENOTFOUND getaddrinfo ENOTFOUND not-a-host.invalid errno=-3008 syscall=getaddrinfo",
			"error ENOTFOUND getaddrinfo ENOTFOUND not-a-host.invalid errno=-3008 syscall=getaddrinfo",
		)
	})
}

// Hostnames resolve (the virtual host through its hosts table).
func TestSendToName(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		var srv *dgram.Socket
		srv = x.server("udp4", func(p int) {
			c := x.sock("udp4")
			c.Send([]byte("by name"), p, "localhost", func(n int, err error) { x.log("cb %d %v", n, err); c.Close(nil) })
			srv.OnMessage(func([]byte, dgram.RemoteInfo) { srv.Close(nil) })
		})
		x.mustRun()
		x.want("cb 7 <nil>", `message "by name" from 127.0.0.1 IPv4 size=7`)
	})
}

// Send copies its buffer: changing it afterwards changes nothing.
func TestSendCopies(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		var srv *dgram.Socket
		srv = x.server("udp4", func(p int) {
			c := x.sock("udp4")
			buf := []byte("orig")
			c.Send(buf, p, "", func(int, error) { c.Close(nil) })
			copy(buf, "XXXX")
			srv.OnMessage(func([]byte, dgram.RemoteInfo) { srv.Close(nil) })
		})
		x.mustRun()
		x.want(`message "orig" from 127.0.0.1 IPv4 size=4`)
	})
}

// B30, B42a: a list of buffers is one datagram; the callback gets the total
// length; the size limit applies to the total.
func TestSendBuffers(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		var srv *dgram.Socket
		srv = x.server("udp4", func(p int) {
			c := x.sock("udp4")
			list := [][]byte{[]byte("he"), nil, []byte("llo")}
			c.SendBuffers(list, p, "", func(n int, err error) { x.log("cb %d %v", n, err) })
			copy(list[0], "XX") // the list was copied
			c.SendBuffers(nil, p, "", func(n int, err error) { x.log("empty cb %d %v", n, err) })
			c.SendBuffers([][]byte{make([]byte, 40000), make([]byte, 25508)}, p, "", func(n int, err error) {
				x.log("too big: %s", errString(err))
				c.SendBuffers([][]byte{make([]byte, 40000), make([]byte, 25507)}, p, "", func(n int, err error) {
					x.log("max: %d %v", n, err)
					c.Close(nil)
				})
			})
			got := 0
			srv.OnMessage(func([]byte, dgram.RemoteInfo) {
				if got++; got == 3 {
					srv.Close(nil)
				}
			})
		})
		x.mustRun()
		p := port0(x.events[2])
		x.want(
			"cb 5 <nil>",
			"empty cb 0 <nil>",
			fmt.Sprintf("too big: EMSGSIZE send EMSGSIZE undefined:%d errno=-90 syscall=send", p),
			"max: 65507 <nil>",
			`message "hello" from 127.0.0.1 IPv4 size=5`,
			`message "" from 127.0.0.1 IPv4 size=0`,
			`message "65507 bytes" from 127.0.0.1 IPv4 size=65507`,
		)
	})
}

// B39: an IPv6-only socket receives nothing from IPv4 senders.
func TestIPv6OnlyReceivesNoIPv4(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		s, _ := x.loop.CreateSocketWith(dgram.SocketOptions{Type: "udp6", IPv6Only: true}, nil)
		s.OnMessage(func(msg []byte, r dgram.RemoteInfo) {
			x.log("got %q from %s %s", msg, r.Address, r.Family)
			s.Close(nil)
		})
		s.Bind(0, "::", func() {
			p := port(t, s)
			c4 := x.sock("udp4")
			c4.Send([]byte("v4"), p, "127.0.0.1", func(n int, err error) {
				x.log("v4 cb %d %v", n, err)
				c4.Close(nil)
				c6 := x.sock("udp6")
				c6.Send([]byte("v6"), p, "::1", func(int, error) { c6.Close(nil) })
			})
		})
		x.mustRun()
		x.want("v4 cb 2 <nil>", `got "v6" from ::1 IPv6`)
	})
}

// Sends wait for their ticks in one queue per socket: each takes its own
// buffer, destination and callback, also when one of them waits for a
// name lookup while later ones go out, and when callbacks send more.
func TestSendsKeepTheirArguments(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		var srv *dgram.Socket
		got := 0
		srv = x.server("udp4", func(p int) {
			srv.OnMessage(func([]byte, dgram.RemoteInfo) {
				if got++; got == 6 {
					srv.Close(nil)
				}
			})
			c := x.sock("udp4")
			cbs := 0
			var send func(msg, address string, then func())
			send = func(msg, address string, then func()) {
				c.Send([]byte(msg), p, address, func(n int, err error) {
					x.log("cb %s %d %v", msg, n, err)
					if then != nil {
						then()
					}
					if cbs++; cbs == 6 {
						c.Close(nil)
					}
				})
			}
			send("a", "127.0.0.1", func() { send("ffffff", "127.0.0.1", nil) })
			send("bb", "localhost", nil) // a lookup: its write comes later
			send("ccc", "127.0.0.1", nil)
			send("dddd", "", func() { send("eeeee", "127.0.0.1", nil) })
		})
		x.mustRun()
		// The messages are logged too; keep the callbacks.
		var cbs []string
		for _, e := range x.events {
			if strings.HasPrefix(e, "cb ") {
				cbs = append(cbs, e)
			}
		}
		x.events = cbs
		x.want("cb a 1 <nil>", "cb ccc 3 <nil>", "cb dddd 4 <nil>", "cb ffffff 6 <nil>", "cb eeeee 5 <nil>", "cb bb 2 <nil>")
	})
}
