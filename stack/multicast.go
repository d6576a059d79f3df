package stack

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"syscall"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
)

// This file holds a UDPConn's multicast memberships. gVisor keeps
// any-source memberships per endpoint and joins the group on the NIC; it
// has no source-specific ones (IGMPv3/MLDv2 source filters), so those are
// kept here, the NIC joins the whole group, and the host's dispatcher
// drops, for this conn, the datagrams of the group whose source is not
// included (before they reach its receive buffer). Other conns of the
// host bound to the same port are not filtered (Linux would filter the
// whole host while no conn has an any-source membership).

// groupKey names one membership: a group on a NIC.
type groupKey struct {
	nic   tcpip.NICID
	group netip.Addr
}

// membership is a conn's state for one groupKey: joined for any source,
// or for the sources listed (or both, in which case anything goes).
type membership struct {
	any     bool
	sources map[netip.Addr]struct{}
}

// JoinGroup joins the multicast group on an interface (IP_ADD_MEMBERSHIP or
// IPV6_JOIN_GROUP): datagrams sent to group and to the conn's port are then
// received. The interface is named as SetMulticastInterface names it: an
// IPv4 iface by one of its addresses, an IPv6 iface by its zone; with an
// unspecified or invalid iface (or an unknown zone) the routing table picks
// it, and ENODEV means it found none. A "udp6" conn may join IPv4 groups;
// a "udp4" conn gets ENOPROTOOPT for an IPv6 group. Errors, as on Linux:
// EINVAL for a group that is not multicast, ENODEV for an interface
// address that is not the host's, EADDRINUSE for a group already joined
// on that interface.
func (c *UDPConn) JoinGroup(group, iface netip.Addr) error {
	key, err := c.groupKey(group, iface)
	if err != nil {
		return err
	}
	c.mcMu.Lock()
	defer c.mcMu.Unlock()
	if _, ok := c.groups[key]; ok {
		return errnoError("set", c.LocalAddr(), nil, syscall.EADDRINUSE)
	}
	if err := c.join(key); err != nil {
		return err
	}
	c.groups[key] = &membership{any: true}
	return nil
}

// LeaveGroup leaves a group joined with JoinGroup (IP_DROP_MEMBERSHIP or
// IPV6_LEAVE_GROUP), naming the interface the same way. A group the conn
// has not joined on that interface (or not a group at all) gives
// EADDRNOTAVAIL.
func (c *UDPConn) LeaveGroup(group, iface netip.Addr) error {
	key, err := c.groupKey(group, iface)
	if err != nil {
		if errors.Is(err, syscall.ENOPROTOOPT) || errors.Is(err, net.ErrClosed) {
			return err
		}
		return errnoError("set", c.LocalAddr(), nil, syscall.EADDRNOTAVAIL)
	}
	c.mcMu.Lock()
	defer c.mcMu.Unlock()
	if _, ok := c.groups[key]; !ok {
		return errnoError("set", c.LocalAddr(), nil, syscall.EADDRNOTAVAIL)
	}
	return c.leave(key)
}

// JoinSourceSpecificGroup joins group for datagrams from source only
// (IP_ADD_SOURCE_MEMBERSHIP or MCAST_JOIN_SOURCE_GROUP); calling it again
// with other sources adds them. source must be of group's family, else
// EINVAL; a source already joined gives EADDRNOTAVAIL. The interface is
// named as for JoinGroup. Datagrams of the group from other sources are
// dropped for this conn as they arrive (counted in Host.Stats as
// SourceFiltered),
// unless the conn also joined the group for any source.
func (c *UDPConn) JoinSourceSpecificGroup(group, source, iface netip.Addr) error {
	key, err := c.groupKey(group, iface)
	if err != nil {
		return err
	}
	if !source.IsValid() || source.Is4() != group.Is4() {
		return errnoError("set", c.LocalAddr(), nil, syscall.EINVAL)
	}
	source = source.WithZone("")
	c.mcMu.Lock()
	defer c.mcMu.Unlock()
	m, ok := c.groups[key]
	if !ok {
		if err := c.join(key); err != nil {
			return err
		}
		m = &membership{}
		c.groups[key] = m
	}
	if _, dup := m.sources[source]; dup {
		return errnoError("set", c.LocalAddr(), nil, syscall.EADDRNOTAVAIL)
	}
	if m.sources == nil {
		m.sources = make(map[netip.Addr]struct{})
	}
	m.sources[source] = struct{}{}
	c.ssm.Store(true)
	return nil
}

// LeaveSourceSpecificGroup stops receiving group's datagrams from source
// (IP_DROP_SOURCE_MEMBERSHIP or MCAST_LEAVE_SOURCE_GROUP); leaving the
// last source leaves the group. A group not joined gives EINVAL, a source
// not joined EADDRNOTAVAIL, as on Linux.
func (c *UDPConn) LeaveSourceSpecificGroup(group, source, iface netip.Addr) error {
	key, err := c.groupKey(group, iface)
	if err != nil {
		return err
	}
	if !source.IsValid() || source.Is4() != group.Is4() {
		return errnoError("set", c.LocalAddr(), nil, syscall.EINVAL)
	}
	source = source.WithZone("")
	c.mcMu.Lock()
	defer c.mcMu.Unlock()
	m, ok := c.groups[key]
	if !ok {
		return errnoError("set", c.LocalAddr(), nil, syscall.EINVAL)
	}
	if _, ok := m.sources[source]; !ok {
		return errnoError("set", c.LocalAddr(), nil, syscall.EADDRNOTAVAIL)
	}
	delete(m.sources, source)
	if len(m.sources) == 0 && !m.any {
		return c.leave(key)
	}
	return nil
}

// groupKey resolves the interface of a membership, with Linux's errors.
func (c *UDPConn) groupKey(group, iface netip.Addr) (groupKey, error) {
	if c.isClosed() {
		return groupKey{}, c.closedErr("set")
	}
	group = group.WithZone("")
	switch {
	case !group.IsValid():
		return groupKey{}, errnoError("set", c.LocalAddr(), nil, syscall.EINVAL)
	case group.Is6() && c.family == "udp4":
		return groupKey{}, errnoError("set", c.LocalAddr(), nil, syscall.ENOPROTOOPT)
	case !group.IsMulticast():
		return groupKey{}, errnoError("set", c.LocalAddr(), nil, syscall.EINVAL)
	}
	s := c.host.s
	var nic tcpip.NICID
	proto := ipv4.ProtocolNumber
	if group.Is4() {
		if iface.IsValid() && !iface.Is4() {
			return groupKey{}, errnoError("set", c.LocalAddr(), nil, syscall.EINVAL)
		}
		if iface.IsValid() && !iface.IsUnspecified() {
			// gVisor also counts 255.255.255.255 as every NIC's address.
			if !isUnicast4(iface) {
				return groupKey{}, errnoError("set", c.LocalAddr(), nil, syscall.ENODEV)
			}
			if nic = s.CheckLocalAddress(0, proto, toTCPIPAddr(iface)); nic == 0 {
				return groupKey{}, errnoError("set", c.LocalAddr(), nil, syscall.ENODEV)
			}
		}
	} else {
		proto = ipv6.ProtocolNumber
		nic = c.host.zoneNIC(iface.Zone())
	}
	if nic == 0 {
		r, tcpipErr := s.FindRoute(0, tcpip.Address{}, toTCPIPAddr(group), proto, false)
		if tcpipErr != nil {
			return groupKey{}, errnoError("set", c.LocalAddr(), nil, syscall.ENODEV)
		}
		nic = r.NICID()
		r.Release()
	}
	return groupKey{nic: nic, group: group}, nil
}

// join makes the endpoint (and so the NIC) join key's group; c.mcMu is
// held.
func (c *UDPConn) join(key groupKey) error {
	if c.groups == nil {
		c.groups = make(map[groupKey]*membership)
	}
	c.epMu.RLock()
	tcpipErr := c.ep.SetSockOpt(&tcpip.AddMembershipOption{NIC: key.nic, MulticastAddr: toTCPIPAddr(key.group)})
	c.epMu.RUnlock()
	if tcpipErr != nil {
		return opError("set", c.LocalAddr(), nil, tcpipErr)
	}
	return nil
}

// leave ends the membership of key; c.mcMu is held.
func (c *UDPConn) leave(key groupKey) error {
	c.epMu.RLock()
	tcpipErr := c.ep.SetSockOpt(&tcpip.RemoveMembershipOption{NIC: key.nic, MulticastAddr: toTCPIPAddr(key.group)})
	c.epMu.RUnlock()
	delete(c.groups, key)
	if tcpipErr != nil {
		return opError("set", c.LocalAddr(), nil, tcpipErr)
	}
	return nil
}

// admit reports whether a datagram from src to dst, received on nic,
// passes the conn's source-specific memberships. It runs on the delivering
// goroutine.
func (c *UDPConn) admit(src tcpip.Address, nic tcpip.NICID, dst tcpip.Address) bool {
	group := fromTCPIPAddr(dst)
	if !group.IsMulticast() {
		return true
	}
	key := groupKey{nic: nic, group: group}
	c.mcMu.Lock()
	defer c.mcMu.Unlock()
	m, ok := c.groups[key]
	if !ok || m.any {
		return true
	}
	if _, ok := m.sources[fromTCPIPAddr(src).Unmap()]; ok {
		return true
	}
	return false
}

// isUnicast4 reports whether a is an IPv4 address an interface can own.
func isUnicast4(a netip.Addr) bool {
	return a.Is4() && !a.IsMulticast() && a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// zoneNIC returns the NIC an IPv6 zone names (a NIC name or number), or 0
// when there is no zone or no such NIC.
func (h *Host) zoneNIC(zone string) tcpip.NICID {
	if zone == "" {
		return 0
	}
	if n := h.NIC(zone); n != nil {
		return n.id
	}
	if id, err := strconv.Atoi(zone); err == nil {
		if n := h.nicByID(tcpip.NICID(id)); n != nil {
			return n.id
		}
	}
	return 0
}
