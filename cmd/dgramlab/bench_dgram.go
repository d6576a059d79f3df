package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgramlab/dgramlab/dgram"
)

// dgramPair is where a dgram path's two ends live: a (the sender, or the
// ping-pong client) and b (the receiver, or the echo).
type dgramPair struct {
	netA, netB dgram.Network
	bind       string // address both ends bind
	portB      int    // b's port; 0 for an ephemeral one
	dst        string // b's address as a sends to it
	drops      func() uint64
	tap        *tapSink // what the hosts' taps record into; nil without taps
	close      func()
}

// newVirtualDgramPair puts the ends on two fresh virtual hosts, their NICs
// tapped when tap is set.
func newVirtualDgramPair(link string, tap bool) (*dgramPair, error) {
	a, b, sink, err := newTappedHosts(link, tap)
	if err != nil {
		return nil, err
	}
	full0 := b.Stats().UDP.BufferFull
	return &dgramPair{
		netA: a, netB: b, bind: "", portB: virtPort, dst: virtB.String(),
		drops: func() uint64 { return b.Stats().UDP.BufferFull - full0 },
		tap:   sink,
		close: func() { a.Close(); b.Close() },
	}, nil
}

// newKernelDgramPair puts the ends on the kernel's loopback.
func newKernelDgramPair() (*dgramPair, error) {
	return &dgramPair{
		netA: dgram.System(), netB: dgram.System(), bind: loopback.String(), dst: loopback.String(),
		drops: kernelDrops(), close: func() {},
	}, nil
}

// dgramEnd is one bound socket on its own Loop, run on its own goroutine
// like a separate process.
type dgramEnd struct {
	loop *dgram.Loop
	sock *dgram.Socket
	port int
	done chan error
	once sync.Once
	err  error
}

// startDgramEnd binds a udp4 socket on network at address:port, with
// SO_RCVBUF rcvbuf (0: the default), and runs its loop. onMessage, if not
// nil, runs on the loop for each datagram.
func startDgramEnd(ctx context.Context, network dgram.Network, address string, port, rcvbuf int, onMessage func(s *dgram.Socket, msg []byte, rinfo dgram.RemoteInfo)) (*dgramEnd, error) {
	e := &dgramEnd{loop: dgram.NewLoop(network), done: make(chan error, 1)}
	var handler func([]byte, dgram.RemoteInfo)
	if onMessage != nil {
		handler = func(msg []byte, rinfo dgram.RemoteInfo) { onMessage(e.sock, msg, rinfo) }
	}
	sock, err := e.loop.CreateSocketWith(dgram.SocketOptions{Type: dgram.UDP4, RecvBufferSize: rcvbuf}, handler)
	if err != nil {
		return nil, err
	}
	e.sock = sock
	listening := make(chan struct{})
	sock.OnListening(func() { close(listening) })
	// No 'error' listener: a bind failure ends Run with the error.
	if err := sock.Bind(port, address, nil); err != nil {
		return nil, err
	}
	go func() { e.done <- e.loop.Run(ctx) }()
	select {
	case <-listening:
	case err := <-e.done:
		if err == nil {
			err = errors.New("the socket closed before listening")
		}
		return nil, fmt.Errorf("bind: %w", err)
	case <-time.After(setupTimeout):
		e.stop()
		return nil, errors.New("bind timed out")
	}
	addr, err := sock.Address()
	if err != nil {
		e.stop()
		return nil, err
	}
	e.port = addr.Port
	return e, nil
}

// stop closes the socket and waits for the loop to return.
func (e *dgramEnd) stop() error {
	e.once.Do(func() {
		e.sock.Close(nil)
		e.err = <-e.done
	})
	return e.err
}

// dgramOneWay: the receiver counts on its loop; the sender sends on its
// loop for spec.duration in batches of sendBatch datagrams, the last one's
// callback sending the next batch. Paced at spec.rate, a batch holds what
// is due (at most sendBatch), and when nothing is due a timer posts the
// next batch to the loop.
func dgramOneWay(ctx context.Context, newPair func() (*dgramPair, error), spec oneWaySpec) (oneWayRun, error) {
	p, err := newPair()
	if err != nil {
		return oneWayRun{}, err
	}
	defer p.close()
	base := time.Now()
	rxc := newRxCounter(base)
	rx, err := startDgramEnd(ctx, p.netB, p.bind, p.portB, spec.rcvbuf, func(_ *dgram.Socket, msg []byte, _ dgram.RemoteInfo) { rxc.got(msg) })
	if err != nil {
		return oneWayRun{}, fmt.Errorf("receiver: %w", err)
	}
	defer rx.stop()
	rcvbuf := 0
	if spec.rcvbuf > 0 {
		if rcvbuf, err = rx.sock.GetRecvBufferSize(); err != nil {
			return oneWayRun{}, fmt.Errorf("receiver: %w", err)
		}
	}
	tx, err := startDgramEnd(ctx, p.netA, p.bind, 0, 0, nil)
	if err != nil {
		return oneWayRun{}, fmt.Errorf("sender: %w", err)
	}
	defer tx.stop()

	if err := rxc.prime(ctx, func() { tx.sock.Send([]byte{markPrime}, rx.port, p.dst, nil) }); err != nil {
		return oneWayRun{}, err
	}
	msg := make([]byte, spec.size)
	msg[0] = markMeasure
	var drops0, frames0 uint64
	if p.drops != nil {
		drops0 = p.drops()
	}
	if p.tap != nil {
		frames0 = p.tap.frames.Load()
	}
	// Sender state, used on the sender's loop only.
	var (
		start, sendEnd time.Duration
		atEnd          uint64 // datagrams received by sendEnd
		st0, st1       dgram.SocketStats
		sendErr        error
		pc             *pacer
		finished       = make(chan struct{})
	)
	if spec.rate > 0 {
		pc = newPacer(spec.rate)
	}
	var batch, postBatch func()
	sentBatch := func(int, error) { batch() }
	postBatch = func() { tx.loop.Post(batch) }
	batch = func() {
		elapsed := time.Since(base) - start
		if elapsed >= spec.duration {
			sendEnd = time.Since(base)
			atEnd = rxc.count.Load()
			st1 = tx.sock.Stats()
			close(finished)
			return
		}
		n := sendBatch
		if pc != nil {
			if n = pc.take(elapsed, sendBatch); n == 0 {
				time.AfterFunc(pc.wait(elapsed), postBatch)
				return
			}
		}
		for range n - 1 {
			tx.sock.Send(msg, rx.port, p.dst, nil)
		}
		if err := tx.sock.Send(msg, rx.port, p.dst, sentBatch); err != nil {
			sendErr = err // the socket is closed: the context was cancelled
			close(finished)
		}
	}
	m := startMeter()
	tx.loop.Post(func() {
		st0 = tx.sock.Stats()
		start = time.Since(base)
		batch()
	})
	select {
	case <-finished:
	case <-ctx.Done():
		return oneWayRun{}, ctx.Err()
	}
	if sendErr != nil {
		return oneWayRun{}, sendErr
	}
	sendErrors := st1.SendErrors - st0.SendErrors
	sent := st1.Sent - st0.Sent + sendErrors + st1.SendsDiscarded - st0.SendsDiscarded
	rxc.drain(ctx, sent, sendEnd)
	run := oneWayResult(sent, sendErrors, rxc.count.Load(), start, sendEnd, time.Duration(rxc.last.Load()))
	m.stop(&run)
	run.PaceRate, run.RcvbufBytes, run.ReceivedBySendEnd = spec.rate, rcvbuf, &atEnd
	if p.drops != nil {
		v := p.drops() - drops0
		run.BufferDrops = &v
	}
	if p.tap != nil {
		v := p.tap.frames.Load() - frames0
		run.TapFrames = &v
		if err := p.tap.check(); err != nil {
			return oneWayRun{}, fmt.Errorf("tap: %w", err)
		}
	}
	if err := tx.stop(); err != nil {
		return oneWayRun{}, fmt.Errorf("sender: %w", err)
	}
	if err := rx.stop(); err != nil {
		return oneWayRun{}, fmt.Errorf("receiver: %w", err)
	}
	return run, ctx.Err()
}

// dgramPingPong: an echo socket on one loop sends every datagram back; the
// client on another loop sends the next ping from its 'message' listener.
func dgramPingPong(ctx context.Context, newPair func() (*dgramPair, error), size int, d time.Duration) (pingRun, error) {
	p, err := newPair()
	if err != nil {
		return pingRun{}, err
	}
	defer p.close()
	echo, err := startDgramEnd(ctx, p.netB, p.bind, p.portB, 0, func(s *dgram.Socket, msg []byte, rinfo dgram.RemoteInfo) {
		s.Send(msg, rinfo.Port, rinfo.Address, nil)
	})
	if err != nil {
		return pingRun{}, fmt.Errorf("echo: %w", err)
	}
	defer echo.stop()

	// Client state, used on the client's loop only.
	var (
		msg      = make([]byte, size)
		seq      uint64
		sentAt   time.Time
		start    time.Time // the first pong (ARP resolved): not counted
		samples  = make([]time.Duration, 0, 1<<16)
		timeouts int
		over     bool
		progress atomic.Uint64
		finished = make(chan struct{})
	)
	setup := time.Now()
	ping := func(s *dgram.Socket) {
		seq++
		binary.BigEndian.PutUint64(msg, seq)
		sentAt = time.Now()
		s.Send(msg, echo.port, p.dst, nil)
	}
	// next sends the next ping, or ends the measurement.
	next := func(s *dgram.Socket) {
		if (!start.IsZero() && time.Since(start) >= d) || (start.IsZero() && time.Since(setup) > setupTimeout) {
			over = true
			close(finished)
			return
		}
		ping(s)
	}
	client, err := startDgramEnd(ctx, p.netA, p.bind, 0, 0, func(s *dgram.Socket, m []byte, _ dgram.RemoteInfo) {
		if over || len(m) < 8 || binary.BigEndian.Uint64(m) != seq {
			return // a late pong of a ping that timed out
		}
		rtt := time.Since(sentAt)
		progress.Add(1)
		if start.IsZero() {
			start = time.Now()
		} else {
			samples = append(samples, rtt)
		}
		next(s)
	})
	if err != nil {
		return pingRun{}, fmt.Errorf("client: %w", err)
	}
	defer client.stop()
	stopDog := startWatchdog(&progress, func(seen uint64) {
		client.loop.Post(func() {
			if over || progress.Load() != seen {
				return
			}
			timeouts++
			next(client.sock)
		})
	})
	defer stopDog()
	client.loop.Post(func() { ping(client.sock) })
	select {
	case <-finished:
	case <-ctx.Done():
		return pingRun{}, ctx.Err()
	}
	stopDog()
	if start.IsZero() {
		return pingRun{}, errors.New("no pong while priming")
	}
	if err := client.stop(); err != nil {
		return pingRun{}, fmt.Errorf("client: %w", err)
	}
	if err := echo.stop(); err != nil {
		return pingRun{}, fmt.Errorf("echo: %w", err)
	}
	return pingResult(samples, timeouts), ctx.Err()
}
