//go:build linux && !386

package dgram

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
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

func TestSystemTTL(t *testing.T) {
	for _, tc := range []struct {
		network, addr       string
		level, opt          int // the option SetTTL sets
		recvOpt, cmsgType   int // receiving the TTL with the datagram
		mcastOpt, mcastLoop int
	}{
		{"udp4", "127.0.0.1", syscall.IPPROTO_IP, syscall.IP_TTL, syscall.IP_RECVTTL, syscall.IP_TTL,
			syscall.IP_MULTICAST_TTL, syscall.IP_MULTICAST_LOOP},
		{"udp6", "::1", syscall.IPPROTO_IPV6, syscall.IPV6_UNICAST_HOPS, syscall.IPV6_RECVHOPLIMIT, syscall.IPV6_HOPLIMIT,
			syscall.IPV6_MULTICAST_HOPS, syscall.IPV6_MULTICAST_LOOP},
	} {
		t.Run(tc.network, func(t *testing.T) {
			if tc.network == "udp6" {
				skipWithoutIPv6(t)
			}
			laddr := netip.AddrPortFrom(netip.MustParseAddr(tc.addr), 0).String()
			rcv := openKernel(t, tc.network, laddr, false, false)
			snd := openKernel(t, tc.network, laddr, false, false)

			if err := snd.SetTTL(7); err != nil {
				t.Fatalf("SetTTL(7) = %v", err)
			}
			if v := sockoptInt(t, snd, tc.level, tc.opt); v != 7 {
				t.Errorf("getsockopt after SetTTL(7) = %d, want 7", v)
			}
			// The TTL the datagram arrived with.
			setSockoptInt(t, rcv, tc.level, tc.recvOpt, 1)
			sysSend(t, snd, []byte("ttl"), rcv.LocalAddrPort())
			rcv.SetReadDeadline(time.Now().Add(10 * time.Second))
			oob := make([]byte, 128)
			_, oobn, _, _, err := rcv.ReadMsgUDPAddrPort(make([]byte, 16), oob)
			if err != nil {
				t.Fatalf("ReadMsgUDPAddrPort = %v", err)
			}
			msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
			if err != nil {
				t.Fatal(err)
			}
			ttl := -1
			for _, m := range msgs {
				if int(m.Header.Level) == tc.level && int(m.Header.Type) == tc.cmsgType && len(m.Data) >= 4 {
					ttl = int(binary.NativeEndian.Uint32(m.Data))
				}
			}
			if ttl != 7 {
				t.Errorf("datagram arrived with TTL %d, want 7", ttl)
			}

			for _, bad := range []int{0, 256, -1} {
				wantErrno(t, "SetTTL("+strconv.Itoa(bad)+")", snd.SetTTL(bad), syscall.EINVAL)
			}

			for _, ttl := range []int{0, 255} {
				if err := snd.SetMulticastTTL(ttl); err != nil {
					t.Errorf("SetMulticastTTL(%d) = %v", ttl, err)
				}
				if v := sockoptInt(t, snd, tc.level, tc.mcastOpt); v != ttl {
					t.Errorf("multicast TTL = %d after SetMulticastTTL(%d)", v, ttl)
				}
			}
			for _, bad := range []int{256, -1} {
				wantErrno(t, "SetMulticastTTL("+strconv.Itoa(bad)+")", snd.SetMulticastTTL(bad), syscall.EINVAL)
			}
			for _, on := range []bool{false, true} {
				if err := snd.SetMulticastLoopback(on); err != nil {
					t.Errorf("SetMulticastLoopback(%v) = %v", on, err)
				}
				if v := sockoptInt(t, snd, tc.level, tc.mcastLoop); v != boolInt(on) {
					t.Errorf("multicast loop = %d after SetMulticastLoopback(%v)", v, on)
				}
			}
		})
	}
}

func TestSystemBufferSizes(t *testing.T) {
	c := openKernel(t, "udp4", "127.0.0.1:0", false, false)
	for _, tc := range []struct {
		name string
		set  func(int) error
		get  func() (int, error)
	}{
		{"read", c.SetReadBuffer, c.ReadBufferSize},
		{"write", c.SetWriteBuffer, c.WriteBufferSize},
	} {
		if n, err := tc.get(); err != nil || n <= 0 {
			t.Errorf("%s buffer size = %d, %v before any set, want > 0", tc.name, n, err)
		}
		if err := tc.set(8192); err != nil {
			t.Fatalf("set %s buffer(8192) = %v", tc.name, err)
		}
		// Linux keeps (and reports) twice what was asked.
		if n, err := tc.get(); err != nil || n != 16384 {
			t.Errorf("%s buffer size = %d, %v after setting 8192, want 16384", tc.name, n, err)
		}
	}
}

func TestSystemConnect(t *testing.T) {
	t.Run("local address", func(t *testing.T) {
		// A fixed port: one the kernel just handed out.
		fixed := openKernel(t, "udp4", "127.0.0.1:0", false, false)
		fixedPort := fixed.LocalAddrPort().Port()
		fixed.Close()

		for _, tc := range []struct {
			network, laddr string
			peer           string
			connected      string // local address once connected; same port
			disconnected   string // local address after Disconnect
			keepsPort      bool   // whether the port survives Disconnect
		}{
			// Linux's connect(AF_UNSPEC) forgets what bind did not lock: an
			// unspecified address, and a port the kernel chose.
			{"udp4", "0.0.0.0:0", "127.0.0.1", "127.0.0.1", "0.0.0.0", false},
			{"udp4", "127.0.0.1:0", "127.0.0.1", "127.0.0.1", "127.0.0.1", false},
			{"udp4", "0.0.0.0:" + strconv.Itoa(int(fixedPort)), "127.0.0.1", "127.0.0.1", "0.0.0.0", true},
			{"udp6", "[::]:0", "::1", "::1", "::", false},
			{"udp6", "[::]:0", "127.0.0.1", "::ffff:127.0.0.1", "::", false},
			{"udp6", "[::1]:0", "::1", "::1", "::1", false},
		} {
			t.Run(tc.network+" "+tc.laddr+" to "+tc.peer, func(t *testing.T) {
				if tc.network == "udp6" {
					skipWithoutIPv6(t)
				}
				peerNet := "udp4"
				if netip.MustParseAddr(tc.peer).Is6() {
					peerNet = "udp6"
				}
				peer := openKernel(t, peerNet, netip.AddrPortFrom(netip.MustParseAddr(tc.peer), 0).String(), false, false)
				c := openKernel(t, tc.network, tc.laddr, false, false)
				port := c.LocalAddrPort().Port()
				if err := c.Connect(peer.LocalAddrPort()); err != nil {
					t.Fatalf("Connect(%s) = %v", peer.LocalAddrPort(), err)
				}
				if got, want := c.LocalAddrPort(), netip.AddrPortFrom(netip.MustParseAddr(tc.connected), port); got != want {
					t.Errorf("LocalAddrPort() = %s once connected, want %s", got, want)
				}
				wantPeer := peer.LocalAddrPort()
				if tc.network == "udp6" && wantPeer.Addr().Is4() {
					wantPeer = netip.AddrPortFrom(netip.AddrFrom16(wantPeer.Addr().As16()), wantPeer.Port())
				}
				if got := c.RemoteAddrPort(); got != wantPeer {
					t.Errorf("RemoteAddrPort() = %s, want %s", got, wantPeer)
				}
				if err := c.Disconnect(); err != nil {
					t.Fatalf("Disconnect() = %v", err)
				}
				wantPort := uint16(0)
				if tc.keepsPort {
					wantPort = port
				}
				if got, want := c.LocalAddrPort(), netip.AddrPortFrom(netip.MustParseAddr(tc.disconnected), wantPort); got != want {
					t.Errorf("LocalAddrPort() = %s after Disconnect, want %s", got, want)
				}
				if got := c.RemoteAddrPort(); got.IsValid() {
					t.Errorf("RemoteAddrPort() = %s after Disconnect, want none", got)
				}
				if got := c.RemoteAddr(); got != nil {
					t.Errorf("RemoteAddr() = %v after Disconnect, want nil", got)
				}
				if err := c.Disconnect(); err != nil {
					t.Errorf("second Disconnect() = %v, want nil", err)
				}
			})
		}
	})

	t.Run("traffic", func(t *testing.T) {
		c := openKernel(t, "udp4", "0.0.0.0:0", false, false)
		peer := openKernel(t, "udp4", "127.0.0.1:0", false, false)
		third := openKernel(t, "udp4", "127.0.0.1:0", false, false)
		if err := c.Connect(peer.LocalAddrPort()); err != nil {
			t.Fatalf("Connect = %v", err)
		}
		if got, want := c.RemoteAddr().String(), peer.LocalAddrPort().String(); got != want {
			t.Errorf("RemoteAddr() = %s, want %s", got, want)
		}
		if _, err := c.Write([]byte("to peer")); err != nil {
			t.Fatalf("Write = %v", err)
		}
		if got, from := sysRecv(t, peer); string(got) != "to peer" || from != c.LocalAddrPort() {
			t.Errorf("peer received %q from %s, want \"to peer\" from %s", got, from, c.LocalAddrPort())
		}
		// A connected socket hears only its peer: the kernel drops the
		// third socket's datagram, sent first.
		sysSend(t, third, []byte("from third"), withPort("127.0.0.1", c))
		sysSend(t, peer, []byte("from peer"), withPort("127.0.0.1", c))
		if got, from := sysRecv(t, c); string(got) != "from peer" || from != peer.LocalAddrPort() {
			t.Errorf("received %q from %s, want \"from peer\" from %s", got, from, peer.LocalAddrPort())
		}

		// Disconnect released the kernel-chosen port; the next send binds a
		// new one, and replies reach it.
		if err := c.Disconnect(); err != nil {
			t.Fatalf("Disconnect = %v", err)
		}
		sysSend(t, c, []byte("again"), peer.LocalAddrPort())
		got, from := sysRecv(t, peer)
		if string(got) != "again" || from.Addr() != netip.MustParseAddr("127.0.0.1") || from.Port() == 0 {
			t.Fatalf("peer received %q from %s, want \"again\" from 127.0.0.1:<new port>", got, from)
		}
		if got, want := c.LocalAddrPort(), netip.AddrPortFrom(netip.IPv4Unspecified(), from.Port()); got != want {
			t.Errorf("LocalAddrPort() = %s after the send, want %s", got, want)
		}
		sysSend(t, peer, []byte("reply"), from)
		if got, _ := sysRecv(t, c); string(got) != "reply" {
			t.Errorf("received %q, want \"reply\"", got)
		}
	})

	t.Run("port unreachable", func(t *testing.T) {
		for _, tc := range []struct{ network, addr string }{{"udp4", "127.0.0.1"}, {"udp6", "::1"}} {
			t.Run(tc.network, func(t *testing.T) {
				if tc.network == "udp6" {
					skipWithoutIPv6(t)
				}
				laddr := netip.AddrPortFrom(netip.MustParseAddr(tc.addr), 0).String()
				gone := openKernel(t, tc.network, laddr, false, false)
				closed := gone.LocalAddrPort()
				gone.Close()
				c := openKernel(t, tc.network, laddr, false, false)
				if err := c.Connect(closed); err != nil {
					t.Fatalf("Connect = %v", err)
				}
				if _, err := c.Write([]byte("anyone?")); err != nil {
					t.Fatalf("Write = %v", err)
				}
				wantErrno(t, "ReadFromUDPAddrPort", sysRecvErr(t, c), syscall.ECONNREFUSED)
			})
		}
	})

	t.Run("errors", func(t *testing.T) {
		c := openKernel(t, "udp4", "127.0.0.1:0", false, false)
		wantErrno(t, "udp4 Connect([::1]:9)", c.Connect(netip.MustParseAddrPort("[::1]:9")), syscall.EINVAL)
		wantErrno(t, "udp4 Connect(127.255.255.255:9) without SO_BROADCAST",
			c.Connect(netip.MustParseAddrPort("127.255.255.255:9")), syscall.EACCES)
		wantErrno(t, "Connect(invalid)", c.Connect(netip.AddrPort{}), syscall.EINVAL)
		if got := c.RemoteAddr(); got != nil {
			t.Errorf("RemoteAddr() = %v after failed connects, want nil", got)
		}
	})
}

func TestSystemClosed(t *testing.T) {
	c := openKernel(t, "udp4", "127.0.0.1:0", false, false)
	opened := c.LocalAddrPort()
	c.Close()
	for _, tc := range []struct {
		call string
		err  error
	}{
		{"SetBroadcast", c.SetBroadcast(true)},
		{"SetTTL", c.SetTTL(1)},
		{"SetMulticastTTL", c.SetMulticastTTL(1)},
		{"SetMulticastLoopback", c.SetMulticastLoopback(true)},
		{"Connect", c.Connect(netip.MustParseAddrPort("127.0.0.1:9"))},
		{"Disconnect", c.Disconnect()},
		{"ReadBufferSize", errOf(c.ReadBufferSize())},
		{"WriteBufferSize", errOf(c.WriteBufferSize())},
	} {
		if !errors.Is(tc.err, net.ErrClosed) {
			t.Errorf("%s after Close = %v, want net.ErrClosed", tc.call, tc.err)
		}
	}
	if got := c.LocalAddrPort(); got != opened {
		t.Errorf("LocalAddrPort() after Close = %s, want %s", got, opened)
	}
	if got := c.RemoteAddr(); got != nil {
		t.Errorf("RemoteAddr() after Close = %v, want nil", got)
	}
}

// errOf drops a result to keep the error.
func errOf(_ int, err error) error { return err }

// TestSystemConcurrent runs option changes, Connect and Disconnect beside a
// blocked read (for -race), then checks that Close unblocks the read.
func TestSystemConcurrent(t *testing.T) {
	c := openKernel(t, "udp4", "127.0.0.1:0", false, false)
	peer := openKernel(t, "udp4", "127.0.0.1:0", false, false)
	readErr := make(chan error, 1)
	go func() {
		_, _, err := c.ReadFromUDPAddrPort(make([]byte, 16))
		readErr <- err
	}()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				c.SetTTL(9)
				c.SetBroadcast(true)
				c.ReadBufferSize()
				c.Connect(peer.LocalAddrPort())
				c.LocalAddr()
				c.RemoteAddrPort()
				c.Disconnect()
			}
		})
	}
	wg.Wait()
	c.Close()
	if err := <-readErr; !errors.Is(err, net.ErrClosed) {
		t.Errorf("blocked ReadFromUDPAddrPort after Close = %v, want net.ErrClosed", err)
	}
}

func TestSystemLookupNetIP(t *testing.T) {
	localhost4 := false
	if hosts, err := os.ReadFile("/etc/hosts"); err == nil {
		for _, line := range strings.Split(string(hosts), "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "127.0.0.1" && slices.Contains(f[1:], "localhost") {
				localhost4 = true
			}
		}
	}
	for _, tc := range []struct {
		network, host string
		want          []string // nil: a *net.DNSError with IsNotFound
		skip          bool
	}{
		{"ip4", "127.0.0.1", []string{"127.0.0.1"}, false},
		{"ip4", "::ffff:127.0.0.1", []string{"::ffff:127.0.0.1"}, false},
		{"ip6", "::1", []string{"::1"}, false},
		{"ip6", "fe80::1%lo", []string{"fe80::1%lo"}, false},
		{"ip", "127.0.0.1", []string{"127.0.0.1"}, false},
		{"ip4", "::1", nil, false},
		{"ip6", "127.0.0.1", nil, false},
		// Through the resolver: from /etc/hosts, never the network.
		{"ip4", "localhost", []string{"127.0.0.1"}, !localhost4},
	} {
		t.Run(tc.network+" "+tc.host, func(t *testing.T) {
			if tc.skip {
				t.Skip("/etc/hosts does not map localhost to 127.0.0.1")
			}
			addrs, err := System().LookupNetIP(context.Background(), tc.network, tc.host)
			if tc.want == nil {
				var dnsErr *net.DNSError
				if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
					t.Errorf("LookupNetIP(%q, %q) = %v, %v, want a not-found *net.DNSError", tc.network, tc.host, addrs, err)
				}
				return
			}
			var got []string
			for _, a := range addrs {
				got = append(got, a.String())
			}
			ok := err == nil && slices.Equal(got, tc.want)
			if tc.host == "localhost" { // whatever else the hosts file says
				ok = err == nil && slices.Contains(got, tc.want[0]) && !slices.ContainsFunc(addrs, func(a netip.Addr) bool { return !a.Is4() })
			}
			if !ok {
				t.Errorf("LookupNetIP(%q, %q) = %v, %v, want %v", tc.network, tc.host, got, err, tc.want)
			}
		})
	}
	if _, err := System().LookupNetIP(context.Background(), "tcp", "localhost"); err == nil {
		t.Errorf("LookupNetIP(\"tcp\", ..) = nil error, want an unknown network")
	}
}

// TestSystemNoFDLeak opens, uses and closes sockets, and fails to open
// others in every way, then counts the process's descriptors.
func TestSystemNoFDLeak(t *testing.T) {
	countFDs := func() int {
		t.Helper()
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skipf("cannot count descriptors: %v", err)
		}
		return len(ents)
	}
	ipv6 := true
	if pc, err := System().OpenUDP("udp6", netip.MustParseAddrPort("[::1]:0"), false, false); err != nil {
		ipv6 = false
	} else {
		pc.Close()
	}
	round := func() {
		held, err := System().OpenUDP("udp4", netip.MustParseAddrPort("127.0.0.1:0"), false, false)
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		heldAddr := held.(kernelConn).LocalAddrPort()
		opens := []struct {
			network, laddr string
			v6only         bool
		}{
			{"udp4", "127.0.0.1:0", false},
			{"udp4", "0.0.0.0:0", false},
			{"udp4", heldAddr.String(), false}, // EADDRINUSE
			{"udp4", "192.0.2.1:0", false},     // EADDRNOTAVAIL (or fine)
			{"udp4", "[::1]:0", false},         // EINVAL
			{"udp", "127.0.0.1:0", false},      // unknown network
		}
		if ipv6 {
			opens = append(opens, []struct {
				network, laddr string
				v6only         bool
			}{
				{"udp6", "[::1]:0", false},
				{"udp6", "[::]:0", true},
				{"udp6", "[::ffff:127.0.0.1]:0", true}, // EINVAL from the kernel
				{"udp6", "[fe80::1%lo]:0", false},      // EADDRNOTAVAIL
				{"udp6", "127.0.0.1:0", false},         // EINVAL
			}...)
		}
		for _, o := range opens {
			pc, err := System().OpenUDP(o.network, netip.MustParseAddrPort(o.laddr), false, o.v6only)
			if err != nil {
				continue
			}
			c := pc.(kernelConn)
			c.Connect(heldAddr)
			c.WriteToUDPAddrPort([]byte("x"), heldAddr)
			c.Disconnect()
			c.Close()
		}
	}
	round() // warm up whatever the runtime opens once (epoll, netlink)
	before := countFDs()
	for range 10 {
		round()
	}
	if after := countFDs(); after > before {
		t.Errorf("%d descriptors open after 10 rounds, %d before: leaked %d", after, before, after-before)
	}
}
