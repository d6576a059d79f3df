package stack

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
)

// This file holds ancillary data (control messages, "cmsgs") in Linux's
// byte encoding: what recvmsg puts in ReadMsgUDP's oob and what sendmsg
// reads from WriteMsgUDP's. The bytes are Linux's whatever the host: the
// host's word size and byte order (struct cmsghdr is {size_t len; int
// level; int type}, data aligned to sizeof(long): a 16-byte header and
// 8-byte alignment on amd64 and arm64), and Linux's level and type
// numbers, so golang.org/x/net/ipv4 and ipv6's ControlMessage.Parse and
// Marshal, and x/sys/unix's ParseSocketControlMessage, read and write them
// on Linux. (On other systems those packages use that system's numbers.)

// ControlFlags says which control messages a conn's reads return, as the
// socket options named below do on Linux. The zero value asks for none.
//
// A "udp4" conn returns SOL_IP messages. A "udp6" conn returns SOL_IPV6
// ones, also for the IPv4 datagrams a dual-stack conn receives: as on Linux
// with the IPV6_RECV* options, such a datagram gets IPV6_PKTINFO with its
// destination v4-mapped (::ffff:a.b.c.d) and no hop limit or traffic class
// (Linux reports those only through the IP_RECVTTL and IP_RECVTOS options,
// as IP_TTL and IP_TOS messages, which a udp6 conn does not offer).
//
// Linux emits a datagram's messages in one order, PKTINFO, then TTL (hop
// limit), then TOS (traffic class), and so does a conn.
type ControlFlags uint8

const (
	// FlagDst reports the datagram's destination address and the index of
	// the interface it arrived on: IP_PKTINFO (struct in_pktinfo) on a udp4
	// conn, IPV6_RECVPKTINFO (IPV6_PKTINFO, struct in6_pktinfo) on udp6.
	FlagDst ControlFlags = 1 << iota
	// FlagTTL reports the datagram's TTL or hop limit: IP_RECVTTL (an
	// IP_TTL message, an int) on a udp4 conn, IPV6_RECVHOPLIMIT (an
	// IPV6_HOPLIMIT message, an int) on udp6.
	FlagTTL
	// FlagTOS reports the datagram's TOS byte or traffic class, ECN bits
	// included (they are its low two bits): IP_RECVTOS (an IP_TOS message of
	// one byte, as Linux sends it) on a udp4 conn, IPV6_RECVTCLASS (an
	// IPV6_TCLASS message, an int) on udp6. x/net's ipv4.ControlMessage has
	// no TOS; unix.ParseSocketControlMessage reads it.
	FlagTOS
)

// String returns the flags set, as in "dst|ttl|tos" ("0" for none).
func (f ControlFlags) String() string {
	if f == 0 {
		return "0"
	}
	var parts []string
	for _, n := range []struct {
		flag ControlFlags
		name string
	}{{FlagDst, "dst"}, {FlagTTL, "ttl"}, {FlagTOS, "tos"}} {
		if f&n.flag != 0 {
			parts = append(parts, n.name)
			f &^= n.flag
		}
	}
	if f != 0 {
		parts = append(parts, "0x"+strconv.FormatUint(uint64(f), 16))
	}
	return strings.Join(parts, "|")
}

// Linux's numbers (include/uapi/linux/{socket,in,in6,udp}.h,
// include/linux/socket.h), the same on every architecture; a test checks
// them against golang.org/x/sys/unix.
const (
	solIP     = 0  // SOL_IP, IPPROTO_IP
	solSocket = 1  // SOL_SOCKET
	solUDP    = 17 // SOL_UDP
	solIPv6   = 41 // SOL_IPV6

	ipTOS      = 1  // IP_TOS
	ipTTL      = 2  // IP_TTL
	ipRetopts  = 7  // IP_RETOPTS
	ipPktinfo  = 8  // IP_PKTINFO
	ipProtocol = 52 // IP_PROTOCOL

	ipv6PktinfoRFC2292  = 2  // IPV6_2292PKTINFO
	ipv6HoplimitRFC2292 = 8  // IPV6_2292HOPLIMIT
	ipv6Pktinfo         = 50 // IPV6_PKTINFO
	ipv6Hoplimit        = 52 // IPV6_HOPLIMIT
	ipv6Tclass          = 67 // IPV6_TCLASS

	scmRights      = 1   // SCM_RIGHTS
	scmCredentials = 2   // SCM_CREDENTIALS
	udpSegment     = 103 // UDP_SEGMENT

	msgCtrunc = 0x8 // MSG_CTRUNC

	sizeofInetPktinfo  = 12 // struct in_pktinfo
	sizeofInet6Pktinfo = 20 // struct in6_pktinfo
	sizeofInt          = 4
)

// cmsgAlign is sizeof(long), which Linux aligns control messages to;
// cmsgHdrLen is sizeof(struct cmsghdr), already aligned.
const (
	cmsgAlign  = strconv.IntSize / 8
	cmsgHdrLen = cmsgAlign + 8
)

// cmsgLen is CMSG_LEN: a message's cmsg_len for dataLen bytes of data.
func cmsgLen(dataLen int) int { return cmsgHdrLen + dataLen }

// cmsgSpace is CMSG_SPACE: the bytes a message takes, padding included.
func cmsgSpace(dataLen int) int { return cmsgHdrLen + (dataLen+cmsgAlign-1)&^(cmsgAlign-1) }

// rxMeta is what one received datagram tells its reader through control
// messages; the receive path fills one per datagram (from gVisor's
// tcpip.ReceivableControlMessages). The zero value reports destination
// 0.0.0.0 (on a udp6 conn ::), interface 0, TTL 0 and TOS 0.
type rxMeta struct {
	// dst is the destination address in the datagram's IP header
	// (IP_PKTINFO's ipi_addr, gVisor's IPPacketInfo.DestinationAddr): a
	// 4-byte address for IPv4, a 16-byte one for IPv6 (its zone is not
	// reported). A v4-mapped address counts as IPv4.
	dst netip.Addr
	// specDst is IP_PKTINFO's ipi_spec_dst, the local address Linux would
	// answer from (gVisor's IPPacketInfo.LocalAddr): dst for unicast, an
	// address of the receiving interface for broadcast and multicast.
	// Zero: dst. IPv4 only; IPV6_PKTINFO has no such field.
	specDst netip.Addr
	// ifindex is the index of the interface the datagram arrived on.
	ifindex int32
	// ttl is the TTL (IPv4) or hop limit (IPv6) in the datagram's header.
	ttl uint8
	// tos is the TOS byte (IPv4) or traffic class (IPv6) in the datagram's
	// header: DSCP in the high six bits, ECN in the low two.
	tos uint8
}

// putControl writes the control messages flags asks for about the
// datagram m into oob, as Linux's recvmsg does into msg_control, and
// returns how many bytes it wrote (recvmsg's msg_controllen, ReadMsgUDP's
// oobn) and the flags recvmsg would add (MSG_CTRUNC when oob is too small,
// for ReadMsgUDP's flags, else 0). conn6 says the conn is "udp6" (see
// ControlFlags).
//
// Like Linux's put_cmsg, it writes each message's header and data but
// leaves its padding bytes alone, counts the padding of the last message
// only as far as oob reaches, and, when a message does not fit, sets
// MSG_CTRUNC and writes as much of it as fits if its header does, with
// cmsg_len cut to what was written; every message after it is dropped.
// It writes nothing outside oob and keeps no reference to it.
func putControl(oob []byte, flags ControlFlags, conn6 bool, m *rxMeta) (oobn, recvFlags int) {
	w := cmsgWriter{b: oob}
	dst := m.dst.Unmap()
	var data [sizeofInet6Pktinfo]byte
	if !conn6 {
		if flags&FlagDst != 0 {
			spec := m.specDst.Unmap()
			if !spec.IsValid() {
				spec = dst
			}
			binary.NativeEndian.PutUint32(data[0:], uint32(m.ifindex))
			putAddr4(data[4:8], spec)
			putAddr4(data[8:12], dst)
			w.put(solIP, ipPktinfo, data[:sizeofInetPktinfo])
		}
		if flags&FlagTTL != 0 {
			binary.NativeEndian.PutUint32(data[:], uint32(m.ttl))
			w.put(solIP, ipTTL, data[:sizeofInt])
		}
		if flags&FlagTOS != 0 {
			data[0] = m.tos
			w.put(solIP, ipTOS, data[:1])
		}
		return w.n, w.recvFlags
	}
	if flags&FlagDst != 0 {
		var a [16]byte
		if dst.IsValid() {
			a = dst.As16() // v4-mapped for IPv4
		}
		copy(data[0:16], a[:])
		binary.NativeEndian.PutUint32(data[16:], uint32(m.ifindex))
		w.put(solIPv6, ipv6Pktinfo, data[:sizeofInet6Pktinfo])
	}
	if dst.Is4() {
		// Linux's udpv6_recvmsg gives an IPv4 datagram only the common
		// IPv6 messages (ip6_datagram_recv_common_ctl): PKTINFO.
		return w.n, w.recvFlags
	}
	if flags&FlagTTL != 0 {
		binary.NativeEndian.PutUint32(data[:], uint32(m.ttl))
		w.put(solIPv6, ipv6Hoplimit, data[:sizeofInt])
	}
	if flags&FlagTOS != 0 {
		binary.NativeEndian.PutUint32(data[:], uint32(m.tos))
		w.put(solIPv6, ipv6Tclass, data[:sizeofInt])
	}
	return w.n, w.recvFlags
}

// putAddr4 writes a's four bytes into b, zeros if a is not IPv4.
func putAddr4(b []byte, a netip.Addr) {
	var a4 [4]byte
	if a.Is4() {
		a4 = a.As4()
	}
	copy(b, a4[:])
}

// cmsgWriter fills a recvmsg control buffer as Linux's put_cmsg does.
type cmsgWriter struct {
	b         []byte
	n         int // bytes used, padding included
	recvFlags int
}

func (w *cmsgWriter) put(level, typ int, data []byte) {
	room := len(w.b) - w.n
	if room < cmsgHdrLen {
		w.recvFlags |= msgCtrunc
		return
	}
	l := cmsgLen(len(data))
	if room < l {
		w.recvFlags |= msgCtrunc
		l = room
	}
	b := w.b[w.n:]
	if cmsgAlign == 8 {
		binary.NativeEndian.PutUint64(b, uint64(l))
	} else {
		binary.NativeEndian.PutUint32(b, uint32(l))
	}
	binary.NativeEndian.PutUint32(b[cmsgAlign:], uint32(level))
	binary.NativeEndian.PutUint32(b[cmsgAlign+4:], uint32(typ))
	copy(b[cmsgHdrLen:l], data)
	w.n += min(cmsgSpace(len(data)), room)
}

// sendPath says which of Linux's parsers reads a WriteMsgUDP's control
// messages; it depends on the conn and on where the datagram goes
// (sendPathFor).
type sendPath uint8

const (
	// sendIPv4 is a udp4 conn's (ip_cmsg_send): SOL_IP messages are read,
	// SOL_IPV6 ones ignored.
	sendIPv4 sendPath = iota
	// sendIPv6 is a udp6 conn's sending to an IPv6 address
	// (ip6_datagram_send_ctl): SOL_IPV6 messages are read, SOL_IP ones
	// ignored.
	sendIPv6
	// sendMapped is a udp6 conn's sending to a v4-mapped address, which
	// goes out as IPv4 (ip_cmsg_send allowing IPv6): SOL_IP messages are
	// read, and IPV6_PKTINFO if its address is v4-mapped (else EINVAL);
	// other SOL_IPV6 messages are ignored.
	sendMapped
)

// String returns "ipv4", "ipv6" or "ipv4-mapped".
func (p sendPath) String() string {
	switch p {
	case sendIPv4:
		return "ipv4"
	case sendIPv6:
		return "ipv6"
	case sendMapped:
		return "ipv4-mapped"
	}
	return fmt.Sprintf("sendPath(%d)", uint8(p))
}

// sendPathFor returns the path of a datagram to dst from a udp6 conn
// (conn6) or a udp4 one. On a udp6 conn a 4-byte dst counts as v4-mapped,
// as package net has it.
func sendPathFor(conn6 bool, dst netip.Addr) sendPath {
	switch {
	case !conn6:
		return sendIPv4
	case dst.Unmap().Is4():
		return sendMapped
	}
	return sendIPv6
}

// sendMeta is what a datagram's control messages ask of its send. The
// zero value asks nothing: the conn's own settings apply.
type sendMeta struct {
	// src is the source address to send from (IP_PKTINFO's ipi_spec_dst,
	// IPV6_PKTINFO's ipi6_addr), even if the conn is bound to another: 4
	// bytes on the IPv4 paths (unmapped on sendMapped), 16 on sendIPv6.
	// Zero (invalid): the conn's own. On the IPv4 paths 0.0.0.0 means, as
	// on Linux, that routing picks the source, whatever the conn is bound
	// to; on sendIPv6 :: asks nothing. parseSendControl checks only the
	// encoding: the caller fails a source that is not one of the host's
	// addresses, as Linux does, with ENETUNREACH on the IPv4 paths (the
	// route lookup finds no interface with it) and EINVAL on sendIPv6
	// (unless IP_FREEBIND or IP_TRANSPARENT), and an IPv6 link-local one
	// with no interface from ifindex, the conn or the destination's zone
	// with EINVAL.
	src netip.Addr
	// ifindex is the interface to send from (ipi_ifindex, ipi6_ifindex);
	// 0: routing decides. The caller fails an index no interface has with
	// ENODEV, and on sendIPv6 one that differs from the interface the conn
	// is bound to or the destination's zone names with EINVAL.
	ifindex int32
	// hasTTL says the datagram goes with TTL (hop limit) ttl, not the
	// conn's (IP_TTL, 1..255; IPV6_HOPLIMIT, 0..255).
	hasTTL bool
	ttl    uint8
	// hasTOS says the datagram goes with TOS byte (traffic class) tos, ECN
	// bits included, not the conn's (IP_TOS, IPV6_TCLASS).
	hasTOS bool
	tos    uint8
}

// String describes what sm asks, as in "src=127.0.0.3 ifindex=1 ttl=9
// tos=0xb9" ("{}" for nothing).
func (sm sendMeta) String() string {
	var parts []string
	if sm.src.IsValid() {
		parts = append(parts, "src="+sm.src.String())
	}
	if sm.ifindex != 0 {
		parts = append(parts, "ifindex="+strconv.Itoa(int(sm.ifindex)))
	}
	if sm.hasTTL {
		parts = append(parts, "ttl="+strconv.Itoa(int(sm.ttl)))
	}
	if sm.hasTOS {
		parts = append(parts, fmt.Sprintf("tos=%#02x", sm.tos))
	}
	if len(parts) == 0 {
		return "{}"
	}
	return strings.Join(parts, " ")
}

// cmsgError is a WriteMsgUDP control buffer that sendmsg refuses. It
// matches syscall.EINVAL, as Linux's refusal does; its text says which
// message and why. Its user wraps it once, in a net.OpError.
type cmsgError struct {
	level, typ int // of the message refused; -1, -1 for a bad cmsg_len
	reason     string
}

func (e *cmsgError) Error() string {
	what := cmsgName(e.level, e.typ)
	if e.level < 0 {
		what = "control message"
	}
	return what + ": " + e.reason + ": " + syscall.EINVAL.Error()
}

// Unwrap returns syscall.EINVAL.
func (e *cmsgError) Unwrap() error { return syscall.EINVAL }

// cmsgNames are Linux's names of the messages parseSendControl knows.
var cmsgNames = map[[2]int]string{
	{solIP, ipTOS}: "IP_TOS", {solIP, ipTTL}: "IP_TTL", {solIP, ipRetopts}: "IP_RETOPTS",
	{solIP, ipPktinfo}: "IP_PKTINFO", {solIP, ipProtocol}: "IP_PROTOCOL",
	{solIPv6, ipv6PktinfoRFC2292}: "IPV6_2292PKTINFO", {solIPv6, ipv6HoplimitRFC2292}: "IPV6_2292HOPLIMIT",
	{solIPv6, ipv6Pktinfo}: "IPV6_PKTINFO", {solIPv6, ipv6Hoplimit}: "IPV6_HOPLIMIT",
	{solIPv6, ipv6Tclass}: "IPV6_TCLASS", {solUDP, udpSegment}: "UDP_SEGMENT",
}

// cmsgName names a control message as Linux's headers do.
func cmsgName(level, typ int) string {
	if n, ok := cmsgNames[[2]int{level, typ}]; ok {
		return n
	}
	return fmt.Sprintf("control message (level %d, type %d)", level, typ)
}

// parseSendControl reads a WriteMsgUDP's oob, control messages in Linux's
// encoding (as x/net's ControlMessage.Marshal writes them), as Linux's
// sendmsg on a UDP socket does on path p, and returns what they ask. It
// keeps no reference to oob.
//
// It reads IP_PKTINFO and IPV6_PKTINFO (the source address and interface
// to send from; a zero ifindex leaves an earlier message's), IP_TTL and
// IPV6_HOPLIMIT, IP_TOS (an int or, as Linux also takes it, one byte) and
// IPV6_TCLASS, and the RFC 2292 IPV6_2292PKTINFO and IPV6_2292HOPLIMIT;
// a later message overrides an earlier one. IPV6_HOPLIMIT -1 means the
// conn's hop limit, and IPV6_TCLASS -1 traffic class 0xff, as Linux sends
// it (seen on 6.18; RFC 3542 says the default).
//
// It fails with a *cmsgError (errors.Is(err, syscall.EINVAL)) where Linux
// fails with EINVAL: a header whose cmsg_len is below the header's size or
// past the end of oob, a read message of the wrong length or with a value
// out of range, an unknown type at SOL_IP on the IPv4 paths, at SOL_IPV6
// on sendIPv6, at SOL_SOCKET or at SOL_UDP, a non-v4-mapped IPV6_PKTINFO
// on sendMapped, and on sendIPv6 two IPV6_PKTINFO naming different
// interfaces. It also fails with EINVAL, where Linux would send, for the
// messages Linux knows and a conn does not do: IP_RETOPTS, UDP_SEGMENT
// (GSO), the SOL_SOCKET ones but SCM_RIGHTS and SCM_CREDENTIALS (SO_MARK,
// SO_PRIORITY, SO_TIMESTAMPING; SCM_TXTIME fails on Linux too without
// SO_TXTIME), and on sendIPv6 IPV6_DONTFRAG, IPV6_FLOWINFO and the IPv6
// extension headers (which Linux takes only with CAP_NET_RAW).
//
// Like Linux it ignores the messages of other levels, SCM_RIGHTS and
// SCM_CREDENTIALS, IP_PROTOCOL (1..255; UDP sends as UDP), and fewer than
// a header's bytes after the last message (which a 32-bit process on a
// 64-bit kernel gets EINVAL for).
func parseSendControl(oob []byte, p sendPath) (sendMeta, error) {
	var sm sendMeta
	for off := 0; len(oob)-off >= cmsgHdrLen; {
		b := oob[off:]
		var l uint64
		if cmsgAlign == 8 {
			l = binary.NativeEndian.Uint64(b)
		} else {
			l = uint64(binary.NativeEndian.Uint32(b))
		}
		if l < cmsgHdrLen || l > uint64(len(b)) {
			return sendMeta{}, &cmsgError{-1, -1, fmt.Sprintf("cmsg_len %d at offset %d outside %d..%d", l, off, cmsgHdrLen, len(b))}
		}
		level := int(int32(binary.NativeEndian.Uint32(b[cmsgAlign:])))
		typ := int(int32(binary.NativeEndian.Uint32(b[cmsgAlign+4:])))
		if err := sm.read(p, level, typ, b[cmsgHdrLen:l]); err != nil {
			return sendMeta{}, err
		}
		off += cmsgSpace(int(l) - cmsgHdrLen)
	}
	return sm, nil
}

// read applies one control message to sm, or says why sendmsg refuses it.
func (sm *sendMeta) read(p sendPath, level, typ int, data []byte) error {
	fail := func(format string, args ...any) error {
		return &cmsgError{level, typ, fmt.Sprintf(format, args...)}
	}
	wantLen := func(n int) error {
		if len(data) != n {
			return fail("%d bytes of data, want %d", len(data), n)
		}
		return nil
	}
	int32At := func() int { return int(int32(binary.NativeEndian.Uint32(data))) }
	switch level {
	case solSocket:
		switch typ {
		case scmRights, scmCredentials:
			return nil
		}
		return fail("not supported")
	case solUDP:
		if typ == udpSegment {
			return fail("not supported")
		}
		return fail("unknown type")
	case solIP:
		if p == sendIPv6 {
			return nil
		}
		switch typ {
		case ipPktinfo:
			if err := wantLen(sizeofInetPktinfo); err != nil {
				return err
			}
			if i := int32(binary.NativeEndian.Uint32(data)); i != 0 {
				sm.ifindex = i
			}
			sm.src = netip.AddrFrom4([4]byte(data[4:8]))
		case ipTTL:
			if err := wantLen(sizeofInt); err != nil {
				return err
			}
			v := int32At()
			if v < 1 || v > 255 {
				return fail("TTL %d outside 1..255", v)
			}
			sm.hasTTL, sm.ttl = true, uint8(v)
		case ipTOS:
			v := 0
			switch len(data) {
			case sizeofInt:
				v = int32At()
			case 1:
				v = int(data[0])
			default:
				return fail("%d bytes of data, want 4 or 1", len(data))
			}
			if v < 0 || v > 255 {
				return fail("TOS %d outside 0..255", v)
			}
			sm.hasTOS, sm.tos = true, uint8(v)
		case ipProtocol:
			if err := wantLen(sizeofInt); err != nil {
				return err
			}
			if v := int32At(); v < 1 || v > 255 {
				return fail("protocol %d outside 1..255", v)
			}
		case ipRetopts:
			return fail("not supported")
		default:
			return fail("unknown type")
		}
		return nil
	case solIPv6:
		switch p {
		case sendIPv4:
			return nil
		case sendMapped:
			if typ != ipv6Pktinfo {
				return nil
			}
			if len(data) < sizeofInet6Pktinfo {
				return fail("%d bytes of data, want at least %d", len(data), sizeofInet6Pktinfo)
			}
			a := netip.AddrFrom16([16]byte(data[:16]))
			if !a.Is4In6() {
				return fail("address %v is not v4-mapped", a)
			}
			if i := int32(binary.NativeEndian.Uint32(data[16:])); i != 0 {
				sm.ifindex = i
			}
			sm.src = a.Unmap()
			return nil
		}
		switch typ {
		case ipv6Pktinfo, ipv6PktinfoRFC2292:
			if len(data) < sizeofInet6Pktinfo {
				return fail("%d bytes of data, want at least %d", len(data), sizeofInet6Pktinfo)
			}
			if i := int32(binary.NativeEndian.Uint32(data[16:])); i != 0 {
				if sm.ifindex != 0 && sm.ifindex != i {
					return fail("interface %d after interface %d", uint32(i), uint32(sm.ifindex))
				}
				sm.ifindex = i
			}
			if a := netip.AddrFrom16([16]byte(data[:16])); !a.IsUnspecified() {
				sm.src = a
			}
		case ipv6Hoplimit, ipv6HoplimitRFC2292:
			if err := wantLen(sizeofInt); err != nil {
				return err
			}
			v := int32At()
			if v < -1 || v > 255 {
				return fail("hop limit %d outside -1..255", v)
			}
			sm.hasTTL, sm.ttl = v >= 0, uint8(max(v, 0))
		case ipv6Tclass:
			if err := wantLen(sizeofInt); err != nil {
				return err
			}
			v := int32At()
			if v < -1 || v > 255 {
				return fail("traffic class %d outside -1..255", v)
			}
			sm.hasTOS, sm.tos = true, uint8(v) // -1: 0xff, as Linux sends it
		default:
			// IPV6_DONTFRAG, IPV6_FLOWINFO, the extension headers, and
			// types Linux does not know.
			return fail("unknown or not supported type")
		}
		return nil
	}
	return nil
}
