//go:build linux && !386

package dgram

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

// OpenUDP implements Network. It creates a non-blocking, close-on-exec UDP
// socket of the family of network, sets IPV6_V6ONLY ("udp6" only: 1 when
// ipv6Only, else 0, so the socket is dual-stack as in Node) and SO_REUSEADDR
// (when reuseAddr), binds it to laddr and hands it to the Go runtime's
// poller.
//
// An invalid laddr address means the unspecified address of the family. A
// "udp6" laddr may be IPv4-mapped (::ffff:127.0.0.1); its zone, if any, is
// looked up as an interface name, as libuv does (an unknown name gives scope
// id 0, so the kernel decides). A family mismatch ("udp4" with any IPv6
// address, IPv4-mapped included; "udp6" with an IPv4 address) fails with
// EINVAL before any socket is created.
//
// Errors are *net.OpError values (Op "listen") that unwrap to the
// syscall.Errno; no file descriptor survives a failure.
func (systemNetwork) OpenUDP(network string, laddr netip.AddrPort, reuseAddr, ipv6Only bool) (net.PacketConn, error) {
	c, err := openSysConn(network, laddr, reuseAddr, ipv6Only)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return c, nil
}

func openSysConn(network string, laddr netip.AddrPort, reuseAddr, ipv6Only bool) (*sysConn, error) {
	listenErr := func(syscallName string, err error) error {
		if errno, ok := err.(syscall.Errno); ok {
			err = os.NewSyscallError(syscallName, errno)
		}
		return &net.OpError{Op: "listen", Net: network, Addr: net.UDPAddrFromAddrPort(laddr), Err: err}
	}
	var family int
	switch network {
	case "udp4":
		family = syscall.AF_INET
	case "udp6":
		family = syscall.AF_INET6
	default:
		return nil, listenErr("", fmt.Errorf("%w (%w)", net.UnknownNetworkError(network), syscall.EAFNOSUPPORT))
	}
	sa, errno := toSockaddr(family, laddr)
	if errno != 0 {
		return nil, listenErr("bind", errno)
	}

	fd, err := syscall.Socket(family, syscall.SOCK_DGRAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, listenErr("socket", err)
	}
	if family == syscall.AF_INET6 {
		if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY, boolInt(ipv6Only)); err != nil {
			syscall.Close(fd)
			return nil, listenErr("setsockopt", err)
		}
	}
	if reuseAddr {
		if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
			syscall.Close(fd)
			return nil, listenErr("setsockopt", err)
		}
	}
	if err := syscall.Bind(fd, sa); err != nil {
		syscall.Close(fd)
		return nil, listenErr("bind", err)
	}

	var opened netip.AddrPort
	if sa, err := syscall.Getsockname(fd); err == nil {
		opened = fromSockaddr(sa)
	}

	// FilePacketConn duplicates the descriptor; the original goes with f.
	f := os.NewFile(uintptr(fd), "udp")
	pc, err := net.FilePacketConn(f)
	f.Close()
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Addr: net.UDPAddrFromAddrPort(laddr), Err: err}
	}
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		pc.Close()
		return nil, listenErr("", fmt.Errorf("unexpected conn type %T", pc))
	}
	return &sysConn{UDPConn: uc, network: network, family: family, opened: opened}, nil
}

// sysConn is a kernel UDP socket: a *net.UDPConn plus the options dgram
// needs. All its methods may be called from any goroutine, concurrently with
// each other and with reads and writes; option changes and Connect or
// Disconnect do not disturb a read blocked in another goroutine (after a
// Disconnect that releases the port, that read simply waits until a send
// binds a new one). Close unblocks blocked reads and writes.
type sysConn struct {
	*net.UDPConn
	network string         // "udp4" or "udp6"
	family  int            // syscall.AF_INET or syscall.AF_INET6
	opened  netip.AddrPort // local address right after bind
}

var (
	_ Conn          = (*sysConn)(nil)
	_ ConnectConn   = (*sysConn)(nil)
	_ OptionConn    = (*sysConn)(nil)
	_ MulticastConn = (*sysConn)(nil)
	_ BufferConn    = (*sysConn)(nil)
	_ PollConn      = (*sysConn)(nil)
)

// control runs fn on the socket's descriptor, which stays open meanwhile.
// op names the operation in errors ("set", "get", "connect", ...), and addr
// is the OpError's Addr. fn returns the syscall's name and its error.
func (c *sysConn) control(op string, addr net.Addr, fn func(fd int) (syscallName string, err error)) error {
	rc, err := c.UDPConn.SyscallConn()
	if err != nil {
		return err
	}
	var name string
	var serr error
	if err := rc.Control(func(fd uintptr) { name, serr = fn(int(fd)) }); err != nil {
		return err // closed: matches net.ErrClosed
	}
	if serr != nil {
		if addr == nil {
			addr = c.LocalAddr()
		}
		return &net.OpError{Op: op, Net: c.network, Addr: addr, Err: os.NewSyscallError(name, serr)}
	}
	return nil
}

func (c *sysConn) setInt(level, opt, v int) error {
	return c.control("set", nil, func(fd int) (string, error) {
		return "setsockopt", syscall.SetsockoptInt(fd, level, opt, v)
	})
}

func (c *sysConn) getInt(level, opt int) (int, error) {
	var v int
	err := c.control("get", nil, func(fd int) (string, error) {
		var err error
		v, err = syscall.GetsockoptInt(fd, level, opt)
		return "getsockopt", err
	})
	return v, err
}

// SetBroadcast implements Conn: it sets SO_BROADCAST. Without it, the kernel
// refuses to send to a broadcast address with EACCES.
func (c *sysConn) SetBroadcast(on bool) error {
	return c.setInt(syscall.SOL_SOCKET, syscall.SO_BROADCAST, boolInt(on))
}

// SetTTL sets the TTL of unicast datagrams: IP_TTL on a "udp4" socket,
// IPV6_UNICAST_HOPS on a "udp6" one (as libuv does; it does not apply to
// IPv4 peers of a dual-stack socket). ttl must be 1..255, else EINVAL, as in
// libuv.
func (c *sysConn) SetTTL(ttl int) error {
	if ttl < 1 || ttl > 255 {
		return c.invalid()
	}
	if c.family == syscall.AF_INET6 {
		return c.setInt(syscall.IPPROTO_IPV6, syscall.IPV6_UNICAST_HOPS, ttl)
	}
	return c.setInt(syscall.IPPROTO_IP, syscall.IP_TTL, ttl)
}

// SetMulticastTTL sets the TTL of multicast datagrams (IP_MULTICAST_TTL or
// IPV6_MULTICAST_HOPS by family). ttl must be 0..255, else EINVAL.
func (c *sysConn) SetMulticastTTL(ttl int) error {
	if ttl < 0 || ttl > 255 {
		return c.invalid()
	}
	if c.family == syscall.AF_INET6 {
		return c.setInt(syscall.IPPROTO_IPV6, syscall.IPV6_MULTICAST_HOPS, ttl)
	}
	return c.setInt(syscall.IPPROTO_IP, syscall.IP_MULTICAST_TTL, ttl)
}

// SetMulticastLoopback sets whether multicast datagrams sent by this socket
// are looped back to the sending host (IP_MULTICAST_LOOP or
// IPV6_MULTICAST_LOOP by family).
func (c *sysConn) SetMulticastLoopback(on bool) error {
	if c.family == syscall.AF_INET6 {
		return c.setInt(syscall.IPPROTO_IPV6, syscall.IPV6_MULTICAST_LOOP, boolInt(on))
	}
	return c.setInt(syscall.IPPROTO_IP, syscall.IP_MULTICAST_LOOP, boolInt(on))
}

// ReadBufferSize returns getsockopt SO_RCVBUF: on Linux, twice what
// SetReadBuffer asked for.
func (c *sysConn) ReadBufferSize() (int, error) {
	return c.getInt(syscall.SOL_SOCKET, syscall.SO_RCVBUF)
}

// WriteBufferSize returns getsockopt SO_SNDBUF: on Linux, twice what
// SetWriteBuffer asked for.
func (c *sysConn) WriteBufferSize() (int, error) {
	return c.getInt(syscall.SOL_SOCKET, syscall.SO_SNDBUF)
}

// Connect sets the socket's default peer (connect(2)): Write sends to it, and
// only datagrams from it are received. WriteTo and WriteToUDPAddrPort still
// send to the address they are given (the kernel allows it; libuv's EISCONN
// for that case is for the caller to produce). An ICMP port-unreachable answer then
// makes a later read or write fail with ECONNREFUSED. A socket whose port
// was released by Disconnect gets a new ephemeral one.
//
// On a "udp6" socket an IPv4 addr is used in its IPv4-mapped form; on a
// "udp4" socket an IPv4-mapped addr is unmapped and any other IPv6 addr
// fails with EINVAL.
func (c *sysConn) Connect(addr netip.AddrPort) error {
	raddr := net.UDPAddrFromAddrPort(addr)
	a := addr.Addr()
	switch {
	case c.family == syscall.AF_INET && a.Is4In6():
		addr = netip.AddrPortFrom(a.Unmap(), addr.Port())
	case c.family == syscall.AF_INET6 && a.Is4():
		addr = netip.AddrPortFrom(netip.AddrFrom16(a.As16()), addr.Port())
	}
	if !addr.Addr().IsValid() {
		return &net.OpError{Op: "connect", Net: c.network, Addr: raddr, Err: os.NewSyscallError("connect", syscall.EINVAL)}
	}
	sa, errno := toSockaddr(c.family, addr)
	if errno != 0 {
		return &net.OpError{Op: "connect", Net: c.network, Addr: raddr, Err: os.NewSyscallError("connect", errno)}
	}
	return c.control("connect", raddr, func(fd int) (string, error) {
		return "connect", syscall.Connect(fd, sa)
	})
}

// Disconnect undoes Connect with connect(2) on an AF_UNSPEC address, as
// libuv does. Linux then also forgets whatever the socket did not bind
// explicitly: a local address that bind left unspecified goes back to
// 0.0.0.0 (or ::), and a port that bind let the kernel choose is released
// (LocalAddrPort reports port 0 until a send or Connect picks a new one).
// Disconnecting an unconnected socket succeeds.
func (c *sysConn) Disconnect() error {
	return c.control("connect", nil, func(fd int) (string, error) {
		sa := syscall.RawSockaddr{Family: syscall.AF_UNSPEC}
		_, _, errno := syscall.Syscall(syscall.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa)), unsafe.Sizeof(sa))
		if errno != 0 {
			return "connect", errno
		}
		return "", nil
	})
}

// LocalAddrPort returns the socket's current local address (getsockname).
// Unlike the address *net.UDPConn remembers from when the socket was made,
// it follows Connect and Disconnect; once the socket is closed it is that
// remembered address again. An IPv4-mapped address of a "udp6" socket is not
// unmapped.
func (c *sysConn) LocalAddrPort() netip.AddrPort {
	ap := c.opened
	c.control("get", nil, func(fd int) (string, error) {
		if sa, err := syscall.Getsockname(fd); err == nil {
			ap = fromSockaddr(sa)
		}
		return "getsockname", nil
	})
	return ap
}

// RemoteAddrPort returns the connected peer (getpeername), or the zero
// AddrPort when not connected.
func (c *sysConn) RemoteAddrPort() netip.AddrPort {
	var ap netip.AddrPort
	c.control("get", nil, func(fd int) (string, error) {
		if sa, err := syscall.Getpeername(fd); err == nil {
			ap = fromSockaddr(sa)
		}
		return "getpeername", nil
	})
	return ap
}

// LocalAddr implements net.PacketConn: LocalAddrPort as a *net.UDPAddr.
func (c *sysConn) LocalAddr() net.Addr {
	return net.UDPAddrFromAddrPort(c.LocalAddrPort())
}

// RemoteAddr returns the connected peer as a *net.UDPAddr, or nil when not
// connected.
func (c *sysConn) RemoteAddr() net.Addr {
	ap := c.RemoteAddrPort()
	if !ap.IsValid() {
		return nil
	}
	return net.UDPAddrFromAddrPort(ap)
}

// invalid is the EINVAL error of an option value out of range.
func (c *sysConn) invalid() error {
	return &net.OpError{Op: "set", Net: c.network, Addr: c.LocalAddr(), Err: os.NewSyscallError("setsockopt", syscall.EINVAL)}
}

// toSockaddr converts ap for a socket of family. An invalid address is the
// family's unspecified address. It returns EINVAL for an address of the
// other family (IPv4-mapped addresses count as IPv6).
func toSockaddr(family int, ap netip.AddrPort) (syscall.Sockaddr, syscall.Errno) {
	a := ap.Addr()
	switch family {
	case syscall.AF_INET:
		if !a.IsValid() {
			a = netip.IPv4Unspecified()
		}
		if !a.Is4() {
			return nil, syscall.EINVAL
		}
		return &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}, 0
	case syscall.AF_INET6:
		if !a.IsValid() {
			a = netip.IPv6Unspecified()
		}
		if !a.Is6() {
			return nil, syscall.EINVAL
		}
		sa := &syscall.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}
		if z := a.Zone(); z != "" {
			// Like libuv's uv_ip6_addr: an interface name only, else 0.
			if ifi, err := net.InterfaceByName(z); err == nil {
				sa.ZoneId = uint32(ifi.Index)
			}
		}
		return sa, 0
	}
	return nil, syscall.EAFNOSUPPORT
}

// fromSockaddr converts a kernel address; the zone of a scoped IPv6 address
// is its interface's name (or index, if the name is unknown).
func fromSockaddr(sa syscall.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *syscall.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *syscall.SockaddrInet6:
		a := netip.AddrFrom16(sa.Addr)
		if sa.ZoneId != 0 {
			zone := strconv.Itoa(int(sa.ZoneId))
			if ifi, err := net.InterfaceByIndex(int(sa.ZoneId)); err == nil {
				zone = ifi.Name
			}
			a = a.WithZone(zone)
		}
		return netip.AddrPortFrom(a, uint16(sa.Port))
	}
	return netip.AddrPort{}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
