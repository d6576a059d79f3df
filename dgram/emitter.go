package dgram

// event names a Socket event.
type event int

const (
	evMessage event = iota
	evListening
	evClose
	evError
	evConnect
	numEvents
)

// listener is one registered listener; fn is func(), func(error) or
// func([]byte, RemoteInfo) by event.
type listener struct {
	fn   any
	once bool
}

// addListenerLocked registers fn for ev; loop.mu must be held. The returned
// function removes it (and takes loop.mu itself).
func (s *Socket) addListenerLocked(ev event, fn any, once bool) (remove func()) {
	li := &listener{fn: fn, once: once}
	// Listener lists are copy-on-write: emit iterates the slice it read
	// without copying it.
	list := s.listeners[ev]
	s.listeners[ev] = append(list[:len(list):len(list)], li)
	return func() {
		s.loop.mu.Lock()
		s.removeListenerLocked(ev, li)
		s.loop.mu.Unlock()
	}
}

func (s *Socket) addListener(ev event, fn any, once bool) (remove func()) {
	s.loop.mu.Lock()
	defer s.loop.mu.Unlock()
	return s.addListenerLocked(ev, fn, once)
}

func (s *Socket) removeListenerLocked(ev event, li *listener) {
	list := s.listeners[ev]
	for i, x := range list {
		if x == li {
			s.listeners[ev] = append(list[:i:i], list[i+1:]...)
			return
		}
	}
}

// emit calls ev's listeners as they are when emit starts, in registration
// order, without holding any lock; once-listeners are removed first. It
// reports whether there was any listener.
func (s *Socket) emit(ev event, call func(fn any)) bool {
	list := s.takeListeners(ev)
	for _, li := range list {
		call(li.fn)
	}
	return len(list) > 0
}

// takeListeners returns ev's listeners as they are now, removing the
// once-listeners among them. The slice is never modified afterwards (lists
// are copy-on-write), so the caller may iterate it without a lock.
func (s *Socket) takeListeners(ev event) []*listener {
	s.loop.mu.Lock()
	defer s.loop.mu.Unlock()
	list := s.listeners[ev]
	for _, li := range list {
		if li.once {
			s.removeListenerLocked(ev, li)
		}
	}
	return list
}

func callPlain(fn any) { fn.(func())() }

// emitError emits 'error'. The error monitors (internal observers that do
// not count as listeners, like Node's EventEmitter.errorMonitor) run first;
// with no listener the loop fails with err, where Node would crash.
func (s *Socket) emitError(err error) {
	s.loop.mu.Lock()
	mons := s.errorMonitors
	s.errorMonitors = nil
	s.loop.mu.Unlock()
	for _, m := range mons {
		m(err)
	}
	if !s.emit(evError, func(fn any) { fn.(func(error))(err) }) {
		s.loop.fail(err)
	}
}

// OnMessage adds a 'message' listener: msg is a fresh slice the listener
// owns; rinfo says where it came from. It returns a function that removes
// the listener. A nil fn is ignored (Node would throw ERR_INVALID_ARG_TYPE).
func (s *Socket) OnMessage(fn func(msg []byte, rinfo RemoteInfo)) (remove func()) {
	if fn == nil {
		return func() {}
	}
	return s.addListener(evMessage, fn, false)
}

// OnListening adds a 'listening' listener, called once the socket is bound.
func (s *Socket) OnListening(fn func()) (remove func()) {
	if fn == nil {
		return func() {}
	}
	return s.addListener(evListening, fn, false)
}

// OnClose adds a 'close' listener, called after Close.
func (s *Socket) OnClose(fn func()) (remove func()) {
	if fn == nil {
		return func() {}
	}
	return s.addListener(evClose, fn, false)
}

// OnError adds an 'error' listener. Errors are *Error values. While a
// socket has no 'error' listener, an error event ends Loop.Run with that
// error.
func (s *Socket) OnError(fn func(err error)) (remove func()) {
	if fn == nil {
		return func() {}
	}
	return s.addListener(evError, fn, false)
}

// OnConnect adds a 'connect' listener, called when Connect completes.
func (s *Socket) OnConnect(fn func()) (remove func()) {
	if fn == nil {
		return func() {}
	}
	return s.addListener(evConnect, fn, false)
}

// ListenerCount returns how many listeners are registered for the named
// event ("message", "listening", "close", "error" or "connect").
func (s *Socket) ListenerCount(name string) int {
	ev, ok := map[string]event{"message": evMessage, "listening": evListening, "close": evClose, "error": evError, "connect": evConnect}[name]
	if !ok {
		return 0
	}
	s.loop.mu.Lock()
	defer s.loop.mu.Unlock()
	return len(s.listeners[ev])
}
