//go:build linux

// The control messages are Linux's, and golang.org/x/net and x/sys/unix
// read and write them with Linux's numbers only on Linux: these tests run
// there (any architecture: go test with GOARCH=386 checks 32-bit layout).

package stack

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

func TestControlConstantsAreLinux(t *testing.T) {
	for _, c := range []struct {
		name       string
		ours, unix int
	}{
		{"SOL_IP", solIP, unix.SOL_IP}, {"SOL_SOCKET", solSocket, unix.SOL_SOCKET},
		{"SOL_UDP", solUDP, unix.SOL_UDP}, {"SOL_IPV6", solIPv6, unix.SOL_IPV6},
		{"IP_TOS", ipTOS, unix.IP_TOS}, {"IP_TTL", ipTTL, unix.IP_TTL},
		{"IP_RETOPTS", ipRetopts, unix.IP_RETOPTS}, {"IP_PKTINFO", ipPktinfo, unix.IP_PKTINFO},
		{"IP_PROTOCOL", ipProtocol, unix.IP_PROTOCOL},
		{"IPV6_2292PKTINFO", ipv6PktinfoRFC2292, unix.IPV6_2292PKTINFO},
		{"IPV6_2292HOPLIMIT", ipv6HoplimitRFC2292, unix.IPV6_2292HOPLIMIT},
		{"IPV6_PKTINFO", ipv6Pktinfo, unix.IPV6_PKTINFO}, {"IPV6_HOPLIMIT", ipv6Hoplimit, unix.IPV6_HOPLIMIT},
		{"IPV6_TCLASS", ipv6Tclass, unix.IPV6_TCLASS},
		{"SCM_RIGHTS", scmRights, unix.SCM_RIGHTS}, {"SCM_CREDENTIALS", scmCredentials, unix.SCM_CREDENTIALS},
		{"UDP_SEGMENT", udpSegment, unix.UDP_SEGMENT}, {"MSG_CTRUNC", msgCtrunc, unix.MSG_CTRUNC},
		{"sizeof(struct in_pktinfo)", sizeofInetPktinfo, unix.SizeofInet4Pktinfo},
		{"sizeof(struct in6_pktinfo)", sizeofInet6Pktinfo, unix.SizeofInet6Pktinfo},
		{"sizeof(struct cmsghdr)", cmsgHdrLen, unix.SizeofCmsghdr},
	} {
		if c.ours != c.unix {
			t.Errorf("%s = %d, want %d (x/sys/unix)", c.name, c.ours, c.unix)
		}
	}
	for n := range 41 {
		if got, want := cmsgLen(n), unix.CmsgLen(n); got != want {
			t.Errorf("cmsgLen(%d) = %d, want CMSG_LEN %d", n, got, want)
		}
		if got, want := cmsgSpace(n), unix.CmsgSpace(n); got != want {
			t.Errorf("cmsgSpace(%d) = %d, want CMSG_SPACE %d", n, got, want)
		}
	}
}

func TestControlFlagsString(t *testing.T) {
	for f, want := range map[ControlFlags]string{
		0: "0", FlagDst: "dst", FlagTTL | FlagTOS: "ttl|tos",
		FlagDst | FlagTTL | FlagTOS: "dst|ttl|tos", FlagTOS | 0x80: "tos|0x80",
	} {
		if got := f.String(); got != want {
			t.Errorf("ControlFlags(%#x).String() = %q, want %q", uint8(f), got, want)
		}
	}
}

// testCmsg encodes one control message with x/sys/unix's struct cmsghdr,
// apart from the code under test. lenDelta is added to cmsg_len.
func testCmsg(level, typ int, data []byte, lenDelta int) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = int32(level), int32(typ)
	h.SetLen(unix.CmsgLen(len(data)) + lenDelta)
	copy(b[unix.CmsgLen(0):], data)
	return b
}

func testInt(v int32) []byte { return binary.NativeEndian.AppendUint32(nil, uint32(v)) }

func testPktinfo4(ifindex int32, spec, addr netip.Addr) []byte {
	return unix.PktInfo4(&unix.Inet4Pktinfo{Ifindex: ifindex, Spec_dst: spec.As4(), Addr: addr.As4()})
}

func testPktinfo6(ifindex uint32, addr netip.Addr) []byte {
	return unix.PktInfo6(&unix.Inet6Pktinfo{Addr: addr.As16(), Ifindex: ifindex})
}

// rxCase is a received datagram and the control messages Linux gives it
// with all of FlagDst, FlagTTL and FlagTOS, in order.
type rxCase struct {
	name  string
	conn6 bool
	m     rxMeta
	dst   []byte // FlagDst's message
	ttl   []byte // FlagTTL's, nil for none
	tos   []byte // FlagTOS's, nil for none
}

func rxCases() []rxCase {
	a4 := netip.MustParseAddr("10.1.2.3")
	bcast := netip.MustParseAddr("10.1.2.255")
	a6 := netip.MustParseAddr("2001:db8::1")
	return []rxCase{{
		name: "udp4", m: rxMeta{dst: a4, ifindex: 3, ttl: 9, tos: 0xb9},
		dst: testPktinfo4(3, a4, a4), ttl: testCmsg(unix.IPPROTO_IP, unix.IP_TTL, testInt(9), 0),
		tos: testCmsg(unix.IPPROTO_IP, unix.IP_TOS, []byte{0xb9}, 0),
	}, {
		name: "udp4 broadcast", m: rxMeta{dst: bcast, specDst: a4, ifindex: 7, ttl: 255, tos: 3},
		dst: testPktinfo4(7, a4, bcast), ttl: testCmsg(unix.IPPROTO_IP, unix.IP_TTL, testInt(255), 0),
		tos: testCmsg(unix.IPPROTO_IP, unix.IP_TOS, []byte{3}, 0),
	}, {
		name: "udp6", conn6: true, m: rxMeta{dst: a6.WithZone("eth0"), ifindex: 2, ttl: 1, tos: 0xfe},
		dst: testPktinfo6(2, a6), ttl: testCmsg(unix.IPPROTO_IPV6, unix.IPV6_HOPLIMIT, testInt(1), 0),
		tos: testCmsg(unix.IPPROTO_IPV6, unix.IPV6_TCLASS, testInt(0xfe), 0),
	}, {
		name: "IPv4 on udp6", conn6: true, m: rxMeta{dst: a4, ifindex: 4, ttl: 9, tos: 0xb9},
		dst: testPktinfo6(4, netip.AddrFrom16(a4.As16())),
	}, {
		name: "v4-mapped on udp6", conn6: true, m: rxMeta{dst: netip.AddrFrom16(a4.As16()), ifindex: 4, ttl: 9},
		dst: testPktinfo6(4, netip.AddrFrom16(a4.As16())),
	}}
}

// msgs returns the messages Linux gives c with flags, in order.
func (c rxCase) msgs(flags ControlFlags) [][]byte {
	var msgs [][]byte
	for i, m := range [][]byte{c.dst, c.ttl, c.tos} {
		if flags&(1<<i) != 0 && m != nil {
			msgs = append(msgs, m)
		}
	}
	return msgs
}

// Every flag combination on every kind of datagram gives the messages
// Linux would, in its order, which x/net and x/sys/unix read back.
func TestPutControlRoundTrip(t *testing.T) {
	for _, c := range rxCases() {
		for flags := range ControlFlags(8) {
			t.Run(fmt.Sprintf("%s/%v", c.name, flags), func(t *testing.T) {
				want := bytes.Join(c.msgs(flags), nil)
				oob := make([]byte, 128)
				n, rf := putControl(oob, flags, c.conn6, &c.m)
				if got := oob[:n]; n != len(want) || rf != 0 || !bytes.Equal(got, want) {
					t.Fatalf("putControl(%v) = %d, %#x:\n%x\nwant %d, 0:\n%x", flags, n, rf, got, len(want), want)
				}
				if err := checkParsers(c, flags, oob[:n]); err != nil {
					t.Error(err)
				}
			})
		}
	}
}

// checkParsers checks that x/sys/unix and x/net read oob as c with flags.
func checkParsers(c rxCase, flags ControlFlags, oob []byte) error {
	var errs []error
	msgs, err := unix.ParseSocketControlMessage(oob)
	want := c.msgs(flags)
	if err != nil || len(msgs) != len(want) {
		return fmt.Errorf("unix.ParseSocketControlMessage = %d messages, %v; want %d", len(msgs), err, len(want))
	}
	for i, m := range msgs {
		if w, _ := unix.ParseSocketControlMessage(want[i]); m.Header != w[0].Header || !bytes.Equal(m.Data, w[0].Data) {
			errs = append(errs, fmt.Errorf("unix.ParseSocketControlMessage: message %d is %+v %x, want %+v %x", i, m.Header, m.Data, w[0].Header, w[0].Data))
		}
	}
	dst := c.m.dst.Unmap()
	if !c.conn6 { // x/net's ipv4 has no TOS: x/sys/unix read it above.
		var cm, want ipv4.ControlMessage
		if flags&FlagDst != 0 {
			want.Dst, want.IfIndex = dst.AsSlice(), int(c.m.ifindex)
		}
		if flags&FlagTTL != 0 {
			want.TTL = int(c.m.ttl)
		}
		if err := cm.Parse(oob); err != nil || cm.TTL != want.TTL || !cm.Dst.Equal(want.Dst) || cm.IfIndex != want.IfIndex {
			errs = append(errs, fmt.Errorf("ipv4.ControlMessage.Parse: %v, %v; want %v", &cm, err, &want))
		}
		return errors.Join(errs...)
	}
	var cm, want6 ipv6.ControlMessage
	if flags&FlagDst != 0 {
		a := dst.As16()
		want6.Dst, want6.IfIndex = a[:], int(c.m.ifindex)
	}
	if flags&FlagTTL != 0 && c.ttl != nil {
		want6.HopLimit = int(c.m.ttl)
	}
	if flags&FlagTOS != 0 && c.tos != nil {
		want6.TrafficClass = int(c.m.tos)
	}
	if err := cm.Parse(oob); err != nil || cm.HopLimit != want6.HopLimit || cm.TrafficClass != want6.TrafficClass ||
		!cm.Dst.Equal(want6.Dst) || cm.IfIndex != want6.IfIndex {
		errs = append(errs, fmt.Errorf("ipv6.ControlMessage.Parse: %v, %v; want %v", &cm, err, &want6))
	}
	return errors.Join(errs...)
}

// A buffer too small for every message is cut as Linux's put_cmsg cuts
// it: a message whose header fits is written as far as the buffer goes,
// with cmsg_len cut to match, and MSG_CTRUNC set; padding bytes are never
// written, and the last message's padding need not fit.
func TestPutControlTruncates(t *testing.T) {
	c := rxCases()[0]
	all := FlagDst | FlagTTL | FlagTOS
	ref := bytes.Repeat([]byte{0xaa}, 256) // padding left 0xaa
	full, _ := putControl(ref, all, false, &c.m)
	pk, ttl := cmsgSpace(sizeofInetPktinfo), cmsgSpace(sizeofInt) // PKTINFO, then TTL, then TOS
	for _, tc := range []struct {
		size, n int
		trunc   bool
		cut     int // where the message cut short starts; -1: none is
	}{
		{0, 0, true, -1},
		{cmsgHdrLen - 1, 0, true, -1},
		{cmsgHdrLen, cmsgHdrLen, true, 0},
		{cmsgLen(sizeofInetPktinfo), cmsgLen(sizeofInetPktinfo), true, -1},
		{pk, pk, true, -1},
		{pk + cmsgHdrLen + 2, pk + cmsgHdrLen + 2, true, pk},
		{pk + ttl + cmsgLen(1) - 1, pk + ttl + cmsgLen(1) - 1, true, pk + ttl},
		{pk + ttl + cmsgLen(1), pk + ttl + cmsgLen(1), false, -1},
		{full - 1, full - 1, false, -1},
		{full, full, false, -1},
		{full + 9, full, false, -1},
	} {
		oob := bytes.Repeat([]byte{0xaa}, tc.size)
		n, rf := putControl(oob, all, false, &c.m)
		if wantRF := map[bool]int{true: msgCtrunc}[tc.trunc]; n != tc.n || rf != wantRF {
			t.Errorf("putControl(%d bytes) = %d, %#x, want %d, %#x", tc.size, n, rf, tc.n, wantRF)
			continue
		}
		want := bytes.Clone(ref[:tc.size])
		for i := n; i < tc.size; i++ {
			want[i] = 0xaa // nothing written past n
		}
		if tc.cut >= 0 {
			// A cut message's cmsg_len says what was written of it.
			l := binary.NativeEndian.AppendUint64(nil, uint64(tc.size-tc.cut))
			if cmsgAlign == 4 {
				l = binary.NativeEndian.AppendUint32(nil, uint32(tc.size-tc.cut))
			}
			copy(want[tc.cut:], l)
		}
		if !bytes.Equal(oob, want) {
			t.Errorf("putControl(%d bytes) wrote\n%x\nwant\n%x", tc.size, oob, want)
		}
	}
}

// sendWant is what parseSendControl should make of an oob on one path,
// and what Linux's sendmsg does with it on loopback.
type sendWant struct {
	meta   sendMeta
	einval bool          // parseSendControl fails with EINVAL
	linux  syscall.Errno // what Linux's sendmsg fails with; 0: it sends
}

// sendOK: parsed as meta, and Linux sends.
func sendOK(meta sendMeta) sendWant { return sendWant{meta: meta} }

// sendEINVAL: refused, by Linux too.
func sendEINVAL() sendWant { return sendWant{einval: true, linux: syscall.EINVAL} }

// sendUnsupported: refused, though Linux sends.
func sendUnsupported() sendWant { return sendWant{einval: true} }

// sendHostFails: parsed as meta, and Linux fails with errno on grounds
// parseSendControl leaves to its caller (the host's addresses and
// interfaces).
func sendHostFails(meta sendMeta, errno syscall.Errno) sendWant {
	return sendWant{meta: meta, linux: errno}
}

type sendCase struct {
	name string
	oob  []byte
	want [3]sendWant // by sendPath: sendIPv4, sendIPv6, sendMapped
}

// compatRefuses says a 32-bit process on a 64-bit kernel gets EINVAL for
// oob where a 64-bit process does not: its messages go through the
// kernel's compat conversion (cmsghdr_from_user_compat_to_kern), which
// refuses bytes after the last message that make no header.
func compatRefuses(oob []byte) bool {
	off := 0
	for len(oob)-off >= cmsgHdrLen {
		l := int(binary.NativeEndian.Uint32(oob[off:])) // cmsg_len is 4 bytes on 32-bit
		if l < cmsgHdrLen || l > len(oob)-off {
			return false
		}
		off += cmsgSpace(l - cmsgHdrLen)
	}
	return off < len(oob)
}

// loIndex is the index tests use for the loopback interface. The kernel
// test skips when lo has another.
const loIndex = 1

// sendCases are the control buffers parseSendControl is checked with, on
// each path, and against Linux.
func sendCases() []sendCase {
	none := sendOK(sendMeta{})
	addr := netip.MustParseAddr
	ip := func(typ int, data []byte) []byte { return testCmsg(unix.IPPROTO_IP, typ, data, 0) }
	ip6 := func(typ int, data []byte) []byte { return testCmsg(unix.IPPROTO_IPV6, typ, data, 0) }
	sock := func(typ int, data []byte) []byte { return testCmsg(unix.SOL_SOCKET, typ, data, 0) }
	pk4 := func(ifindex int32, spec string) []byte { return testPktinfo4(ifindex, addr(spec), addr("10.9.9.9")) }
	pk6 := func(ifindex uint32, a string) []byte { return testPktinfo6(ifindex, addr(a)) }
	v4 := func(w sendWant) [3]sendWant { return [3]sendWant{w, none, w} }    // read on the IPv4 paths
	v6 := func(w sendWant) [3]sendWant { return [3]sendWant{none, w, none} } // read on sendIPv6
	all := func(w sendWant) [3]sendWant { return [3]sendWant{w, w, w} }
	ttl := func(v uint8) sendWant { return sendOK(sendMeta{hasTTL: true, ttl: v}) }
	tos := func(v uint8) sendWant { return sendOK(sendMeta{hasTOS: true, tos: v}) }
	src := func(a string, ifindex int32) sendMeta { return sendMeta{src: addr(a), ifindex: ifindex} }
	unknownIf := int32(1 << 20)
	xnet4 := (&ipv4.ControlMessage{Src: net.IPv4(127, 0, 0, 3), IfIndex: loIndex}).Marshal()
	xnet6 := (&ipv6.ControlMessage{TrafficClass: 0xb9, HopLimit: 7, Src: net.IPv6loopback, IfIndex: loIndex}).Marshal()
	return []sendCase{
		{"no messages", nil, all(none)},
		{"fewer bytes than a header", make([]byte, cmsgHdrLen-1), all(none)},
		{"zeroed header", make([]byte, cmsgHdrLen), all(sendEINVAL())},
		{"cmsg_len past the end", testCmsg(unix.IPPROTO_IP, unix.IP_TTL, testInt(9), 8), all(sendEINVAL())},
		{"cmsg_len below a header", testCmsg(unix.IPPROTO_IP, unix.IP_TTL, testInt(9), -5), all(sendEINVAL())},
		{"IP_TTL 9", ip(unix.IP_TTL, testInt(9)), v4(ttl(9))},
		{"IP_TTL 255", ip(unix.IP_TTL, testInt(255)), v4(ttl(255))},
		{"IP_TTL 0", ip(unix.IP_TTL, testInt(0)), v4(sendEINVAL())},
		{"IP_TTL 256", ip(unix.IP_TTL, testInt(256)), v4(sendEINVAL())},
		{"IP_TTL of one byte", ip(unix.IP_TTL, []byte{9}), v4(sendEINVAL())},
		{"IP_TTL twice", slices.Concat(ip(unix.IP_TTL, testInt(7)), ip(unix.IP_TTL, testInt(8))), v4(ttl(8))},
		{"IP_TTL without padding", ip(unix.IP_TTL, testInt(9))[:cmsgLen(4)], v4(ttl(9))},
		{"IP_TTL cut short", ip(unix.IP_TTL, testInt(9))[:cmsgLen(4)-1], all(sendEINVAL())},
		{"IP_TTL and stray bytes", append(ip(unix.IP_TTL, testInt(9)), make([]byte, cmsgHdrLen-1)...), v4(ttl(9))},
		{"IP_TOS int 0xb9", ip(unix.IP_TOS, testInt(0xb9)), v4(tos(0xb9))},
		{"IP_TOS byte 0xb9", ip(unix.IP_TOS, []byte{0xb9}), v4(tos(0xb9))},
		{"IP_TOS byte 0", ip(unix.IP_TOS, []byte{0}), v4(tos(0))},
		{"IP_TOS of two bytes", ip(unix.IP_TOS, []byte{0xb9, 0}), v4(sendEINVAL())},
		{"IP_TOS -1", ip(unix.IP_TOS, testInt(-1)), v4(sendEINVAL())},
		{"IP_TOS 256", ip(unix.IP_TOS, testInt(256)), v4(sendEINVAL())},
		{"IP_PKTINFO zeroed", pk4(0, "0.0.0.0"), v4(sendOK(src("0.0.0.0", 0)))},
		{"IP_PKTINFO 127.0.0.3 on lo", pk4(loIndex, "127.0.0.3"), v4(sendOK(src("127.0.0.3", loIndex)))},
		{"IP_PKTINFO lo, then none", slices.Concat(pk4(loIndex, "127.0.0.3"), pk4(0, "0.0.0.0")), v4(sendOK(src("0.0.0.0", loIndex)))},
		{"IP_PKTINFO of 16 bytes", ip(unix.IP_PKTINFO, make([]byte, 16)), v4(sendEINVAL())},
		{"IP_PKTINFO from an address not the host's", pk4(0, "10.9.9.9"), v4(sendHostFails(src("10.9.9.9", 0), syscall.ENETUNREACH))},
		{"IP_PKTINFO on an unknown interface", pk4(unknownIf, "0.0.0.0"), v4(sendHostFails(src("0.0.0.0", unknownIf), syscall.ENODEV))},
		{"x/net ipv4 Marshal", xnet4, v4(sendOK(src("127.0.0.3", loIndex)))},
		{"IP_PKTINFO, IP_TTL and IP_TOS", slices.Concat(pk4(loIndex, "127.0.0.1"), ip(unix.IP_TTL, testInt(3)), ip(unix.IP_TOS, []byte{2})),
			v4(sendOK(sendMeta{src: addr("127.0.0.1"), ifindex: loIndex, hasTTL: true, ttl: 3, hasTOS: true, tos: 2}))},
		{"IP_PROTOCOL 17", ip(unix.IP_PROTOCOL, testInt(17)), all(none)},
		{"IP_PROTOCOL 0", ip(unix.IP_PROTOCOL, testInt(0)), v4(sendEINVAL())},
		{"IP_RETOPTS", ip(unix.IP_RETOPTS, []byte{1, 1, 1, 1}), v4(sendUnsupported())},
		{"unknown SOL_IP type", ip(99, testInt(1)), v4(sendEINVAL())},
		{"unknown level", testCmsg(99, 1, testInt(1), 0), all(none)},
		{"IPPROTO_TCP level", testCmsg(unix.IPPROTO_TCP, 1, testInt(1), 0), all(none)},
		{"SCM_RIGHTS", sock(unix.SCM_RIGHTS, testInt(0)), all(none)},
		{"SCM_CREDENTIALS", sock(unix.SCM_CREDENTIALS, make([]byte, unix.SizeofUcred)), all(none)},
		{"unknown SOL_SOCKET type", sock(99, testInt(0)), all(sendEINVAL())},
		{"SCM_TXTIME without SO_TXTIME", sock(unix.SCM_TXTIME, make([]byte, 8)), all(sendEINVAL())},
		{"SO_TIMESTAMPING", sock(unix.SO_TIMESTAMPING, testInt(0)), all(sendUnsupported())},
		{"SO_PRIORITY", sock(unix.SO_PRIORITY, testInt(0)), all(sendUnsupported())},
		{"UDP_SEGMENT", testCmsg(unix.SOL_UDP, unix.UDP_SEGMENT, []byte{0, 1}, 0), all(sendUnsupported())},
		{"unknown SOL_UDP type", testCmsg(unix.SOL_UDP, 99, []byte{0, 1}, 0), all(sendEINVAL())},
		{"IPV6_HOPLIMIT 7", ip6(unix.IPV6_HOPLIMIT, testInt(7)), v6(ttl(7))},
		{"IPV6_HOPLIMIT 0", ip6(unix.IPV6_HOPLIMIT, testInt(0)), v6(ttl(0))},
		{"IPV6_HOPLIMIT -1", ip6(unix.IPV6_HOPLIMIT, testInt(-1)), v6(none)},
		{"IPV6_HOPLIMIT 7, then -1", slices.Concat(ip6(unix.IPV6_HOPLIMIT, testInt(7)), ip6(unix.IPV6_HOPLIMIT, testInt(-1))), v6(none)},
		{"IPV6_HOPLIMIT -2", ip6(unix.IPV6_HOPLIMIT, testInt(-2)), v6(sendEINVAL())},
		{"IPV6_HOPLIMIT 256", ip6(unix.IPV6_HOPLIMIT, testInt(256)), v6(sendEINVAL())},
		{"IPV6_HOPLIMIT of one byte", ip6(unix.IPV6_HOPLIMIT, []byte{7}), v6(sendEINVAL())},
		{"IPV6_2292HOPLIMIT 7", ip6(unix.IPV6_2292HOPLIMIT, testInt(7)), v6(ttl(7))},
		{"IPV6_TCLASS 0xb9", ip6(unix.IPV6_TCLASS, testInt(0xb9)), v6(tos(0xb9))},
		{"IPV6_TCLASS -1", ip6(unix.IPV6_TCLASS, testInt(-1)), v6(tos(0xff))},
		{"IPV6_TCLASS 256", ip6(unix.IPV6_TCLASS, testInt(256)), v6(sendEINVAL())},
		{"IPV6_TCLASS of one byte", ip6(unix.IPV6_TCLASS, []byte{0xb9}), v6(sendEINVAL())},
		{"IPV6_PKTINFO ::", pk6(0, "::"), [3]sendWant{none, none, sendEINVAL()}},
		{"IPV6_PKTINFO ::1 on lo", pk6(loIndex, "::1"), [3]sendWant{none, sendOK(src("::1", loIndex)), sendEINVAL()}},
		{"IPV6_PKTINFO of 24 bytes", ip6(unix.IPV6_PKTINFO, append(testPktinfo6(0, addr("::1"))[cmsgHdrLen:][:20], 0, 0, 0, 0)),
			[3]sendWant{none, sendOK(src("::1", 0)), sendEINVAL()}},
		{"IPV6_PKTINFO of 16 bytes", ip6(unix.IPV6_PKTINFO, make([]byte, 16)), [3]sendWant{none, sendEINVAL(), sendEINVAL()}},
		{"IPV6_PKTINFO v4-mapped on lo", pk6(loIndex, "::ffff:127.0.0.3"),
			[3]sendWant{none, sendHostFails(src("::ffff:127.0.0.3", loIndex), syscall.EINVAL), sendOK(src("127.0.0.3", loIndex))}},
		{"IPV6_2292PKTINFO ::1", testCmsg(unix.IPPROTO_IPV6, unix.IPV6_2292PKTINFO, testPktinfo6(0, addr("::1"))[cmsgHdrLen:][:20], 0),
			v6(sendOK(src("::1", 0)))},
		{"IPV6_PKTINFO on lo, then another", slices.Concat(pk6(loIndex, "::"), pk6(loIndex+1, "::")), [3]sendWant{none, sendEINVAL(), sendEINVAL()}},
		{"IPV6_PKTINFO on lo, then none", slices.Concat(pk6(loIndex, "::1"), pk6(0, "::")), [3]sendWant{none, sendOK(src("::1", loIndex)), sendEINVAL()}},
		{"IPV6_PKTINFO from an address not the host's", pk6(0, "::2"), [3]sendWant{none, sendHostFails(src("::2", 0), syscall.EINVAL), sendEINVAL()}},
		{"IPV6_PKTINFO link-local, no interface", pk6(0, "fe80::1"), [3]sendWant{none, sendHostFails(src("fe80::1", 0), syscall.EINVAL), sendEINVAL()}},
		{"IPV6_PKTINFO on an unknown interface", pk6(uint32(unknownIf), "::"), [3]sendWant{none, sendHostFails(sendMeta{ifindex: unknownIf}, syscall.ENODEV), sendEINVAL()}},
		{"IPV6_DONTFRAG", ip6(unix.IPV6_DONTFRAG, testInt(1)), v6(sendUnsupported())},
		{"IPV6_NEXTHOP", ip6(unix.IPV6_NEXTHOP, make([]byte, unix.SizeofSockaddrInet6)), v6(sendEINVAL())},
		{"unknown SOL_IPV6 type", ip6(99, testInt(1)), v6(sendEINVAL())},
		{"x/net ipv6 Marshal", xnet6, [3]sendWant{none, sendOK(sendMeta{src: addr("::1"), ifindex: loIndex, hasTTL: true, ttl: 7, hasTOS: true, tos: 0xb9}), sendEINVAL()}},
	}
}

var sendPaths = [...]sendPath{sendIPv4, sendIPv6, sendMapped}

func TestParseSendControl(t *testing.T) {
	for _, c := range sendCases() {
		for i, p := range sendPaths {
			t.Run(c.name+"/"+p.String(), func(t *testing.T) {
				if err := checkParse(c.oob, p, c.want[i]); err != nil {
					t.Error(err)
				}
			})
		}
	}
}

func checkParse(oob []byte, p sendPath, want sendWant) error {
	sm, err := parseSendControl(oob, p)
	var ce *cmsgError
	switch {
	case want.einval && (!errors.Is(err, syscall.EINVAL) || !errors.As(err, &ce)):
		return fmt.Errorf("parseSendControl(%x, %v) = %v, %v; want a *cmsgError matching EINVAL", oob, p, sm, err)
	case !want.einval && (err != nil || sm != want.meta):
		return fmt.Errorf("parseSendControl(%x, %v) = %v, %v; want %v", oob, p, sm, err, want.meta)
	}
	return nil
}

func TestSendPathFor(t *testing.T) {
	for _, c := range []struct {
		conn6 bool
		dst   string
		want  sendPath
	}{
		{false, "10.0.0.1", sendIPv4}, {true, "10.0.0.1", sendMapped},
		{true, "::ffff:10.0.0.1", sendMapped}, {true, "fd00::1", sendIPv6},
	} {
		if got := sendPathFor(c.conn6, netip.MustParseAddr(c.dst)); got != c.want {
			t.Errorf("sendPathFor(%v, %s) = %v, want %v", c.conn6, c.dst, got, c.want)
		}
	}
}

func TestCmsgErrorText(t *testing.T) {
	_, err := parseSendControl(testCmsg(unix.IPPROTO_IP, unix.IP_TTL, testInt(0), 0), sendIPv4)
	if got, want := fmt.Sprint(err), "IP_TTL: TTL 0 outside 1..255: invalid argument"; got != want {
		t.Errorf("parseSendControl(IP_TTL 0) = %q, want %q", got, want)
	}
	_, err = parseSendControl(make([]byte, cmsgHdrLen), sendIPv6)
	if got, want := fmt.Sprint(err), fmt.Sprintf("control message: cmsg_len 0 at offset 0 outside %d..%d: invalid argument", cmsgHdrLen, cmsgHdrLen); got != want {
		t.Errorf("parseSendControl(zeroed header) = %q, want %q", got, want)
	}
}

// FuzzParseSendControl feeds parseSendControl any bytes on any path: it
// must not panic, and it fails only with a *cmsgError matching EINVAL. The
// other arguments make control messages with x/net's Marshal, which it must
// read back.
func FuzzParseSendControl(f *testing.F) {
	for i, c := range sendCases() {
		f.Add(c.oob, uint8(i%3), int16(i), int16(i*7), []byte("\xfd\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"), uint32(i))
	}
	f.Add([]byte(nil), uint8(1), int16(0), int16(0), []byte(nil), uint32(0))
	f.Add([]byte(nil), uint8(2), int16(255), int16(255), []byte{0, 0, 0, 0}, uint32(1<<31))
	f.Fuzz(func(t *testing.T, oob []byte, path uint8, hop, tclass int16, src []byte, ifindex uint32) {
		p := sendPath(path % 3)
		sm, err := parseSendControl(oob, p)
		var ce *cmsgError
		if err != nil && (!errors.Is(err, syscall.EINVAL) || !errors.As(err, &ce) || err.Error() == "") {
			t.Fatalf("parseSendControl(%x, %v) = %v, want a *cmsgError matching EINVAL", oob, p, err)
		}
		if sm2, err2 := parseSendControl(oob, p); sm2 != sm || (err2 == nil) != (err == nil) {
			t.Fatalf("parseSendControl(%x, %v) = %v, %v, then %v, %v", oob, p, sm, err, sm2, err2)
		}

		ifx := int(ifindex & 0x7fffffff)
		cm6 := ipv6.ControlMessage{TrafficClass: int(uint8(tclass)), HopLimit: int(uint8(hop)), IfIndex: ifx}
		want6 := sendMeta{ifindex: int32(ifx), hasTTL: cm6.HopLimit > 0, ttl: uint8(hop), hasTOS: cm6.TrafficClass > 0, tos: uint8(tclass)}
		if !want6.hasTTL {
			want6.ttl = 0
		}
		if !want6.hasTOS {
			want6.tos = 0
		}
		if len(src) >= 16 && net.IP(src[:16]).To4() == nil {
			cm6.Src = net.IP(src[:16])
			if a := netip.AddrFrom16([16]byte(src[:16])); !a.IsUnspecified() {
				want6.src = a
			}
		}
		if err := checkParse(cm6.Marshal(), sendIPv6, sendOK(want6)); err != nil {
			t.Errorf("x/net ipv6 %v: %v", &cm6, err)
		}

		cm4 := ipv4.ControlMessage{IfIndex: ifx}
		want4 := sendMeta{ifindex: int32(ifx)}
		if len(src) >= 4 {
			cm4.Src = net.IP(src[:4])
			want4.src = netip.AddrFrom4([4]byte(src[:4]))
		} else if ifx > 0 {
			want4.src = netip.IPv4Unspecified()
		}
		for _, p := range []sendPath{sendIPv4, sendMapped} {
			if err := checkParse(cm4.Marshal(), p, sendOK(want4)); err != nil {
				t.Errorf("x/net ipv4 %v: %v", &cm4, err)
			}
		}
	})
}
