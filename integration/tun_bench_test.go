package integration

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgramlab/dgramlab/tun/tuntest"
)

// benchWindow is how many datagrams may be in flight: few enough that no
// queue on the way overflows (the TUN queue holds 500 frames, a gVisor
// socket 156 datagrams of 1400 bytes), enough to keep both ends busy.
const benchWindow = 64

// BenchmarkTun measures datagrams per second through a TUN/TAP device,
// kernel → userspace host and userspace host → kernel, at 64 and 1400
// bytes, and in the same run kernel loopback UDP between two sockets of the
// test's namespace, with the same sender window. It reports pps,
// loopback-pps, their ratio (x-loopback) and the datagrams lost, each of
// which a drop counter accounts for (the device's tx_dropped, the Device's
// drops, a full socket buffer); an unaccounted loss fails the benchmark.
func BenchmarkTun(b *testing.B) {
	tuntest.Require(b)
	for _, tap := range []bool{false, true} {
		for _, toUser := range []bool{true, false} {
			for _, size := range []int{64, 1400} {
				mode := map[bool]string{false: "tun", true: "tap"}[tap]
				dir := map[bool]string{true: "kernel-to-user", false: "user-to-kernel"}[toUser]
				b.Run(fmt.Sprintf("%s/%s/%dB", mode, dir, size), func(b *testing.B) {
					benchTun(b, tap, toUser, size)
				})
			}
		}
	}
}

func benchTun(b *testing.B, tap, toUser bool, size int) {
	b.StopTimer()
	l := newTunLab(b, tap, labOptions{noCapture: true})
	kernelLosses := func() uint64 {
		link := l.ns.Link(b, devName)
		return link.Stats.TX.Dropped + link.Stats.RX.Dropped + kernelUDPErrors(b, l.ns)
	}

	// Kernel loopback, in the namespace.
	loRecv := l.kernelSocket(b, "127.0.0.1:0")
	loSend := l.kernelSocket(b, "127.0.0.1:0")
	loTo := addrPort(loRecv)
	lo := benchPath{
		send:     func(m []byte) error { _, err := loSend.WriteToUDPAddrPort(m, loTo); return err },
		recv:     func(buf []byte) error { _, _, err := loRecv.ReadFromUDPAddrPort(buf); return err },
		deadline: loRecv.SetReadDeadline,
		losses:   func() uint64 { return kernelUDPErrors(b, l.ns) },
	}
	loPPS, loLost := lo.measure(b, b.N, size)

	// Through the device.
	user, err := l.host.ListenUDP("udp4", netip.AddrPortFrom(userIP, 0))
	if err != nil {
		b.Fatal(err)
	}
	defer user.Close()
	if err := user.SetReadBuffer(4 << 20); err != nil {
		b.Fatal(err)
	}
	userTo := user.LocalAddrPort()
	k := l.kernelSocket(b, "10.99.0.1:0")
	kTo := addrPort(k)
	hostLosses := func() uint64 { return l.dev.Counters().Dropped() + l.host.Stats().UDP.BufferFull }
	var p benchPath
	if toUser {
		p = benchPath{
			send:     func(m []byte) error { _, err := k.WriteToUDPAddrPort(m, userTo); return err },
			recv:     func(buf []byte) error { _, _, err := user.ReadFromUDPAddrPort(buf); return err },
			deadline: user.SetReadDeadline,
		}
	} else {
		p = benchPath{
			send:     func(m []byte) error { _, err := user.WriteToUDPAddrPort(m, kTo); return err },
			recv:     func(buf []byte) error { _, _, err := k.ReadFromUDPAddrPort(buf); return err },
			deadline: k.SetReadDeadline,
		}
	}
	p.losses = func() uint64 { return kernelLosses() + hostLosses() }
	// Prime the path (ARP on a TAP device) outside the measurement.
	p.measure(b, 1, size)
	b.StartTimer()
	pps, lost := p.measure(b, b.N, size)
	b.StopTimer()

	b.ReportMetric(1e9/pps, "ns/op")
	b.ReportMetric(pps, "pps")
	b.ReportMetric(loPPS, "loopback-pps")
	b.ReportMetric(pps/loPPS, "x-loopback")
	b.ReportMetric(float64(lost+loLost), "lost")
}

// benchPath is one way datagrams go, with the drop counters on the way.
type benchPath struct {
	send     func(msg []byte) error
	recv     func(buf []byte) error
	deadline func(time.Time) error // the receiver's read deadline
	losses   func() uint64         // datagrams dropped and counted so far
}

// measure sends n datagrams of size bytes, at most benchWindow in flight,
// and returns the datagrams received per second (from the first send to
// the last datagram received) and how many were lost, which it waits to
// see counted.
func (p benchPath) measure(b *testing.B, n, size int) (pps float64, lost uint64) {
	lost0 := p.losses()
	slots := make(chan struct{}, benchWindow)
	var received atomic.Int64
	var last time.Time // when the last datagram arrived; read after recvDone
	recvDone := make(chan error, 1)
	p.deadline(time.Time{})
	start := time.Now()
	go func() {
		buf := make([]byte, 65536)
		for received.Load() < int64(n) {
			if err := p.recv(buf); err != nil {
				recvDone <- err
				return
			}
			last = time.Now()
			received.Add(1)
			select {
			case <-slots:
			default:
			}
		}
		recvDone <- nil
	}()

	msg := make([]byte, size)
	freed := uint64(0) // window slots freed for datagrams counted lost
	for i := 0; i < n; {
		select {
		case slots <- struct{}{}:
			if err := p.send(msg); err != nil {
				b.Fatalf("send: %v", err)
			}
			i++
		case <-time.After(2 * time.Second):
			// The window is stuck: free the slots of datagrams that a
			// counter says were dropped.
			lost = p.losses() - lost0
			if lost == freed {
				b.Fatalf("%d datagrams in flight for 2s, %d received, no new drop counted", len(slots), received.Load())
			}
			for ; freed < lost && len(slots) > 0; freed++ {
				<-slots
			}
		}
	}

	// Wait until every datagram was received or counted lost.
	var recvErr error
	select {
	case recvErr = <-recvDone:
	case <-time.After(time.Second):
		// Some were lost: poll the drop counters (they have no events).
		poll := time.NewTicker(10 * time.Millisecond)
		deadline := time.After(10 * time.Second)
		for received.Load()+int64(p.losses()-lost0) < int64(n) {
			select {
			case <-poll.C:
			case <-deadline:
				lost = p.losses() - lost0
				b.Fatalf("%d datagrams sent, %d received, %d counted lost: %d unaccounted", n, received.Load(), lost, int64(n)-received.Load()-int64(lost))
			}
		}
		poll.Stop()
		p.deadline(time.Unix(1, 0)) // stop the receiver waiting for lost datagrams
		recvErr = <-recvDone
	}
	lost = p.losses() - lost0
	if recvErr != nil && received.Load()+int64(lost) < int64(n) {
		b.Fatalf("receive: %v", recvErr)
	}
	return float64(received.Load()) / last.Sub(start).Seconds(), lost
}

// kernelUDPErrors returns the UDP InErrors counter of the namespace (a
// full socket buffer counts there).
func kernelUDPErrors(b *testing.B, ns *tuntest.Netns) uint64 {
	var v uint64
	ns.Do(b, func() error {
		f, err := os.Open("/proc/thread-self/net/snmp")
		if err != nil {
			return err
		}
		defer f.Close()
		var names []string
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) == 0 || fields[0] != "Udp:" {
				continue
			}
			if names == nil {
				names = fields
				continue
			}
			for i, name := range names {
				if name == "InErrors" && i < len(fields) {
					v, err = strconv.ParseUint(fields[i], 10, 64)
					return err
				}
			}
		}
		return fmt.Errorf("no Udp InErrors in /proc/net/snmp")
	})
	return v
}
