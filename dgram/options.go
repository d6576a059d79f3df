package dgram

import "syscall"

// SetBroadcast sets SO_BROADCAST. Before the socket is bound it returns
// EBADF ("setBroadcast EBADF"), as in Node; after Close,
// ERR_SOCKET_DGRAM_NOT_RUNNING (Node throws a TypeError without a code).
func (s *Socket) SetBroadcast(flag bool) error {
	s.loop.mu.Lock()
	defer s.loop.mu.Unlock()
	s.loop.abortSignalledLocked()
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

// optionConn returns the socket's conn for an option call named call: EBADF
// before the socket has one (it is not bound), ENOTSUP when the conn lacks
// the capability. loop.mu is held.
func (s *Socket) optionConnLocked(call string) (OptionConn, error) {
	if s.conn == nil {
		return nil, errnoException(syscall.EBADF, call)
	}
	oc, ok := s.conn.(OptionConn)
	if !ok {
		return nil, errnoException(syscall.ENOTSUP, call)
	}
	return oc, nil
}

// SetTTL sets the TTL (hop limit on "udp6") of unicast datagrams, Node's
// setTTL. ttl must be 1..255, else EINVAL ("setTTL EINVAL"), checked
// before anything else but Close; before the socket is bound it returns
// EBADF. (Node also returns its argument; here it is the caller's.)
func (s *Socket) SetTTL(ttl int) error {
	return s.setTTL("setTTL", ttl, 1, OptionConn.SetTTL)
}

// SetMulticastTTL sets the TTL (hop limit) of multicast datagrams, 0..255,
// else EINVAL ("setMulticastTTL EINVAL"). The default is 1: multicast does
// not leave the local network. EBADF before the socket is bound.
func (s *Socket) SetMulticastTTL(ttl int) error {
	return s.setTTL("setMulticastTTL", ttl, 0, OptionConn.SetMulticastTTL)
}

func (s *Socket) setTTL(call string, ttl, lowest int, set func(OptionConn, int) error) error {
	s.loop.mu.Lock()
	defer s.loop.mu.Unlock()
	s.loop.abortSignalledLocked()
	if s.closed {
		return errNotRunning()
	}
	if ttl < lowest || ttl > 255 {
		return errnoException(syscall.EINVAL, call)
	}
	oc, err := s.optionConnLocked(call)
	if err != nil {
		return err
	}
	if err := set(oc, ttl); err != nil {
		return errnoException(errnoOf(err), call)
	}
	return nil
}

// SetMulticastLoopback sets whether this socket's multicast datagrams are
// also delivered to the sending host's own members (IP_MULTICAST_LOOP; on
// by default). EBADF before the socket is bound.
func (s *Socket) SetMulticastLoopback(on bool) error {
	s.loop.mu.Lock()
	defer s.loop.mu.Unlock()
	s.loop.abortSignalledLocked()
	if s.closed {
		return errNotRunning()
	}
	oc, err := s.optionConnLocked("setMulticastLoopback")
	if err != nil {
		return err
	}
	if err := oc.SetMulticastLoopback(on); err != nil {
		return errnoException(errnoOf(err), "setMulticastLoopback")
	}
	return nil
}

// GetRecvBufferSize returns the size of the receive buffer (SO_RCVBUF): on
// Linux and on virtual hosts, twice what was set. Before the socket is
// bound it returns ERR_SOCKET_BUFFER_SIZE, a SystemError whose Info says
// "uv_recv_buffer_size returned EBADF".
func (s *Socket) GetRecvBufferSize() (int, error) { return s.bufferSize(0, true) }

// GetSendBufferSize is GetRecvBufferSize for the send buffer (SO_SNDBUF).
func (s *Socket) GetSendBufferSize() (int, error) { return s.bufferSize(0, false) }

// SetRecvBufferSize sets SO_RCVBUF; the system keeps twice size (Linux
// caps size at net.core.rmem_max, and keeps at least 2304 bytes). 0 changes
// nothing. A size outside 0..4294967295 returns ERR_SOCKET_BAD_BUFFER_SIZE;
// one from 2^31 up, or any before the socket is bound, returns
// ERR_SOCKET_BUFFER_SIZE (EINVAL, EBADF), as in Node.
func (s *Socket) SetRecvBufferSize(size int) error {
	_, err := s.bufferSize(size, true)
	return err
}

// SetSendBufferSize is SetRecvBufferSize for SO_SNDBUF (at least 4608
// bytes are kept).
func (s *Socket) SetSendBufferSize(size int) error {
	_, err := s.bufferSize(size, false)
	return err
}

// bufferSize is Node's bufferSize: size 0 gets, any other size sets.
func (s *Socket) bufferSize(size int, recv bool) (int, error) {
	if size < 0 || int64(size) > maxBufferSize {
		return 0, errBadBufferSize()
	}
	call := "uv_send_buffer_size"
	if recv {
		call = "uv_recv_buffer_size"
	}
	s.loop.mu.Lock()
	defer s.loop.mu.Unlock()
	s.loop.abortSignalledLocked()
	if s.closed {
		return 0, errNotRunning()
	}
	if size > maxInt32 {
		// Node passes the size to libuv as a C int: it refuses one that
		// does not fit with EINVAL, before it looks at the handle.
		return 0, errBufferSize(syscall.EINVAL, call)
	}
	if s.conn == nil {
		return 0, errBufferSize(syscall.EBADF, call)
	}
	bc, ok := s.conn.(BufferConn)
	if !ok {
		return 0, errBufferSize(syscall.ENOTSUP, call)
	}
	var err error
	switch {
	case size == 0 && recv:
		size, err = bc.ReadBufferSize()
	case size == 0:
		size, err = bc.WriteBufferSize()
	case recv:
		err = bc.SetReadBuffer(size)
	default:
		err = bc.SetWriteBuffer(size)
	}
	if err != nil {
		return 0, errBufferSize(errnoOf(err), call)
	}
	return size, nil
}

// GetSendQueueSize returns the number of bytes waiting to be sent: always
// 0, as sends are handed to the network when they run (sends waiting for a
// bind or a lookup are not counted, as in Node). ERR_SOCKET_DGRAM_NOT_RUNNING
// after Close.
func (s *Socket) GetSendQueueSize() (int, error) { return s.sendQueue() }

// GetSendQueueCount returns the number of sends waiting to be sent: always
// 0 (see GetSendQueueSize).
func (s *Socket) GetSendQueueCount() (int, error) { return s.sendQueue() }

func (s *Socket) sendQueue() (int, error) {
	s.loop.mu.Lock()
	defer s.loop.mu.Unlock()
	s.loop.abortSignalledLocked()
	if s.closed {
		return 0, errNotRunning()
	}
	return 0, nil
}
