package stack_test

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/dgramlab/dgramlab/stack"
)

// loHost is a host with only its loopback interface.
func loHost(t testing.TB) *stack.Host {
	t.Helper()
	h, err := stack.NewHost(stack.HostOptions{Name: "lo-only"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func send(t testing.TB, c *stack.UDPConn, b string, to netip.AddrPort) {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort([]byte(b), to); err != nil {
		t.Fatalf("WriteToUDPAddrPort(%q, %s) = %v", b, to, err)
	}
}

// recvErr reads expecting an error.
func recvErr(t testing.TB, c *stack.UDPConn) error {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	n, from, err := c.ReadFromUDPAddrPort(make([]byte, 100))
	if err == nil {
		t.Fatalf("read %d bytes from %s, want an error", n, from)
	}
	return err
}

// Disconnect resets what bind did not fix, as Linux's connect(AF_UNSPEC).
func TestDisconnectResetsLocalAddress(t *testing.T) {
	h := loHost(t)
	fixed := listen(t, h, "udp4", "127.0.0.1:0")
	fixedPort := fixed.LocalAddrPort().Port()
	fixed.Close()
	for _, tc := range []struct {
		network, laddr, peer string
		connected, after     string // local addresses; "P" keeps the port
		keepsPort            bool
	}{
		{"udp4", "0.0.0.0:0", "127.0.0.1", "127.0.0.1", "0.0.0.0", false},
		{"udp4", "127.0.0.1:0", "127.0.0.1", "127.0.0.1", "127.0.0.1", false},
		{"udp4", netip.AddrPortFrom(netip.IPv4Unspecified(), fixedPort).String(), "127.0.0.1", "127.0.0.1", "0.0.0.0", true},
		{"udp6", "[::]:0", "::1", "::1", "::", false},
		{"udp6", "[::]:0", "127.0.0.1", "::ffff:127.0.0.1", "::", false},
	} {
		t.Run(tc.network+" "+tc.laddr+" to "+tc.peer, func(t *testing.T) {
			peerNet := "udp4"
			if netip.MustParseAddr(tc.peer).Is6() {
				peerNet = "udp6"
			}
			peer := listen(t, h, peerNet, netip.AddrPortFrom(netip.MustParseAddr(tc.peer), 0).String())
			c := listen(t, h, tc.network, tc.laddr)
			port := c.LocalAddrPort().Port()
			if err := c.Connect(peer.LocalAddrPort()); err != nil {
				t.Fatalf("Connect = %v", err)
			}
			if got, want := c.LocalAddrPort(), netip.AddrPortFrom(netip.MustParseAddr(tc.connected), port); got != want {
				t.Errorf("LocalAddrPort() = %s once connected, want %s", got, want)
			}
			// Something queued before Disconnect is still read after it.
			send(t, peer, "early", netip.AddrPortFrom(netip.MustParseAddr(tc.connected), port))
			if err := c.Disconnect(); err != nil {
				t.Fatalf("Disconnect = %v", err)
			}
			wantPort := uint16(0)
			if tc.keepsPort {
				wantPort = port
			}
			if got, want := c.LocalAddrPort(), netip.AddrPortFrom(netip.MustParseAddr(tc.after), wantPort); got != want {
				t.Errorf("LocalAddrPort() = %s after Disconnect, want %s", got, want)
			}
			if got := c.RemoteAddrPort(); got.IsValid() {
				t.Errorf("RemoteAddrPort() = %s after Disconnect", got)
			}
			if err := c.Disconnect(); err != nil {
				t.Errorf("second Disconnect = %v", err)
			}
			if got, _ := recv(t, c); string(got) != "early" {
				t.Errorf("read %q after Disconnect, want \"early\"", got)
			}
			// The next send binds again; replies reach the new port.
			send(t, c, "again", peer.LocalAddrPort())
			got, from := recv(t, peer)
			if string(got) != "again" || from.Port() == 0 || (tc.keepsPort && from.Port() != port) {
				t.Fatalf("peer got %q from %s", got, from)
			}
			if c.LocalAddrPort().Port() != from.Port() {
				t.Errorf("LocalAddrPort() = %s, peer saw %s", c.LocalAddrPort(), from)
			}
			send(t, peer, "reply", from)
			if got, _ := recv(t, c); string(got) != "reply" {
				t.Errorf("got %q, want \"reply\"", got)
			}
		})
	}
}

// A connected conn learns of a closed port by ICMP: the next read or write
// fails with ECONNREFUSED, once; the host counts the ICMP.
func TestPortUnreachable(t *testing.T) {
	for _, tc := range []struct{ network, addr string }{{"udp4", "127.0.0.1"}, {"udp6", "::1"}} {
		t.Run(tc.network, func(t *testing.T) {
			h := loHost(t)
			gone := listen(t, h, tc.network, netip.AddrPortFrom(netip.MustParseAddr(tc.addr), 0).String())
			closed := gone.LocalAddrPort()
			gone.Close()
			c := listen(t, h, tc.network, netip.AddrPortFrom(netip.MustParseAddr(tc.addr), 0).String())
			// Unconnected: nothing is reported.
			send(t, c, "nobody", closed)
			if err := c.Connect(closed); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write([]byte("anyone?")); err != nil {
				t.Fatalf("Write = %v", err)
			}
			if err := c.WaitReadable(); err != nil {
				t.Fatalf("WaitReadable = %v", err)
			}
			if err := recvErr(t, c); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("read = %v, want ECONNREFUSED", err)
			}
			// The error goes to the first of a read or a write.
			c.Write([]byte("1"))
			if _, err := c.Write([]byte("2")); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("second Write = %v, want ECONNREFUSED", err)
			}
			if _, _, err := c.TryReadFromUDPAddrPort(make([]byte, 10)); !errors.Is(err, syscall.EAGAIN) {
				t.Fatalf("TryRead = %v, want EAGAIN", err)
			}
			// Disconnect keeps a pending error, even when it replaces the
			// endpoint.
			c.Write([]byte("3"))
			c.Disconnect()
			if err := recvErr(t, c); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("read after Disconnect = %v, want ECONNREFUSED", err)
			}
			st := h.Stats()
			icmp := st.ICMP.V4
			if tc.network == "udp6" {
				icmp = st.ICMP.V6
			}
			if st.UDP.NoListener != 4 || icmp.DstUnreachableSent != 4 || icmp.DstUnreachableReceived != 4 {
				t.Errorf("Stats() = %+v, want 4 datagrams without listener and 4 ICMP errors sent and received", st)
			}
		})
	}
}

func TestBufferSizes(t *testing.T) {
	c := listen(t, loHost(t), "udp4", "127.0.0.1:0")
	for _, tc := range []struct {
		name string
		set  func(int) error
		get  func() (int, error)
		min  int
	}{{"read", c.SetReadBuffer, c.ReadBufferSize, 2304}, {"write", c.SetWriteBuffer, c.WriteBufferSize, 4608}} {
		if n, err := tc.get(); n != 212992 || err != nil {
			t.Errorf("%s buffer = %d, %v by default, want 212992", tc.name, n, err)
		}
		for _, v := range []struct{ set, want int }{{8192, 16384}, {1, tc.min}, {100000000, 2 * stack.MaxSocketBuffer}} {
			if err := tc.set(v.set); err != nil {
				t.Fatal(err)
			}
			if n, _ := tc.get(); n != v.want {
				t.Errorf("%s buffer = %d after setting %d, want %d", tc.name, n, v.set, v.want)
			}
		}
	}
}
