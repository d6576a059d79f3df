package stack

import (
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// closeClock is the clock a host gives its gVisor stack. It wraps the
// host's clock so that Close can wait for the timer callbacks gVisor runs
// on their own goroutines (ARP/NDP probes, fragment reassembly timeouts,
// ...): stopping such a timer does not wait for a callback already
// running, and one that is still sending a probe through a Switch after
// Close returned would be a goroutine left behind. After close, a callback
// that fires does nothing (its stack is gone).
type closeClock struct {
	tcpip.Clock

	mu      sync.Mutex
	idle    sync.Cond // signalled when running drops to 0
	running int
	closed  bool
}

func newCloseClock(c tcpip.Clock) *closeClock {
	if c == nil {
		c = tcpip.NewStdClock()
	}
	cc := &closeClock{Clock: c}
	cc.idle.L = &cc.mu
	return cc
}

// AfterFunc implements tcpip.Clock.
func (c *closeClock) AfterFunc(d time.Duration, f func()) tcpip.Timer {
	return c.Clock.AfterFunc(d, func() {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return
		}
		c.running++
		c.mu.Unlock()
		defer c.exit()
		f()
	})
}

func (c *closeClock) exit() {
	c.mu.Lock()
	c.running--
	if c.running == 0 {
		c.idle.Broadcast()
	}
	c.mu.Unlock()
}

// close makes later callbacks no-ops and waits for the running ones.
func (c *closeClock) close() {
	c.mu.Lock()
	c.closed = true
	for c.running > 0 {
		c.idle.Wait()
	}
	c.mu.Unlock()
}
