package stack_test

import (
	"errors"
	"net/netip"
	"os"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/link/nested"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/dgramlab/dgramlab/stack"
)

// Unconnected writes go through routes the conn caches; a route added
// afterwards takes effect from the next datagram on, as it does for a
// socket that looks its route up for every write.
func TestUnconnectedWriteFollowsRouteChanges(t *testing.T) {
	swA := stack.NewSwitch(stack.SwitchOptions{Name: "a"})
	swB := stack.NewSwitch(stack.SwitchOptions{Name: "b"})
	newHost := func(name string) *stack.Host {
		h, err := stack.NewHost(stack.HostOptions{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return h
	}
	addNIC := func(h *stack.Host, sw *stack.Switch, addr string) *stack.NIC {
		p, err := sw.NewPort(stack.PortOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n, err := h.AddNIC(p, stack.NICOptions{Addresses: []netip.Prefix{netip.MustParsePrefix(addr)}})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// The sender is on both switches; 192.168.9.9 is a host on each.
	tx := newHost("tx")
	viaA := addNIC(tx, swA, "10.0.1.1/24")
	viaB := addNIC(tx, swB, "10.0.2.1/24")
	rxA, rxB := newHost("rxa"), newHost("rxb")
	addNIC(rxA, swA, "192.168.9.9/32")
	addNIC(rxB, swB, "192.168.9.9/32")
	for _, r := range []struct {
		h   *stack.Host
		nic *stack.NIC
	}{{rxA, rxA.NICs()[1]}, {rxB, rxB.NICs()[1]}} {
		if err := r.h.AddRoute(stack.Route{Destination: netip.MustParsePrefix("10.0.0.0/8"), NIC: r.nic}); err != nil {
			t.Fatal(err)
		}
	}
	connA := listen(t, rxA, "udp4", "0.0.0.0:9000")
	connB := listen(t, rxB, "udp4", "0.0.0.0:9000")
	c := listen(t, tx, "udp4", "0.0.0.0:0")
	dst := netip.MustParseAddrPort("192.168.9.9:9000")

	if _, err := c.WriteToUDPAddrPort([]byte("none"), dst); err == nil {
		t.Fatalf("WriteToUDPAddrPort with no route = nil, want ENETUNREACH")
	}
	if err := tx.AddRoute(stack.Route{Destination: netip.MustParsePrefix("192.168.0.0/16"), NIC: viaA}); err != nil {
		t.Fatal(err)
	}
	send(t, c, "first", dst)
	if b, _ := recv(t, connA); string(b) != "first" {
		t.Fatalf("rxa read %q, want \"first\"", b)
	}
	// A longer prefix through the other NIC wins from now on.
	if err := tx.AddRoute(stack.Route{Destination: netip.MustParsePrefix("192.168.9.0/24"), NIC: viaB}); err != nil {
		t.Fatal(err)
	}
	send(t, c, "second", dst)
	if b, _ := recv(t, connB); string(b) != "second" {
		t.Fatalf("rxb read %q, want \"second\"", b)
	}
	if n := viaA.Link().(*stack.Port).Counters().TxFrames; n != 2 { // ARP request, then "first"
		t.Errorf("%d frames left through %s, want 2", n, viaA)
	}
}

// holdingLink keeps a reference to every packet it is given, until release.
type holdingLink struct {
	nested.Endpoint
	mu   sync.Mutex
	held []*gvstack.PacketBuffer
}

func (l *holdingLink) WritePackets(pkts gvstack.PacketBufferList) (int, tcpip.Error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, pkt := range pkts.AsSlice() {
		l.held = append(l.held, pkt.IncRef())
	}
	return pkts.Len(), nil
}

func (l *holdingLink) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, pkt := range l.held {
		pkt.DecRef()
	}
	l.held = nil
}

// Datagrams that a link holds hold the conn's send buffer until the link
// releases them, as in gVisor's endpoint and in Linux: once it is full,
// writes block until there is room again.
func TestUnconnectedWriteSendBuffer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, err := stack.NewHost(stack.HostOptions{Name: "q"})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		inner := channel.New(1, 1500, "")
		defer inner.Close()
		link := &holdingLink{}
		link.Init(inner, link)
		if _, err := h.AddNIC(link, stack.NICOptions{Addresses: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")}}); err != nil {
			t.Fatal(err)
		}
		c := listen(t, h, "udp4", "10.0.0.1:0")
		if err := c.SetWriteBuffer(1); err != nil { // the minimum, 4608 bytes
			t.Fatal(err)
		}
		dst := netip.MustParseAddrPort("10.0.0.2:9")
		msg := make([]byte, 1000)
		c.SetWriteDeadline(time.Now().Add(time.Second))
		sent := 0
		for ; sent < 64; sent++ {
			if _, err = c.WriteToUDPAddrPort(msg, dst); err != nil {
				break
			}
		}
		// Each datagram takes 1028 bytes (with its headers); one is
		// accepted as long as any room is left.
		if !errors.Is(err, os.ErrDeadlineExceeded) || sent != 5 {
			t.Fatalf("%d writes succeeded, then %v; want 5, then a timeout (the buffer full)", sent, err)
		}
		done := make(chan error)
		go func() {
			c.SetWriteDeadline(time.Now().Add(time.Minute))
			_, err := c.WriteToUDPAddrPort(msg, dst)
			done <- err
		}()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("write with the buffer full returned %v, want it to block", err)
		default:
		}
		link.release()
		if err := <-done; err != nil {
			t.Fatalf("write once the link released the datagrams = %v, want nil", err)
		}
	})
}

// Conns of one host may send from several goroutines at once (run with
// -race: each IPv4 datagram draws an ID from the host's random source).
func TestConcurrentWriters(t *testing.T) {
	_, hosts, _ := lan(t, 1500, 1500)
	rx := listen(t, hosts[1], "udp4", "10.0.0.2:9000")
	const writers, each = 4, 50
	var wg sync.WaitGroup
	for range writers {
		c := listen(t, hosts[0], "udp4", "10.0.0.1:0")
		wg.Go(func() {
			for range each {
				if _, err := c.WriteToUDPAddrPort([]byte("x"), rx.LocalAddrPort()); err != nil {
					t.Errorf("WriteToUDPAddrPort = %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	for range writers * each {
		recv(t, rx)
	}
}
