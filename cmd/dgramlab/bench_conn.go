package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// udpConn is what the conn paths use of *net.UDPConn and *stack.UDPConn.
type udpConn interface {
	ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
	SetReadDeadline(t time.Time) error
	Close() error
}

// connPair is a sender (tx) and a receiver (rx) conn. For ping-pong tx is
// the client and rx the echo.
type connPair struct {
	tx, rx udpConn
	dst    netip.AddrPort // rx's address as tx sends to it
	// drops returns the receive-buffer drops counted since the pair was
	// made; nil when they cannot be counted.
	drops func() uint64
	// setRcvbuf sets rx's SO_RCVBUF and returns the size rx reports.
	setRcvbuf func(bytes int) (int, error)
	// tap is what the hosts' taps record into; nil without taps.
	tap   *tapSink
	close func()
}

// newVirtualConnPair opens stack.UDPConns on two fresh virtual hosts,
// their NICs tapped when tap is set.
func newVirtualConnPair(link string, tap bool) (*connPair, error) {
	a, b, sink, err := newTappedHosts(link, tap)
	if err != nil {
		return nil, err
	}
	closeHosts := func() { a.Close(); b.Close() }
	tx, err := a.ListenUDP("udp4", netip.AddrPortFrom(virtA, 0))
	if err != nil {
		closeHosts()
		return nil, err
	}
	rx, err := b.ListenUDP("udp4", netip.AddrPortFrom(virtB, uint16(virtPort)))
	if err != nil {
		closeHosts()
		return nil, err
	}
	full0 := b.Stats().UDP.BufferFull
	return &connPair{
		tx: tx, rx: rx, dst: netip.AddrPortFrom(virtB, uint16(virtPort)),
		drops: func() uint64 { return b.Stats().UDP.BufferFull - full0 },
		setRcvbuf: func(bytes int) (int, error) {
			if err := rx.SetReadBuffer(bytes); err != nil {
				return 0, err
			}
			return rx.ReadBufferSize()
		},
		tap: sink, close: closeHosts,
	}, nil
}

// newKernelConnPair opens two kernel UDP sockets on 127.0.0.1.
func newKernelConnPair() (*connPair, error) {
	tx, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
	if err != nil {
		return nil, err
	}
	rx, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
	if err != nil {
		tx.Close()
		return nil, err
	}
	return &connPair{
		tx: tx, rx: rx, dst: rx.LocalAddr().(*net.UDPAddr).AddrPort(),
		drops: kernelDrops(),
		setRcvbuf: func(bytes int) (int, error) {
			if err := rx.SetReadBuffer(bytes); err != nil {
				return 0, err
			}
			return kernelRcvbuf(rx)
		},
		close: func() { tx.Close(); rx.Close() },
	}, nil
}

// kernelRcvbuf returns a kernel socket's SO_RCVBUF, as getsockopt reports
// it (twice what was set).
func kernelRcvbuf(c syscall.Conn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var sockErr error
	if err := rc.Control(func(fd uintptr) { n, sockErr = getsockoptRcvbuf(fd) }); err != nil {
		return 0, err
	}
	return n, sockErr
}

// connOneWay: a goroutine reads rx and counts; this goroutine writes tx
// for spec.duration, as fast as it can or paced at spec.rate.
func connOneWay(ctx context.Context, newPair func() (*connPair, error), spec oneWaySpec) (oneWayRun, error) {
	p, err := newPair()
	if err != nil {
		return oneWayRun{}, err
	}
	defer p.close()
	rcvbuf := 0
	if spec.rcvbuf > 0 {
		if rcvbuf, err = p.setRcvbuf(spec.rcvbuf); err != nil {
			return oneWayRun{}, fmt.Errorf("SO_RCVBUF: %w", err)
		}
	}
	base := time.Now()
	rx := newRxCounter(base)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		buf := make([]byte, 0x10000)
		for {
			n, _, err := p.rx.ReadFromUDPAddrPort(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			rx.got(buf[:n])
		}
	}()
	defer func() { p.rx.Close(); <-readerDone }()

	if err := rx.prime(ctx, func() { p.tx.WriteToUDPAddrPort([]byte{markPrime}, p.dst) }); err != nil {
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
	m := startMeter()
	start := time.Since(base)
	var sent, sendErrors uint64
	send := func() {
		if _, err := p.tx.WriteToUDPAddrPort(msg, p.dst); err != nil {
			sendErrors++
		}
		sent++
	}
	if spec.rate > 0 {
		pc := newPacer(spec.rate)
		for {
			elapsed := time.Since(base) - start
			if elapsed >= spec.duration {
				break
			}
			n := pc.take(elapsed, math.MaxInt)
			if n == 0 {
				time.Sleep(pc.wait(elapsed))
				continue
			}
			for range n {
				send()
			}
		}
	} else {
		for {
			send()
			if sent%16 == 0 && time.Since(base)-start >= spec.duration {
				break
			}
		}
	}
	sendEnd := time.Since(base)
	atEnd := rx.count.Load()
	rx.drain(ctx, sent, sendEnd)
	received := rx.count.Load()
	run := oneWayResult(sent, sendErrors, received, start, sendEnd, time.Duration(rx.last.Load()))
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
	return run, ctx.Err()
}

// connPingPong: an echo goroutine on rx; this goroutine pings from tx,
// one datagram at a time, for d.
func connPingPong(ctx context.Context, newPair func() (*connPair, error), size int, d time.Duration) (pingRun, error) {
	p, err := newPair()
	if err != nil {
		return pingRun{}, err
	}
	defer p.close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 0x10000)
		for {
			n, from, err := p.rx.ReadFromUDPAddrPort(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			p.rx.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	defer func() { p.rx.Close(); wg.Wait() }()

	var progress atomic.Uint64
	stopDog := startWatchdog(&progress, func(uint64) { p.tx.SetReadDeadline(time.Now()) })
	defer stopDog()

	msg := make([]byte, size)
	buf := make([]byte, 0x10000)
	samples := make([]time.Duration, 0, 1<<16)
	timeouts := 0
	// The window starts at the first pong, which resolved ARP: that round
	// trip is not counted.
	var start time.Time
	setup := time.Now()
	var seq uint64
	for ctx.Err() == nil {
		if start.IsZero() && time.Since(setup) > setupTimeout {
			return pingRun{}, errors.New("no pong while priming")
		}
		if !start.IsZero() && time.Since(start) >= d {
			break
		}
		seq++
		binary.BigEndian.PutUint64(msg, seq)
		sentAt := time.Now()
		if _, err := p.tx.WriteToUDPAddrPort(msg, p.dst); err != nil {
			return pingRun{}, err
		}
		for {
			n, _, err := p.tx.ReadFromUDPAddrPort(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				p.tx.SetReadDeadline(time.Time{})
				timeouts++
				break
			}
			if err != nil {
				return pingRun{}, err
			}
			if n >= 8 && binary.BigEndian.Uint64(buf) == seq {
				rtt := time.Since(sentAt)
				progress.Add(1)
				if start.IsZero() {
					start = time.Now()
				} else {
					samples = append(samples, rtt)
				}
				break
			}
			// A late pong of a ping that timed out: ignore it.
		}
	}
	return pingResult(samples, timeouts), ctx.Err()
}

// startWatchdog calls kick(progress) from its own goroutine whenever
// progress has not moved for pingTimeout. stop ends it and waits for it.
func startWatchdog(progress *atomic.Uint64, kick func(seen uint64)) (stop func()) {
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		tick := time.NewTicker(pingTimeout / 5)
		defer tick.Stop()
		seen, since := progress.Load(), time.Now()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if v := progress.Load(); v != seen {
				seen, since = v, time.Now()
				continue
			}
			if time.Since(since) >= pingTimeout {
				kick(seen)
				since = time.Now()
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(done); <-exited })
	}
}
