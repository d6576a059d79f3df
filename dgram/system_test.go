//go:build linux && !386

package dgram

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"
)

// kernelConn is what System's conns offer beyond Conn.
type kernelConn interface {
	Conn
	SyscallConn() (syscall.RawConn, error)
	Write(b []byte) (int, error)
	ReadMsgUDPAddrPort(b, oob []byte) (n, oobn, flags int, addr netip.AddrPort, err error)
	SetTTL(ttl int) error
	SetMulticastTTL(ttl int) error
	SetMulticastLoopback(on bool) error
	SetReadBuffer(bytes int) error
	SetWriteBuffer(bytes int) error
	ReadBufferSize() (int, error)
	WriteBufferSize() (int, error)
	Connect(addr netip.AddrPort) error
	Disconnect() error
	LocalAddrPort() netip.AddrPort
	RemoteAddrPort() netip.AddrPort
	RemoteAddr() net.Addr
}

var _ kernelConn = (*sysConn)(nil)

// openKernel opens a System conn that the test closes when it ends.
func openKernel(t testing.TB, network, laddr string, reuseAddr, ipv6Only bool) kernelConn {
	t.Helper()
	ap := netip.MustParseAddrPort(laddr)
	pc, err := System().OpenUDP(network, ap, reuseAddr, ipv6Only)
	if err != nil {
		t.Fatalf("OpenUDP(%q, %s, %v, %v) = %v", network, ap, reuseAddr, ipv6Only, err)
	}
	c, ok := pc.(kernelConn)
	if !ok {
		pc.Close()
		t.Fatalf("OpenUDP returned a %T, which lacks the kernel conn's methods", pc)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// skipWithoutIPv6 skips the test when the machine has no ::1.
func skipWithoutIPv6(t testing.TB) {
	t.Helper()
	pc, err := System().OpenUDP("udp6", netip.MustParseAddrPort("[::1]:0"), false, false)
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	pc.Close()
}

// skipIfLocal skips the test when addr is one of the machine's addresses.
func skipIfLocal(t testing.TB, addr netip.Addr) {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if p, ok := a.(*net.IPNet); ok {
			if ip, _ := netip.AddrFromSlice(p.IP); ip.Unmap() == addr {
				t.Skipf("%s is an address of this machine", addr)
			}
		}
	}
}

// withPort is addr with c's port.
func withPort(addr string, c kernelConn) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(addr), c.LocalAddrPort().Port())
}

// sysSend sends b to to, which must succeed.
func sysSend(t testing.TB, c kernelConn, b []byte, to netip.AddrPort) {
	t.Helper()
	if n, err := c.WriteToUDPAddrPort(b, to); err != nil || n != len(b) {
		t.Fatalf("WriteToUDPAddrPort(%d bytes, %s) = %d, %v, want %d, nil", len(b), to, n, err, len(b))
	}
}

// sysRecv reads one datagram. The deadline only keeps a broken test from
// hanging.
func sysRecv(t testing.TB, c kernelConn) ([]byte, netip.AddrPort) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1<<16)
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("ReadFromUDPAddrPort = %v", err)
	}
	return buf[:n], from
}

// sysRecvErr reads expecting an error.
func sysRecvErr(t testing.TB, c kernelConn) error {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, from, err := c.ReadFromUDPAddrPort(make([]byte, 1<<16))
	if err == nil {
		t.Fatalf("ReadFromUDPAddrPort = %d bytes from %s, want an error", n, from)
	}
	return err
}

// wantErrno checks that err unwraps to want, with errors.As and errors.Is
// (want 0: that err is nil).
func wantErrno(t testing.TB, call string, err error, want syscall.Errno) {
	t.Helper()
	name, _ := uvError(want)
	if want == 0 {
		if err != nil {
			t.Errorf("%s = %v, want success", call, err)
		}
		return
	}
	var got syscall.Errno
	if !errors.As(err, &got) || got != want || !errors.Is(err, want) {
		t.Errorf("%s = %v, want %s", call, err, name)
	}
}

// sockoptInt reads a socket option of c.
func sockoptInt(t testing.TB, c kernelConn, level, opt int) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var serr error
	if err := rc.Control(func(fd uintptr) { v, serr = syscall.GetsockoptInt(int(fd), level, opt) }); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatalf("getsockopt(%d, %d) = %v", level, opt, serr)
	}
	return v
}

// setSockoptInt sets a socket option of c.
func setSockoptInt(t testing.TB, c kernelConn, level, opt, v int) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), level, opt, v) }); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatalf("setsockopt(%d, %d, %d) = %v", level, opt, v, serr)
	}
}

func TestSystemSendReceive(t *testing.T) {
	for _, tc := range []struct{ network, addr string }{
		{"udp4", "127.0.0.1"},
		{"udp6", "::1"},
	} {
		t.Run(tc.network, func(t *testing.T) {
			if tc.network == "udp6" {
				skipWithoutIPv6(t)
			}
			laddr := netip.AddrPortFrom(netip.MustParseAddr(tc.addr), 0).String()
			a := openKernel(t, tc.network, laddr, false, false)
			b := openKernel(t, tc.network, laddr, false, false)
			for _, c := range []kernelConn{a, b} {
				if got := c.LocalAddrPort(); got.Addr().String() != tc.addr || got.Port() == 0 {
					t.Errorf("LocalAddrPort() = %s, want %s:<ephemeral>", got, tc.addr)
				}
				if got, want := c.LocalAddr().String(), c.LocalAddrPort().String(); got != want {
					t.Errorf("LocalAddr() = %s, want %s", got, want)
				}
				if got := c.RemoteAddr(); got != nil {
					t.Errorf("RemoteAddr() = %v, want nil", got)
				}
			}
			for _, msg := range [][]byte{[]byte("hello"), {}} {
				sysSend(t, a, msg, b.LocalAddrPort())
				got, from := sysRecv(t, b)
				if !bytes.Equal(got, msg) || from != a.LocalAddrPort() {
					t.Errorf("received %q from %s, want %q from %s", got, from, msg, a.LocalAddrPort())
				}
			}
		})
	}
}

func TestSystemDualStack(t *testing.T) {
	skipWithoutIPv6(t)
	mapped := netip.MustParseAddr("::ffff:127.0.0.1")

	t.Run("udp6 :: receives IPv4 as mapped", func(t *testing.T) {
		rcv := openKernel(t, "udp6", "[::]:0", false, false)
		snd := openKernel(t, "udp4", "127.0.0.1:0", false, false)
		sysSend(t, snd, []byte("v4"), withPort("127.0.0.1", rcv))
		got, from := sysRecv(t, rcv)
		if want := netip.AddrPortFrom(mapped, snd.LocalAddrPort().Port()); string(got) != "v4" || from != want {
			t.Errorf("received %q from %s, want \"v4\" from %s", got, from, want)
		}
		// The reply goes to the mapped address and arrives as plain IPv4.
		sysSend(t, rcv, []byte("back"), from)
		got, from = sysRecv(t, snd)
		if want := withPort("127.0.0.1", rcv); string(got) != "back" || from != want {
			t.Errorf("reply %q from %s, want \"back\" from %s", got, from, want)
		}
	})

	t.Run("udp6 bound to an IPv4-mapped address", func(t *testing.T) {
		rcv := openKernel(t, "udp6", "[::ffff:127.0.0.1]:0", false, false)
		if got := rcv.LocalAddrPort().Addr(); got != mapped {
			t.Errorf("LocalAddrPort().Addr() = %s, want %s", got, mapped)
		}
		snd := openKernel(t, "udp4", "127.0.0.1:0", false, false)
		sysSend(t, snd, []byte("v4"), withPort("127.0.0.1", rcv))
		if got, from := sysRecv(t, rcv); string(got) != "v4" || from.Addr() != mapped {
			t.Errorf("received %q from %s, want \"v4\" from %s", got, from, mapped)
		}
	})

	t.Run("ipv6Only", func(t *testing.T) {
		v6 := openKernel(t, "udp6", "[::]:0", false, true)
		snd := openKernel(t, "udp4", "127.0.0.1:0", false, false)
		// Nothing takes IPv4 on that port: a connected sender hears the
		// ICMP port unreachable.
		if err := snd.Connect(withPort("127.0.0.1", v6)); err != nil {
			t.Fatalf("Connect = %v", err)
		}
		if _, err := snd.Write([]byte("v4")); err != nil {
			t.Fatalf("Write = %v", err)
		}
		wantErrno(t, "ReadFromUDPAddrPort", sysRecvErr(t, snd), syscall.ECONNREFUSED)
		// And the port is free for IPv4, without SO_REUSEADDR.
		v4 := openKernel(t, "udp4", withPort("127.0.0.1", v6).String(), false, false)
		if _, err := snd.Write([]byte("v4 again")); err != nil {
			t.Fatalf("Write = %v", err)
		}
		if got, _ := sysRecv(t, v4); string(got) != "v4 again" {
			t.Errorf("udp4 socket received %q, want \"v4 again\"", got)
		}
	})
}

func TestSystemOpenErrors(t *testing.T) {
	type sock struct {
		network, laddr    string
		reuseAddr, v6only bool
	}
	for _, tc := range []struct {
		name string
		// first, if set, is opened before; "P" in second.laddr's port
		// stands for first's port.
		first  *sock
		second sock
		want   syscall.Errno
		// skipIfLocal skips the case when this address is the machine's.
		skipIfLocal string
	}{
		{name: "port in use", first: &sock{"udp4", "127.0.0.1:0", false, false}, second: sock{"udp4", "127.0.0.1:P", false, false}, want: syscall.EADDRINUSE},
		{name: "port in use on 0.0.0.0", first: &sock{"udp4", "0.0.0.0:0", false, false}, second: sock{"udp4", "127.0.0.1:P", false, false}, want: syscall.EADDRINUSE},
		{name: "port in use on dual-stack ::", first: &sock{"udp6", "[::]:0", false, false}, second: sock{"udp4", "0.0.0.0:P", false, false}, want: syscall.EADDRINUSE},
		{name: "port in use udp6", first: &sock{"udp6", "[::1]:0", false, false}, second: sock{"udp6", "[::1]:P", false, false}, want: syscall.EADDRINUSE},
		{name: "reuseAddr on second only", first: &sock{"udp4", "127.0.0.1:0", false, false}, second: sock{"udp4", "127.0.0.1:P", true, false}, want: syscall.EADDRINUSE},
		{name: "reuseAddr on first only", first: &sock{"udp4", "127.0.0.1:0", true, false}, second: sock{"udp4", "127.0.0.1:P", false, false}, want: syscall.EADDRINUSE},
		{name: "reuseAddr on both", first: &sock{"udp4", "127.0.0.1:0", true, false}, second: sock{"udp4", "127.0.0.1:P", true, false}},
		{name: "reuseAddr on both udp6", first: &sock{"udp6", "[::1]:0", true, false}, second: sock{"udp6", "[::1]:P", true, false}},
		{name: "ipv6Only :: leaves IPv4 free", first: &sock{"udp6", "[::]:0", false, true}, second: sock{"udp4", "0.0.0.0:P", false, false}},
		{name: "non-local IPv4", second: sock{"udp4", "192.0.2.1:0", false, false}, want: syscall.EADDRNOTAVAIL, skipIfLocal: "192.0.2.1"},
		{name: "non-local IPv6", second: sock{"udp6", "[2001:db8::1]:0", false, false}, want: syscall.EADDRNOTAVAIL, skipIfLocal: "2001:db8::1"},
		{name: "udp4 with IPv6", second: sock{"udp4", "[::1]:0", false, false}, want: syscall.EINVAL},
		{name: "udp4 with IPv4-mapped", second: sock{"udp4", "[::ffff:127.0.0.1]:0", false, false}, want: syscall.EINVAL},
		{name: "udp6 with IPv4", second: sock{"udp6", "127.0.0.1:0", false, false}, want: syscall.EINVAL},
		{name: "udp6 ipv6Only with IPv4-mapped", second: sock{"udp6", "[::ffff:127.0.0.1]:0", false, true}, want: syscall.EINVAL},
		{name: "link-local without zone", second: sock{"udp6", "[fe80::1]:0", false, false}, want: syscall.EINVAL},
		{name: "link-local with unknown zone", second: sock{"udp6", "[fe80::1%no-such-if0]:0", false, false}, want: syscall.EINVAL},
		// The zone becomes the scope id: the kernel now looks for fe80::1
		// on lo instead of refusing an unscoped link-local address.
		{name: "link-local with zone", second: sock{"udp6", "[fe80::1%lo]:0", false, false}, want: syscall.EADDRNOTAVAIL},
		{name: "unknown network", second: sock{"udp", "127.0.0.1:0", false, false}, want: syscall.EAFNOSUPPORT},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if strings.Contains(tc.second.laddr, "%lo]") {
				if _, err := net.InterfaceByName("lo"); err != nil {
					t.Skip("no interface named lo")
				}
			}
			if tc.skipIfLocal != "" {
				skipIfLocal(t, netip.MustParseAddr(tc.skipIfLocal))
			}
			if tc.second.network == "udp6" || tc.first != nil && tc.first.network == "udp6" {
				skipWithoutIPv6(t)
			}
			laddr := netip.MustParseAddrPort(replacePort(tc.second.laddr, 0))
			if tc.first != nil {
				f := tc.first
				first := openKernel(t, f.network, f.laddr, f.reuseAddr, f.v6only)
				laddr = netip.MustParseAddrPort(replacePort(tc.second.laddr, first.LocalAddrPort().Port()))
			}
			s := tc.second
			pc, err := System().OpenUDP(s.network, laddr, s.reuseAddr, s.v6only)
			if err == nil {
				pc.Close()
			}
			call := "OpenUDP(" + s.network + ", " + laddr.String() + ")"
			wantErrno(t, call, err, tc.want)
			if err != nil {
				var opErr *net.OpError
				if !errors.As(err, &opErr) || opErr.Op != "listen" {
					t.Errorf("%s = %#v, want a *net.OpError with Op \"listen\"", call, err)
				}
			}
			if tc.name == "unknown network" {
				var unknown net.UnknownNetworkError
				if !errors.As(err, &unknown) {
					t.Errorf("%s = %v, want a net.UnknownNetworkError too", call, err)
				}
			}
		})
	}
}

// replacePort replaces a trailing ":P" in laddr with port.
func replacePort(laddr string, port uint16) string {
	if len(laddr) > 2 && laddr[len(laddr)-2:] == ":P" {
		ap := netip.MustParseAddrPort(laddr[:len(laddr)-1] + "0")
		return netip.AddrPortFrom(ap.Addr(), port).String()
	}
	return laddr
}

func TestSystemBroadcast(t *testing.T) {
	rcv := openKernel(t, "udp4", "0.0.0.0:0", false, false)
	snd := openKernel(t, "udp4", "127.0.0.1:0", false, false)
	to := withPort("127.255.255.255", rcv)

	_, err := snd.WriteToUDPAddrPort([]byte("no flag"), to)
	wantErrno(t, "WriteToUDPAddrPort(broadcast) without SO_BROADCAST", err, syscall.EACCES)

	if err := snd.SetBroadcast(true); err != nil {
		t.Fatalf("SetBroadcast(true) = %v", err)
	}
	if v := sockoptInt(t, snd, syscall.SOL_SOCKET, syscall.SO_BROADCAST); v != 1 {
		t.Errorf("SO_BROADCAST = %d after SetBroadcast(true), want 1", v)
	}
	sysSend(t, snd, []byte("flag"), to)
	if got, from := sysRecv(t, rcv); string(got) != "flag" || from != snd.LocalAddrPort() {
		t.Errorf("received %q from %s, want \"flag\" from %s", got, from, snd.LocalAddrPort())
	}

	if err := snd.SetBroadcast(false); err != nil {
		t.Fatalf("SetBroadcast(false) = %v", err)
	}
	_, err = snd.WriteToUDPAddrPort([]byte("flag off"), to)
	wantErrno(t, "WriteToUDPAddrPort(broadcast) after SetBroadcast(false)", err, syscall.EACCES)

	t.Run("udp6", func(t *testing.T) {
		skipWithoutIPv6(t)
		c := openKernel(t, "udp6", "[::1]:0", false, false)
		if err := c.SetBroadcast(true); err != nil {
			t.Errorf("SetBroadcast(true) on udp6 = %v, want nil", err)
		}
	})
}

func TestSystemMessageSize(t *testing.T) {
	for _, tc := range []struct {
		network, addr string
		max           int // largest payload: 65535 - IP header (IPv4) - UDP header
	}{
		{"udp4", "127.0.0.1", 65507},
		{"udp6", "::1", 65527},
	} {
		t.Run(tc.network, func(t *testing.T) {
			if tc.network == "udp6" {
				skipWithoutIPv6(t)
			}
			laddr := netip.AddrPortFrom(netip.MustParseAddr(tc.addr), 0).String()
			rcv := openKernel(t, tc.network, laddr, false, false)
			snd := openKernel(t, tc.network, laddr, false, false)
			big := make([]byte, tc.max+1)
			for i := range big {
				big[i] = byte(i * 7)
			}
			_, err := snd.WriteToUDPAddrPort(big, rcv.LocalAddrPort())
			wantErrno(t, "WriteToUDPAddrPort(max+1 bytes)", err, syscall.EMSGSIZE)

			sysSend(t, snd, big[:tc.max], rcv.LocalAddrPort())
			if got, _ := sysRecv(t, rcv); !bytes.Equal(got, big[:tc.max]) {
				t.Errorf("received %d bytes, want the %d sent", len(got), tc.max)
			}
		})
	}
}
