package stack

import (
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// directQDisc hands each packet a NIC sends straight to the NIC's link, on
// the sending goroutine, as gVisor's default queueing discipline does. That
// one builds a new PacketBufferList for every packet, and so allocates the
// list's backing array every time; this one reuses lists.
type directQDisc struct {
	link stack.LinkWriter
}

var _ stack.QueueingDiscipline = (*directQDisc)(nil)

// packetLists holds emptied one-packet lists for directQDisc. A pool, not
// one list per NIC: a synchronous link runs the receiver's stack on the
// sender's goroutine, so a NIC may send again (an ARP reply, an echo)
// before its previous WritePackets has returned.
var packetLists = sync.Pool{New: func() any { return new(stack.PacketBufferList) }}

// WritePacket implements stack.QueueingDiscipline. It passes pkt to the
// link and leaves pkt's reference with the caller.
func (q *directQDisc) WritePacket(pkt *stack.PacketBuffer) tcpip.Error {
	l := packetLists.Get().(*stack.PacketBufferList)
	// The list's Reset releases a reference to each packet: take the one
	// it will release, so that the caller's stays untouched.
	l.PushBack(pkt.IncRef())
	_, tcpipErr := q.link.WritePackets(*l)
	l.Reset()
	packetLists.Put(l)
	return tcpipErr
}

// Close implements stack.QueueingDiscipline. There is nothing to release.
func (q *directQDisc) Close() {}
