package dgram_test

import (
	"fmt"
	"testing"

	"github.com/dgramlab/dgramlab/dgram"
)

// info formats an AddressInfo or its error.
func info(a dgram.AddressInfo, err error) string {
	if err != nil {
		return errString(err)
	}
	return fmt.Sprintf("%s %s %d", a.Address, a.Family, a.Port)
}

// B57, B58, B59, B24: connect on an unbound socket binds it first, then
// 'connect' comes with its listeners in registration order (the callback
// last: it is registered when the connect really starts); the calls that
// need a connected or unconnected socket say so while connecting.
func TestConnect(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		var srv *dgram.Socket
		srv = x.server("udp4", func(p int) {
			c := x.sock("udp4")
			c.OnListening(func() { x.log("listening") })
			c.OnConnect(func() { x.log("connect listener 1") })
			x.log("connect: %v", c.Connect(p, "", func(err error) {
				x.log("connect cb %v", err)
				a, err := c.Address()
				x.log("address: %s %s port>0=%v %v", a.Address, a.Family, a.Port > 0, err)
				r, err := c.RemoteAddress()
				x.log("remote is server: %v %v", r == dgram.AddressInfo{Address: "127.0.0.1", Family: "IPv4", Port: p}, err)
				x.log("connect again: %s", errString(c.Connect(p, "", nil)))
				x.log("bind: %s", errString(c.Bind(0, "", nil)))
				c.Close(nil)
				srv.Close(nil)
			}))
			c.OnConnect(func() { x.log("connect listener 2") })
			_, err := c.RemoteAddress()
			x.log("remoteAddress while connecting: %s", errString(err))
			x.log("connect while connecting: %s", errString(c.Connect(p, "", nil)))
			x.log("send without port while connecting: %s", errString(c.Send([]byte("y"), 0, "", nil)))
			x.log("disconnect while connecting: %s", errString(c.Disconnect()))
		})
		x.mustRun()
		x.want(
			"connect: <nil>",
			"remoteAddress while connecting: ERR_SOCKET_DGRAM_NOT_CONNECTED Not connected",
			"connect while connecting: ERR_SOCKET_DGRAM_IS_CONNECTED Already connected",
			"send without port while connecting: ERR_SOCKET_BAD_PORT Port should be > 0 and < 65536. Received undefined.",
			"disconnect while connecting: ERR_SOCKET_DGRAM_NOT_CONNECTED Not connected",
			"listening",
			"connect listener 1",
			"connect listener 2",
			"connect cb <nil>",
			"address: 127.0.0.1 IPv4 port>0=true <nil>",
			"remote is server: true <nil>",
			"connect again: ERR_SOCKET_DGRAM_IS_CONNECTED Already connected",
			"bind: ERR_SOCKET_ALREADY_BOUND Socket is already bound",
		)
	})
}

// B62, B63, B30, B35 (contrast): on a connected socket send takes no port
// or address and runs at once (a close right after it does not discard
// it); a send queued while connecting fails with EISCONN once connected.
func TestConnectedSend(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		var srv *dgram.Socket
		got := 0
		srv = x.server("udp4", func(p int) {
			c := x.sock("udp4")
			c.Connect(p, "", func(error) {
				c.Send([]byte("sync1"), 0, "", func(n int, err error) { x.log("sync1 cb %d %v", n, err) })
				x.log("with port and address: %s", errString(c.Send([]byte("x"), p, "127.0.0.1", nil)))
				x.log("with address: %s", errString(c.Send([]byte("x"), 0, "127.0.0.1", nil)))
				c.SendRange([]byte("abcd"), 0, 2, 0, "", func(n int, err error) { x.log("range cb %d %v", n, err) })
				c.SendBuffers([][]byte{[]byte("li"), nil, []byte("st")}, 0, "", func(n int, err error) { x.log("list cb %d %v", n, err) })
				c.Close(func() { x.log("closed") })
			})
			c.Send([]byte("queued"), p, "127.0.0.1", func(n int, err error) { x.log("queued cb %s", errString(err)) })
			srv.OnMessage(func([]byte, dgram.RemoteInfo) {
				if got++; got == 3 {
					srv.Close(nil)
				}
			})
		})
		x.mustRun()
		p := port0(x.events[2])
		x.want(
			"with port and address: ERR_SOCKET_DGRAM_IS_CONNECTED Already connected",
			"with address: ERR_SOCKET_DGRAM_IS_CONNECTED Already connected",
			fmt.Sprintf("queued cb EISCONN send EISCONN 127.0.0.1:%d errno=-106 syscall=send", p),
			"sync1 cb 5 <nil>",
			"range cb 2 <nil>",
			"list cb 4 <nil>",
			"closed",
			`message "sync1" from 127.0.0.1 IPv4 size=5`,
			`message "ab" from 127.0.0.1 IPv4 size=2`,
			`message "list" from 127.0.0.1 IPv4 size=4`,
		)
	})
}

// port0 extracts the port from "...127.0.0.1:<port> ..." for want lines.
func port0(s string) int {
	var p int
	for i := len(s) - 1; i > 0; i-- {
		if s[i] == ':' {
			fmt.Sscanf(s[i+1:], "%d", &p)
			break
		}
	}
	return p
}

// B64, B65, B66: a connected socket hears only its peer; disconnect is
// synchronous, needs a connected socket, and resets what bind did not fix
// (Linux's connect(AF_UNSPEC)); the next send binds a new port.
func TestDisconnect(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		srv := x.sock("udp4")
		srv.Bind(0, "127.0.0.1", func() {
			p := port(t, srv)
			third := x.sock("udp4")
			c := x.sock("udp4")
			c.OnMessage(func(msg []byte, r dgram.RemoteInfo) {
				x.log("c got %q", msg)
				if string(msg) != "from third, after" {
					return
				}
				c.Close(nil)
				third.Close(nil)
				d := x.sock("udp4")
				d.Bind(0, "127.0.0.1", func() {
					d.Connect(p, "", func(error) {
						x.log("bound 127.0.0.1:0, disconnect: %v", d.Disconnect())
						x.log("address: %s", info(d.Address()))
						d.Close(nil)
						srv.Close(nil)
					})
				})
			})
			c.Connect(p, "", func(error) {
				cp := port(t, c)
				third.Send([]byte("from third"), cp, "", func(int, error) {
					srv.OnMessage(func(_ []byte, r dgram.RemoteInfo) {
						if r.Port != cp {
							return
						}
						// The peer's answer comes after the third's datagram,
						// which the connected socket never sees.
						srv.Send([]byte("from peer"), cp, "", nil)
					})
					c.Send([]byte("ping"), 0, "", nil)
				})
			})
			c.OnMessage(func(msg []byte, _ dgram.RemoteInfo) {
				if string(msg) != "from peer" {
					return
				}
				x.log("disconnect: %v", c.Disconnect())
				x.log("address: %s", info(c.Address()))
				x.log("disconnect again: %s", errString(c.Disconnect()))
				_, err := c.RemoteAddress()
				x.log("remoteAddress: %s", errString(err))
				x.log("send without port: %s", errString(c.Send([]byte("d1"), 0, "", nil)))
				c.Send([]byte("d2"), p, "", func(n int, err error) {
					a, _ := c.Address()
					x.log("d2 cb %d %v; new port: %v", n, err, a.Port != 0)
					third.Send([]byte("from third, after"), a.Port, "", nil)
				})
			})
		})
		x.mustRun()
		x.want(
			`c got "from peer"`,
			"disconnect: <nil>",
			"address: 0.0.0.0 IPv4 0",
			"disconnect again: ERR_SOCKET_DGRAM_NOT_CONNECTED Not connected",
			"remoteAddress: ERR_SOCKET_DGRAM_NOT_CONNECTED Not connected",
			"send without port: ERR_SOCKET_BAD_PORT Port should be > 0 and < 65536. Received undefined.",
			"d2 cb 2 <nil>; new port: true",
			`c got "from third, after"`,
			"bound 127.0.0.1:0, disconnect: <nil>",
			"address: 127.0.0.1 IPv4 0",
		)
	})
}

// B60, B61, B56, B67, B52: argument errors are returned; lookup and network
// failures go to the callback or to 'error', and leave the socket
// disconnected and able to connect again.
func TestConnectErrors(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		c := x.sock("udp4")
		for _, p := range []int{0, -1, 65536} {
			x.log("port %d: %s", p, errString(c.Connect(p, "", nil)))
		}
		c.OnError(func(err error) { x.log("error event %s", errString(err)) })
		c.Connect(20902, "::1", func(err error) {
			x.log("udp4 to ::1: %s", errString(err))
			c.Connect(20902, "not-a-host.invalid", func(err error) {
				x.log("lookup: %s", errString(err))
				c.Connect(20902, "not-a-host.invalid", nil)
			})
		})
		c.OnError(func(error) {
			c.Connect(20800, "127.255.255.255", func(err error) {
				x.log("broadcast: %s", errString(err))
				c.Close(nil)
				x.log("closed: disconnect %s", errString(c.Disconnect()))
				_, err = c.RemoteAddress()
				x.log("closed: remoteAddress %s", errString(err))
				x.log("closed: connect %s", errString(c.Connect(9, "", nil)))
				u := x.sock("udp6")
				u.Connect(20902, "127.0.0.1", func(err error) {
					x.log("udp6 to 127.0.0.1: %s", errString(err))
					if !localhost6(t, x.network) {
						u.Close(nil)
						x.log("udp6 remote: ::1 IPv6 true")
						return
					}
					srv := x.sock("udp6")
					srv.Bind(0, "::1", func() {
						u.Connect(port(t, srv), "localhost", func(err error) {
							r, _ := u.RemoteAddress()
							x.log("udp6 remote: %s %s %v", r.Address, r.Family, r.Port == port(t, srv))
							u.Close(nil)
							srv.Close(nil)
						})
					})
				})
			})
		})
		x.mustRun()
		x.want(
			"port 0: ERR_SOCKET_BAD_PORT Port should be > 0 and < 65536. Received type number (0).",
			"port -1: ERR_SOCKET_BAD_PORT Port should be > 0 and < 65536. Received type number (-1).",
			"port 65536: ERR_SOCKET_BAD_PORT Port should be > 0 and < 65536. Received type number (65536).",
			"udp4 to ::1: EINVAL connect EINVAL ::1:20902 errno=-22 syscall=connect",
			"lookup: ENOTFOUND getaddrinfo ENOTFOUND not-a-host.invalid errno=-3008 syscall=getaddrinfo",
			"error event ENOTFOUND getaddrinfo ENOTFOUND not-a-host.invalid errno=-3008 syscall=getaddrinfo",
			"broadcast: EACCES connect EACCES 127.255.255.255:20800 errno=-13 syscall=connect",
			"closed: disconnect ERR_SOCKET_DGRAM_NOT_CONNECTED Not connected",
			"closed: remoteAddress ERR_SOCKET_DGRAM_NOT_RUNNING Not running",
			"closed: connect ERR_SOCKET_DGRAM_NOT_RUNNING Not running",
			"udp6 to 127.0.0.1: EINVAL connect EINVAL 127.0.0.1:20902 errno=-22 syscall=connect",
			"udp6 remote: ::1 IPv6 true",
		)
	})
}
