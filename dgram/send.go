package dgram

import (
	"net/netip"
	"syscall"
)

// Send sends msg as one datagram to port at address ("" means the loopback
// address, 127.0.0.1 or ::1; names resolve through the network or the
// socket's Lookup). It is Node's send(msg, port[, address][, callback]).
//
// Send copies msg and returns at once; the datagram leaves in a later tick.
// cb, if not nil, is then called with the number of bytes sent, or with the
// error (EMSGSIZE, EACCES, ENOTFOUND, ...). Without a callback a network
// error is dropped, as in Node (it is counted in Stats), while a lookup
// error becomes an 'error' event. A socket that is not bound is bound to an
// ephemeral port first ('listening' comes before cb). A Close called before
// the datagram's turn discards it without calling cb.
//
// On a connected socket, port must be 0 and address "": the datagram goes
// to the peer at once, inside Send (no lookup, as in Node), so a Close
// right after Send does not discard it; cb still comes in a later tick.
// Node ignores a port and address given without a callback on a connected
// socket; Send always refuses them with ERR_SOCKET_DGRAM_IS_CONNECTED.
//
// Send returns ERR_SOCKET_BAD_PORT for a port outside 1..65535 on an
// unconnected socket (also while a Connect is in progress: such a send
// then fails with EISCONN once connected, as in Node; port 0 with no
// address is Node's send(msg) and says "Received undefined."),
// ERR_SOCKET_DGRAM_IS_CONNECTED for a port or address on a connected one,
// and ERR_SOCKET_DGRAM_NOT_RUNNING after Close.
func (s *Socket) Send(msg []byte, port int, address string, cb func(n int, err error)) error {
	return s.send(append([]byte(nil), msg...), port, address, cb)
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
	return s.Send(msg[offset:offset+length], port, address, cb)
}

// SendBuffers sends the buffers, joined, as one datagram: Node's send with
// an array of buffers. cb gets the total length. Otherwise it is Send.
func (s *Socket) SendBuffers(bufs [][]byte, port int, address string, cb func(n int, err error)) error {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	buf := make([]byte, 0, n)
	for _, b := range bufs {
		buf = append(buf, b...)
	}
	return s.send(buf, port, address, cb)
}

// send implements the Send forms; buf is the socket's own copy.
func (s *Socket) send(buf []byte, port int, address string, cb func(int, error)) error {
	l := s.loop
	l.mu.Lock()
	l.abortSignalledLocked()
	connected := s.connectState == connConnected
	if connected {
		if port != 0 || address != "" {
			l.mu.Unlock()
			return errIsConnected()
		}
	} else if port == 0 && address == "" {
		// Node's send(buf) on an unconnected socket: no port at all.
		l.mu.Unlock()
		return errNoPort()
	} else if port <= 0 || port > 65535 {
		l.mu.Unlock()
		return errBadPort(port, false)
	}
	if s.closed {
		l.mu.Unlock()
		return errNotRunning()
	}
	if s.bindState == bindUnbound {
		s.bindLocked(0, "", nil)
	}
	if s.bindState != bindBound {
		s.enqueueLocked(func() { s.sendBound(buf, port, address, cb) })
		s.queuedSends++
		l.mu.Unlock()
		return nil
	}
	if connected {
		conn := s.conn
		l.mu.Unlock()
		s.sendConnected(conn, buf, cb)
		return nil
	}
	s.sendNextTickLocked(pendingSend{buf: buf, port: port, address: address, cb: cb})
	l.mu.Unlock()
	return nil
}

// pendingSend is a Send waiting for its tick.
type pendingSend struct {
	buf     []byte
	port    int
	address string
	cb      func(int, error)
}

// sendQueue holds a socket's pending sends in call order. Every send in
// it has one tick queued that will take it: sends take their turns among
// the other ticks as they would with one closure each, and none is
// allocated.
type sendQueue struct {
	sends []pendingSend
	head  int // sends[head:] are pending
}

func (q *sendQueue) push(p pendingSend) { q.sends = append(q.sends, p) }

func (q *sendQueue) pop() pendingSend {
	p := q.sends[q.head]
	q.sends[q.head] = pendingSend{}
	q.sends, q.head = compact(q.sends, q.head+1)
	return p
}

// sendNextTickLocked queues p and the tick that will send it; l.mu is held.
func (s *Socket) sendNextTickLocked(p pendingSend) {
	s.sends.push(p)
	s.loop.ticks = append(s.loop.ticks, tick{send: s})
	s.loop.signal()
}

// sendNext runs in a tick: it does the oldest pending send.
func (s *Socket) sendNext() {
	s.loop.mu.Lock()
	p := s.sends.pop()
	s.loop.mu.Unlock()
	s.doSend(p)
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
	s.sendNextTickLocked(pendingSend{buf: buf, port: port, address: address, cb: cb})
}

// enqueueLocked queues fn until the socket is listening, like Node's
// enqueue: the queue is flushed by a 'listening' listener and discarded by
// an error monitor if the bind fails (a Connect waiting in it is then
// forgotten: the socket is disconnected again).
func (s *Socket) enqueueLocked(fn func()) {
	if !s.queued {
		s.queued = true
		var rmListen func()
		s.errorMonitors = append(s.errorMonitors, func(error) {
			rmListen()
			s.loop.mu.Lock()
			s.discardQueueLocked()
			if s.connectState == connConnecting {
				s.connectState = connDisconnected
			}
			s.loop.mu.Unlock()
		})
		rmListen = s.addListenerLocked(evListening, func() {
			s.loop.mu.Lock()
			q := s.queue
			s.queue, s.queued, s.queuedSends = nil, false, 0
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
func (s *Socket) doSend(p pendingSend) {
	l := s.loop
	l.mu.Lock()
	closed := s.closed
	l.mu.Unlock()
	if closed {
		s.stats.sendsDiscarded.Add(1)
		return
	}
	host := s.sendHost(p.address)
	if ip, ok := s.literal(host); ok {
		s.sendResolved(p, host, ip, nil) // what lookup would do, without its closure
		return
	}
	s.lookup(host, true, func(ip netip.Addr, err error) { s.sendResolved(p, host, ip, err) })
}

// sendHost is the host a send to address goes to: address, or the
// loopback address when it is "".
func (s *Socket) sendHost(address string) string {
	if address == "" {
		return s.loopback()
	}
	return address
}

// sendResolved writes p to ip, which the lookup of host gave (or failed to
// give, with err), on the loop.
func (s *Socket) sendResolved(p pendingSend, host string, ip netip.Addr, err error) {
	l := s.loop
	l.mu.Lock()
	conn, closed, connected := s.conn, s.closed, s.connectState == connConnected
	l.mu.Unlock()
	if closed || conn == nil {
		s.stats.sendsDiscarded.Add(1)
		return
	}
	if err != nil {
		s.stats.sendErrors.Add(1)
		lerr := lookupError(host, err)
		if p.cb != nil {
			l.nextTick(func() { p.cb(0, lerr) })
		} else {
			l.nextTick(func() { s.emitError(lerr) })
		}
		return
	}
	var n int
	switch {
	case connected: // connected while the send waited (libuv's check)
		err = syscall.EISCONN
	case s.checkFamily(ip) != 0:
		err = s.checkFamily(ip)
	default:
		to := netip.AddrPortFrom(ip, uint16(p.port))
		n, err = s.write(func() (int, error) { return conn.WriteToUDPAddrPort(p.buf, to) })
	}
	s.sent(n, err, p.cb, func(errno syscall.Errno) *Error {
		return exceptionWithHostPort(errno, "send", p.address, p.port)
	})
}

// sendConnected writes buf to the connected peer now, as Node's send does
// on a connected socket.
func (s *Socket) sendConnected(conn Conn, buf []byte, cb func(int, error)) {
	var n int
	var err error
	if cc, ok := conn.(ConnectConn); ok {
		n, err = s.write(func() (int, error) { return cc.Write(buf) })
	} else {
		err = syscall.ENOTSUP
	}
	s.sent(n, err, cb, func(errno syscall.Errno) *Error {
		return exceptionWithHostPort(errno, "send", "", 0)
	})
}

// sent counts a write's outcome and calls cb in the next tick.
func (s *Socket) sent(n int, err error, cb func(int, error), wrap func(syscall.Errno) *Error) {
	if err != nil {
		s.stats.sendErrors.Add(1)
		if cb == nil {
			s.stats.sendErrorsUnreported.Add(1)
			return
		}
		serr := wrap(errnoOf(err))
		s.loop.nextTick(func() { cb(0, serr) })
		return
	}
	s.stats.sent.Add(1)
	s.stats.sentBytes.Add(uint64(n))
	if cb != nil {
		s.loop.nextTick(func() { cb(n, nil) })
	}
}

// write runs a write on the conn unless the reader has taken a socket error
// the loop has not handled yet: that error is then this write's, as the
// kernel would have given it to the write had the reader not been there.
func (s *Socket) write(fn func() (int, error)) (int, error) {
	s.ioMu.Lock()
	defer s.ioMu.Unlock()
	if errno := s.asyncErr; errno != 0 {
		s.asyncErr = 0
		return 0, errno
	}
	return fn()
}
