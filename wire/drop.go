package wire

import "strconv"

// DropReason says why a frame or datagram was dropped. Links count their
// drops by reason and report each one to their drop hooks; a capture writes
// String's word in the dropped frame's pcapng comment, and summaries count
// drops by that word.
//
// The zero DropReason is no reason: it marks a frame that was not dropped
// (capture.Frame.Drop), and no drop is ever reported with it.
//
// The enumeration is append-only: a new reason goes at the end, just
// before the unexported end marker, and no reason is ever renumbered or
// removed, since the values index counter arrays. String's words are part
// of the capture format and never change either.
type DropReason uint8

// Drop reasons that links report.
const (
	// DropMTU: the frame's IP packet is larger than the MTU the link
	// enforces, whatever MTU the sending NIC has. TUN/TAP devices check
	// both directions, since the kernel does not check what userspace
	// writes to them.
	DropMTU DropReason = iota + 1
	// DropLinkDown: the link end is down: set down (SetLinkUp), or, for a
	// TUN/TAP device, its kernel end is down, or the device vanished or
	// was closed.
	DropLinkDown
	// DropDetached: no NIC is attached to the receiving end (the host
	// removed it or never attached it), or the link end was closed or
	// removed while its impairments still held the frame.
	DropDetached
	// DropMalformed: the frame is too short to carry its link header, or a
	// frame read from a TUN device is neither IPv4 nor IPv6.
	DropMalformed
	// DropQueueFull: a bounded queue on the link was full (an impairment's
	// delay line or rate-limit queue, see stack.Impairments.QueueLimit).
	DropQueueFull
	// DropLoss: an impairment lost the frame (stack.Impairments.Loss or
	// BurstLoss).
	DropLoss
	// DropWriteError: the link refused the frame: the kernel refused a
	// write to a TUN/TAP device (an errno other than the device vanishing),
	// or the link a stack.ImpairedLink wraps refused a frame the
	// impairments had delayed.
	DropWriteError
	// DropNoDestination: a switch had no port to send the frame out of: it
	// came in through the only port left, was addressed to a MAC behind
	// the port it came in through, or to a unicast MAC no port has, which
	// it floods and every port's NIC filters. Counted at the ingress port,
	// not in its TxFrames.
	DropNoDestination

	// Drop reasons of a host's own layers, from neighbour resolution to
	// the sockets' receive buffers.

	// DropUnresolved: the next hop's link address could not be resolved
	// (ARP or NDP failed), or the queue of packets waiting for resolution
	// overflowed.
	DropUnresolved
	// DropBadHeader: the IP header is invalid: its version, a length, or
	// the IPv4 header checksum.
	DropBadHeader
	// DropBadChecksum: the UDP checksum is wrong.
	DropBadChecksum
	// DropNotForUs: the destination is none of the host's addresses, and
	// the host does not forward.
	DropNotForUs
	// DropNoRoute: the host has no route to the destination.
	DropNoRoute
	// DropReassembly: a fragment the host's reassembler held, then
	// dropped: its datagram timed out, overlapped, was evicted (too much
	// held), would be too big, or was inconsistent; or the fragment was an
	// exact duplicate. Each fragment counts once.
	DropReassembly
	// DropNoMember: a multicast datagram arrived for a group no socket on
	// the host joined.
	DropNoMember
	// DropNoListener: no socket is bound to the datagram's destination
	// port.
	DropNoListener
	// DropBufferFull: the receiving socket's receive buffer was full.
	DropBufferFull
	// DropClosedUnread: the socket was closed with the datagram still
	// unread in its receive buffer.
	DropClosedUnread
	// DropHostClosed: the host was closed while it held the packet.
	DropHostClosed
	// DropSourceFiltered: a source filter excluded the datagram's sender
	// (a source-specific multicast membership, say).
	DropSourceFiltered
	// DropUnknownProtocol: the packet carries a network or transport
	// protocol the host does not handle.
	DropUnknownProtocol
	// DropBadLength: the UDP length field disagrees with the IP payload
	// it arrived in.
	DropBadLength

	// DropUnknown: the reporter gave no reason (the zero DropReason) or
	// one outside this enumeration. No link in this module reports it;
	// a capture tap records such a drop under it, and stack's links count
	// one under it, so that the drop is not lost.
	DropUnknown

	dropReasonEnd // keep last: new reasons go just before it
)

// MaxDropReason is the largest DropReason. An array of length
// MaxDropReason+1 indexed by reason has a slot for each one (the zero
// slot unused); it grows as reasons are appended.
const MaxDropReason = dropReasonEnd - 1

// dropWords are the reasons' words, indexed by reason.
var dropWords = [dropReasonEnd]string{
	DropMTU:           "mtu",
	DropLinkDown:      "link-down",
	DropDetached:      "detached",
	DropMalformed:     "malformed",
	DropQueueFull:     "queue-full",
	DropLoss:          "loss",
	DropWriteError:    "write-error",
	DropNoDestination: "no-destination",

	DropUnresolved:      "unresolved",
	DropBadHeader:       "bad-header",
	DropBadChecksum:     "bad-checksum",
	DropNotForUs:        "not-for-us",
	DropNoRoute:         "no-route",
	DropReassembly:      "reassembly",
	DropNoMember:        "no-member",
	DropNoListener:      "no-listener",
	DropBufferFull:      "buffer-full",
	DropClosedUnread:    "closed-unread",
	DropHostClosed:      "host-closed",
	DropSourceFiltered:  "source-filtered",
	DropUnknownProtocol: "unknown-protocol",
	DropBadLength:       "bad-length",

	DropUnknown: "unknown",
}

// String returns the reason's word, as captures write it: "mtu",
// "link-down", "queue-full", ... It returns "none" for the zero
// DropReason and "reason(N)" for a value outside the enumeration.
func (r DropReason) String() string {
	switch {
	case r == 0:
		return "none"
	case r > MaxDropReason:
		return "reason(" + strconv.Itoa(int(r)) + ")"
	}
	return dropWords[r]
}

// ParseDropReason returns the reason whose String is word. ok is false for
// any other word ("none" included).
func ParseDropReason(word string) (r DropReason, ok bool) {
	for i := DropReason(1); i <= MaxDropReason; i++ {
		if dropWords[i] == word {
			return i, true
		}
	}
	return 0, false
}

// AllDropReasons returns every DropReason, in order, in a new slice.
func AllDropReasons() []DropReason {
	all := make([]DropReason, 0, MaxDropReason)
	for r := DropReason(1); r <= MaxDropReason; r++ {
		all = append(all, r)
	}
	return all
}

// DropHook is called for every frame a link drops.
//
// frame is the whole frame (with its Ethernet header on Ethernet links, an
// IP packet on IP links) and is only valid during the call: a hook that
// keeps it must copy it. dir is the way the frame was going: Outbound for
// a frame the attached host was sending, Inbound for one on its way to it.
// reason is never zero.
//
// The link calls its hooks on the goroutine that was moving the frame (the
// sending host's goroutine, an impairment scheduler's, a device's reader),
// possibly from several goroutines at once, and the hook must not block.
type DropHook = func(frame []byte, dir Direction, reason DropReason)
