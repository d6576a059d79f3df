package integration

import (
	"context"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dgramlab/dgramlab/capture"
	"github.com/dgramlab/dgramlab/capture/capturetest"
	"github.com/dgramlab/dgramlab/dgram"
	"github.com/dgramlab/dgramlab/stack"
	"github.com/dgramlab/dgramlab/tun"
	"github.com/dgramlab/dgramlab/tun/tuntest"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

// The TUN tests' addresses, inside their own namespace only: the kernel's
// end of the device is 10.99.0.1/24, the userspace host 10.99.0.2/24.
var (
	kernelIP = netip.MustParseAddr("10.99.0.1")
	userIP   = netip.MustParseAddr("10.99.0.2")
)

const (
	devName = "dgl0"
	tunWait = 10 * time.Second
)

// tunModes runs fn for a TUN and a TAP device.
func tunModes(t *testing.T, fn func(t *testing.T, tap bool)) {
	t.Helper()
	tuntest.Require(t)
	for _, tap := range []bool{false, true} {
		name := "tun"
		if tap {
			name = "tap"
		}
		t.Run(name, func(t *testing.T) { fn(t, tap) })
	}
}

// labOptions vary a tunLab.
type labOptions struct {
	// nicMTU is the userspace NIC's MTU; 0 means the device's (1500).
	nicMTU int
	// pcap writes the NIC's capture to a pcapng file as well.
	pcap bool
	// noCapture attaches the device without a capture tap (benchmarks).
	noCapture bool
}

// tunLab is a userspace host attached to a device in a namespace the test
// made: the kernel's end is up with 10.99.0.1/24, the host has
// 10.99.0.2/24, its NIC is tapped into rec, and a dgram loop runs for it.
type tunLab struct {
	ns       *tuntest.Netns
	dev      *tun.Device
	host     *stack.Host
	rec      *capture.Recorder
	loop     *dgram.Loop
	pcapPath string
	pcap     *capture.PcapngWriter

	mu      sync.Mutex
	sockets []*dgram.Socket
}

func newTunLab(t testing.TB, tap bool, o labOptions) *tunLab {
	t.Helper()
	l := &tunLab{ns: tuntest.NewNetns(t), rec: capture.NewRecorder()}
	capturetest.DumpOnFailure(t, l.rec)
	l.ns.Do(t, func() (err error) {
		l.dev, err = tun.Open(tun.Options{Name: devName, TAP: tap, Create: true, MTU: 1500})
		return err
	})
	l.ns.IP(t, "addr", "add", "10.99.0.1/24", "brd", "+", "dev", devName)
	l.ns.IP(t, "link", "set", devName, "up")

	var err error
	if l.host, err = stack.NewHost(stack.HostOptions{Name: "user"}); err != nil {
		l.dev.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { l.host.Close() }) // closes the device too
	sink := capture.Sink(l.rec)
	if o.pcap {
		l.pcapPath = filepath.Join(t.TempDir(), "tun.pcapng")
		if l.pcap, err = capture.CreatePcapngFile(l.pcapPath); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.pcap.Close() })
		sink = capture.Tee(l.rec, l.pcap)
	}
	var ep gvstack.LinkEndpoint = l.dev
	if !o.noCapture {
		ep = capture.NewTap(l.dev, capture.TapOptions{Name: "user/" + devName, Sink: sink})
	}
	if _, err := l.host.AddNIC(ep, stack.NICOptions{Name: devName, MTU: o.nicMTU, Addresses: []netip.Prefix{netip.PrefixFrom(userIP, 24)}}); err != nil {
		l.dev.Close()
		t.Fatal(err)
	}

	l.loop = dgram.NewLoop(l.host)
	release := l.loop.Hold()
	done := make(chan error, 1)
	go func() { done <- l.loop.Run(context.Background()) }()
	t.Cleanup(func() {
		l.mu.Lock()
		for _, s := range l.sockets {
			s.Close(nil)
		}
		l.mu.Unlock()
		release()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("loop.Run = %v", err)
			}
		case <-time.After(tunWait):
			t.Errorf("loop.Run did not return %v after its sockets were closed", tunWait)
		}
	})
	return l
}

// message is a 'message' event.
type message struct {
	data  []byte
	rinfo dgram.RemoteInfo
}

// labSocket is a dgram socket of the lab's host whose events go to
// channels.
type labSocket struct {
	*dgram.Socket
	msgs chan message
	errs chan error
}

// socket creates a udp4 socket bound to port (0: any) and waits until it
// listens.
func (l *tunLab) socket(t *testing.T, port int) *labSocket {
	t.Helper()
	s, err := l.loop.CreateSocket(dgram.UDP4, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	l.sockets = append(l.sockets, s)
	l.mu.Unlock()
	ls := &labSocket{Socket: s, msgs: make(chan message, 100), errs: make(chan error, 10)}
	s.OnMessage(func(msg []byte, rinfo dgram.RemoteInfo) { ls.msgs <- message{msg, rinfo} })
	s.OnError(func(err error) { ls.errs <- err })
	listening := make(chan struct{})
	if err := s.Bind(port, "", func() { close(listening) }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-listening:
	case err := <-ls.errs:
		t.Fatalf("Bind(%d) = %v", port, err)
	case <-time.After(tunWait):
		t.Fatalf("Bind(%d): no 'listening' after %v", port, tunWait)
	}
	return ls
}

// send sends msg and waits for its callback's result.
func (s *labSocket) send(t *testing.T, msg []byte, to netip.AddrPort) error {
	t.Helper()
	res := make(chan error, 1)
	if err := s.Send(msg, int(to.Port()), to.Addr().String(), func(_ int, err error) { res <- err }); err != nil {
		return err
	}
	select {
	case err := <-res:
		return err
	case <-time.After(tunWait):
		t.Fatalf("Send to %v: no callback after %v", to, tunWait)
		return nil
	}
}

// waitMessage waits for the socket's next 'message'.
func (s *labSocket) waitMessage(t *testing.T) message {
	t.Helper()
	select {
	case m := <-s.msgs:
		return m
	case err := <-s.errs:
		t.Fatalf("'error' while waiting for a message: %v", err)
	case <-time.After(tunWait):
		t.Fatalf("no message after %v", tunWait)
	}
	return message{}
}

// kernelSocket opens a kernel UDP socket in the lab's namespace.
func (l *tunLab) kernelSocket(t testing.TB, address string) *net.UDPConn {
	t.Helper()
	c := l.ns.ListenUDP(t, address)
	if err := c.SetReadBuffer(4 << 20); err != nil {
		t.Fatal(err)
	}
	return c
}

// kernelRead reads one datagram from a kernel socket.
func kernelRead(t *testing.T, c *net.UDPConn) ([]byte, netip.AddrPort) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(tunWait))
	buf := make([]byte, 65536)
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("kernel socket %v: %v", c.LocalAddr(), err)
	}
	return buf[:n], from
}

func addrPort(c *net.UDPConn) netip.AddrPort {
	return netip.MustParseAddrPort(c.LocalAddr().String())
}
