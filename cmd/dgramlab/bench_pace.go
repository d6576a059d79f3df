package main

import (
	"math"
	"time"
)

// pacerWindow bounds a paced sender's bursts: after a late wake-up it sends
// at most this much time's worth of datagrams at once and forgives the
// rest, so that the paced run offers its rate evenly instead of catching
// up in one burst the receiver could not absorb. What it forgave shows as
// an offered rate below the pace.
const pacerWindow = 2 * time.Millisecond

// minPaceRate is the slowest pace: a path that delivered almost nothing
// at full speed is still paced at this rate.
const minPaceRate = 1000

// A pacer spreads a sender's datagrams evenly at rate per second. It is
// used by one goroutine (or one loop) at a time.
type pacer struct {
	rate  float64
	burst uint64 // at most this many at once: pacerWindow's worth
	sent  uint64 // datagrams handed out (or forgiven)
}

func newPacer(rate float64) *pacer {
	rate = max(rate, minPaceRate)
	return &pacer{rate: rate, burst: uint64(max(1, math.Ceil(rate*float64(pacerWindow)/1e9)))}
}

// take returns how many datagrams, at most limit, the sender may send
// now, elapsed after it started, and counts them as sent.
func (p *pacer) take(elapsed time.Duration, limit int) int {
	due := uint64(p.rate * float64(elapsed) / 1e9)
	if due <= p.sent {
		return 0
	}
	if due-p.sent > p.burst {
		p.sent = due - p.burst // late: forgive what is beyond one burst
	}
	n := min(due-p.sent, uint64(limit))
	p.sent += n
	return int(n)
}

// wait returns how long after elapsed the next datagram is due.
func (p *pacer) wait(elapsed time.Duration) time.Duration {
	next := time.Duration(float64(p.sent+1) / p.rate * float64(time.Second))
	return max(next-elapsed, 0)
}
