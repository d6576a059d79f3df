package main

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/dgramlab/dgramlab/dgram"
	"github.com/dgramlab/dgramlab/stack"
	"github.com/dgramlab/dgramlab/tun"
)

// tunNetwork is the dgram network of a host whose only NIC is a TUN/TAP
// device. When the device vanishes (ip link del), every conn opened
// through it fails: it is closed under its socket, and what the socket's
// reader and later sends get is ENETDOWN instead of "closed". dgram turns
// the reader's error into an 'error' event ("recvmsg ENETDOWN"), which is
// how a device that vanished reaches the sockets; sends made meanwhile get
// ENETUNREACH from the device in their callback. (This belongs in package
// stack: a host could fail the conns of a NIC whose link reports it is
// gone; see Device.Done.)
//
// A watcher goroutine waits for the device to stop; it exits when the
// device vanishes or is closed (closing the host closes it).
type tunNetwork struct {
	*stack.Host
	dev *tun.Device

	mu      sync.Mutex
	conns   map[*tunConn]struct{}
	failed  atomic.Bool
	watched chan struct{} // closed when the watcher exits
}

var _ dgram.Network = (*tunNetwork)(nil)

func newTunNetwork(h *stack.Host, dev *tun.Device) *tunNetwork {
	n := &tunNetwork{Host: h, dev: dev, conns: make(map[*tunConn]struct{}), watched: make(chan struct{})}
	go n.watch()
	return n
}

func (n *tunNetwork) watch() {
	defer close(n.watched)
	<-n.dev.Done()
	if n.dev.Err() == nil {
		return // closed
	}
	n.mu.Lock()
	n.failed.Store(true)
	conns := make([]*tunConn, 0, len(n.conns))
	for c := range n.conns {
		conns = append(conns, c)
	}
	n.mu.Unlock()
	for _, c := range conns {
		c.UDPConn.Close() // wakes a reader blocked in it
		c.wake()          // and tells a loop that reads when notified
	}
}

// wait waits for the watcher to exit (after the device is closed).
func (n *tunNetwork) wait() { <-n.watched }

// OpenUDP implements dgram.Network.
func (n *tunNetwork) OpenUDP(network string, laddr netip.AddrPort, reuseAddr, ipv6Only bool) (net.PacketConn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.failed.Load() {
		return nil, &net.OpError{Op: "listen", Net: network, Err: os.NewSyscallError("bind", syscall.ENETDOWN)}
	}
	pc, err := n.Host.OpenUDP(network, laddr, reuseAddr, ipv6Only)
	if err != nil {
		return nil, err
	}
	c := &tunConn{UDPConn: pc.(*stack.UDPConn), net: n}
	n.conns[c] = struct{}{}
	return c, nil
}

// tunConn is a host's conn that reports the device vanishing as ENETDOWN.
// It has every method of *stack.UDPConn, so dgram finds the same
// capabilities on it.
type tunConn struct {
	*stack.UDPConn
	net    *tunNetwork
	closed atomic.Bool // closed by its socket

	mu     sync.Mutex
	notify func() // see NotifyReadable
}

// NotifyReadable implements dgram.NotifyConn. fn is also called when the
// device vanishes, so that the socket reads the error.
func (c *tunConn) NotifyReadable(fn func()) (stop func()) {
	stopInner := c.UDPConn.NotifyReadable(fn)
	c.mu.Lock()
	c.notify = fn
	c.mu.Unlock()
	return func() {
		stopInner()
		c.mu.Lock()
		c.notify = nil
		c.mu.Unlock()
	}
}

// wake calls the function NotifyReadable registered, if any.
func (c *tunConn) wake() {
	c.mu.Lock()
	fn := c.notify
	c.mu.Unlock()
	if fn != nil {
		fn()
	}
}

// netDown turns the "closed" error of a conn closed because the device
// vanished into ENETDOWN.
func (c *tunConn) netDown(op string, err error) error {
	if err == nil || c.closed.Load() || !c.net.failed.Load() || !errors.Is(err, net.ErrClosed) {
		return err
	}
	call := "recvmsg"
	if op == "write" {
		call = "sendmsg"
	}
	return &net.OpError{Op: op, Net: "udp", Source: c.LocalAddr(), Err: os.NewSyscallError(call, syscall.ENETDOWN)}
}

// ReadFromUDPAddrPort implements dgram.Conn.
func (c *tunConn) ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error) {
	n, from, err := c.UDPConn.ReadFromUDPAddrPort(b)
	return n, from, c.netDown("read", err)
}

// ReadFrom implements net.PacketConn.
func (c *tunConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := c.UDPConn.ReadFrom(b)
	return n, from, c.netDown("read", err)
}

// WaitReadable implements dgram.PollConn.
func (c *tunConn) WaitReadable() error { return c.netDown("read", c.UDPConn.WaitReadable()) }

// TryReadFromUDPAddrPort implements dgram.PollConn.
func (c *tunConn) TryReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error) {
	n, from, err := c.UDPConn.TryReadFromUDPAddrPort(b)
	return n, from, c.netDown("read", err)
}

// WriteToUDPAddrPort implements dgram.Conn.
func (c *tunConn) WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	n, err := c.UDPConn.WriteToUDPAddrPort(b, addr)
	return n, c.netDown("write", err)
}

// WriteTo implements net.PacketConn.
func (c *tunConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	n, err := c.UDPConn.WriteTo(b, addr)
	return n, c.netDown("write", err)
}

// Write implements dgram.ConnectConn.
func (c *tunConn) Write(b []byte) (int, error) {
	n, err := c.UDPConn.Write(b)
	return n, c.netDown("write", err)
}

// Close implements net.PacketConn.
func (c *tunConn) Close() error {
	c.closed.Store(true)
	c.net.mu.Lock()
	delete(c.net.conns, c)
	c.net.mu.Unlock()
	return c.UDPConn.Close()
}
