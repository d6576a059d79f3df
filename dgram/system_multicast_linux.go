//go:build linux && !386

package dgram

import (
	"net"
	"net/netip"
	"syscall"
	"unsafe"
)

// Source-specific multicast options of <linux/in.h> that package syscall
// lacks.
const (
	mcastJoinSourceGroup  = 46 // MCAST_JOIN_SOURCE_GROUP
	mcastLeaveSourceGroup = 47 // MCAST_LEAVE_SOURCE_GROUP
)

// SetMulticastInterface chooses the interface multicast datagrams leave
// through: an IPv4 iface sets IP_MULTICAST_IF to that address (0.0.0.0:
// the routing table decides), an IPv6 one sets IPV6_MULTICAST_IF to the
// index of the interface its zone names (its address is ignored; no zone or
// an unknown name: 0, the routing table decides), as libuv does. The
// kernel's errors come back as they are: ENOPROTOOPT for an IPv6 iface on a
// "udp4" socket, EADDRNOTAVAIL for an address that is not the machine's.
func (c *sysConn) SetMulticastInterface(iface netip.Addr) error {
	switch {
	case iface.Is4():
		return c.control("set", nil, func(fd int) (string, error) {
			return "setsockopt", syscall.SetsockoptInet4Addr(fd, syscall.IPPROTO_IP, syscall.IP_MULTICAST_IF, iface.As4())
		})
	case iface.Is6():
		return c.setInt(syscall.IPPROTO_IPV6, syscall.IPV6_MULTICAST_IF, zoneIndex(iface.Zone()))
	}
	return c.invalid()
}

// JoinGroup joins group (IP_ADD_MEMBERSHIP, or IPV6_JOIN_GROUP for an IPv6
// group) on the interface iface names, as in SetMulticastInterface; an
// invalid iface lets the kernel choose by route.
func (c *sysConn) JoinGroup(group, iface netip.Addr) error {
	return c.membership(group, iface, syscall.IP_ADD_MEMBERSHIP, syscall.IPV6_JOIN_GROUP)
}

// LeaveGroup leaves a group joined with JoinGroup (IP_DROP_MEMBERSHIP or
// IPV6_LEAVE_GROUP).
func (c *sysConn) LeaveGroup(group, iface netip.Addr) error {
	return c.membership(group, iface, syscall.IP_DROP_MEMBERSHIP, syscall.IPV6_LEAVE_GROUP)
}

func (c *sysConn) membership(group, iface netip.Addr, opt4, opt6 int) error {
	switch {
	case group.Is4():
		if iface.IsValid() && !iface.Is4() {
			return c.invalid()
		}
		mreq := &syscall.IPMreq{Multiaddr: group.As4()}
		if iface.IsValid() {
			mreq.Interface = iface.As4()
		}
		return c.control("set", nil, func(fd int) (string, error) {
			return "setsockopt", syscall.SetsockoptIPMreq(fd, syscall.IPPROTO_IP, opt4, mreq)
		})
	case group.Is6():
		mreq := &syscall.IPv6Mreq{Multiaddr: group.As16(), Interface: uint32(zoneIndex(iface.Zone()))}
		return c.control("set", nil, func(fd int) (string, error) {
			return "setsockopt", syscall.SetsockoptIPv6Mreq(fd, syscall.IPPROTO_IPV6, opt6, mreq)
		})
	}
	return c.invalid()
}

// JoinSourceSpecificGroup joins group for datagrams from source only
// (IP_ADD_SOURCE_MEMBERSHIP, or MCAST_JOIN_SOURCE_GROUP for IPv6). source
// must be of group's family, else EINVAL.
func (c *sysConn) JoinSourceSpecificGroup(group, source, iface netip.Addr) error {
	return c.sourceMembership(group, source, iface, syscall.IP_ADD_SOURCE_MEMBERSHIP, mcastJoinSourceGroup)
}

// LeaveSourceSpecificGroup undoes JoinSourceSpecificGroup for one source
// (IP_DROP_SOURCE_MEMBERSHIP or MCAST_LEAVE_SOURCE_GROUP).
func (c *sysConn) LeaveSourceSpecificGroup(group, source, iface netip.Addr) error {
	return c.sourceMembership(group, source, iface, syscall.IP_DROP_SOURCE_MEMBERSHIP, mcastLeaveSourceGroup)
}

func (c *sysConn) sourceMembership(group, source, iface netip.Addr, opt4, opt6 int) error {
	if !group.IsValid() || !source.IsValid() || group.Is4() != source.Is4() {
		return c.invalid()
	}
	if group.Is4() {
		if iface.IsValid() && !iface.Is4() {
			return c.invalid()
		}
		// struct ip_mreq_source: multiaddr, interface, sourceaddr.
		var req [12]byte
		g, s := group.As4(), source.As4()
		copy(req[0:4], g[:])
		if iface.IsValid() {
			i := iface.As4()
			copy(req[4:8], i[:])
		}
		copy(req[8:12], s[:])
		return c.setRaw(syscall.IPPROTO_IP, opt4, req[:])
	}
	// struct group_source_req: an interface index, then two
	// sockaddr_storage aligned like a long.
	const ssSize = 128
	off := int(unsafe.Sizeof(uintptr(0)))
	req := make([]byte, off+2*ssSize)
	*(*uint32)(unsafe.Pointer(&req[0])) = uint32(zoneIndex(iface.Zone()))
	putSockaddr6(req[off:off+ssSize], group)
	putSockaddr6(req[off+ssSize:], source)
	return c.setRaw(syscall.IPPROTO_IPV6, opt6, req)
}

// putSockaddr6 writes a struct sockaddr_in6 for a (port 0) into b.
func putSockaddr6(b []byte, a netip.Addr) {
	*(*uint16)(unsafe.Pointer(&b[0])) = syscall.AF_INET6
	a16 := a.As16()
	copy(b[8:24], a16[:])
	*(*uint32)(unsafe.Pointer(&b[24])) = uint32(zoneIndex(a.Zone()))
}

// setRaw is setsockopt with a raw option value.
func (c *sysConn) setRaw(level, opt int, val []byte) error {
	return c.control("set", nil, func(fd int) (string, error) {
		_, _, errno := syscall.Syscall6(syscall.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
			uintptr(unsafe.Pointer(&val[0])), uintptr(len(val)), 0)
		if errno != 0 {
			return "setsockopt", errno
		}
		return "", nil
	})
}

// zoneIndex is libuv's reading of an IPv6 zone: an interface name's index,
// else 0.
func zoneIndex(zone string) int {
	if zone == "" {
		return 0
	}
	if ifi, err := net.InterfaceByName(zone); err == nil {
		return ifi.Index
	}
	return 0
}
