package integration

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/dgramlab/dgramlab/dgram"
	"github.com/dgramlab/dgramlab/stack"
)

// Allocation benchmarks: one op is one 64-byte datagram end to end, so
// allocs/op and B/op (with -benchmem) are per datagram, sender and receiver
// together. Datagrams go in windows of allocWindow, each window waiting for
// all of its datagrams to arrive, so no receive buffer can overflow; a lost
// datagram fails the benchmark instead of hanging it.

const (
	allocWindow  = 32
	allocPayload = 64
	// allocLost is how long a window may wait for its datagrams.
	allocLost = 10 * time.Second
)

// switchHosts returns two hosts, 10.0.0.1 and 10.0.0.2, on a Switch.
func switchHosts(b *testing.B) (a, c *stack.Host) {
	b.Helper()
	sw := stack.NewSwitch(stack.SwitchOptions{})
	var hosts [2]*stack.Host
	for i := range hosts {
		h, err := stack.NewHost(stack.HostOptions{Name: "alloc" + string(rune('a'+i))})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { h.Close() })
		p, err := sw.NewPort(stack.PortOptions{})
		if err != nil {
			b.Fatal(err)
		}
		addr := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 24)
		if _, err := h.AddNIC(p, stack.NICOptions{Addresses: []netip.Prefix{addr}}); err != nil {
			b.Fatal(err)
		}
		hosts[i] = h
	}
	return hosts[0], hosts[1]
}

// startLoop binds a udp4 socket on network at address:port on a loop of
// its own, run on its own goroutine (like a process of its own), and
// returns it once listening. The loop stops at cleanup.
func startLoop(b *testing.B, network dgram.Network, address string, port int, onMessage func([]byte, dgram.RemoteInfo)) (*dgram.Loop, *dgram.Socket) {
	b.Helper()
	loop := dgram.NewLoop(network)
	s, err := loop.CreateSocket(dgram.UDP4, onMessage)
	if err != nil {
		b.Fatal(err)
	}
	listening := make(chan struct{})
	if err := s.Bind(port, address, func() { close(listening) }); err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- loop.Run(context.Background()) }()
	b.Cleanup(func() {
		s.Close(nil)
		if err := <-done; err != nil {
			b.Errorf("Run = %v", err)
		}
	})
	select {
	case <-listening:
	case err := <-done:
		b.Fatalf("Bind(%d, %q): Run returned %v before 'listening'", port, address, err)
	}
	return loop, s
}

// benchDgram sends b.N datagrams from tx's loop to rx's 'message'
// listener, which signals got.
func benchDgram(b *testing.B, txLoop *dgram.Loop, tx *dgram.Socket, got <-chan struct{}, port int, address string) {
	msg := make([]byte, allocPayload)
	k := 0 // datagrams in the current window, read on the loop
	sendWindow := func() {
		for i := 0; i < k; i++ {
			if err := tx.Send(msg, port, address, nil); err != nil {
				b.Error(err)
			}
		}
	}
	sendWindows(b, got, func(n int) {
		k = n
		txLoop.Post(sendWindow)
	})
	if st := tx.Stats(); st.SendErrors != 0 {
		b.Fatalf("%d sends failed", st.SendErrors)
	}
}

// BenchmarkAllocsDgramSwitch: dgram Send on host 10.0.0.1 (its own loop)
// → 'message' on host 10.0.0.2 (its own loop), over a Switch.
func BenchmarkAllocsDgramSwitch(b *testing.B) {
	ha, hb := switchHosts(b)
	got := make(chan struct{}, allocWindow)
	startLoop(b, hb, "", 9000, func([]byte, dgram.RemoteInfo) { got <- struct{}{} })
	txLoop, tx := startLoop(b, ha, "", 0, nil)
	benchDgram(b, txLoop, tx, got, 9000, "10.0.0.2")
}

// BenchmarkAllocsDgramKernel is BenchmarkAllocsDgramSwitch on the kernel's
// sockets (dgram.System(), 127.0.0.1): what the dgram layer itself costs,
// without a virtual stack.
func BenchmarkAllocsDgramKernel(b *testing.B) {
	got := make(chan struct{}, allocWindow)
	_, rx := startLoop(b, dgram.System(), "127.0.0.1", 0, func([]byte, dgram.RemoteInfo) { got <- struct{}{} })
	addr, err := rx.Address()
	if err != nil {
		b.Fatal(err)
	}
	txLoop, tx := startLoop(b, dgram.System(), "127.0.0.1", 0, nil)
	benchDgram(b, txLoop, tx, got, addr.Port, "127.0.0.1")
}

// BenchmarkAllocsUDPConnSwitch: stack.UDPConn WriteToUDPAddrPort on host
// 10.0.0.1 → ReadFromUDPAddrPort on host 10.0.0.2 (a reader goroutine),
// over a Switch.
func BenchmarkAllocsUDPConnSwitch(b *testing.B) {
	dst := netip.MustParseAddrPort("10.0.0.2:9000")
	benchUDPConn(b,
		func(c *stack.UDPConn, msg []byte) error { _, err := c.WriteToUDPAddrPort(msg, dst); return err },
		func(c *stack.UDPConn, buf []byte) error { _, _, err := c.ReadFromUDPAddrPort(buf); return err })
}

// BenchmarkAllocsUDPConnSwitchPacketConn is BenchmarkAllocsUDPConnSwitch
// with net.PacketConn's WriteTo and ReadFrom, which take and return a
// *net.UDPAddr (ReadFrom allocates the one it returns, as package net's
// does).
func BenchmarkAllocsUDPConnSwitchPacketConn(b *testing.B) {
	dst := net.UDPAddrFromAddrPort(netip.MustParseAddrPort("10.0.0.2:9000"))
	benchUDPConn(b,
		func(c *stack.UDPConn, msg []byte) error { _, err := c.WriteTo(msg, dst); return err },
		func(c *stack.UDPConn, buf []byte) error { _, _, err := c.ReadFrom(buf); return err })
}

// benchUDPConn sends b.N datagrams with write from a conn on host 10.0.0.1
// to one on 10.0.0.2:9000, which a goroutine reads with read.
func benchUDPConn(b *testing.B, write func(c *stack.UDPConn, msg []byte) error, read func(c *stack.UDPConn, buf []byte) error) {
	ha, hb := switchHosts(b)
	tx, err := ha.ListenUDP("udp4", netip.MustParseAddrPort("10.0.0.1:0"))
	if err != nil {
		b.Fatal(err)
	}
	rx, err := hb.ListenUDP("udp4", netip.MustParseAddrPort("10.0.0.2:9000"))
	if err != nil {
		b.Fatal(err)
	}
	got := make(chan struct{}, allocWindow)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		buf := make([]byte, 2048)
		for {
			if err := read(rx, buf); err != nil {
				return // closed
			}
			got <- struct{}{}
		}
	}()
	b.Cleanup(func() { rx.Close(); <-readerDone })
	msg := make([]byte, allocPayload)
	sendWindows(b, got, func(n int) {
		for range n {
			if err := write(tx, msg); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// sendWindows times b.N datagrams sent in windows of allocWindow: send(n)
// sends n of them, and got receives a signal for each that arrives. A
// first window of one resolves ARP before the timer starts.
func sendWindows(b *testing.B, got <-chan struct{}, send func(n int)) {
	timer := time.NewTimer(allocLost)
	defer timer.Stop()
	window := func(n int) {
		send(n)
		timer.Reset(allocLost)
		for i := range n {
			select {
			case <-got:
			case <-timer.C:
				b.Fatalf("%d of a window of %d datagrams did not arrive within %v", n-i, n, allocLost)
			}
		}
	}
	window(1)
	b.ReportAllocs()
	b.ResetTimer()
	for sent := 0; sent < b.N; sent += allocWindow {
		window(min(allocWindow, b.N-sent))
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "datagrams/s")
}
