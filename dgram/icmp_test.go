package dgram_test

import (
	"testing"

	"github.com/dgramlab/dgramlab/stack"
)

// closedPort returns a port of addr that nothing listens on (a socket just
// had it).
func closedPort(t *testing.T, x *harness, typ, addr string, then func(p int)) {
	gone := x.sock(typ)
	gone.Bind(0, addr, func() {
		p := port(t, gone)
		gone.Close(func() { then(p) })
	})
}

// B68, B69, B70, B71: a connected socket learns of a closed port by ICMP:
// the send succeeds, then 'error' "recvmsg ECONNREFUSED"; a send issued
// before the loop handles that error gets it instead; a disconnect does not
// clear it; unconnected sockets never hear of it.
func TestPortUnreachable(t *testing.T) {
	for _, c := range []struct{ typ, addr string }{{"udp4", "127.0.0.1"}, {"udp6", "::1"}} {
		t.Run(c.typ, func(t *testing.T) {
			forEachEnv(t, func(t *testing.T, x *harness) {
				closedPort(t, x, c.typ, c.addr, func(p int) {
					a := x.sock(c.typ)
					errors := 0
					a.Connect(p, c.addr, func(error) {
						a.Send([]byte("hello"), 0, "", func(n int, err error) { x.log("hello cb %d %v", n, err) })
					})
					a.OnError(func(err error) {
						x.log("error %s", errString(err))
						switch errors++; errors {
						case 1: // B69: two sends in one go.
							a.Send([]byte("one"), 0, "", func(n int, err error) { x.log("one cb %d %v", n, err) })
							a.Send([]byte("two"), 0, "", func(n int, err error) {
								x.log("two cb %s", errString(err))
								// B70
								a.Send([]byte("three"), 0, "", func(n int, err error) { x.log("three cb %d %v", n, err) })
								x.log("disconnect %v", a.Disconnect())
							})
						case 2:
							a.Close(nil)
							// B71
							u := x.sock(c.typ)
							u.OnError(func(err error) { x.log("unconnected error %s", errString(err)) })
							u.Send([]byte("x"), p, c.addr, func(n int, err error) {
								x.log("unconnected cb %d %v", n, err)
								u.Send([]byte("y"), p, c.addr, func(n int, err error) {
									x.log("unconnected cb %d %v", n, err)
									// Anything pending would come before this.
									x.loop.Post(func() { u.Close(nil) })
								})
							})
						}
					})
				})
				x.mustRun()
				x.want(
					"hello cb 5 <nil>",
					"error ECONNREFUSED recvmsg ECONNREFUSED errno=-111 syscall=recvmsg",
					"one cb 3 <nil>",
					"two cb ECONNREFUSED send ECONNREFUSED errno=-111 syscall=send",
					"disconnect <nil>",
					"three cb 5 <nil>",
					"error ECONNREFUSED recvmsg ECONNREFUSED errno=-111 syscall=recvmsg",
					"unconnected cb 1 <nil>",
					"unconnected cb 1 <nil>",
				)
				if h, ok := x.network.(*stack.Host); ok {
					st := h.Stats()
					icmp := st.ICMP.V4
					if c.typ == "udp6" {
						icmp = st.ICMP.V6
					}
					// hello, one, three, x, y: five datagrams to nobody, five
					// ICMP errors sent and received.
					if st.UDP.NoListener != 5 || icmp.DstUnreachableSent != 5 || icmp.DstUnreachableReceived != 5 {
						t.Errorf("host stats %+v, want 5 datagrams without listener and 5 ICMP errors each way", st)
					}
				}
			})
		})
	}
}

// B68 (error without listener): Run returns the recvmsg error, where Node
// would crash.
func TestPortUnreachableWithoutListener(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		closedPort(t, x, "udp4", "127.0.0.1", func(p int) {
			a := x.sock("udp4")
			a.Connect(p, "", func(error) { a.Send([]byte("x"), 0, "", nil) })
		})
		if got := errString(x.run()); got != "ECONNREFUSED recvmsg ECONNREFUSED errno=-111 syscall=recvmsg" {
			t.Fatalf("Run = %s", got)
		}
	})
}
