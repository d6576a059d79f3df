package stack

import (
	"container/heap"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// VirtualEpoch is where a VirtualClock made with the zero time starts:
// midnight UTC on 1 January 2000, as in a testing/synctest bubble.
var VirtualEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// A VirtualClock is a clock whose time moves only when Advance or
// AdvanceTo is called, for scenarios that must run the same way every
// time outside a testing/synctest bubble (inside one, the real clock is
// already virtual). Give the same VirtualClock to the hosts
// (HostOptions.Clock), the links (SwitchOptions.Clock, PipeOptions.Clock)
// and the capture taps (its Now method), then drive time from one
// goroutine.
//
// Timer callbacks (the hosts' timers, the links' deliveries of delayed
// frames) run on the goroutine that advances the clock, one at a time, in
// the order they are due (in the order they were set, for the same
// instant). Unlike the tcpip.Clock contract, they do not each get a
// goroutine: that is what makes a scenario deterministic. Do not advance
// the clock while holding a lock that a callback takes.
//
// gVisor defers some work with zero-delay timers (sending an ARP request,
// then the packets that waited for it): with a VirtualClock that nobody
// advances, it never happens. RunDue starts a goroutine that runs such
// timers at once, for code that cannot drive the clock itself (Node-style
// sockets on an event loop, say); time still moves only with Advance.
//
// A VirtualClock is safe for concurrent use. Callbacks never run
// concurrently with each other.
type VirtualClock struct {
	mu     sync.Mutex
	start  time.Time
	now    time.Duration // since start
	seq    uint64
	timers vtimerHeap
	wake   chan struct{} // RunDue's signal; nil when it is not running

	runMu sync.Mutex // held while callbacks run
}

var _ tcpip.Clock = (*VirtualClock)(nil)

// NewVirtualClock returns a clock that reads start until it is advanced.
// The zero time means VirtualEpoch.
func NewVirtualClock(start time.Time) *VirtualClock {
	if start.IsZero() {
		start = VirtualEpoch
	}
	return &VirtualClock{start: start}
}

// Now implements tcpip.Clock.
func (c *VirtualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.start.Add(c.now)
}

// NowMonotonic implements tcpip.Clock.
func (c *VirtualClock) NowMonotonic() tcpip.MonotonicTime {
	c.mu.Lock()
	defer c.mu.Unlock()
	return tcpip.MonotonicTime{}.Add(c.now)
}

// Elapsed returns how far the clock has been advanced.
func (c *VirtualClock) Elapsed() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc implements tcpip.Clock: f runs when the clock is advanced to
// d from now or past it, on the goroutine advancing it.
func (c *VirtualClock) AfterFunc(d time.Duration, f func()) tcpip.Timer {
	t := &vtimer{c: c, f: f, index: -1}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.scheduleLocked(t, d)
	return t
}

func (c *VirtualClock) scheduleLocked(t *vtimer, d time.Duration) {
	c.seq++
	t.due, t.seq = c.now+max(d, 0), c.seq
	heap.Push(&c.timers, t)
	if c.wake != nil && t.due <= c.now {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// RunDue starts running, on a goroutine of its own, every timer that is
// due at the current time, as soon as it is set, until stop is called.
// stop waits for the goroutine to end. Calling RunDue again before stop
// panics.
func (c *VirtualClock) RunDue() (stop func()) {
	wake, quit, done := make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	c.mu.Lock()
	if c.wake != nil {
		c.mu.Unlock()
		panic("stack: VirtualClock.RunDue called twice")
	}
	c.wake = wake
	c.mu.Unlock()
	wake <- struct{}{}
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			case <-wake:
				c.Advance(0)
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			c.wake = nil
			c.mu.Unlock()
			close(quit)
			<-done
		})
	}
}

// Next returns when the earliest pending timer is due; ok is false when
// no timer is pending.
func (c *VirtualClock) Next() (due time.Time, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.timers) == 0 {
		return time.Time{}, false
	}
	return c.start.Add(c.timers[0].due), true
}

// Advance moves the clock d forward, running on the calling goroutine, in
// order, every timer due by then (including those that callbacks set).
func (c *VirtualClock) Advance(d time.Duration) {
	c.runMu.Lock() // a callback running elsewhere finishes first
	c.mu.Lock()
	target := c.now + max(d, 0)
	c.mu.Unlock()
	c.runMu.Unlock()
	c.advance(target)
}

// AdvanceTo is Advance to the time t; a t in the past does nothing.
func (c *VirtualClock) AdvanceTo(t time.Time) {
	c.advance(t.Sub(c.start))
}

func (c *VirtualClock) advance(target time.Duration) {
	c.runMu.Lock()
	defer c.runMu.Unlock()
	c.mu.Lock()
	for len(c.timers) > 0 && c.timers[0].due <= target {
		t := heap.Pop(&c.timers).(*vtimer)
		c.now = max(c.now, t.due)
		c.mu.Unlock()
		t.f()
		c.mu.Lock()
	}
	c.now = max(c.now, target)
	c.mu.Unlock()
}

// vtimer is a VirtualClock's timer.
type vtimer struct {
	c     *VirtualClock
	f     func()
	due   time.Duration
	seq   uint64
	index int // in the heap, or -1
}

// Stop implements tcpip.Timer.
func (t *vtimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.index < 0 {
		return false
	}
	heap.Remove(&t.c.timers, t.index)
	return true
}

// Reset implements tcpip.Timer.
func (t *vtimer) Reset(d time.Duration) {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.index >= 0 {
		heap.Remove(&t.c.timers, t.index)
	}
	t.c.scheduleLocked(t, d)
}

type vtimerHeap []*vtimer

func (h vtimerHeap) Len() int { return len(h) }
func (h vtimerHeap) Less(i, j int) bool {
	if h[i].due != h[j].due {
		return h[i].due < h[j].due
	}
	return h[i].seq < h[j].seq
}
func (h vtimerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *vtimerHeap) Push(x any) {
	t := x.(*vtimer)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *vtimerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.index = -1
	return t
}
