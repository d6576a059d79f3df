package dgram

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
)

// startReadingLocked starts the socket's reader goroutine.
func (s *Socket) startReadingLocked() {
	stop, done := make(chan struct{}), make(chan struct{})
	s.readerStop, s.readerDone = stop, done
	go s.readLoop(s.conn, stop, done)
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
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-stop:
				return
			default:
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
			s.stats.receivedAfterClose.Add(1)
			return
		}
		s.loop.postMessage(s, msg, from)
	}
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
