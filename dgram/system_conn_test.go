//go:build linux && !386

package dgram

import (
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

// Kernel conns: options, connect/disconnect, closing, concurrency,
// lookups and fd hygiene. The helpers are in system_test.go.

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
