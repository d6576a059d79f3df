package stack

import (
	"testing"
	"time"
)

// With nothing in force, the hot path's pointer is nil: the impairment
// layer costs one atomic load. It goes back to nil once the held frames
// have left.
func TestImpairPointerOnlyWhenActive(t *testing.T) {
	vc := NewVirtualClock(time.Time{})
	a, _, _ := NewPipe(PipeOptions{Clock: vc})
	active := func() [2]bool {
		return [2]bool{a.impair[dirFromHost].Load() != nil, a.impair[dirToHost].Load() != nil}
	}
	if got := active(); got != [2]bool{} {
		t.Fatalf("new pipe end: active %v", got)
	}
	a.SetImpairments(BothDirections, Impairments{Seed: 7, QueueLimit: 10})
	if got := active(); got != [2]bool{} {
		t.Fatalf("inactive settings: active %v", got)
	}
	a.SetImpairments(ToHost, Impairments{Delay: time.Millisecond})
	if got := active(); got != [2]bool{false, true} {
		t.Fatalf("ToHost delay: active %v", got)
	}
	// Hold a frame, then clear the settings: the pointer stays until the
	// frame has gone.
	d := a.dirs[dirToHost]
	d.process(heldFrame{size: 20})
	a.SetImpairments(ToHost, Impairments{})
	if got := active(); got != [2]bool{false, true} {
		t.Fatalf("cleared with a frame held: active %v", got)
	}
	vc.Advance(time.Second)
	if got := active(); got != [2]bool{} {
		t.Fatalf("after the held frame left: active %v", got)
	}
	if c := a.Counters(); c.Drops[DropDetached] != 1 {
		t.Errorf("the held frame (no NIC attached) was not counted: %+v", c)
	}
}
