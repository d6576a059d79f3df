//go:build linux

package tun_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dgramlab/dgramlab/tun"
	"github.com/dgramlab/dgramlab/tun/tuntest"
	"github.com/dgramlab/dgramlab/wire"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

const waitFor = 5 * time.Second

var (
	kernelAddr = netip.MustParseAddrPort("10.99.0.1:0")
	hostAddr   = netip.MustParseAddrPort("10.99.0.2:5000")
)

// modes runs fn for a TUN and a TAP device.
func modes(t *testing.T, fn func(t *testing.T, tap bool)) {
	for _, tap := range []bool{false, true} {
		name := "tun"
		if tap {
			name = "tap"
		}
		t.Run(name, func(t *testing.T) { fn(t, tap) })
	}
}

// checkFDs fails the test if it ends with more open descriptors than it
// started with. Register it before anything that opens descriptors. It
// skips the test first where TUN tests cannot run (finding out may start
// the runtime's poller, whose descriptors are not the test's).
func checkFDs(t *testing.T) {
	tuntest.Require(t)
	before := tuntest.CountFDs(t)
	t.Cleanup(func() {
		if after := tuntest.CountFDs(t); after != before {
			t.Errorf("%d file descriptors open after the test, %d before", after, before)
		}
	})
}

// open opens a device inside ns; the test closes it at the end.
func open(t *testing.T, ns *tuntest.Netns, opts tun.Options) *tun.Device {
	t.Helper()
	var dev *tun.Device
	ns.Do(t, func() (err error) { dev, err = tun.Open(opts); return err })
	t.Cleanup(dev.Close)
	return dev
}

func TestCreateAndClose(t *testing.T) {
	modes(t, func(t *testing.T, tap bool) {
		checkFDs(t)
		ns := tuntest.NewNetns(t)
		dev := open(t, ns, tun.Options{Name: "dgl0", TAP: tap, Create: true, MTU: 1400})
		if dev.Name() != "dgl0" || !dev.Created() || dev.IsTAP() != tap || dev.DeviceMTU() != 1400 || dev.MTU() != 1400 {
			t.Errorf("device: name %q created %v tap %v MTU %d/%d, want dgl0 true %v 1400/1400", dev.Name(), dev.Created(), dev.IsTAP(), dev.DeviceMTU(), dev.MTU(), tap)
		}
		if l := ns.Link(t, "dgl0"); l.MTU != 1400 {
			t.Errorf("kernel's MTU = %d, want 1400", l.MTU)
		}
		wantHW := header.ARPHardwareNone
		if tap {
			wantHW = header.ARPHardwareEther
			if mac := dev.LinkAddress(); len(mac) != 6 || mac[0] != 0x02 {
				t.Errorf("TAP MAC = %v, want a locally administered address", mac)
			}
		}
		if dev.ARPHardwareType() != wantHW {
			t.Errorf("ARPHardwareType() = %v, want %v", dev.ARPHardwareType(), wantHW)
		}
		// Child processes do not inherit the device (water opens it without
		// O_CLOEXEC; Open fixes that).
		if out, err := exec.Command("ls", "-l", "/proc/self/fd").CombinedOutput(); err != nil || strings.Contains(string(out), "/dev/net/tun") {
			t.Errorf("a child process has the device open (%v):\n%s", err, out)
		}
		dev.Attach(newDispatcher()) // starts the reader
		dev.Close()
		select {
		case <-dev.Done():
		default:
			t.Error("Done() is not closed after Close")
		}
		if err := dev.Err(); err != nil {
			t.Errorf("Err() after Close = %v, want nil", err)
		}
		if ns.LinkExists("dgl0") {
			t.Error("the device Open created is still there after Close")
		}
		dev.Close() // again: nothing happens
	})
}

func TestAttachLeavesDevice(t *testing.T) {
	modes(t, func(t *testing.T, tap bool) {
		checkFDs(t)
		ns := tuntest.NewNetns(t)
		mode := map[bool]string{false: "tun", true: "tap"}[tap]
		ns.IP(t, "tuntap", "add", "dev", "dgl0", "mode", mode)
		for i := range 2 { // attach, close, attach again
			dev := open(t, ns, tun.Options{Name: "dgl0", TAP: tap})
			if dev.Created() || dev.DeviceMTU() != 1500 {
				t.Errorf("attach %d: Created() = %v, DeviceMTU() = %d, want false, 1500", i, dev.Created(), dev.DeviceMTU())
			}
			dev.Attach(newDispatcher())
			dev.Close()
			if !ns.LinkExists("dgl0") {
				t.Fatalf("attach %d: Close removed a device it did not create", i)
			}
		}
		// An MTU set when attaching is undone on Close.
		dev := open(t, ns, tun.Options{Name: "dgl0", TAP: tap, MTU: 1400})
		if got := ns.Link(t, "dgl0").MTU; got != 1400 || dev.DeviceMTU() != 1400 {
			t.Errorf("attached with MTU 1400: device MTU %d, DeviceMTU() %d", got, dev.DeviceMTU())
		}
		dev.Close()
		if got := ns.Link(t, "dgl0").MTU; got != 1500 {
			t.Errorf("after Close the device has MTU %d, want its old 1500 back", got)
		}
	})
}

func TestOpenErrors(t *testing.T) {
	checkFDs(t)
	ns := tuntest.NewNetns(t)
	ns.IP(t, "tuntap", "add", "dev", "dgltap", "mode", "tap")
	ns.IP(t, "tuntap", "add", "dev", "dgltun", "mode", "tun")
	busy := open(t, ns, tun.Options{Name: "dgltun"})
	_ = busy
	cases := []struct {
		name  string
		opts  tun.Options
		kind  error
		errno syscall.Errno
		want  string
	}{
		{"unknown", tun.Options{Name: "dgl-none"}, tun.ErrNotFound, syscall.ENODEV, "tun: attach dgl-none: no such device (create it first with: ip tuntap add dev dgl-none mode tun)"},
		{"TUN on a TAP device", tun.Options{Name: "dgltap"}, tun.ErrWrongType, syscall.EINVAL, "dgltap is a TAP device: open it in TAP mode"},
		{"TAP on a TUN device", tun.Options{Name: "dgltun", TAP: true}, tun.ErrWrongType, syscall.EINVAL, "dgltun is a TUN device"},
		{"not a TUN device", tun.Options{Name: "lo"}, tun.ErrWrongType, syscall.EINVAL, "lo is not a TUN/TAP device"},
		{"create an existing device", tun.Options{Name: "dgltap", TAP: true, Create: true}, tun.ErrExists, syscall.EEXIST, "remove it first (ip link del dgltap)"},
		{"busy", tun.Options{Name: "dgltun"}, tun.ErrBusy, syscall.EBUSY, "another program (or Device) has it open"},
		{"MTU the kernel refuses", tun.Options{Name: "dglbig", TAP: true, Create: true, MTU: 65535}, tun.ErrInvalid, syscall.EINVAL, "the kernel refused MTU 65535"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := ns.Run(func() error {
				dev, err := tun.Open(c.opts)
				if err == nil {
					dev.Close()
				}
				return err
			})
			if !errors.Is(err, c.kind) || !errors.Is(err, c.errno) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Open(%+v) = %v\nwant %v and %v, saying %q", c.opts, err, c.kind, c.errno, c.want)
			}
		})
	}
	if ns.LinkExists("dglbig") {
		t.Error("a device whose MTU could not be set was left behind")
	}
}

// TestOpenWithoutPermission runs Open in a process without root, inside
// the test's namespace, and checks the error names the capability.
func TestOpenWithoutPermission(t *testing.T) {
	ns := tuntest.NewNetns(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) is not on PATH")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns.Name(), setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", self)
	cmd.Env = append(os.Environ(), helperEnv+"=open")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v: %s", err, out)
	}
	// nobody can open /dev/net/tun where its mode lets others read and
	// write it (as most distributions ship it); then the kernel refuses
	// the device for want of CAP_NET_ADMIN.
	cause := "cannot open /dev/net/tun"
	if fi, err := os.Stat("/dev/net/tun"); err == nil && fi.Mode().Perm()&0o006 == 0o006 {
		cause = "missing CAP_NET_ADMIN"
	}
	for _, want := range []string{"tun: create dgl0: permission denied", cause} {
		if !strings.Contains(string(out), want) {
			t.Errorf("Open without privileges printed %q, want it to say %q", out, want)
		}
	}
}

// lab is a device in a namespace whose kernel end is 10.99.0.1/24, with a
// kernel UDP socket there and a recording dispatcher attached.
type lab struct {
	ns     *tuntest.Netns
	dev    *tun.Device
	disp   *dispatcher
	kernel *net.UDPConn
	kmac   tcpip.LinkAddress // the kernel's MAC on a TAP device
	drops  chan drop
}

type drop struct {
	size   int
	dir    wire.Direction
	reason wire.DropReason
}

func newLab(t *testing.T, tap bool) *lab {
	ns := tuntest.NewNetns(t)
	l := &lab{ns: ns, disp: newDispatcher(), drops: make(chan drop, 100)}
	l.dev = open(t, ns, tun.Options{Name: "dgl0", TAP: tap, Create: true})
	remove := l.dev.AddDropHook(func(frame []byte, dir wire.Direction, reason wire.DropReason) {
		l.drops <- drop{len(frame), dir, reason}
	})
	t.Cleanup(remove)
	ns.IP(t, "addr", "add", "10.99.0.1/24", "dev", "dgl0")
	ns.IP(t, "link", "set", "dgl0", "up")
	if tap {
		ns.IP(t, "neigh", "add", "10.99.0.2", "lladdr", l.dev.LinkAddress().String(), "dev", "dgl0")
		mac, err := net.ParseMAC(ns.Link(t, "dgl0").Address)
		if err != nil {
			t.Fatal(err)
		}
		l.kmac = tcpip.LinkAddress(mac)
	}
	l.dev.Attach(l.disp)
	l.kernel = ns.ListenUDP(t, "10.99.0.1:0")
	return l
}

// frame builds a frame from the host (10.99.0.2:5000) to the kernel
// socket, with an Ethernet header on a TAP device.
func (l *lab) frame(payload []byte) []byte {
	dst := netip.MustParseAddrPort(l.kernel.LocalAddr().String())
	b := udp4(hostAddr, dst, payload)
	if !l.dev.IsTAP() {
		return b
	}
	eth := make([]byte, header.EthernetMinimumSize, header.EthernetMinimumSize+len(b))
	header.Ethernet(eth).Encode(&header.EthernetFields{SrcAddr: l.dev.LinkAddress(), DstAddr: l.kmac, Type: header.IPv4ProtocolNumber})
	return append(eth, b...)
}

// write hands one frame to the device as the host's NIC would.
func (l *lab) write(frame []byte) tcpip.Error {
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(frame)})
	defer pkt.DecRef()
	var list stack.PacketBufferList
	list.PushBack(pkt)
	_, tcpipErr := l.dev.WritePackets(list)
	return tcpipErr
}

// kernelRead reads one datagram on the kernel socket.
func (l *lab) kernelRead(t *testing.T) ([]byte, netip.AddrPort) {
	t.Helper()
	l.kernel.SetReadDeadline(time.Now().Add(waitFor))
	buf := make([]byte, 65536)
	n, from, err := l.kernel.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("kernel socket: %v", err)
	}
	return buf[:n], from
}

// waitDrop waits for the device to report a drop.
func (l *lab) waitDrop(t *testing.T) drop {
	t.Helper()
	select {
	case d := <-l.drops:
		return d
	case <-time.After(waitFor):
		t.Fatalf("no drop reported after %v; counters %+v", waitFor, l.dev.Counters())
		return drop{}
	}
}

func TestTraffic(t *testing.T) {
	modes(t, func(t *testing.T, tap bool) {
		checkFDs(t)
		l := newLab(t, tap)
		hdr := 0
		if tap {
			hdr = header.EthernetMinimumSize
		}

		// Kernel → host.
		if _, err := l.kernel.WriteToUDPAddrPort([]byte("hello"), hostAddr); err != nil {
			t.Fatal(err)
		}
		p := l.disp.waitUDP(t, hostAddr.Port())
		if !bytes.Equal(p.payload, []byte("hello")) || p.typ != tcpip.PacketHost {
			t.Errorf("host got %q (packet type %v), want \"hello\" (host)", p.payload, p.typ)
		}

		// Host → kernel.
		if tcpipErr := l.write(l.frame([]byte("world"))); tcpipErr != nil {
			t.Fatalf("WritePackets: %v", tcpipErr)
		}
		if msg, from := l.kernelRead(t); string(msg) != "world" || from != hostAddr {
			t.Errorf("kernel got %q from %v, want \"world\" from %v", msg, from, hostAddr)
		}

		// Host → kernel, larger than the device MTU: dropped here.
		big := l.frame(make([]byte, 1500))
		if tcpipErr := l.write(big); tcpipErr != nil {
			t.Fatalf("WritePackets(oversize) = %v, want a silent drop", tcpipErr)
		}
		if d := l.waitDrop(t); d != (drop{len(big), wire.Outbound, wire.DropMTU}) {
			t.Errorf("drop = %+v, want %d-byte outbound mtu", d, len(big))
		}

		// Kernel → host, larger than the device MTU (the kernel's end was
		// given a larger MTU behind the Device's back): dropped here.
		l.ns.IP(t, "link", "set", "dgl0", "mtu", "3000")
		if _, err := l.kernel.WriteToUDPAddrPort(make([]byte, 2000), hostAddr); err != nil {
			t.Fatal(err)
		}
		if d := l.waitDrop(t); d != (drop{hdr + 2028, wire.Inbound, wire.DropMTU}) {
			t.Errorf("drop = %+v, want %d-byte inbound mtu", d, hdr+2028)
		}

		// Kernel's end down: Linux refuses writes (EIO); dropped, counted,
		// and the reader keeps going.
		l.ns.IP(t, "link", "set", "dgl0", "down")
		if tcpipErr := l.write(l.frame([]byte("down"))); tcpipErr != nil {
			t.Fatalf("WritePackets(link down) = %v, want a silent drop", tcpipErr)
		}
		if d := l.waitDrop(t); d.reason != wire.DropLinkDown || d.dir != wire.Outbound {
			t.Errorf("drop = %+v, want outbound link-down", d)
		}
		l.ns.IP(t, "link", "set", "dgl0", "up")
		if tap {
			l.ns.IP(t, "neigh", "replace", "10.99.0.2", "lladdr", l.dev.LinkAddress().String(), "dev", "dgl0")
		}
		l.write(l.frame([]byte("up again")))
		if msg, _ := l.kernelRead(t); string(msg) != "up again" {
			t.Errorf("kernel got %q after the link came back, want \"up again\"", msg)
		}

		// No NIC attached: inbound frames are dropped.
		l.dev.Attach(nil)
		l.kernel.WriteToUDPAddrPort([]byte("nobody"), hostAddr)
		for d := l.waitDrop(t); d.reason != wire.DropDetached; d = l.waitDrop(t) {
			// Skip the kernel's own traffic (IPv6 router solicitations...).
		}

		c := l.dev.Counters()
		if c.TxFrames < 2 || c.RxFrames < 1 || c.Drops[wire.DropMTU] != 2 || c.Drops[wire.DropLinkDown] != 1 || c.Drops[wire.DropDetached] < 1 || c.Errors != 0 {
			t.Errorf("counters = %+v", c)
		}
	})
}

// TestVanish deletes the device under a running Device.
func TestVanish(t *testing.T) {
	modes(t, func(t *testing.T, tap bool) {
		checkFDs(t)
		l := newLab(t, tap)
		if e := tun.Probe(l.dev); e != 0 {
			t.Fatalf("probe of a running device = %v, want no error", e)
		}
		l.ns.IP(t, "link", "del", "dgl0")
		// What a read that Go's poller answered ("not pollable") asks.
		if e := tun.Probe(l.dev); e != syscall.EBADFD {
			t.Errorf("probe of a deleted device = %v, want EBADFD", e)
		}
		select {
		case <-l.dev.Done():
		case <-time.After(waitFor):
			t.Fatalf("Done() not closed %v after the device was deleted", waitFor)
		}
		err := l.dev.Err()
		if !errors.Is(err, tun.ErrGone) || !errors.Is(err, syscall.EBADFD) {
			t.Fatalf("Err() = %v, want ErrGone (EBADFD)", err)
		}
		if got, want := err.Error(), "tun: read dgl0: device vanished: file descriptor in bad state"; got != want {
			t.Errorf("Err() = %q, want %q", got, want)
		}
		if _, ok := l.write(l.frame([]byte("late"))).(*tcpip.ErrNetworkUnreachable); !ok {
			t.Error("WritePackets after the device vanished did not fail with ErrNetworkUnreachable")
		}
		if d := l.waitDrop(t); d.reason != wire.DropLinkDown {
			t.Errorf("drop = %+v, want link-down", d)
		}
		if c := l.dev.Counters(); c.Errors != 1 || c.Drops[wire.DropLinkDown] != 1 {
			t.Errorf("counters = %+v, want 1 error and 1 link-down drop", c)
		}
		l.dev.Close()
		if !errors.Is(l.dev.Err(), tun.ErrGone) {
			t.Errorf("Err() after Close = %v, want it kept", l.dev.Err())
		}
	})
}

// udp4 builds an IPv4 UDP packet (UDP checksum 0: none).
func udp4(src, dst netip.AddrPort, payload []byte) []byte {
	b := make([]byte, header.IPv4MinimumSize+header.UDPMinimumSize+len(payload))
	ip := header.IPv4(b)
	ip.Encode(&header.IPv4Fields{
		TotalLength: uint16(len(b)),
		TTL:         64,
		Protocol:    uint8(header.UDPProtocolNumber),
		SrcAddr:     tcpip.AddrFrom4(src.Addr().As4()),
		DstAddr:     tcpip.AddrFrom4(dst.Addr().As4()),
	})
	ip.SetChecksum(^ip.CalculateChecksum())
	header.UDP(b[header.IPv4MinimumSize:]).Encode(&header.UDPFields{
		SrcPort: src.Port(),
		DstPort: dst.Port(),
		Length:  uint16(header.UDPMinimumSize + len(payload)),
	})
	copy(b[header.IPv4MinimumSize+header.UDPMinimumSize:], payload)
	return b
}

// dispatcher records what the device delivers.
type dispatcher struct{ got chan packet }

type packet struct {
	proto tcpip.NetworkProtocolNumber
	typ   tcpip.PacketType
	data  []byte // the network packet
	// For an IPv4 UDP packet:
	dstPort uint16
	payload []byte
}

var _ stack.NetworkDispatcher = (*dispatcher)(nil)

func newDispatcher() *dispatcher { return &dispatcher{got: make(chan packet, 1000)} }

// DeliverNetworkPacket implements stack.NetworkDispatcher.
func (d *dispatcher) DeliverNetworkPacket(proto tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	p := packet{proto: proto, typ: pkt.PktType, data: pkt.Data().AsRange().ToSlice()}
	if ip := header.IPv4(p.data); proto == header.IPv4ProtocolNumber && ip.IsValid(len(p.data)) && ip.TransportProtocol() == header.UDPProtocolNumber {
		u := header.UDP(ip.Payload())
		p.dstPort, p.payload = u.DestinationPort(), u.Payload()
	}
	select {
	case d.got <- p:
	default:
	}
}

// DeliverLinkPacket implements stack.NetworkDispatcher.
func (d *dispatcher) DeliverLinkPacket(tcpip.NetworkProtocolNumber, *stack.PacketBuffer) {}

// waitUDP waits for an IPv4 UDP packet to port, skipping others.
func (d *dispatcher) waitUDP(t *testing.T, port uint16) packet {
	t.Helper()
	deadline := time.After(waitFor)
	var seen []string
	for {
		select {
		case p := <-d.got:
			if p.dstPort == port {
				return p
			}
			seen = append(seen, fmt.Sprintf("proto %#x, %d bytes", p.proto, len(p.data)))
		case <-deadline:
			t.Fatalf("no UDP packet to port %d after %v; saw %v", port, waitFor, seen)
		}
	}
}

// TestAttachToRunningDevice: a device that is up gets its carrier when
// Open attaches, and Linux starts transmitting on it only later (its link
// watcher is asynchronous): Open waits for that, so what the kernel sends
// right after Open returns is not dropped. Without the wait about one
// attach in twenty lost the kernel's first datagram.
func TestAttachToRunningDevice(t *testing.T) {
	tuntest.Require(t)
	for i := range 30 {
		ns := tuntest.NewNetns(t)
		ns.IP(t, "tuntap", "add", "dev", "dgl0", "mode", "tun")
		ns.IP(t, "addr", "add", "10.99.0.1/24", "dev", "dgl0")
		ns.IP(t, "link", "set", "dgl0", "up")
		dev := open(t, ns, tun.Options{Name: "dgl0"})
		disp := newDispatcher()
		dev.Attach(disp)
		k := ns.ListenUDP(t, "10.99.0.1:0")
		if _, err := k.WriteToUDPAddrPort([]byte("first"), hostAddr); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-disp.got:
			for p.dstPort != hostAddr.Port() {
				p = disp.waitUDP(t, hostAddr.Port())
			}
		case <-time.After(time.Second):
			l := ns.Link(t, "dgl0")
			t.Fatalf("attach %d: the kernel's first datagram did not come (device tx_dropped %d)", i, l.Stats.TX.Dropped)
		}
		dev.Close()
	}
}
