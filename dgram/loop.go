package dgram

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
)

// A Loop is Node's event loop for a set of sockets. Every callback and
// listener of its sockets runs on the goroutine that calls Run, one at a
// time, never inside the call that caused it.
//
// Ordering follows Node: work caused by an API call (the 'listening' after
// Bind, a send's callback, 'close' after Close) runs in a "next tick" queue
// that is drained completely before the next I/O event ('message', or a
// function given to Post) is handled.
//
// Loop and Socket methods may be called from any goroutine, including from
// inside callbacks.
type Loop struct {
	network Network

	mu       sync.Mutex
	ticks    []tick
	tickHead int // ticks[:tickHead] have run
	io       []ioEvent
	ioHead   int           // io[:ioHead] have run
	wake     chan struct{} // capacity 1: something was queued
	sockets  map[*Socket]struct{}
	holds    int // Hold calls not yet released
	inflight int // lookups and other work running off the loop
	running  bool
	fatal    error
	// readyMu guards ready: sockets whose conn signalled it is readable.
	// Network notifications take only readyMu (never mu, which may be held
	// while a write delivers synchronously to a socket of this loop).
	readyMu sync.Mutex
	ready   []*Socket
	// signals groups the open sockets that have a Context (Node's signal)
	// by its Done channel, for abortSignalledLocked: one check per
	// distinct Context, however many sockets share it.
	signals    []*signalGroup
	signalByCh map[<-chan struct{}]*signalGroup
	// closing holds the reader-done channels of closed sockets, which Run
	// waits for before it returns.
	closing []chan struct{}
	// scratch is the buffer discardUnread reads into; only the goroutine
	// in Run uses it.
	scratch []byte
}

// NewLoop returns a loop whose sockets live on network unless their options
// say otherwise. network may be nil if every socket names its own.
func NewLoop(network Network) *Loop {
	return &Loop{network: network, wake: make(chan struct{}, 1), sockets: make(map[*Socket]struct{})}
}

// Network returns the loop's default network.
func (l *Loop) Network() Network { return l.network }

// abortSignalledLocked closes the sockets whose Context is done, as Node
// closes a socket in its signal's abort listener. It runs at the start of
// every socket call and before each event the loop dispatches, so that a
// cancel made on the loop is in force before anything else happens there.
// Sockets sharing a Context close in the order they were created, as
// Node runs a signal's abort listeners. The cost is one channel poll per
// distinct Context of the loop's open sockets.
func (l *Loop) abortSignalledLocked() {
	for i := 0; i < len(l.signals); {
		g := l.signals[i]
		select {
		case <-g.done:
		default:
			i++
			continue
		}
		l.signals = slices.Delete(l.signals, i, i+1)
		delete(l.signalByCh, g.done)
		for _, s := range g.socks {
			if s.signal == g {
				s.signal = nil
				s.abortLocked()
			}
		}
	}
}

// A signalGroup is the open sockets of a loop that share a Context.
type signalGroup struct {
	done   <-chan struct{}
	socks  []*Socket // in creation order; closed ones leave lazily
	closed int       // sockets in socks that have left
}

// watchSignalLocked adds s, whose Context is ctx, to its group.
func (l *Loop) watchSignalLocked(s *Socket, done <-chan struct{}) {
	g := l.signalByCh[done]
	if g == nil {
		g = &signalGroup{done: done}
		if l.signalByCh == nil {
			l.signalByCh = make(map[<-chan struct{}]*signalGroup)
		}
		l.signalByCh[done] = g
		l.signals = append(l.signals, g)
	}
	g.socks = append(g.socks, s)
	s.signal = g
}

// unwatchSignalLocked takes a closing socket out of its group, so that a
// long-lived Context shared by many short-lived sockets holds none of
// them.
func (l *Loop) unwatchSignalLocked(s *Socket) {
	g := s.signal
	if g == nil {
		return
	}
	s.signal = nil
	if g.closed++; g.closed*2 < len(g.socks) {
		return
	}
	g.socks = slices.DeleteFunc(g.socks, func(o *Socket) bool { return o.signal != g })
	g.closed = 0
	if len(g.socks) == 0 {
		l.signals = slices.DeleteFunc(l.signals, func(o *signalGroup) bool { return o == g })
		delete(l.signalByCh, g.done)
	}
}

// A tick is a queued next-tick callback: fn, or the oldest pending send of
// send (a typed entry, so that sending allocates no closure, and so that a
// loop that stops on a fatal error can count the sends it discards).
type tick struct {
	fn   func()
	send *Socket
}

// nextTick queues fn to run before any further I/O event.
func (l *Loop) nextTick(fn func()) {
	l.mu.Lock()
	l.ticks = append(l.ticks, tick{fn: fn})
	l.mu.Unlock()
	l.signal()
}

// nextTickLocked is nextTick with l.mu held.
func (l *Loop) nextTickLocked(fn func()) {
	l.ticks = append(l.ticks, tick{fn: fn})
	l.signal()
}

// Post queues fn to run on the loop as an I/O event (like Node's
// setImmediate): after every pending tick. A queued fn keeps Run alive.
//
// Unlike setImmediate, fn joins the I/O events in arrival order: a
// datagram already waiting in a socket's buffer when Post is called may be
// delivered after fn, where Node's check phase runs after the poll phase
// has delivered it.
func (l *Loop) Post(fn func()) {
	if fn == nil {
		return
	}
	l.postIO(fn)
}

func (l *Loop) postIO(fn func()) {
	l.mu.Lock()
	l.io = append(l.io, ioEvent{fn: fn})
	l.mu.Unlock()
	l.signal()
}

// ioEvent is a queued I/O event: fn, or (fn nil) a datagram for s that a
// reader goroutine read (a typed event, so that receiving allocates no
// closure). When fn is the result of a lookup of s's, s is set, and send
// says that a send waits for it: a loop that stops on a fatal error counts
// that send as discarded.
type ioEvent struct {
	fn   func()
	s    *Socket
	send bool
	msg  []byte
	from netip.AddrPort
}

// postMessage queues the delivery of a datagram to s and reports true, or,
// if s is closed, counts the datagram as undelivered and reports false.
func (l *Loop) postMessage(s *Socket, msg []byte, from netip.AddrPort) bool {
	l.mu.Lock()
	if s.closed {
		s.countUndeliveredLocked(1)
		l.mu.Unlock()
		return false
	}
	l.io = append(l.io, ioEvent{s: s, msg: msg, from: from})
	l.mu.Unlock()
	l.signal()
	return true
}

func (l *Loop) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Hold keeps Run from returning until release is called, for programs that
// drive sockets from other goroutines. Calling release twice is harmless.
func (l *Loop) Hold() (release func()) {
	l.mu.Lock()
	l.holds++
	l.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			l.holds--
			l.mu.Unlock()
			l.signal()
		})
	}
}

// startWork and endWork bracket work running off the loop (a lookup of
// s's) whose result will come back as an event; it keeps Run alive.
func (l *Loop) startWork() {
	l.mu.Lock()
	l.inflight++
	l.mu.Unlock()
}

// endWork queues fn, the work's result, as an I/O event. If s has closed
// meanwhile, fn would only count the send waiting for it (send) as
// discarded: endWork counts it itself and queues nothing, so that a loop
// that has stopped holds no result nobody will run.
func (l *Loop) endWork(s *Socket, send bool, fn func()) {
	l.mu.Lock()
	l.inflight--
	if !s.closed {
		l.io = append(l.io, ioEvent{fn: fn, s: s, send: send})
	} else if send {
		s.stats.sendsDiscarded.Add(1)
	}
	l.mu.Unlock()
	l.signal()
}

// waitWork waits until no work runs off the loop. Run calls it once it has
// closed every socket, whose lookups then end (their contexts are done).
func (l *Loop) waitWork() {
	l.mu.Lock()
	for l.inflight > 0 {
		l.mu.Unlock()
		<-l.wake // endWork signals
		l.mu.Lock()
	}
	l.mu.Unlock()
}

// markReady queues a drain of s; safe to call with mu held and from a
// network notification.
func (l *Loop) markReady(s *Socket) {
	l.readyMu.Lock()
	l.ready = append(l.ready, s)
	l.readyMu.Unlock()
	l.signal()
}

// takeReadyLocked moves the ready sockets' drains to the I/O queue.
func (l *Loop) takeReadyLocked() {
	l.readyMu.Lock()
	for i, s := range l.ready {
		l.io = append(l.io, ioEvent{fn: s.drainFn})
		l.ready[i] = nil
	}
	l.ready = l.ready[:0]
	l.readyMu.Unlock()
}

// fail records an 'error' that had no listener; Run returns it.
func (l *Loop) fail(err error) {
	l.mu.Lock()
	if l.fatal == nil {
		l.fatal = err
	}
	l.mu.Unlock()
	l.signal()
}

// ErrLoopRunning is returned by Run when the loop is already running.
var ErrLoopRunning = errors.New("dgram: loop is already running")

// Run runs the loop until there is nothing left to do: no queued work, no
// pending lookup, no Hold, and no socket that is bound (or binding), not
// closed and not unref'd. It then returns nil.
//
// If an 'error' event is emitted on a socket with no 'error' listener, Run
// closes every socket of the loop (without further events), discards the
// work that is queued, and returns that error, where Node would crash.
// What is lost is counted in the sockets' Stats: the sends that never ran
// as SendsDiscarded (their callbacks are not called, as Node's process
// would have died), and the datagrams the sockets had read or held in
// their receive buffers as MessagesDiscarded.
//
// If ctx is cancelled, Run closes every socket (their 'close' events run),
// finishes the work that is queued, and returns ctx.Err(). The sends that
// will not run are SendsDiscarded, and the datagrams the sockets will not
// deliver MessagesDiscarded, as on a fatal error.
//
// Before returning, Run waits for the reader goroutines of closed sockets,
// and after a fatal error for their lookups (whose contexts are done), so
// a closed socket leaves no goroutine behind and its Stats are final.
func (l *Loop) Run(ctx context.Context) error {
	if ctx == nil {
		return errors.New("dgram: Loop.Run with a nil context (use context.Background())")
	}
	l.mu.Lock()
	if l.running {
		l.mu.Unlock()
		return ErrLoopRunning
	}
	l.running = true
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.running = false
		l.mu.Unlock()
	}()

	cancelled := false
	cancel := func() {
		cancelled = true
		l.mu.Lock()
		socks := l.openSocketsLocked()
		l.mu.Unlock()
		for _, s := range socks {
			s.forceClose()
		}
	}
	for {
		// Notice a cancellation also while there is always work to do (a
		// socket flooded with datagrams, a send chain).
		if !cancelled {
			select {
			case <-ctx.Done():
				cancel()
			default:
			}
		}
		l.mu.Lock()
		if err := l.fatal; err != nil {
			l.fatal = nil
			socks := l.openSocketsLocked()
			conns := make([]Conn, len(socks))
			for i, s := range socks {
				conns[i] = s.abandonLocked()
			}
			l.discardQueuedLocked()
			l.mu.Unlock()
			for i, s := range socks {
				s.discardUnread(conns[i])
			}
			l.waitWork()
			l.waitReaders()
			return err
		}
		if cancelled {
			// Sockets created after the cancellation are closed too.
			if socks := l.openSocketsLocked(); len(socks) > 0 {
				l.mu.Unlock()
				for _, s := range socks {
					s.forceClose()
				}
				continue
			}
		}
		l.abortSignalledLocked()
		l.takeReadyLocked()
		if l.tickHead < len(l.ticks) {
			t := l.ticks[l.tickHead]
			l.ticks[l.tickHead] = tick{}
			l.tickHead++
			l.ticks, l.tickHead = compact(l.ticks, l.tickHead)
			l.mu.Unlock()
			if t.send != nil {
				t.send.sendNext()
			} else {
				t.fn()
			}
			continue
		}
		if l.ioHead < len(l.io) {
			ev := l.io[l.ioHead]
			l.io[l.ioHead] = ioEvent{}
			l.ioHead++
			l.io, l.ioHead = compact(l.io, l.ioHead)
			l.mu.Unlock()
			if ev.fn != nil {
				ev.fn()
			} else {
				ev.s.deliverMessage(ev.msg, ev.from)
			}
			continue
		}
		if !l.aliveLocked() {
			l.mu.Unlock()
			l.waitReaders()
			if cancelled {
				return ctx.Err()
			}
			return nil
		}
		l.mu.Unlock()

		done := ctx.Done()
		if cancelled {
			done = nil
		}
		select {
		case <-l.wake:
		case <-done:
			cancel()
		}
	}
}

// discardQueuedLocked empties the queues of a loop that stops on a fatal
// error, counting the datagrams in them: a send waiting for its tick or
// for its lookup is SendsDiscarded (its callback will not be called), a
// datagram a reader read and the loop has not delivered is undelivered
// (MessagesDiscarded, or ReceivedAfterClose if Close had closed its
// socket). The other events (callbacks, 'close' events, Post's functions)
// are dropped, as in a Node process that died.
func (l *Loop) discardQueuedLocked() {
	for _, t := range l.ticks[l.tickHead:] {
		if s := t.send; s != nil {
			s.sends.pop()
			s.stats.sendsDiscarded.Add(1)
		}
	}
	for _, ev := range l.io[l.ioHead:] {
		switch {
		case ev.fn == nil: // a datagram a reader handed over
			select {
			case <-ev.s.window:
			default:
			}
			ev.s.countUndeliveredLocked(1)
		case ev.send:
			ev.s.stats.sendsDiscarded.Add(1)
		}
	}
	l.ticks, l.io, l.tickHead, l.ioHead = nil, nil, 0, 0
}

// waitReaders waits for the reader goroutines of closed sockets to exit.
func (l *Loop) waitReaders() {
	l.mu.Lock()
	chans := l.closing
	l.closing = nil
	l.mu.Unlock()
	for _, ch := range chans {
		<-ch
	}
}

// compact returns q without its first head elements once they are many
// (or all of q), so that a queue that never drains completely does not
// keep growing, and one that does reuses its array.
func compact[T any](q []T, head int) ([]T, int) {
	if head == len(q) {
		return q[:0], 0
	}
	if head >= 1024 && head*2 >= len(q) {
		n := copy(q, q[head:])
		clear(q[n:])
		return q[:n], 0
	}
	return q, head
}

// aliveLocked reports whether anything keeps the loop running.
func (l *Loop) aliveLocked() bool {
	if l.holds > 0 || l.inflight > 0 {
		return true
	}
	for s := range l.sockets {
		if s.keepsAliveLocked() {
			return true
		}
	}
	return false
}

func (l *Loop) openSocketsLocked() []*Socket {
	var out []*Socket
	for s := range l.sockets {
		if !s.closed {
			out = append(out, s)
		}
	}
	return out
}
