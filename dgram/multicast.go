package dgram

import (
	"net/netip"
	"syscall"
)

// Addresses in the multicast calls are parsed as libuv parses them: an IPv4
// address in dotted-quad form, or an IPv6 address with an optional
// "%zone". For an IPv6 interface only the zone counts: it names the
// interface ("::%eth0"); an unknown zone means "let the system choose".
// An interface "" is Node's omitted argument: the system chooses by route.

// parseUV parses an address as uv_ip4_addr, then uv_ip6_addr, do.
func parseUV(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a, true
}

// SetMulticastInterface chooses the interface this socket's multicast
// datagrams leave through, Node's setMulticastInterface: for IPv4 an
// address of the interface ("10.0.0.1"; "0.0.0.0" lets the routing table
// choose again), for IPv6 a zone naming it ("::%eth0"). It returns EINVAL
// for an address that does not parse (including ""), EBADF before the
// socket is bound, EADDRNOTAVAIL for an IPv4 address that is not the
// host's, and ENOPROTOOPT for an IPv6 interface on a "udp4" socket (all as
// "setMulticastInterface <CODE>").
func (s *Socket) SetMulticastInterface(iface string) error {
	const call = "setMulticastInterface"
	s.loop.mu.Lock()
	defer s.loop.mu.Unlock()
	s.loop.abortSignalledLocked()
	if s.closed {
		return errNotRunning()
	}
	ip, ok := parseUV(iface)
	if !ok {
		return errnoException(syscall.EINVAL, call)
	}
	if s.conn == nil {
		return errnoException(syscall.EBADF, call)
	}
	mc, ok := s.conn.(MulticastConn)
	if !ok {
		return errnoException(syscall.ENOTSUP, call)
	}
	if err := mc.SetMulticastInterface(ip); err != nil {
		return errnoException(errnoOf(err), call)
	}
	return nil
}

// AddMembership joins the multicast group on an interface (iface "": the
// one the routing table gives for the group), Node's addMembership.
// Datagrams sent to the group and the socket's port are then received.
// A "udp6" socket may join IPv4 groups.
//
// Errors, each as "addMembership <CODE>": ERR_MISSING_ARGS for a group "";
// EINVAL for a group that is not a multicast address or an interface that
// does not parse for the group's family; ENODEV for an interface address
// that is not the host's (or no route to the group); ENOPROTOOPT for an
// IPv6 group on a "udp4" socket; EADDRINUSE for a group already joined on
// that interface.
//
// As in Node, on a socket that is not bound AddMembership binds it behind
// the scenes to all interfaces and an ephemeral port (Address then works,
// but no 'listening' is emitted and no datagram is delivered); a later
// Bind, Send or Connect then fails with an 'error' event "bind EINVAL".
// Bind first.
func (s *Socket) AddMembership(group, iface string) error {
	return s.membership("addMembership", group, iface, MulticastConn.JoinGroup)
}

// DropMembership leaves a group joined with AddMembership, naming the same
// interface; a group not joined there gives EADDRNOTAVAIL. Otherwise it
// is AddMembership's mirror.
func (s *Socket) DropMembership(group, iface string) error {
	return s.membership("dropMembership", group, iface, MulticastConn.LeaveGroup)
}

func (s *Socket) membership(call, group, iface string, fn func(MulticastConn, netip.Addr, netip.Addr) error) error {
	s.loop.mu.Lock()
	defer s.loop.mu.Unlock()
	s.loop.abortSignalledLocked()
	if s.closed {
		return errNotRunning()
	}
	if group == "" {
		return errMissingArgs("multicastAddress")
	}
	g, ok := parseUV(group)
	if !ok {
		return errnoException(syscall.EINVAL, call)
	}
	mc, err := s.multicastConnLocked(call)
	if err != nil {
		return err
	}
	ifc, ok := parseIface(iface, g)
	if !ok {
		return errnoException(syscall.EINVAL, call)
	}
	if err := fn(mc, g, ifc); err != nil {
		return errnoException(errnoOf(err), call)
	}
	return nil
}

// AddSourceSpecificMembership joins group for datagrams from source only,
// on an interface named as for AddMembership: Node's
// addSourceSpecificMembership. source must be of group's family. Errors,
// as "addSourceSpecificMembership <CODE>": EINVAL for an address that does
// not parse, a source of the other family or a group that is not
// multicast; ENODEV, ENOPROTOOPT as for AddMembership; EADDRNOTAVAIL for a
// source already joined; EADDRINUSE when AddMembership is then called for
// the group. An unbound socket is bound behind the scenes as by
// AddMembership.
//
// On a virtual host the stack joins the whole group and the socket filters
// by source; other sockets of the host bound to the same port see every
// source (on Linux, the host filters).
func (s *Socket) AddSourceSpecificMembership(source, group, iface string) error {
	return s.sourceMembership("addSourceSpecificMembership", source, group, iface, MulticastConn.JoinSourceSpecificGroup)
}

// DropSourceSpecificMembership leaves what AddSourceSpecificMembership
// joined for one source; leaving the last source leaves the group. A
// source not joined gives EADDRNOTAVAIL, a group not joined EINVAL.
func (s *Socket) DropSourceSpecificMembership(source, group, iface string) error {
	return s.sourceMembership("dropSourceSpecificMembership", source, group, iface, MulticastConn.LeaveSourceSpecificGroup)
}

func (s *Socket) sourceMembership(call, source, group, iface string, fn func(MulticastConn, netip.Addr, netip.Addr, netip.Addr) error) error {
	s.loop.mu.Lock()
	defer s.loop.mu.Unlock()
	s.loop.abortSignalledLocked()
	if s.closed {
		return errNotRunning()
	}
	g, ok := parseUV(group)
	if !ok {
		return errnoException(syscall.EINVAL, call)
	}
	src, ok := parseUV(source)
	if !ok || src.Is4() != g.Is4() {
		return errnoException(syscall.EINVAL, call)
	}
	mc, err := s.multicastConnLocked(call)
	if err != nil {
		return err
	}
	ifc, ok := parseIface(iface, g)
	if !ok {
		return errnoException(syscall.EINVAL, call)
	}
	if err := fn(mc, g, src, ifc); err != nil {
		return errnoException(errnoOf(err), call)
	}
	return nil
}

// parseIface parses a membership's interface for group's family: "" is
// the zero Addr.
func parseIface(iface string, group netip.Addr) (netip.Addr, bool) {
	if iface == "" {
		return netip.Addr{}, true
	}
	a, ok := parseUV(iface)
	if !ok || a.Is4() != group.Is4() {
		return netip.Addr{}, false
	}
	return a, true
}

// multicastConnLocked returns the conn for a membership call, opening it
// unbound first on a socket that has none, as libuv's deferred bind does
// (B77). loop.mu is held.
func (s *Socket) multicastConnLocked(call string) (MulticastConn, error) {
	if s.conn == nil {
		wild := netip.AddrPortFrom(netip.MustParseAddr(s.wildcard()), 0)
		// libuv's deferred bind sets no flags: dual-stack, whatever the
		// socket's ipv6Only (measured on Node v20).
		pc, err := s.network.OpenUDP(s.typ, wild, true, false)
		if err != nil {
			return nil, errnoException(errnoOf(err), call)
		}
		conn, ok := pc.(Conn)
		if !ok {
			pc.Close()
			return nil, errnoException(syscall.ENOTSUP, call)
		}
		s.conn, s.fdExists, s.deferred = conn, true, true
	}
	mc, ok := s.conn.(MulticastConn)
	if !ok {
		return nil, errnoException(syscall.ENOTSUP, call)
	}
	return mc, nil
}
