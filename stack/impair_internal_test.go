package stack

import (
	"testing"
	"time"

	"github.com/dgramlab/dgramlab/wire"
)

// With nothing in force, the hot path's pointer is nil: the impairment
// layer costs one atomic load. It goes back to nil once the held frames
// have left.
func TestImpairPointerOnlyWhenActive(t *testing.T) {
	vc := NewVirtualClock(time.Time{})
	a, _, _ := NewPipe(PipeOptions{Clock: vc})
	active := func() [2]bool {
		return [2]bool{a.impair[outIdx].Load() != nil, a.impair[inIdx].Load() != nil}
	}
	if got := active(); got != [2]bool{} {
		t.Fatalf("new pipe end: active %v", got)
	}
	a.SetImpairments(BothDirections, Impairments{Seed: 7, QueueLimit: 10})
	if got := active(); got != [2]bool{} {
		t.Fatalf("inactive settings: active %v", got)
	}
	a.SetImpairments(wire.Inbound, Impairments{Delay: time.Millisecond})
	if got := active(); got != [2]bool{false, true} {
		t.Fatalf("inbound delay: active %v", got)
	}
	// Hold a frame, then clear the settings: the pointer stays until the
	// frame has gone.
	d := a.dirs[inIdx]
	d.process(heldFrame{size: 20})
	a.SetImpairments(wire.Inbound, Impairments{})
	if got := active(); got != [2]bool{false, true} {
		t.Fatalf("cleared with a frame held: active %v", got)
	}
	vc.Advance(time.Second)
	if got := active(); got != [2]bool{} {
		t.Fatalf("after the held frame left: active %v", got)
	}
	if c := a.Counters(); c.Drops[wire.DropDetached] != 1 {
		t.Errorf("the held frame (no NIC attached) was not counted: %+v", c)
	}
}

// A drawn delay saturates at MaxDelay and zero, whatever the settings,
// even ones Validate would refuse: it never wraps around.
func TestImpairDelaySaturates(t *testing.T) {
	a, _, _ := NewPipe(PipeOptions{Clock: NewVirtualClock(time.Time{})})
	d := a.dirs[outIdx]
	d.set(Impairments{Seed: 1})
	for _, cfg := range []Impairments{
		{Jitter: 2000000 * time.Hour, Distribution: Pareto},
		{Jitter: 2000000 * time.Hour, Distribution: Normal},
		{Delay: 2562047 * time.Hour, Jitter: time.Hour},
		{Delay: MaxDelay, Jitter: MaxDelay, Distribution: Pareto},
	} {
		d.cfg = cfg // as if Validate had let it through
		var highest time.Duration
		for range 10000 {
			delay := d.delayLocked()
			if delay < 0 || delay > MaxDelay {
				t.Fatalf("%v: drew a delay of %v, want one in [0, %v]", cfg, delay, MaxDelay)
			}
			highest = max(highest, delay)
		}
		if highest != MaxDelay {
			t.Errorf("%v: the longest delay drawn is %v, want it saturated at %v", cfg, highest, MaxDelay)
		}
	}
}
