package integration

import (
	"bytes"
	"errors"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dgramlab/dgramlab/capture"
	"github.com/dgramlab/dgramlab/capture/capturetest"
	"github.com/dgramlab/dgramlab/dgram"
	"github.com/dgramlab/dgramlab/tun"
	"github.com/dgramlab/dgramlab/wire"
	"github.com/gopacket/gopacket/layers"
)

// A kernel socket and a dgram socket on the userspace host exchange
// datagrams both ways through the device.
func TestTunExchange(t *testing.T) {
	tunModes(t, func(t *testing.T, tap bool) {
		l := newTunLab(t, tap, labOptions{})
		user := l.socket(t, 41234)
		k := l.kernelSocket(t, "10.99.0.1:0")

		if _, err := k.WriteToUDPAddrPort([]byte("from the kernel"), netip.AddrPortFrom(userIP, 41234)); err != nil {
			t.Fatal(err)
		}
		m := user.waitMessage(t)
		if string(m.data) != "from the kernel" || m.rinfo.Address != kernelIP.String() || m.rinfo.Port != int(addrPort(k).Port()) {
			t.Errorf("user got %q from %s:%d, want \"from the kernel\" from %v", m.data, m.rinfo.Address, m.rinfo.Port, addrPort(k))
		}

		if err := user.send(t, []byte("from userspace"), addrPort(k)); err != nil {
			t.Fatalf("Send = %v", err)
		}
		if msg, from := kernelRead(t, k); string(msg) != "from userspace" || from != netip.AddrPortFrom(userIP, 41234) {
			t.Errorf("kernel got %q from %v, want \"from userspace\" from %v:41234", msg, from, userIP)
		}

		frames := l.rec.Frames()
		udp := capture.All(capture.OnWire(), capture.UDP(), capture.Link("user/"+devName))
		capturetest.Expect(t, frames, capture.All(udp, capture.Dir(wire.Inbound), capture.DstPort(41234), capture.SrcIP(kernelIP)), 1)
		capturetest.Expect(t, frames, capture.All(udp, capture.Dir(wire.Outbound), capture.SrcPort(41234), capture.DstIP(kernelIP)), 1)
		if c := l.dev.Counters(); c.Dropped() != 0 {
			t.Errorf("device counters %+v: want no drops", c)
		}
	})
}

// A 3000-byte datagram crosses the 1500-MTU device as fragments in both
// directions and arrives whole: the kernel reassembles the host's, the
// host the kernel's.
func TestTunFragments(t *testing.T) {
	tunModes(t, func(t *testing.T, tap bool) {
		l := newTunLab(t, tap, labOptions{})
		user := l.socket(t, 41234)
		k := l.kernelSocket(t, "10.99.0.1:0")
		big := bytes.Repeat([]byte("0123456789"), 300)

		if _, err := k.WriteToUDPAddrPort(big, netip.AddrPortFrom(userIP, 41234)); err != nil {
			t.Fatal(err)
		}
		if m := user.waitMessage(t); !bytes.Equal(m.data, big) {
			t.Errorf("user got %d bytes, want the 3000 the kernel sent", len(m.data))
		}
		if err := user.send(t, big, addrPort(k)); err != nil {
			t.Fatalf("Send(3000 bytes) = %v", err)
		}
		if msg, _ := kernelRead(t, k); !bytes.Equal(msg, big) {
			t.Errorf("kernel got %d bytes, want the 3000 the host sent", len(msg))
		}

		frames := l.rec.Frames()
		for _, dir := range []wire.Direction{wire.Inbound, wire.Outbound} {
			m := capture.All(capture.OnWire(), capture.Dir(dir), capture.Fragment())
			capturetest.Expect(t, frames, m, 3) // 1480 + 1480 + 48 bytes of IP payload
			capturetest.ExpectReassembled(t, frames, m, 3000)
		}
		if c := l.dev.Counters(); c.Dropped() != 0 {
			t.Errorf("device counters %+v: want no drops", c)
		}
	})
}

// With the userspace NIC's MTU above the device's, a frame too big for the
// device is dropped by the Device and counted; the kernel never sees it.
func TestTunMTUDrop(t *testing.T) {
	tunModes(t, func(t *testing.T, tap bool) {
		l := newTunLab(t, tap, labOptions{nicMTU: 9000})
		user := l.socket(t, 0)
		k := l.kernelSocket(t, "10.99.0.1:0")
		// A first exchange, so that a TAP host knows the kernel's MAC:
		// packets queued for ARP may leave after later ones (gVisor flushes
		// its queue on another goroutine), and the order is the test.
		if err := user.send(t, []byte("warm-up"), addrPort(k)); err != nil {
			t.Fatal(err)
		}
		kernelRead(t, k)

		if err := user.send(t, make([]byte, 3000), addrPort(k)); err != nil {
			t.Fatalf("Send(3000 bytes) = %v, want a silent drop on the link", err)
		}
		if err := user.send(t, []byte("marker"), addrPort(k)); err != nil {
			t.Fatal(err)
		}
		// Datagrams keep their order through the device: the first one
		// the kernel gets is the marker, so the 3000 bytes never came.
		if msg, _ := kernelRead(t, k); string(msg) != "marker" {
			t.Errorf("kernel got %d bytes first, want the marker", len(msg))
		}
		c := l.dev.Counters()
		if c.Drops[wire.DropMTU] != 1 || c.Dropped() != 1 {
			t.Errorf("device drops = %v, want mtu: 1", c.Drops)
		}
		hdr := 0
		if tap {
			hdr = 14
		}
		frames := l.rec.Frames()
		capturetest.Expect(t, frames, capture.All(capture.Dropped(wire.DropMTU), capture.Dir(wire.Outbound), capture.FrameLen(hdr+3028), capture.Not(capture.Fragment())), 1)
	})
}

// A broadcast from userspace reaches a kernel socket bound to 0.0.0.0 in
// the namespace, to the limited and to the subnet's broadcast address.
func TestTunBroadcast(t *testing.T) {
	tunModes(t, func(t *testing.T, tap bool) {
		l := newTunLab(t, tap, labOptions{})
		user := l.socket(t, 0)
		k := l.kernelSocket(t, "0.0.0.0:41235")
		if err := user.send(t, []byte("no"), netip.MustParseAddrPort("255.255.255.255:41235")); !errors.Is(err, syscall.EACCES) {
			t.Errorf("Send to 255.255.255.255 without SO_BROADCAST = %v, want EACCES", err)
		}
		if err := user.SetBroadcast(true); err != nil {
			t.Fatal(err)
		}
		for _, to := range []string{"255.255.255.255", "10.99.0.255"} {
			if err := user.send(t, []byte("hello "+to), netip.AddrPortFrom(netip.MustParseAddr(to), 41235)); err != nil {
				t.Fatalf("Send to %s = %v", to, err)
			}
			if msg, from := kernelRead(t, k); string(msg) != "hello "+to || from.Addr() != userIP {
				t.Errorf("kernel got %q from %v, want %q from %v", msg, from, "hello "+to, userIP)
			}
		}
		out := capture.All(capture.OnWire(), capture.Dir(wire.Outbound), capture.DstPort(41235))
		if tap {
			out = capture.All(out, capture.Broadcast())
		}
		capturetest.Expect(t, l.rec.Frames(), out, 2)
	})
}

// The capture of the device's NIC opens in tshark: raw IP for TUN,
// Ethernet for TAP, UDP decoded, fragments reassembled.
func TestTunCaptureTshark(t *testing.T) {
	tunModes(t, func(t *testing.T, tap bool) {
		tshark, err := exec.LookPath("tshark")
		if err != nil {
			t.Skip("tshark is not on PATH (CI installs it)")
		}
		l := newTunLab(t, tap, labOptions{pcap: true})
		user := l.socket(t, 41234)
		k := l.kernelSocket(t, "10.99.0.1:0")
		k.WriteToUDPAddrPort([]byte("ping"), netip.AddrPortFrom(userIP, 41234))
		user.waitMessage(t)
		if err := user.send(t, make([]byte, 3000), addrPort(k)); err != nil {
			t.Fatal(err)
		}
		kernelRead(t, k)
		if err := l.pcap.Close(); err != nil {
			t.Fatal(err)
		}

		out, err := exec.Command(tshark, "-r", l.pcapPath, "-Y", "udp", "-T", "fields", "-e", "frame.protocols", "-e", "udp.length").CombinedOutput()
		if err != nil {
			t.Fatalf("tshark: %v\n%s", err, out)
		}
		want := "raw:ip:udp"
		if tap {
			want = "eth:ethertype:ip:udp"
		}
		var lines []string
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if !strings.HasPrefix(line, "Running as user") {
				lines = append(lines, line)
			}
		}
		// The ping, and the 3000 bytes reassembled by tshark (3008 UDP).
		if len(lines) != 2 || !strings.HasPrefix(lines[0], want) || !strings.HasSuffix(lines[0], "\t12") || !strings.HasSuffix(lines[1], "\t3008") {
			t.Errorf("tshark -Y udp: %q, want two %s datagrams of UDP length 12 and 3008", lines, want)
		}
		wantType := layers.LinkTypeRaw
		if tap {
			wantType = layers.LinkTypeEthernet
		}
		for _, f := range l.rec.Frames() {
			// What the host drops is recorded as the IP packet it has.
			if f.LinkType != wantType && !(f.Dropped() && f.LinkType == layers.LinkTypeRaw) {
				t.Fatalf("frame recorded with link type %v, want %v", f.LinkType, wantType)
			}
		}
	})
}

// When the device vanishes under the host, the Device says so and the
// host fails the sockets that used it: each gets an 'error' event
// ("recvmsg ENETDOWN"), its sends fail with ENETDOWN in their callback,
// and closing it still emits 'close'. A socket opened afterwards finds no
// route: its sends fail with ENETUNREACH.
func TestTunVanish(t *testing.T) {
	tunModes(t, func(t *testing.T, tap bool) {
		l := newTunLab(t, tap, labOptions{})
		user := l.socket(t, 0)
		k := l.kernelSocket(t, "10.99.0.1:0")
		if err := user.send(t, []byte("early"), addrPort(k)); err != nil {
			t.Fatal(err)
		}
		kernelRead(t, k)
		l.ns.IP(t, "link", "del", devName)
		select {
		case <-l.dev.Done():
		case <-time.After(tunWait):
			t.Fatalf("Done() not closed %v after ip link del", tunWait)
		}
		if err := l.dev.Err(); !errors.Is(err, tun.ErrGone) {
			t.Fatalf("Err() = %v, want ErrGone", err)
		}
		select {
		case err := <-user.errs:
			var de *dgram.Error
			if !errors.As(err, &de) || de.Code != "ENETDOWN" || de.Message != "recvmsg ENETDOWN" {
				t.Errorf("'error' = %#v, want recvmsg ENETDOWN", err)
			}
		case <-time.After(tunWait):
			t.Fatalf("no 'error' event %v after the device vanished", tunWait)
		}
		err := user.send(t, []byte("late"), addrPort(k))
		if !errors.Is(err, syscall.ENETDOWN) || !strings.Contains(err.Error(), "send ENETDOWN "+addrPort(k).String()) {
			t.Errorf("Send after the device vanished = %v, want send ENETDOWN", err)
		}
		closed := make(chan struct{})
		user.OnClose(func() { close(closed) })
		if err := user.Close(nil); err != nil {
			t.Fatalf("Close = %v", err)
		}
		select {
		case <-closed:
		case <-time.After(tunWait):
			t.Fatal("no 'close' event")
		}

		fresh := l.socket(t, 0)
		if err := fresh.send(t, []byte("later"), addrPort(k)); !errors.Is(err, syscall.ENETUNREACH) {
			t.Errorf("Send from a socket opened after the device vanished = %v, want ENETUNREACH", err)
		}
		if c := l.dev.Counters(); c.Errors != 1 {
			t.Errorf("device counters %+v, want 1 error", c)
		}
	})
}

// The device vanishing while a socket streams datagrams to the kernel:
// the send chain stops on the first send that fails (ENETUNREACH when the
// device refused it, ENETDOWN once the host has failed the socket), the
// socket gets 'error' ("recvmsg ENETDOWN") once, and 'close' when closed;
// nothing hangs, and nothing is left behind.
func TestTunVanishUnderTraffic(t *testing.T) {
	tunModes(t, func(t *testing.T, tap bool) {
		faultChecks(t)
		l := newTunLab(t, tap, labOptions{})
		user := l.socket(t, 0)
		k := l.kernelSocket(t, "10.99.0.1:0")
		to := addrPort(k)

		hundred := make(chan struct{})
		readerDone := make(chan int, 1)
		go func() {
			n := 0
			buf := make([]byte, 2000)
			for {
				if _, _, err := k.ReadFromUDPAddrPort(buf); err != nil {
					readerDone <- n
					return
				}
				if n++; n == 100 {
					close(hundred)
				}
			}
		}()
		chainErr := make(chan error, 1)
		var send func()
		send = func() {
			user.Send(make([]byte, 1000), int(to.Port()), to.Addr().String(), func(_ int, err error) {
				if err != nil {
					chainErr <- err
					return
				}
				send()
			})
		}
		l.loop.Post(send)
		select {
		case <-hundred:
		case <-time.After(tunWait):
			t.Fatalf("the kernel did not get 100 datagrams in %v", tunWait)
		}
		l.ns.IP(t, "link", "del", devName)
		select {
		case err := <-chainErr:
			down := errors.Is(err, syscall.ENETDOWN) && strings.Contains(err.Error(), "send ENETDOWN "+to.String())
			unreach := errors.Is(err, syscall.ENETUNREACH) && strings.Contains(err.Error(), "send ENETUNREACH "+to.String())
			if !down && !unreach {
				t.Errorf("the send chain stopped with %v, want send ENETUNREACH or ENETDOWN", err)
			}
		case <-time.After(tunWait):
			t.Fatalf("the send chain still runs %v after the device vanished", tunWait)
		}
		select {
		case err := <-user.errs:
			var de *dgram.Error
			if !errors.As(err, &de) || de.Message != "recvmsg ENETDOWN" {
				t.Errorf("'error' = %v, want recvmsg ENETDOWN", err)
			}
		case <-time.After(tunWait):
			t.Fatalf("no 'error' event %v after the device vanished", tunWait)
		}
		closed := make(chan struct{})
		user.OnClose(func() { close(closed) })
		user.Close(nil)
		select {
		case <-closed:
		case <-time.After(tunWait):
			t.Fatal("no 'close' event")
		}
		select {
		case err := <-user.errs:
			t.Errorf("a second 'error': %v", err)
		default:
		}
		k.Close()
		if n := <-readerDone; n < 100 {
			t.Errorf("kernel read %d datagrams", n)
		}
	})
}
