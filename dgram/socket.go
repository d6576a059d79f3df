package dgram

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
)

// Socket types.
const (
	UDP4 = "udp4"
	UDP6 = "udp6"
)

// SocketOptions configure CreateSocketWith. Only Type is required.
type SocketOptions struct {
	// Type is "udp4" or "udp6" (case-sensitive, as in Node).
	Type string
	// Network is where the socket lives. Default: the loop's network.
	Network Network
	// ReuseAddr sets SO_REUSEADDR at bind time: sockets that all set it may
	// bind the same address and port.
	ReuseAddr bool
	// IPv6Only makes a "udp6" socket IPv6-only (IPV6_V6ONLY); by default a
	// "udp6" socket bound to "::" also receives IPv4 datagrams.
	IPv6Only bool
	// RecvBufferSize and SendBufferSize, when non-zero, set SO_RCVBUF and
	// SO_SNDBUF once the socket is bound. Zero keeps the defaults.
	RecvBufferSize int
	SendBufferSize int
}

// RemoteInfo describes where a datagram came from, as Node's rinfo.
type RemoteInfo struct {
	// Address is the sender's IP address; an IPv6 link-local address has
	// its zone ("fe80::1%eth0"); IPv4 senders seen by a dual-stack "udp6"
	// socket are IPv4-mapped ("::ffff:10.0.0.1").
	Address string
	// Family is "IPv4" or "IPv6".
	Family string
	Port   int
	// Size is the datagram's length in bytes.
	Size int
}

// AddressInfo is a socket address as Node's address() returns it.
type AddressInfo struct {
	Address string
	Family  string // "IPv4" or "IPv6"
	Port    int
}

// AddrPort returns the address as a netip.AddrPort.
func (a AddressInfo) AddrPort() netip.AddrPort {
	ip, _ := netip.ParseAddr(a.Address)
	return netip.AddrPortFrom(ip, uint16(a.Port))
}

// AddrPort returns the sender as a netip.AddrPort.
func (r RemoteInfo) AddrPort() netip.AddrPort {
	ip, _ := netip.ParseAddr(r.Address)
	return netip.AddrPortFrom(ip, uint16(r.Port))
}

func infoOf(ap netip.AddrPort) AddressInfo {
	fam := "IPv4"
	if ap.Addr().Is6() {
		fam = "IPv6"
	}
	return AddressInfo{Address: ap.Addr().String(), Family: fam, Port: int(ap.Port())}
}

// SocketStats count what happened to a socket's datagrams, including the
// ones Node drops without telling anyone, so that nothing is lost silently.
type SocketStats struct {
	// Sent and SentBytes count datagrams handed to the network.
	Sent, SentBytes uint64
	// SendErrors counts sends that failed in the network (EMSGSIZE,
	// EACCES, ...) or in the lookup of their destination.
	SendErrors uint64
	// SendErrorsUnreported counts the failed sends that had no callback:
	// Node discards those errors (they are not 'error' events).
	SendErrorsUnreported uint64
	// SendsDiscarded counts sends that never ran because the socket was
	// closed, or its bind failed, before their turn (Node calls no callback).
	SendsDiscarded uint64
	// Received and ReceivedBytes count datagrams delivered as 'message'.
	Received, ReceivedBytes uint64
	// ReceivedAfterClose counts datagrams read from the network but not
	// delivered because Close had been called.
	ReceivedAfterClose uint64
}

type socketStats struct {
	sent, sentBytes, sendErrors, sendErrorsUnreported, sendsDiscarded atomic.Uint64
	received, receivedBytes, receivedAfterClose                       atomic.Uint64
}

const (
	bindUnbound = iota
	bindBinding
	bindBound
)

// messageWindow is how many received datagrams of one socket may wait in
// the loop's queue. Beyond that the reader stops reading and datagrams wait
// in (and, when it is full, are dropped and counted by) the network's
// receive buffer, as with a slow Node process.
const messageWindow = 64

// A Socket is a UDP socket with Node's dgram API. Create one with
// Loop.CreateSocket.
type Socket struct {
	loop    *Loop
	network Network
	typ     string
	opts    SocketOptions
	stats   socketStats
	window  chan struct{}

	// Guarded by loop.mu.
	closed        bool
	bindState     int
	fdExists      bool // a bind reached the network (Node's fd exists)
	conn          Conn
	queue         []func()
	queued        bool // queue is in use (Node's state.queue !== undefined)
	unref         bool
	broadcast     *bool // SetBroadcast while the fd exists but is unbound
	readerStop    chan struct{}
	readerDone    chan struct{}
	listeners     [numEvents][]*listener
	errorMonitors []func(error)
}

// CreateSocket creates a socket of type "udp4" or "udp6" on the loop's
// network. onMessage, if not nil, is added as a 'message' listener. Like
// Node, creating a socket opens nothing: the network endpoint exists from
// the first Bind or Send.
func (l *Loop) CreateSocket(typ string, onMessage func(msg []byte, rinfo RemoteInfo)) (*Socket, error) {
	return l.CreateSocketWith(SocketOptions{Type: typ}, onMessage)
}

// CreateSocketWith creates a socket with options.
func (l *Loop) CreateSocketWith(opts SocketOptions, onMessage func(msg []byte, rinfo RemoteInfo)) (*Socket, error) {
	if opts.Type != UDP4 && opts.Type != UDP6 {
		return nil, errBadType()
	}
	if opts.RecvBufferSize < 0 || opts.SendBufferSize < 0 {
		return nil, &Error{Name: "RangeError", Code: "ERR_OUT_OF_RANGE", Message: "buffer sizes must be >= 0"}
	}
	network := opts.Network
	if network == nil {
		network = l.network
	}
	if network == nil {
		return nil, errInvalidArg("network", "a dgram.Network (the loop has none)", "nil")
	}
	s := &Socket{loop: l, network: network, typ: opts.Type, opts: opts, window: make(chan struct{}, messageWindow)}
	l.mu.Lock()
	l.sockets[s] = struct{}{}
	if onMessage != nil {
		s.addListenerLocked(evMessage, onMessage, false)
	}
	l.mu.Unlock()
	return s, nil
}

// Type returns "udp4" or "udp6".
func (s *Socket) Type() string { return s.typ }

// Stats returns the socket's counters.
func (s *Socket) Stats() SocketStats {
	st := &s.stats
	return SocketStats{
		Sent: st.sent.Load(), SentBytes: st.sentBytes.Load(),
		SendErrors: st.sendErrors.Load(), SendErrorsUnreported: st.sendErrorsUnreported.Load(),
		SendsDiscarded: st.sendsDiscarded.Load(),
		Received:       st.received.Load(), ReceivedBytes: st.receivedBytes.Load(),
		ReceivedAfterClose: st.receivedAfterClose.Load(),
	}
}

func (s *Socket) wildcard() string {
	if s.typ == UDP4 {
		return "0.0.0.0"
	}
	return "::"
}

func (s *Socket) loopback() string {
	if s.typ == UDP4 {
		return "127.0.0.1"
	}
	return "::1"
}

func (s *Socket) keepsAliveLocked() bool {
	return !s.closed && !s.unref && s.bindState != bindUnbound
}

// BindOptions is the options form of Bind.
type BindOptions struct {
	// Port to bind, 0..65535; 0 picks an ephemeral port.
	Port int
	// Address to bind; "" means all interfaces ("0.0.0.0" or "::").
	Address string
	// Exclusive is accepted for compatibility; without cluster workers it
	// changes nothing.
	Exclusive bool
}

// Bind binds the socket to port (0: an ephemeral port) and address (""
// means all interfaces). Binding is asynchronous: 'listening' is emitted
// when it is done, and then cb, if not nil, is called. A failure (EADDRINUSE,
// EADDRNOTAVAIL, ENOTFOUND, ...) is an 'error' event, not a return value;
// while a Bind with a callback is pending its failure is swallowed if the
// socket has no 'error' listener of its own, as in Node.
//
// Bind returns ERR_SOCKET_BAD_PORT for a port outside 0..65535,
// ERR_SOCKET_ALREADY_BOUND if the socket is binding or bound, and
// ERR_SOCKET_DGRAM_NOT_RUNNING after Close.
func (s *Socket) Bind(port int, address string, cb func()) error {
	return s.BindWith(BindOptions{Port: port, Address: address}, cb)
}

// BindWith is Bind with the options form.
func (s *Socket) BindWith(opts BindOptions, cb func()) error {
	l := s.loop
	l.mu.Lock()
	defer l.mu.Unlock()
	if opts.Port < 0 || opts.Port > 65535 {
		return errBadPort(opts.Port, true)
	}
	if s.closed {
		return errNotRunning()
	}
	if s.bindState != bindUnbound {
		return errAlreadyBound()
	}
	s.bindLocked(opts.Port, opts.Address, cb)
	return nil
}

func (s *Socket) bindLocked(port int, address string, cb func()) {
	s.bindState = bindBinding
	if cb != nil {
		var rmErr, rmListen func()
		rmErr = s.addListenerLocked(evError, func(error) { rmErr(); rmListen() }, false)
		rmListen = s.addListenerLocked(evListening, func() { rmErr(); rmListen(); cb() }, false)
	}
	s.loop.nextTickLocked(func() { s.doBind(port, address) })
}

// doBind runs in a tick: resolve, open, then 'listening' or 'error'.
func (s *Socket) doBind(port int, address string) {
	host := address
	if host == "" {
		host = s.wildcard()
	}
	s.lookup(host, func(ip netip.Addr, err error) {
		l := s.loop
		l.mu.Lock()
		if s.closed {
			l.mu.Unlock()
			return
		}
		if err != nil {
			s.bindState = bindUnbound
			l.mu.Unlock()
			s.emitError(lookupError(host, err))
			return
		}
		s.fdExists = true
		l.mu.Unlock()

		var conn Conn
		if errno := s.checkFamily(ip); errno != 0 {
			err = errno
		} else {
			var pc net.PacketConn
			pc, err = s.network.OpenUDP(s.typ, netip.AddrPortFrom(ip, uint16(port)), s.opts.ReuseAddr, s.opts.IPv6Only)
			if err == nil {
				var ok bool
				if conn, ok = pc.(Conn); !ok {
					pc.Close()
					err = syscall.EOPNOTSUPP
				}
			}
		}
		l.mu.Lock()
		if err != nil {
			s.bindState = bindUnbound
			l.mu.Unlock()
			s.emitError(exceptionWithHostPort(errnoOf(err), "bind", ip.String(), port))
			return
		}
		if s.closed { // closed while the network was binding
			l.mu.Unlock()
			conn.Close()
			return
		}
		s.conn = conn
		s.bindState = bindBound
		if s.broadcast != nil {
			conn.SetBroadcast(*s.broadcast)
			s.broadcast = nil
		}
		s.applyBufferSizes(conn)
		s.startReadingLocked()
		l.mu.Unlock()
		s.emit(evListening, callPlain)
	})
}

func (s *Socket) applyBufferSizes(conn Conn) {
	if n := s.opts.RecvBufferSize; n > 0 {
		if c, ok := conn.(interface{ SetReadBuffer(int) error }); ok {
			c.SetReadBuffer(n)
		}
	}
	if n := s.opts.SendBufferSize; n > 0 {
		if c, ok := conn.(interface{ SetWriteBuffer(int) error }); ok {
			c.SetWriteBuffer(n)
		}
	}
}

// checkFamily returns EINVAL when ip cannot be used with the socket's
// family, as libuv's uv_ip4_addr/uv_ip6_addr do: a "udp4" socket takes only
// IPv4, a "udp6" socket only IPv6 (an IPv4 peer as ::ffff:a.b.c.d).
func (s *Socket) checkFamily(ip netip.Addr) syscall.Errno {
	if s.typ == UDP4 && !ip.Is4() {
		return syscall.EINVAL
	}
	if s.typ == UDP6 && !ip.Is6() {
		return syscall.EINVAL
	}
	return 0
}

// lookup resolves host and calls cb on the loop: at once for an IP literal
// (the caller is already in a tick), otherwise from a lookup running off the
// loop, whose result arrives as an I/O event.
func (s *Socket) lookup(host string, cb func(netip.Addr, error)) {
	if ip, err := netip.ParseAddr(host); err == nil {
		cb(ip, nil)
		return
	}
	family := "ip4"
	if s.typ == UDP6 {
		family = "ip6"
	}
	s.loop.startWork()
	go func() {
		addrs, err := s.network.LookupNetIP(context.Background(), family, host)
		var ip netip.Addr
		if err == nil {
			if len(addrs) == 0 {
				err = &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
			} else {
				ip = addrs[0]
			}
		}
		s.loop.endWork(func() { cb(ip, err) })
	}()
}

// Send sends msg as one datagram to port at address ("" means the loopback
// address, 127.0.0.1 or ::1; names resolve through the network). It is
// Node's send(msg, port[, address][, callback]).
//
// Send copies msg and returns at once; the datagram leaves in a later tick.
// cb, if not nil, is then called with the number of bytes sent, or with the
// error (EMSGSIZE, EACCES, ENOTFOUND, ...). Without a callback a network
// error is dropped, as in Node (it is counted in Stats), while a lookup
// error becomes an 'error' event. A socket that is not bound is bound to an
// ephemeral port first ('listening' comes before cb). A Close called before
// the datagram's turn discards it without calling cb.
//
// Send returns ERR_SOCKET_BAD_PORT for a port outside 1..65535 and
// ERR_SOCKET_DGRAM_NOT_RUNNING after Close.
func (s *Socket) Send(msg []byte, port int, address string, cb func(n int, err error)) error {
	return s.send(msg, port, address, cb)
}

// SendRange sends msg[offset:offset+length], Node's
// send(msg, offset, length, port[, address][, callback]). An offset or
// length outside msg returns ERR_BUFFER_OUT_OF_BOUNDS.
func (s *Socket) SendRange(msg []byte, offset, length, port int, address string, cb func(n int, err error)) error {
	if offset < 0 || offset > len(msg) {
		return errOutOfBounds("offset")
	}
	if length < 0 || length > len(msg)-offset {
		return errOutOfBounds("length")
	}
	return s.send(msg[offset:offset+length], port, address, cb)
}

func (s *Socket) send(msg []byte, port int, address string, cb func(int, error)) error {
	l := s.loop
	l.mu.Lock()
	defer l.mu.Unlock()
	if port <= 0 || port > 65535 {
		return errBadPort(port, false)
	}
	if s.closed {
		return errNotRunning()
	}
	if s.bindState == bindUnbound {
		s.bindLocked(0, "", nil)
	}
	buf := append([]byte(nil), msg...)
	if s.bindState != bindBound {
		s.enqueueLocked(func() { s.sendBound(buf, port, address, cb) })
		return nil
	}
	l.nextTickLocked(func() { s.doSend(buf, port, address, cb) })
	return nil
}

// sendBound is a queued send run once the socket is listening.
func (s *Socket) sendBound(buf []byte, port int, address string, cb func(int, error)) {
	l := s.loop
	l.mu.Lock()
	defer l.mu.Unlock()
	if s.closed {
		s.stats.sendsDiscarded.Add(1)
		return
	}
	l.nextTickLocked(func() { s.doSend(buf, port, address, cb) })
}

// enqueueLocked queues fn until the socket is listening, like Node's
// enqueue: the queue is flushed by a 'listening' listener and discarded by
// an error monitor if the bind fails.
func (s *Socket) enqueueLocked(fn func()) {
	if !s.queued {
		s.queued = true
		var rmListen func()
		s.errorMonitors = append(s.errorMonitors, func(error) {
			rmListen()
			s.loop.mu.Lock()
			s.stats.sendsDiscarded.Add(uint64(len(s.queue)))
			s.queue, s.queued = nil, false
			s.loop.mu.Unlock()
		})
		rmListen = s.addListenerLocked(evListening, func() {
			s.loop.mu.Lock()
			q := s.queue
			s.queue, s.queued = nil, false
			s.errorMonitors = nil
			s.loop.mu.Unlock()
			rmListen()
			for _, fn := range q {
				fn()
			}
		}, true)
	}
	s.queue = append(s.queue, fn)
}

// doSend runs in a tick: resolve the destination, then write.
func (s *Socket) doSend(buf []byte, port int, address string, cb func(int, error)) {
	l := s.loop
	l.mu.Lock()
	closed := s.closed
	l.mu.Unlock()
	if closed {
		s.stats.sendsDiscarded.Add(1)
		return
	}
	host := address
	if host == "" {
		host = s.loopback()
	}
	s.lookup(host, func(ip netip.Addr, err error) {
		if err != nil {
			s.stats.sendErrors.Add(1)
			lerr := lookupError(host, err)
			if cb != nil {
				l.nextTick(func() { cb(0, lerr) })
			} else {
				l.nextTick(func() { s.emitError(lerr) })
			}
			return
		}
		l.mu.Lock()
		conn := s.conn
		closed := s.closed
		l.mu.Unlock()
		if closed || conn == nil {
			s.stats.sendsDiscarded.Add(1)
			return
		}
		var n int
		if errno := s.checkFamily(ip); errno != 0 {
			err = errno
		} else {
			n, err = conn.WriteToUDPAddrPort(buf, netip.AddrPortFrom(ip, uint16(port)))
		}
		if err != nil {
			s.stats.sendErrors.Add(1)
			if cb == nil {
				s.stats.sendErrorsUnreported.Add(1)
				return
			}
			serr := exceptionWithHostPort(errnoOf(err), "send", address, port)
			l.nextTick(func() { cb(0, serr) })
			return
		}
		s.stats.sent.Add(1)
		s.stats.sentBytes.Add(uint64(n))
		if cb != nil {
			l.nextTick(func() { cb(n, nil) })
		}
	})
}

// Close closes the socket. 'close' is emitted in the next tick, after
// which cb (registered as a 'close' listener) runs; no 'message' is emitted
// after Close. If sends are waiting for the socket to be bound, the close
// waits behind them (and they are discarded). Closing a closed socket
// returns ERR_SOCKET_DGRAM_NOT_RUNNING, but cb still runs when the first
// close's event fires, as in Node.
func (s *Socket) Close(cb func()) error {
	l := s.loop
	l.mu.Lock()
	defer l.mu.Unlock()
	if cb != nil {
		s.addListenerLocked(evClose, cb, false)
	}
	if s.queued {
		s.queue = append(s.queue, func() { s.Close(nil) })
		return nil
	}
	if s.closed {
		return errNotRunning()
	}
	s.closeLocked()
	l.nextTickLocked(func() { s.emit(evClose, callPlain) })
	return nil
}

// closeLocked releases the network endpoint and stops the reader.
func (s *Socket) closeLocked() {
	s.closed = true
	if s.conn != nil {
		s.conn.Close()
	}
	if s.readerStop != nil {
		close(s.readerStop)
		s.readerStop = nil
		s.loop.closing = append(s.loop.closing, s.readerDone)
	}
	delete(s.loop.sockets, s)
}

// forceClose closes now, discarding queued sends, with a 'close' event.
func (s *Socket) forceClose() {
	l := s.loop
	l.mu.Lock()
	defer l.mu.Unlock()
	if s.closed {
		return
	}
	s.stats.sendsDiscarded.Add(uint64(len(s.queue)))
	s.queue, s.queued = nil, false
	s.closeLocked()
	l.nextTickLocked(func() { s.emit(evClose, callPlain) })
}

// destroy closes without any event (the loop is failing).
func (s *Socket) destroy() {
	s.loop.mu.Lock()
	defer s.loop.mu.Unlock()
	if !s.closed {
		s.closeLocked()
	}
}

// Address returns the bound address. Before the socket is bound (also
// right after Bind or Send, while binding) it returns EBADF
// ("getsockname EBADF"); after Close, ERR_SOCKET_DGRAM_NOT_RUNNING.
func (s *Socket) Address() (AddressInfo, error) {
	s.loop.mu.Lock()
	defer s.loop.mu.Unlock()
	if s.closed {
		return AddressInfo{}, errNotRunning()
	}
	if s.conn == nil {
		if s.fdExists { // a failed bind leaves Node's fd unbound
			return infoOf(netip.AddrPortFrom(netip.MustParseAddr(s.wildcard()), 0)), nil
		}
		return AddressInfo{}, errnoException(syscall.EBADF, "getsockname")
	}
	return infoOf(addrPortOf(s.conn.LocalAddr())), nil
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if ua, ok := a.(*net.UDPAddr); ok {
		ap := ua.AddrPort()
		if ua.Zone != "" {
			ap = netip.AddrPortFrom(ap.Addr().WithZone(ua.Zone), ap.Port())
		}
		return ap
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// SetBroadcast sets SO_BROADCAST. Before the socket is bound it returns
// EBADF ("setBroadcast EBADF"), as in Node; after Close,
// ERR_SOCKET_DGRAM_NOT_RUNNING (Node throws a TypeError without a code).
func (s *Socket) SetBroadcast(flag bool) error {
	s.loop.mu.Lock()
	defer s.loop.mu.Unlock()
	if s.closed {
		return errNotRunning()
	}
	if s.conn == nil {
		if s.fdExists {
			s.broadcast = &flag
			return nil
		}
		return errnoException(syscall.EBADF, "setBroadcast")
	}
	if err := s.conn.SetBroadcast(flag); err != nil {
		return errnoException(errnoOf(err), "setBroadcast")
	}
	return nil
}

// Ref makes a bound socket keep Loop.Run alive again after Unref. It
// returns the socket.
func (s *Socket) Ref() *Socket {
	s.loop.mu.Lock()
	s.unref = false
	s.loop.mu.Unlock()
	return s
}

// Unref lets Loop.Run return while this socket is still open (Node's
// unref). It returns the socket.
func (s *Socket) Unref() *Socket {
	s.loop.mu.Lock()
	s.unref = true
	s.loop.mu.Unlock()
	s.loop.signal()
	return s
}

// startReadingLocked starts the socket's reader goroutine.
func (s *Socket) startReadingLocked() {
	stop, done := make(chan struct{}), make(chan struct{})
	s.readerStop, s.readerDone = stop, done
	go s.readLoop(s.conn, stop, done)
}

// readLoop runs on the socket's reader goroutine: it reads datagrams and
// hands them to the loop, at most messageWindow at a time.
func (s *Socket) readLoop(conn Conn, stop, done chan struct{}) {
	defer close(done)
	buf := make([]byte, 0x10000)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-stop:
				return
			default:
			}
			errno := errnoOf(err)
			rerr := errnoException(errno, "recvmsg")
			s.loop.postIO(func() { s.deliverError(rerr) })
			if errno == syscall.ECONNREFUSED {
				continue
			}
			return // the endpoint is broken: stop reading
		}
		msg := make([]byte, n)
		copy(msg, buf[:n])
		select {
		case s.window <- struct{}{}:
		case <-stop:
			s.stats.receivedAfterClose.Add(1)
			return
		}
		s.loop.postIO(func() { s.deliverMessage(msg, from) })
	}
}

func (s *Socket) deliverMessage(msg []byte, from netip.AddrPort) {
	<-s.window
	s.loop.mu.Lock()
	closed := s.closed
	s.loop.mu.Unlock()
	if closed {
		s.stats.receivedAfterClose.Add(1)
		return
	}
	s.stats.received.Add(1)
	s.stats.receivedBytes.Add(uint64(len(msg)))
	fam := "IPv4"
	if from.Addr().Is6() {
		fam = "IPv6"
	}
	rinfo := RemoteInfo{Address: from.Addr().String(), Family: fam, Port: int(from.Port()), Size: len(msg)}
	s.emit(evMessage, func(fn any) { fn.(func([]byte, RemoteInfo))(msg, rinfo) })
}

func (s *Socket) deliverError(err error) {
	s.loop.mu.Lock()
	closed := s.closed
	s.loop.mu.Unlock()
	if !closed {
		s.emitError(err)
	}
}
