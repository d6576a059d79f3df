package dgram

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
)

// Socket types.
const (
	UDP4 = "udp4"
	UDP6 = "udp6"
)

// SocketOptions configure CreateSocketWith: Node's createSocket options.
// Only Type is required.
type SocketOptions struct {
	// Type is "udp4" or "udp6" (case-sensitive, as in Node).
	Type string
	// Network is where the socket lives. Default: the loop's network.
	Network Network
	// ReuseAddr sets SO_REUSEADDR at bind time: sockets that all set it may
	// bind the same address and port (unicast datagrams then go to the one
	// bound last, as on Linux among sockets of one family; on a virtual
	// host a dual-stack udp6 socket bound last also takes IPv4 datagrams
	// from a udp4 one, where Linux prefers the udp4 socket).
	ReuseAddr bool
	// IPv6Only makes a "udp6" socket IPv6-only (IPV6_V6ONLY); by default a
	// "udp6" socket bound to "::" also receives IPv4 datagrams, from
	// senders shown as ::ffff:a.b.c.d, and holds the port for "udp4" too.
	// On a "udp4" socket it makes every bind fail with EINVAL, as libuv
	// refuses the flag for an IPv4 address; a membership call's hidden
	// bind ignores it (B77), as libuv's does.
	IPv6Only bool
	// RecvBufferSize and SendBufferSize, when non-zero, set SO_RCVBUF and
	// SO_SNDBUF once the socket is bound (Linux then reports twice the
	// value). Zero keeps the defaults; they must be 0..4294967295
	// (ERR_OUT_OF_RANGE). A size the system refuses when the socket binds
	// (any from 2^31 up) is Node's uncaught ERR_SOCKET_BUFFER_SIZE: Run
	// returns it, and 'listening' never comes.
	RecvBufferSize int
	SendBufferSize int
	// Lookup, if not nil, resolves every address the socket binds, sends
	// to or connects to, IP literals and the defaults ("0.0.0.0", "::",
	// "127.0.0.1", "::1") included. Default: the network's resolver, for
	// names only.
	Lookup LookupFunc
	// Context, if not nil, is Node's signal: when it is done the socket is
	// closed as by Close ('close' is emitted); if it is already done,
	// CreateSocketWith returns a socket that is closing. Default: none.
	//
	// As in Node, the socket is closed by the time anything else happens
	// on the loop: a cancel in a callback is seen by the next call on any
	// socket of the loop (Send after it fails with
	// ERR_SOCKET_DGRAM_NOT_RUNNING) and before the loop runs the next
	// event. A cancel from another goroutine takes effect when the loop
	// next looks, or at once when the loop is idle.
	Context context.Context
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
	// closed, or its bind failed, before their turn, or because Loop.Run
	// stopped on a fatal error (an 'error' with no listener) or was
	// cancelled first. Their callbacks are not called (Node calls none;
	// after a fatal error Node's process would have died).
	SendsDiscarded uint64
	// Received and ReceivedBytes count datagrams delivered as 'message'.
	Received, ReceivedBytes uint64
	// ReceivedAfterClose counts datagrams read from the network but not
	// delivered because Close had been called (or the socket's Context,
	// Node's signal, was done). Those still in the receive buffer are
	// closed unread with it, as by the kernel (a virtual host counts them
	// in its UDPStats.ClosedUnread).
	ReceivedAfterClose uint64
	// MessagesDiscarded counts datagrams the socket received but never
	// delivered as 'message' because the loop closed it: Loop.Run stopped
	// on a fatal error (an 'error' with no listener) or Run's context was
	// cancelled. It covers the datagrams already read into the loop's
	// queue and those still waiting in the socket's receive buffer, which
	// the loop reads and counts before closing it (at most twice what the
	// buffer holds, so that a peer that keeps sending cannot hold the
	// loop: any beyond that are closed unread).
	MessagesDiscarded uint64
}

type socketStats struct {
	sent, sentBytes, sendErrors, sendErrorsUnreported, sendsDiscarded atomic.Uint64
	received, receivedBytes, receivedAfterClose, messagesDiscarded    atomic.Uint64
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

	// ctx is done when the socket closes (or opts.Context is done); it
	// cancels lookups in flight.
	ctx     context.Context
	cancel  context.CancelFunc
	stopCtx func() bool  // stops the opts.Context watch
	signal  *signalGroup // the loop's group of sockets sharing opts.Context

	// ioMu serialises the reader's reads with writes, so that a pending
	// socket error the reader has taken (asyncErr, not yet emitted) goes
	// to a write made before the loop handles it, as in Node.
	ioMu     sync.Mutex
	asyncErr syscall.Errno

	// Guarded by loop.mu.
	closed        bool
	abandoned     bool // closed by the loop (Run failed or was cancelled), not by Close
	bindState     int
	connectState  int
	fdExists      bool // a bind reached the network (Node's fd exists)
	deferred      bool // conn was opened by a membership call, unbound (B77)
	lookupTail    chan struct{}
	conn          Conn
	queue         []func()
	queued        bool      // queue is in use (Node's state.queue !== undefined)
	queuedSends   int       // sends in queue (it also holds connects and closes)
	sends         sendQueue // sends waiting for their tick (send.go)
	unref         bool
	broadcast     *bool // SetBroadcast while the fd exists but is unbound
	readerStop    chan struct{}
	notifyStop    func() // stops a NotifyConn's notifications
	readBroken    bool   // a read failed for good: stop reading
	rbuf          []byte // the loop's read buffer (NotifyConn)
	drainFn       func() // s.drain, made once
	drainQueued   atomic.Bool
	lastFrom      netip.Addr // the last sender, and its string (loop goroutine only)
	lastFromStr   string
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
	if n := opts.RecvBufferSize; n < 0 || int64(n) > maxBufferSize {
		return nil, errOptionRange("recvBufferSize", n)
	}
	if n := opts.SendBufferSize; n < 0 || int64(n) > maxBufferSize {
		return nil, errOptionRange("sendBufferSize", n)
	}
	network := opts.Network
	if network == nil {
		network = l.network
	}
	if network == nil {
		return nil, errInvalidArg("network", "a dgram.Network (the loop has none)", "nil")
	}
	s := &Socket{loop: l, network: network, typ: opts.Type, opts: opts, window: make(chan struct{}, messageWindow)}
	parent := opts.Context
	if parent == nil {
		parent = context.Background()
	}
	s.ctx, s.cancel = context.WithCancel(parent)
	l.mu.Lock()
	l.sockets[s] = struct{}{}
	if onMessage != nil {
		s.addListenerLocked(evMessage, onMessage, false)
	}
	l.mu.Unlock()
	if opts.Context != nil {
		if opts.Context.Err() != nil {
			s.Close(nil)
		} else {
			if done := opts.Context.Done(); done != nil {
				l.mu.Lock()
				l.watchSignalLocked(s, done)
				l.mu.Unlock()
			}
			// The loop looks at the Context on every call and event; this
			// closes the socket when nothing happens on the loop.
			stop := context.AfterFunc(opts.Context, func() {
				l.mu.Lock()
				l.abortSignalledLocked()
				l.mu.Unlock()
			})
			l.mu.Lock()
			s.stopCtx = stop
			if s.closed { // closed meanwhile
				stop()
			}
			l.mu.Unlock()
		}
	}
	return s, nil
}

// maxBufferSize is the largest buffer size Node accepts (2^32-1).
const maxBufferSize = 1<<32 - 1

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
		MessagesDiscarded:  st.messagesDiscarded.Load(),
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
	l.abortSignalledLocked()
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
	s.lookup(host, false, func(ip netip.Addr, err error) {
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
		// Node names a literal address in errors as it was written
		// ("FE80::1"), a name by what it resolved to.
		shown := ip.String()
		if _, perr := netip.ParseAddr(host); perr == nil && s.opts.Lookup == nil {
			shown = host
		}
		if s.deferred { // a membership call opened it unbound (B77)
			s.bindState = bindUnbound
			l.mu.Unlock()
			s.emitError(exceptionWithHostPort(syscall.EINVAL, "bind", shown, port))
			return
		}
		s.fdExists = true
		l.mu.Unlock()

		var conn Conn
		if errno := s.checkFamily(ip); errno != 0 {
			err = errno
		} else if s.opts.IPv6Only && s.typ == UDP4 {
			// libuv refuses UV_UDP_IPV6ONLY for an IPv4 address.
			err = syscall.EINVAL
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
			s.emitError(exceptionWithHostPort(errnoOf(err), "bind", shown, port))
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
		s.startReadingLocked()
		if err := s.applyBufferSizes(conn); err != nil {
			// Node throws from its 'listening' path, before emitting it:
			// an uncaught exception, which ends Run here.
			l.mu.Unlock()
			l.fail(err)
			return
		}
		l.mu.Unlock()
		s.emit(evListening, callPlain)
	})
}

// applyBufferSizes sets the buffer sizes of the options once bound, as
// Node does in its 'listening' path; a size the system refuses (one from
// 2^31 up: EINVAL) is Node's ERR_SOCKET_BUFFER_SIZE.
func (s *Socket) applyBufferSizes(conn Conn) error {
	bc, ok := conn.(BufferConn)
	if !ok {
		return nil
	}
	for _, o := range []struct {
		n    int
		call string
		set  func(int) error
	}{
		{s.opts.RecvBufferSize, "uv_recv_buffer_size", bc.SetReadBuffer},
		{s.opts.SendBufferSize, "uv_send_buffer_size", bc.SetWriteBuffer},
	} {
		switch {
		case o.n == 0:
		case o.n > maxInt32:
			return errBufferSize(syscall.EINVAL, o.call)
		default:
			if err := o.set(o.n); err != nil {
				return errBufferSize(errnoOf(err), o.call)
			}
		}
	}
	return nil
}

// maxInt32 bounds buffer sizes handed to the network (an int in C).
const maxInt32 = 1<<31 - 1

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
	l.abortSignalledLocked()
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

// abortLocked is Close(nil) for a socket whose Context is done.
func (s *Socket) abortLocked() {
	if s.queued {
		s.queue = append(s.queue, func() { s.Close(nil) })
		return
	}
	if s.closed {
		return
	}
	s.closeLocked()
	s.loop.nextTickLocked(func() { s.emit(evClose, callPlain) })
}

// closeLocked releases the network endpoint and stops the reader.
func (s *Socket) closeLocked() {
	s.shutLocked()
	if s.conn != nil {
		s.conn.Close()
	}
}

// shutLocked marks the socket closed, cancels its lookups and stops its
// reading, leaving its conn open for the caller to close.
func (s *Socket) shutLocked() {
	s.closed = true
	s.cancel()
	s.loop.unwatchSignalLocked(s)
	if s.stopCtx != nil {
		s.stopCtx()
	}
	if s.notifyStop != nil {
		s.notifyStop()
		s.notifyStop = nil
	}
	if s.readerStop != nil {
		close(s.readerStop)
		s.readerStop = nil
		s.loop.closing = append(s.loop.closing, s.readerDone)
	}
	delete(s.loop.sockets, s)
}

// discardQueueLocked forgets what waits for 'listening', counting the
// sends among it as discarded.
func (s *Socket) discardQueueLocked() {
	s.stats.sendsDiscarded.Add(uint64(s.queuedSends))
	s.queue, s.queued, s.queuedSends = nil, false, 0
}

// countUndeliveredLocked counts n datagrams the socket received and will
// not deliver: MessagesDiscarded if the loop closed it, else (Close did)
// ReceivedAfterClose.
func (s *Socket) countUndeliveredLocked(n uint64) {
	if s.abandoned {
		s.stats.messagesDiscarded.Add(n)
	} else {
		s.stats.receivedAfterClose.Add(n)
	}
}

// abandonLocked closes an open socket for the loop (Run stopped on a fatal
// error or was cancelled), without an event: what waits for 'listening'
// is discarded (its sends counted), and the datagrams it will not deliver
// count as MessagesDiscarded. It returns the conn, still open: the caller
// passes it to discardUnread, which closes it.
func (s *Socket) abandonLocked() Conn {
	s.discardQueueLocked()
	s.abandoned = true
	s.shutLocked()
	return s.conn
}

// forceClose closes now, discarding queued sends and counting the
// datagrams it holds, with a 'close' event. It runs on the loop.
func (s *Socket) forceClose() {
	l := s.loop
	l.mu.Lock()
	if s.closed {
		l.mu.Unlock()
		return
	}
	conn := s.abandonLocked()
	l.nextTickLocked(func() { s.emit(evClose, callPlain) })
	l.mu.Unlock()
	s.discardUnread(conn)
}

// Address returns the bound address. Before the socket is bound (also
// right after Bind or Send, while binding) it returns EBADF
// ("getsockname EBADF"); after Close, ERR_SOCKET_DGRAM_NOT_RUNNING.
func (s *Socket) Address() (AddressInfo, error) {
	s.loop.mu.Lock()
	defer s.loop.mu.Unlock()
	s.loop.abortSignalledLocked()
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
