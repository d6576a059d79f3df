package stack_test

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/dgramlab/dgramlab/stack"
	"github.com/dgramlab/dgramlab/wire"
)

// Closing a host fails its conns: a blocked read returns an error that
// matches net.ErrClosed and ENETDOWN, so do later calls, and the user's
// first Close still returns nil.
func TestHostCloseFailsConns(t *testing.T) {
	_, hosts, _ := lan(t, 1500)
	c := listen(t, hosts[0], "udp4", "0.0.0.0:7")
	readErr := make(chan error, 1)
	go func() {
		_, _, err := c.ReadFromUDPAddrPort(make([]byte, 10))
		readErr <- err
	}()
	hosts[0].Close()
	var err error
	select {
	case err = <-readErr:
	case <-time.After(5 * time.Second):
		t.Fatal("a blocked read did not return after Host.Close")
	}
	if !errors.Is(err, net.ErrClosed) || !errors.Is(err, syscall.ENETDOWN) {
		t.Errorf("read after Host.Close = %v, want an error matching net.ErrClosed and ENETDOWN", err)
	}
	var errno syscall.Errno
	if !errors.As(err, &errno) || errno != syscall.ENETDOWN {
		t.Errorf("errors.As(%v, errno) = %v, want ENETDOWN", err, errno)
	}
	if _, err := c.WriteToUDPAddrPort([]byte("x"), netip.MustParseAddrPort("10.0.0.9:7")); !errors.Is(err, syscall.ENETDOWN) {
		t.Errorf("write after Host.Close = %v, want ENETDOWN", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("first Close after Host.Close = %v, want nil", err)
	}
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close = %v, want net.ErrClosed", err)
	}
}

// A link that stops by itself, like a TUN device deleted under the host.
type stoppingPort struct {
	*stack.Port
	done chan struct{}
	err  error
}

func (p *stoppingPort) Done() <-chan struct{} { return p.done }
func (p *stoppingPort) Err() error            { return p.err }

// When a NIC's link stops by itself, the conns bound to its addresses or
// to a wildcard fail with ENETDOWN; a conn bound to loopback keeps
// working, and new sends through the NIC find no route.
func TestStoppedLinkFailsItsConns(t *testing.T) {
	sw := stack.NewSwitch(stack.SwitchOptions{Name: "sw"})
	h, err := stack.NewHost(stack.HostOptions{Name: "h"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	port, err := sw.NewPort(stack.PortOptions{})
	if err != nil {
		t.Fatal(err)
	}
	link := &stoppingPort{Port: port, done: make(chan struct{}), err: errors.New("device vanished")}
	if _, err := h.AddNIC(link, stack.NICOptions{Addresses: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")}}); err != nil {
		t.Fatal(err)
	}
	wild := listen(t, h, "udp4", "0.0.0.0:7")
	bound := listen(t, h, "udp4", "10.0.0.1:8")
	lo := listen(t, h, "udp4", "127.0.0.1:9")

	close(link.done)
	for _, c := range []*stack.UDPConn{wild, bound} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _, err := c.ReadFromUDPAddrPort(make([]byte, 10))
		if !errors.Is(err, syscall.ENETDOWN) || !errors.Is(err, net.ErrClosed) {
			t.Errorf("%v: read after the link stopped = %v, want ENETDOWN", c, err)
		}
	}
	if _, err := lo.WriteToUDPAddrPort([]byte("still here"), netip.MustParseAddrPort("127.0.0.1:9")); err != nil {
		t.Fatalf("loopback write = %v", err)
	}
	if got, _ := recv(t, lo); string(got) != "still here" {
		t.Errorf("loopback conn got %q", got)
	}
	fresh := listen(t, h, "udp4", "0.0.0.0:0")
	if _, err := fresh.WriteToUDPAddrPort([]byte("x"), netip.MustParseAddrPort("10.0.0.2:7")); !errors.Is(err, syscall.ENETUNREACH) {
		t.Errorf("write through the stopped NIC = %v, want ENETUNREACH", err)
	}
}

// Datagrams a conn holds unread when it is closed are counted, not lost
// silently.
func TestCloseCountsUnread(t *testing.T) {
	_, hosts, _ := lan(t, 1500, 1500)
	rx := listen(t, hosts[1], "udp4", "10.0.0.2:7")
	tx := listen(t, hosts[0], "udp4", "10.0.0.1:0")
	send := func() {
		if _, err := tx.WriteToUDPAddrPort([]byte("unread"), netip.MustParseAddrPort("10.0.0.2:7")); err != nil {
			t.Fatal(err)
		}
	}
	send()
	recv(t, rx) // ARP has resolved: the next ones arrive within WriteTo
	for range 3 {
		send()
	}
	rx.Close()
	if st := hosts[1].Stats().UDP; st.ClosedUnread != 3 || st.Received != 4 {
		t.Errorf("stats %+v, want 4 received and 3 closed unread", st)
	}
}

// A frame a Switch can send out of no port is counted at its ingress port.
func TestSwitchNoDestination(t *testing.T) {
	_, hosts, ports := lan(t, 1500, 1500)
	ports[1].Remove()
	dropped := make(chan wire.DropReason, 10)
	ports[0].AddDropHook(func(_ []byte, dir wire.Direction, reason wire.DropReason) {
		if dir == wire.Outbound {
			dropped <- reason
		}
	})
	tx := listen(t, hosts[0], "udp4", "10.0.0.1:0")
	if _, err := tx.WriteToUDPAddrPort([]byte("x"), netip.MustParseAddrPort("10.0.0.2:7")); err != nil {
		t.Fatal(err)
	}
	if r := <-dropped; r != wire.DropNoDestination { // the ARP request
		t.Errorf("drop reason %v, want %v", r, wire.DropNoDestination)
	}
	if n := ports[0].Counters().Drops[wire.DropNoDestination]; n == 0 {
		t.Errorf("no no-destination drop counted")
	}
}

// Regression (found in review): failing the conns of a stopped link took
// each conn's local address under the host's lock, which a link-local
// address (it carries a zone, the NIC's name) needs too: a deadlock.
func TestStoppedLinkWithLinkLocalConn(t *testing.T) {
	sw := stack.NewSwitch(stack.SwitchOptions{Name: "sw"})
	h, err := stack.NewHost(stack.HostOptions{Name: "h"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	port, err := sw.NewPort(stack.PortOptions{})
	if err != nil {
		t.Fatal(err)
	}
	link := &stoppingPort{Port: port, done: make(chan struct{}), err: errors.New("device vanished")}
	if _, err := h.AddNIC(link, stack.NICOptions{Name: "eth0", Addresses: []netip.Prefix{netip.MustParsePrefix("fe80::1/64")}}); err != nil {
		t.Fatal(err)
	}
	c := listen(t, h, "udp6", "[fe80::1%eth0]:7")
	close(link.done)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := c.ReadFromUDPAddrPort(make([]byte, 10)); !errors.Is(err, syscall.ENETDOWN) {
		t.Errorf("read on a link-local conn after its link stopped = %v, want ENETDOWN", err)
	}
}
