package stack

import (
	"maps"
	"slices"
	"testing"

	"github.com/dgramlab/dgramlab/wire"
)

// A reason outside the enumeration (a bug) does not panic: the drop is
// counted and reported as wire.DropUnknown.
func TestDropOutsideEnumeration(t *testing.T) {
	a, _, _ := NewPipe(PipeOptions{})
	var reported []wire.DropReason
	a.AddDropHook(func(_ []byte, _ wire.Direction, r wire.DropReason) { reported = append(reported, r) })
	a.dropBytes([]byte{0x45}, wire.Outbound, 0)
	a.dropBytes([]byte{0x45}, wire.Inbound, wire.MaxDropReason+1)
	a.dropBytes([]byte{0x45}, wire.Inbound, wire.DropMTU)
	if want := []wire.DropReason{wire.DropUnknown, wire.DropUnknown, wire.DropMTU}; !slices.Equal(reported, want) {
		t.Errorf("reported %v, want %v", reported, want)
	}
	if got, want := a.Counters().Drops, map[wire.DropReason]uint64{wire.DropUnknown: 2, wire.DropMTU: 1}; !maps.Equal(got, want) {
		t.Errorf("Counters().Drops = %v, want %v", got, want)
	}
}
