// Package wire holds the few definitions that the packages moving frames
// share, so that stack, tun and capture speak of a frame the same way
// without importing each other: which way it was going (Direction), why it
// was dropped (DropReason), and the callback a link calls for every frame it
// drops (DropHook).
//
// A link (a stack.Switch port, a stack.Pipe end, a tun.Device) counts each
// frame it drops under a DropReason and calls its drop hooks with the frame,
// its Direction and the reason; a capture.Tap registers such a hook and
// records the drop, with reason.String() as the pcapng packet comment:
//
//	remove := port.AddDropHook(func(frame []byte, dir wire.Direction, reason wire.DropReason) {
//		log.Printf("%s drop of %d bytes: %v", dir, len(frame), reason)
//	})
//	defer remove()
//
// Directions are seen from the host whose NIC the link is: Outbound is host
// to link, Inbound is link to host. Counters keep the Tx/Rx convention: Tx
// counts Outbound frames, Rx Inbound ones.
//
// The package imports only the standard library.
package wire
