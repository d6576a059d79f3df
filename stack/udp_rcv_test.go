package stack_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"syscall"
	"testing"

	"github.com/dgramlab/dgramlab/stack"
	"github.com/dgramlab/dgramlab/wire"
)

// fill sends count datagrams of size bytes from a fresh conn to c, which
// nobody reads, and returns how many c then holds.
func fill(t *testing.T, h *stack.Host, c *stack.UDPConn, size, count int) int {
	t.Helper()
	network := "udp4"
	if c.LocalAddrPort().Addr().Is6() {
		network = "udp6"
	}
	from := listen(t, h, network, netip.AddrPortFrom(c.LocalAddrPort().Addr(), 0).String())
	payload := make([]byte, size)
	for range count {
		send(t, from, string(payload), c.LocalAddrPort())
	}
	n := 0
	buf := make([]byte, size+1)
	for {
		m, _, err := c.TryReadFromUDPAddrPort(buf)
		if errors.Is(err, syscall.EAGAIN) {
			return n
		}
		if err != nil || m != size {
			t.Fatalf("read = %d, %v, want %d bytes", m, err, size)
		}
		n++
	}
}

// A receive buffer holds as many datagrams as a Linux socket's of the same
// size: each costs what the kernel allocates for it, zero-length ones too,
// and the rest are counted as buffer-full. The figures were measured on
// Linux 6.18 (see rcvTruesize).
func TestReceiveBufferChargedLikeLinux(t *testing.T) {
	for _, tc := range []struct {
		rcvbuf int // SetReadBuffer's argument; 0: the default
		queued map[int]int
	}{
		{0, map[int]int{0: 256, 1: 256, 64: 256, 512: 166, 1400: 92, 8000: 12}},
		{8192, map[int]int{0: 19, 1: 19, 64: 19, 512: 12, 1400: 7, 8000: 1}},
		{4096, map[int]int{0: 9, 1: 9, 64: 9, 512: 6, 1400: 3, 8000: 1}},
		{65536, map[int]int{0: 157, 1: 157, 64: 157, 512: 102, 1400: 56, 8000: 7}},
	} {
		for _, network := range []string{"udp4", "udp6"} {
			for _, size := range []int{0, 1, 64, 512, 1400, 8000} {
				t.Run(fmt.Sprintf("%s/rcvbuf=%d/%dB", network, tc.rcvbuf, size), func(t *testing.T) {
					h := loHost(t)
					addr := "127.0.0.1:0"
					if network == "udp6" {
						addr = "[::1]:0"
					}
					c := listen(t, h, network, addr)
					if tc.rcvbuf != 0 {
						if err := c.SetReadBuffer(tc.rcvbuf); err != nil {
							t.Fatal(err)
						}
					}
					const sent = 300
					got := fill(t, h, c, size, sent)
					want := tc.queued[size]
					if got != want {
						t.Errorf("queued %d datagrams of %d bytes, want %d (as Linux)", got, size, want)
					}
					st := h.Stats().UDP
					if st.BufferFull != uint64(sent-want) || st.Received != sent {
						t.Errorf("Stats().UDP = %+v, want %d received and %d buffer-full", st, sent, sent-want)
					}
				})
			}
		}
	}
}

// A read into an empty buffer takes the datagram and returns 0 bytes with
// its sender, as Go's sockets do; a short buffer truncates.
func TestReadShortBuffers(t *testing.T) {
	h := loHost(t)
	c := listen(t, h, "udp4", "127.0.0.1:0")
	from := listen(t, h, "udp4", "127.0.0.1:0")
	send(t, from, "first", c.LocalAddrPort())
	send(t, from, "second", c.LocalAddrPort())
	n, addr, err := c.ReadFromUDPAddrPort(nil)
	if n != 0 || err != nil || addr != from.LocalAddrPort() {
		t.Fatalf("ReadFromUDPAddrPort(nil) = %d, %v, %v, want 0, %v, nil", n, addr, err, from.LocalAddrPort())
	}
	buf := make([]byte, 3)
	n, addr, err = c.ReadFromUDPAddrPort(buf)
	if string(buf[:n]) != "sec" || err != nil || addr != from.LocalAddrPort() {
		t.Fatalf("ReadFromUDPAddrPort(3 bytes) = %q, %v, %v, want \"sec\"", buf[:n], addr, err)
	}
	if _, _, err := c.TryReadFromUDPAddrPort(buf); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("TryRead = %v, want EAGAIN: both datagrams were read", err)
	}
}

// Datagrams that arrive while a conn closes are all counted: delivered and
// read, buffer-full, or closed-unread; none disappears.
func TestCloseUnderFloodCountsEverything(t *testing.T) {
	h := loHost(t)
	const senders, each = 2, 3000
	for round := range 10 {
		c := listen(t, h, "udp4", "127.0.0.1:0")
		to := c.LocalAddrPort()
		before := h.Stats().UDP
		var wg sync.WaitGroup
		var read int
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64)
			for {
				if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
					return
				}
				read++
			}
		}()
		var sent [senders]int
		for i := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := listen(t, h, "udp4", "127.0.0.1:0")
				for range each {
					if _, err := s.WriteToUDPAddrPort([]byte("x"), to); err == nil {
						sent[i]++
					}
				}
			}()
		}
		// Close somewhere in the middle of the flood.
		for h.Stats().UDP.Received-before.Received < each/2 {
		}
		c.Close()
		wg.Wait()
		st := h.Stats().UDP
		total := sent[0] + sent[1]
		got := uint64(read) + (st.BufferFull - before.BufferFull) + (st.ClosedUnread - before.ClosedUnread) + (st.NoListener - before.NoListener)
		if got != uint64(total) || st.Received-before.Received+st.NoListener-before.NoListener != uint64(total) {
			t.Fatalf("round %d: sent %d; read %d + buffer-full %d + closed-unread %d + no-listener %d = %d",
				round, total, read, st.BufferFull-before.BufferFull, st.ClosedUnread-before.ClosedUnread, st.NoListener-before.NoListener, got)
		}
	}
}

// Disconnect keeps what was received, in order, without copying it.
func TestDisconnectKeepsQueueInOrder(t *testing.T) {
	h := loHost(t)
	c := listen(t, h, "udp4", "127.0.0.1:0")
	peer := listen(t, h, "udp4", "127.0.0.1:0")
	other := listen(t, h, "udp4", "127.0.0.1:0")
	if err := c.Connect(peer.LocalAddrPort()); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		send(t, peer, fmt.Sprint(i), c.LocalAddrPort())
	}
	send(t, other, "filtered", c.LocalAddrPort()) // not from the peer: no listener
	if err := c.Disconnect(); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		b, _ := recv(t, c)
		if !bytes.Equal(b, []byte(fmt.Sprint(i))) {
			t.Fatalf("datagram %d = %q after Disconnect", i, b)
		}
	}
	if st := h.Stats().UDP; st.NoListener != 1 {
		t.Errorf("Stats().UDP = %+v, want the datagram from another peer counted without listener", st)
	}
}

// A datagram whose UDP checksum is bad is dropped as such, never answered
// with a port unreachable, whichever port it names.
func TestBadChecksumIsNotNoListener(t *testing.T) {
	_, hosts, ports := lan(t, 1500, 1500)
	c := listen(t, hosts[1], "udp4", "0.0.0.0:9000")
	from := listen(t, hosts[0], "udp4", "0.0.0.0:0")
	// Corrupt one byte of the UDP destination port of every frame a
	// sends, by an impairment that flips a bit.
	if err := ports[0].SetImpairments(wire.Outbound, stack.Impairments{Corrupt: 1, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		send(t, from, "corrupted", netip.MustParseAddrPort("10.0.0.2:9000"))
	}
	_ = c
	st := hosts[1].Stats()
	if st.UDP.NoListener != 0 || st.ICMP.V4.DstUnreachableSent != 0 {
		t.Errorf("Stats() = %+v: a corrupted datagram was counted without listener or answered", st)
	}
}
