package dgram

import (
	"net/netip"
	"syscall"
)

// Connect states, as Node's.
const (
	connDisconnected = iota
	connConnecting
	connConnected
)

// Connect gives the socket a default peer: port at address ("" means the
// loopback address, 127.0.0.1 or ::1). It is Node's
// connect(port[, address][, callback]).
//
// Connecting is asynchronous: an unbound socket is bound to an ephemeral
// port first ('listening'), the address is resolved, then 'connect' is
// emitted in a later tick, after which cb (registered as a once 'connect'
// listener) is called with nil. A failure (ENOTFOUND, EINVAL for an address
// of the other family, EACCES for a broadcast address without
// SetBroadcast) goes to cb, or to an 'error' event without one, and leaves
// the socket disconnected. Once connected, Send takes no port or address,
// only the peer's datagrams are received, and an ICMP port unreachable
// answer to a datagram is reported as an 'error' event "recvmsg
// ECONNREFUSED", or to the next send's callback if that send comes first.
//
// Connect returns ERR_SOCKET_BAD_PORT for a port outside 1..65535,
// ERR_SOCKET_DGRAM_IS_CONNECTED while connecting or connected, and
// ERR_SOCKET_DGRAM_NOT_RUNNING after Close.
func (s *Socket) Connect(port int, address string, cb func(err error)) error {
	l := s.loop
	l.mu.Lock()
	defer l.mu.Unlock()
	l.abortSignalledLocked()
	if port <= 0 || port > 65535 {
		return errBadPort(port, false)
	}
	if s.connectState != connDisconnected {
		return errIsConnected()
	}
	if s.closed {
		return errNotRunning()
	}
	s.connectState = connConnecting
	if s.bindState == bindUnbound {
		s.bindLocked(0, "", nil)
	}
	if s.bindState != bindBound {
		s.enqueueLocked(func() { s.startConnect(port, address, cb) })
		return nil
	}
	s.startConnectLocked(port, address, cb)
	return nil
}

func (s *Socket) startConnect(port int, address string, cb func(error)) {
	s.loop.mu.Lock()
	defer s.loop.mu.Unlock()
	s.startConnectLocked(port, address, cb)
}

// startConnectLocked is Node's _connect: register cb, then resolve (in the
// next tick, where Node's lookup of a literal answers) and connect.
func (s *Socket) startConnectLocked(port int, address string, cb func(error)) {
	var remove func()
	if cb != nil {
		remove = s.addListenerLocked(evConnect, func() { cb(nil) }, true)
	}
	host := address
	if host == "" {
		host = s.loopback()
	}
	s.loop.nextTickLocked(func() {
		s.lookup(host, false, func(ip netip.Addr, err error) { s.doConnect(ip, err, host, address, port, cb, remove) })
	})
}

// doConnect is Node's doConnect: connect the conn, then 'connect' or the
// failure, each in the next tick.
func (s *Socket) doConnect(ip netip.Addr, err error, host, address string, port int, cb func(error), remove func()) {
	l := s.loop
	l.mu.Lock()
	if s.closed || s.conn == nil {
		l.mu.Unlock()
		return
	}
	var ex *Error
	if err != nil {
		ex = lookupError(host, err)
	} else {
		errno := s.checkFamily(ip)
		if errno == 0 {
			if cc, ok := s.conn.(ConnectConn); !ok {
				errno = syscall.ENOTSUP
			} else if cerr := cc.Connect(netip.AddrPortFrom(ip, uint16(port))); cerr != nil {
				errno = errnoOf(cerr)
			}
		}
		if errno != 0 {
			ex = connectException(errno, address, port)
		}
	}
	if ex != nil {
		s.connectState = connDisconnected
		l.nextTickLocked(func() {
			if cb != nil {
				remove()
				cb(ex)
			} else {
				s.emitError(ex)
			}
		})
		l.mu.Unlock()
		return
	}
	s.connectState = connConnected
	l.nextTickLocked(func() { s.emit(evConnect, callPlain) })
	l.mu.Unlock()
}

// Disconnect removes the socket's default peer, at once. Like Linux, it
// also forgets what Bind did not fix: a socket bound implicitly (by Send or
// Connect) or to port 0 loses its port (Address reports port 0 until the
// next send binds a new one), and one bound to "0.0.0.0" or "::" reports
// that address again.
//
// It returns ERR_SOCKET_DGRAM_NOT_CONNECTED unless the socket is
// connected, and ERR_SOCKET_DGRAM_NOT_RUNNING after Close.
func (s *Socket) Disconnect() error {
	s.loop.mu.Lock()
	defer s.loop.mu.Unlock()
	s.loop.abortSignalledLocked()
	if s.connectState != connConnected {
		return errNotConnected()
	}
	if s.closed {
		return errNotRunning()
	}
	cc, ok := s.conn.(ConnectConn)
	if !ok {
		return errnoException(syscall.ENOTSUP, "connect")
	}
	if err := cc.Disconnect(); err != nil {
		return errnoException(errnoOf(err), "connect")
	}
	s.connectState = connDisconnected
	return nil
}

// RemoteAddress returns the connected peer. It returns
// ERR_SOCKET_DGRAM_NOT_CONNECTED unless the socket is connected (also while
// connecting), and ERR_SOCKET_DGRAM_NOT_RUNNING after Close.
func (s *Socket) RemoteAddress() (AddressInfo, error) {
	s.loop.mu.Lock()
	defer s.loop.mu.Unlock()
	s.loop.abortSignalledLocked()
	if s.closed {
		return AddressInfo{}, errNotRunning()
	}
	if s.connectState != connConnected {
		return AddressInfo{}, errNotConnected()
	}
	cc, ok := s.conn.(ConnectConn)
	if !ok {
		return AddressInfo{}, errnoException(syscall.ENOTSUP, "getpeername")
	}
	ap := cc.RemoteAddrPort()
	if !ap.IsValid() {
		return AddressInfo{}, errnoException(syscall.ENOTCONN, "getpeername")
	}
	return infoOf(ap), nil
}
