package wire_test

import (
	"fmt"

	"github.com/dgramlab/dgramlab/wire"
)

func ExampleDropReason() {
	counts := make([]uint64, wire.MaxDropReason+1) // indexed by reason
	var hook wire.DropHook = func(frame []byte, dir wire.Direction, reason wire.DropReason) {
		counts[reason]++
		fmt.Printf("%s frame of %d bytes dropped: %v\n", dir, len(frame), reason)
	}
	hook(make([]byte, 1514), wire.Outbound, wire.DropMTU)

	r, ok := wire.ParseDropReason("queue-full")
	fmt.Println(r == wire.DropQueueFull, ok, counts[wire.DropMTU])
	// Output:
	// outbound frame of 1514 bytes dropped: mtu
	// true true 1
}
