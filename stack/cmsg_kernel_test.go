//go:build linux

// Tests that hold the control-message encoding and parsing to Linux's own sockets on loopback.

package stack

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The tests below hold the encoding to the real thing: Linux's own
// sockets on loopback (127.0.0.0/8 and ::1 only).

// kernelLoopback returns the index of the host's loopback interface, or
// skips the test when it has none.
func kernelLoopback(t testing.TB) int {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Skipf("cannot list the host's interfaces for its loopback: %v", err)
	}
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagLoopback != 0 && ifc.Flags&net.FlagUp != 0 {
			return ifc.Index
		}
	}
	t.Skip("the host has no loopback interface up")
	return 0
}

// kernelUDP opens a kernel UDP socket on a loopback address, or skips the
// test when it cannot. network "udp6-dual" is an AF_INET6 socket with
// IPV6_V6ONLY off, bound to the v4-mapped addr: it sends and receives
// IPv4 on loopback only.
func kernelUDP(t testing.TB, network, addr string) *net.UDPConn {
	t.Helper()
	ap := netip.MustParseAddrPort(addr)
	if network != "udp6-dual" {
		c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(ap))
		if err != nil {
			t.Skipf("cannot open a kernel UDP socket on loopback: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Skipf("cannot open a kernel AF_INET6 UDP socket: %v", err)
	}
	f := os.NewFile(uintptr(fd), "udp6-dual")
	defer f.Close()
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
		t.Skipf("cannot make a kernel AF_INET6 UDP socket dual-stack: %v", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet6{Addr: netip.AddrFrom16(ap.Addr().As16()).As16(), Port: int(ap.Port())}); err != nil {
		t.Skipf("cannot bind a kernel AF_INET6 UDP socket to %v: %v", ap, err)
	}
	pc, err := net.FilePacketConn(f)
	if err != nil {
		t.Fatalf("net.FilePacketConn(udp6-dual) = %v", err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.(*net.UDPConn)
}

func setsockoptInt(t testing.TB, c *net.UDPConn, level, opt, v int) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), level, opt, v) }); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatalf("setsockopt(%d, %d, %d) = %v", level, opt, v, serr)
	}
}

// setRecvOptions sets on c the socket options flags stands for.
func setRecvOptions(t testing.TB, c *net.UDPConn, conn6 bool, flags ControlFlags) {
	t.Helper()
	opts := [3][2]int{{unix.IPPROTO_IP, unix.IP_PKTINFO}, {unix.IPPROTO_IP, unix.IP_RECVTTL}, {unix.IPPROTO_IP, unix.IP_RECVTOS}}
	if conn6 {
		opts = [3][2]int{{unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO}, {unix.IPPROTO_IPV6, unix.IPV6_RECVHOPLIMIT}, {unix.IPPROTO_IPV6, unix.IPV6_RECVTCLASS}}
	}
	for i, f := range []ControlFlags{FlagDst, FlagTTL, FlagTOS} {
		setsockoptInt(t, c, opts[i][0], opts[i][1], map[bool]int{true: 1}[flags&f != 0])
	}
}

// A datagram with a chosen TTL and TOS, ECN bits set, is read from the
// kernel with every flag combination and every oob size up to past what
// the messages need (each byte 0xaa beforehand); putControl fills the same
// buffer with the same bytes, padding left alone included, and returns the
// same oobn and flags.
func TestPutControlMatchesKernel(t *testing.T) {
	lo := kernelLoopback(t)
	const ttl, tos = 9, 0xb9 // DSCP 46 (EF), ECN 01 (ECT(1))
	for _, s := range []struct {
		name        string
		rnet, raddr string // the reading socket
		snet, saddr string // the sending one
		conn6       bool
		dst         netip.Addr
	}{
		{"udp4", "udp4", "127.0.0.1:0", "udp4", "127.0.0.1:0", false, netip.MustParseAddr("127.0.0.1")},
		{"udp6", "udp6", "[::1]:0", "udp6", "[::1]:0", true, netip.IPv6Loopback()},
		{"IPv4 on dual-stack udp6", "udp6-dual", "127.0.0.1:0", "udp4", "127.0.0.1:0", true, netip.MustParseAddr("127.0.0.1")},
	} {
		t.Run(s.name, func(t *testing.T) {
			r := kernelUDP(t, s.rnet, s.raddr)
			w := kernelUDP(t, s.snet, s.saddr)
			if s.snet == "udp6" {
				setsockoptInt(t, w, unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, ttl)
				setsockoptInt(t, w, unix.IPPROTO_IPV6, unix.IPV6_TCLASS, tos)
			} else {
				setsockoptInt(t, w, unix.IPPROTO_IP, unix.IP_TTL, ttl)
				setsockoptInt(t, w, unix.IPPROTO_IP, unix.IP_TOS, tos)
			}
			to := netip.AddrPortFrom(s.dst, r.LocalAddr().(*net.UDPAddr).AddrPort().Port())
			m := rxMeta{dst: s.dst, ifindex: int32(lo), ttl: ttl, tos: tos}
			for flags := range ControlFlags(8) {
				setRecvOptions(t, r, s.conn6, flags)
				full, _ := putControl(make([]byte, 256), flags, s.conn6, &m)
				mismatches := 0
				for size := 0; size <= full+cmsgAlign+1 && mismatches < 3; size++ {
					if _, err := w.WriteToUDPAddrPort([]byte{byte(size)}, to); err != nil {
						t.Fatalf("WriteToUDPAddrPort(%v) = %v", to, err)
					}
					kernel := bytes.Repeat([]byte{0xaa}, size)
					r.SetReadDeadline(time.Now().Add(5 * time.Second))
					_, kn, kflags, _, err := r.ReadMsgUDPAddrPort(make([]byte, 4), kernel)
					if err != nil {
						t.Fatalf("ReadMsgUDPAddrPort = %v", err)
					}
					ours := bytes.Repeat([]byte{0xaa}, size)
					n, rf := putControl(ours, flags, s.conn6, &m)
					if n != kn || rf != kflags || !bytes.Equal(ours, kernel) {
						mismatches++
						t.Errorf("%v, %d-byte oob: putControl = %d, %#x:\n%x\nkernel's recvmsg: %d, %#x:\n%x",
							flags, size, n, rf, ours, kn, kflags, kernel)
					}
				}
			}
		})
	}
}

// Each control buffer of sendCases goes to the kernel's sendmsg on each
// path: where parseSendControl refuses it, Linux does too (but for what a
// conn does not support, which Linux sends); where it accepts, Linux sends
// (but for a source or interface the caller must check), and the datagram
// arrives with the TTL, TOS and source parseSendControl returned.
func TestParseSendControlMatchesKernel(t *testing.T) {
	if lo := kernelLoopback(t); lo != loIndex {
		t.Skipf("the host's loopback interface has index %d; the cases want %d", lo, loIndex)
	}
	for _, c := range sendCases() {
		for i, p := range sendPaths {
			want := c.want[i]
			t.Run(c.name+"/"+p.String(), func(t *testing.T) {
				if cmsgAlign == 4 && compatRefuses(c.oob) {
					t.Skip("a 32-bit process on a 64-bit kernel: the kernel's compat conversion refuses bytes after the last message")
				}
				if err := kernelSend(t, p, c.oob, want); err != nil {
					t.Error(err)
				}
			})
		}
	}
}

func kernelSend(t testing.TB, p sendPath, oob []byte, want sendWant) error {
	t.Helper()
	var r, w *net.UDPConn
	var bound netip.Addr // w's address, which a datagram leaves from by default
	switch p {
	case sendIPv4:
		r, w, bound = kernelUDP(t, "udp4", "127.0.0.1:0"), kernelUDP(t, "udp4", "127.0.0.2:0"), netip.MustParseAddr("127.0.0.2")
	case sendIPv6:
		r, w, bound = kernelUDP(t, "udp6", "[::1]:0"), kernelUDP(t, "udp6", "[::1]:0"), netip.IPv6Loopback()
	case sendMapped:
		r, w, bound = kernelUDP(t, "udp4", "127.0.0.1:0"), kernelUDP(t, "udp6-dual", "127.0.0.1:0"), netip.MustParseAddr("127.0.0.1")
	}
	conn6 := p == sendIPv6
	setRecvOptions(t, r, conn6, FlagTTL|FlagTOS)
	to := r.LocalAddr().(*net.UDPAddr).AddrPort()
	if p == sendMapped {
		to = netip.AddrPortFrom(netip.AddrFrom16(to.Addr().As16()), to.Port())
	}
	read := func() (from netip.Addr, ttl, tos int, err error) {
		oob := make([]byte, 128)
		r.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, n, _, addr, err := r.ReadMsgUDPAddrPort(make([]byte, 4), oob)
		if err != nil {
			return from, 0, 0, fmt.Errorf("the datagram sent did not arrive: %v", err)
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:n])
		if err != nil {
			return from, 0, 0, err
		}
		for _, m := range msgs {
			switch {
			case m.Header.Type == unix.IP_TTL && !conn6, m.Header.Type == unix.IPV6_HOPLIMIT && conn6:
				ttl = int(binary.NativeEndian.Uint32(m.Data))
			case m.Header.Type == unix.IP_TOS && !conn6:
				tos = int(m.Data[0])
			case m.Header.Type == unix.IPV6_TCLASS && conn6:
				tos = int(binary.NativeEndian.Uint32(m.Data))
			}
		}
		return addr.Addr().Unmap(), ttl, tos, nil
	}
	// What a datagram without control messages gets.
	if _, _, err := w.WriteMsgUDPAddrPort([]byte("x"), nil, to); err != nil {
		return err
	}
	_, ttl0, tos0, err := read()
	if err != nil {
		return err
	}

	if err := checkParse(oob, p, want); err != nil {
		return err
	}
	_, _, err = w.WriteMsgUDPAddrPort([]byte("x"), oob, to)
	var errno syscall.Errno
	if err != nil && !errors.As(err, &errno) {
		return fmt.Errorf("kernel's sendmsg = %v, not an errno", err)
	}
	if errno != want.linux {
		return fmt.Errorf("kernel's sendmsg(%x) = %v, want %v (0: it sends)", oob, err, want.linux)
	}
	if err != nil || want.einval {
		return nil
	}
	from, ttl, tos, err := read()
	if err != nil {
		return err
	}
	sm := want.meta
	wantTTL, wantTOS, wantFrom := ttl0, tos0, bound
	if sm.hasTTL {
		wantTTL = int(sm.ttl)
	}
	if sm.hasTOS {
		wantTOS = int(sm.tos)
	}
	switch {
	case sm.src.IsValid() && !sm.src.IsUnspecified():
		wantFrom = sm.src.Unmap()
	case sm.src.IsValid():
		wantFrom = to.Addr().Unmap() // routing's choice, to a loopback address
	}
	if ttl != wantTTL || tos != wantTOS || from != wantFrom {
		return fmt.Errorf("kernel's datagram came from %v with TTL %d, TOS %#x; parseSendControl = %v (so from %v, TTL %d, TOS %#x)",
			from, ttl, tos, sm, wantFrom, wantTTL, wantTOS)
	}
	return nil
}
