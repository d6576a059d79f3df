package dgram

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
)

// startReadingLocked starts receiving. A NotifyConn (a virtual host's) is
// read by the loop itself whenever it signals that it is readable; any
// other conn gets a reader goroutine.
func (s *Socket) startReadingLocked() {
	if nc, ok := s.conn.(NotifyConn); ok {
		if s.rbuf == nil {
			s.rbuf = make([]byte, 0x10000)
			s.drainFn = s.drain
		}
		s.readBroken = false
		s.notifyStop = nc.NotifyReadable(s.onReadable)
		s.onReadable() // datagrams may be waiting already
		return
	}
	stop, done := make(chan struct{}), make(chan struct{})
	s.readerStop, s.readerDone = stop, done
	go s.readLoop(s.conn, stop, done)
}

// onReadable runs on the network's goroutine when a NotifyConn may have
// become readable: it queues one drain on the loop unless one is queued.
func (s *Socket) onReadable() {
	if s.drainQueued.CompareAndSwap(false, true) {
		s.loop.markReady(s)
	}
}

// drain runs on the loop: it reads one datagram (or socket error) and, if
// there was one, queues itself again behind the other I/O events, so that
// sockets take turns and the next-tick queue runs after each 'message', as
// in Node. Datagrams the loop has not read yet stay in the network's
// receive buffer, which drops (and counts) what does not fit.
func (s *Socket) drain() {
	s.loop.mu.Lock()
	nc, _ := s.conn.(NotifyConn)
	stopped := s.closed || nc == nil || s.readBroken
	s.loop.mu.Unlock()
	if stopped {
		s.drainQueued.Store(false)
		return
	}
	n, from, err := s.tryRead(nc)
	if err != nil && errors.Is(err, syscall.EAGAIN) {
		s.drainQueued.Store(false)
		// A datagram that came between that read and the Store had its
		// notification dropped: look once more.
		if n, from, err = s.tryRead(nc); err != nil && errors.Is(err, syscall.EAGAIN) {
			return
		}
		if !s.drainQueued.CompareAndSwap(false, true) {
			s.handleRead(n, from, err) // a drain is queued already
			return
		}
	}
	s.loop.postIO(s.drainFn)
	s.handleRead(n, from, err)
}

// tryRead reads without blocking, keeping a socket error for the loop as
// readLoop does.
func (s *Socket) tryRead(nc NotifyConn) (int, netip.AddrPort, error) {
	s.ioMu.Lock()
	defer s.ioMu.Unlock()
	n, from, err := nc.TryReadFromUDPAddrPort(s.rbuf)
	if err != nil && !errors.Is(err, syscall.EAGAIN) && transientErrno(errnoOf(err)) {
		s.asyncErr = errnoOf(err)
	}
	return n, from, err
}

// handleRead delivers what drain read. A conn closed under the socket
// (its host was closed, or its device vanished: an error matching
// net.ErrClosed, and ENETDOWN in that case, while the socket is open) is a
// broken endpoint like any other: 'error' "recvmsg ENETDOWN" (EBADF when
// the error has no errno), and no more reading.
func (s *Socket) handleRead(n int, from netip.AddrPort, err error) {
	switch {
	case err == nil:
		msg := make([]byte, n)
		copy(msg, s.rbuf[:n])
		s.emitMessage(msg, from)
	case transientErrno(errnoOf(err)):
		s.deliverAsyncError()
	default:
		s.loop.mu.Lock()
		s.readBroken = true // the endpoint is broken: stop reading
		s.loop.mu.Unlock()
		s.deliverError(errnoException(errnoOf(err), "recvmsg"))
	}
}

// readLoop runs on the socket's reader goroutine: it reads datagrams and
// hands them to the loop, at most messageWindow at a time.
//
// A socket error the read returns (ECONNREFUSED after an ICMP port
// unreachable, on a connected socket) is kept in asyncErr for the loop,
// which emits it as 'error' "recvmsg ECONNREFUSED" when it gets to it,
// unless a send consumed it first. With a PollConn the reader takes it with
// s.ioMu held, so no write slips in between; other conns leave a small
// window in which the error may be reported by both.
func (s *Socket) readLoop(conn Conn, stop, done chan struct{}) {
	defer close(done)
	pc, _ := conn.(PollConn)
	buf := make([]byte, 0x10000)
	for {
		var (
			n    int
			from netip.AddrPort
			err  error
		)
		if pc != nil {
			// Read without blocking; wait only when there is nothing.
			s.ioMu.Lock()
			n, from, err = pc.TryReadFromUDPAddrPort(buf)
			wouldBlock := err != nil && errors.Is(err, syscall.EAGAIN)
			if err != nil && !wouldBlock && transientErrno(errnoOf(err)) {
				s.asyncErr = errnoOf(err)
			}
			s.ioMu.Unlock()
			if wouldBlock {
				if err = pc.WaitReadable(); err == nil {
					continue
				}
			}
		} else {
			n, from, err = conn.ReadFromUDPAddrPort(buf)
			if err != nil && transientErrno(errnoOf(err)) {
				s.ioMu.Lock()
				s.asyncErr = errnoOf(err)
				s.ioMu.Unlock()
			}
		}
		if err != nil {
			select {
			case <-stop:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) && s.isClosed() {
				return // the socket closed its conn
			}
			errno := errnoOf(err)
			if transientErrno(errno) {
				s.loop.postIO(s.deliverAsyncError)
				continue
			}
			rerr := errnoException(errno, "recvmsg")
			s.loop.postIO(func() { s.deliverError(rerr) })
			return // the endpoint is broken: stop reading
		}
		msg := make([]byte, n)
		copy(msg, buf[:n])
		select {
		case s.window <- struct{}{}:
		case <-stop:
			s.loop.mu.Lock()
			s.countUndeliveredLocked(1)
			s.loop.mu.Unlock()
			return
		}
		if !s.loop.postMessage(s, msg, from) { // closed meanwhile: counted
			<-s.window
			return
		}
	}
}

// isClosed reports whether the socket was closed.
func (s *Socket) isClosed() bool {
	s.loop.mu.Lock()
	defer s.loop.mu.Unlock()
	return s.closed
}

// transientErrno reports whether a read error is a socket error an ICMP
// message caused, after which the socket keeps working.
func transientErrno(errno syscall.Errno) bool {
	switch errno {
	case syscall.ECONNREFUSED, syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.EHOSTDOWN:
		return true
	}
	return false
}

// deliverAsyncError runs on the loop: it emits the socket error the reader
// took, unless a send has consumed it meanwhile.
func (s *Socket) deliverAsyncError() {
	s.ioMu.Lock()
	errno := s.asyncErr
	s.asyncErr = 0
	s.ioMu.Unlock()
	if errno != 0 {
		s.deliverError(errnoException(errno, "recvmsg"))
	}
}

// deliverMessage delivers a datagram that readLoop handed over.
func (s *Socket) deliverMessage(msg []byte, from netip.AddrPort) {
	<-s.window
	s.emitMessage(msg, from)
}

// emitMessage emits 'message' unless the socket is closed.
func (s *Socket) emitMessage(msg []byte, from netip.AddrPort) {
	s.loop.mu.Lock()
	closed := s.closed
	if closed {
		s.countUndeliveredLocked(1)
	}
	s.loop.mu.Unlock()
	if closed {
		return
	}
	s.stats.received.Add(1)
	s.stats.receivedBytes.Add(uint64(len(msg)))
	fam := "IPv4"
	if from.Addr().Is6() {
		fam = "IPv6"
	}
	// Datagrams mostly come from a few peers: reuse the last sender's
	// address string (only the loop goroutine touches the cache).
	if from.Addr() != s.lastFrom || s.lastFromStr == "" {
		s.lastFrom, s.lastFromStr = from.Addr(), from.Addr().String()
	}
	rinfo := RemoteInfo{Address: s.lastFromStr, Family: fam, Port: int(from.Port()), Size: len(msg)}
	for _, li := range s.takeListeners(evMessage) {
		li.fn.(func([]byte, RemoteInfo))(msg, rinfo)
	}
}

func (s *Socket) deliverError(err error) {
	s.loop.mu.Lock()
	closed := s.closed
	s.loop.mu.Unlock()
	if !closed {
		s.emitError(err)
	}
}

// minTruesize is the least a datagram is charged to a receive buffer, on
// Linux and on a virtual host (stack's rcvTruesize): 832 bytes.
const minTruesize = 832

// discardReads bounds discardUnread's reads on a conn whose buffer size is
// unknown.
const discardReads = 4096

// discardUnread reads what waits in the receive buffer of conn, the conn of
// a socket the loop closed (abandonLocked), counting each datagram as
// MessagesDiscarded, then closes conn. Without it they would be closed
// unread, uncounted on a kernel socket. It runs on the loop.
//
// It reads at most twice what the buffer can hold (every datagram costs at
// least minTruesize), so that a peer that keeps sending cannot hold the
// loop; what comes after that is closed unread. A conn that cannot be read
// without blocking (not a PollConn) is closed unread.
func (s *Socket) discardUnread(conn Conn) {
	if conn == nil {
		return
	}
	defer conn.Close()
	pc, ok := conn.(PollConn)
	if !ok {
		return
	}
	limit := discardReads
	if bc, ok := conn.(BufferConn); ok {
		if n, err := bc.ReadBufferSize(); err == nil && n > 0 {
			limit = 2 * (n/minTruesize + 1)
		}
	}
	l := s.loop
	if l.scratch == nil {
		l.scratch = make([]byte, 0x10000)
	}
	for range limit {
		// ioMu: a reader goroutine may still be reading (it stops once
		// it sees the socket closed, and counts what it read).
		s.ioMu.Lock()
		_, _, err := pc.TryReadFromUDPAddrPort(l.scratch)
		s.ioMu.Unlock()
		switch {
		case err == nil:
			s.stats.messagesDiscarded.Add(1)
		case transientErrno(errnoOf(err)):
			// a socket error (an ICMP report), not a datagram: read on
		default:
			return // empty (EAGAIN), or the conn is broken
		}
	}
}
