package stack

import (
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"

	"github.com/dgramlab/dgramlab/wire"
)

// Datagrams waiting for their next hop's link address.
//
// gVisor queues the packets a NIC sends to a neighbour whose link address
// ARP or NDP has not resolved yet, and drops them without a word when its
// queue overflows (256 packets), when resolution fails, and when the NIC
// goes or the host closes. The host keeps its conns' datagrams out of that
// queue: a datagram whose next hop is not resolved waits here, per
// neighbour, in send order, until resolution ends. Then the datagrams go
// out, or are each dropped as wire.DropUnresolved. As on Linux, a queue
// holds at most unresolvedQueueBytes (net.ipv4.neigh.*.unres_qlen_bytes,
// charged by truesize), and the oldest datagram makes room for a new one,
// dropped as wire.DropUnresolved too; those still waiting when the host
// closes are dropped as wire.DropHostClosed. A sender sees none of it (its
// send succeeded, as sendto does on Linux: a failed resolution is a soft
// error, reported only to sockets with IP_RECVERR, which Node and Go do not
// set).

// unresolvedQueueBytes is Linux's default unres_qlen_bytes.
const unresolvedQueueBytes = 212992

// neighKey names a neighbour: the NIC and the next hop's address.
type neighKey struct {
	nic tcpip.NICID
	hop tcpip.Address
}

// neighFor returns the neighbour r sends to: its gateway, or its
// destination on a subnet of the NIC's (gVisor's NextHop is empty then).
func neighFor(r *stack.Route) neighKey {
	hop := r.NextHop()
	if hop.Len() == 0 {
		hop = r.RemoteAddress()
	}
	return neighKey{nic: r.NICID(), hop: hop}
}

// waitingDatagram is a datagram waiting for its neighbour, as the packet
// the route's IP layer will take (its UDP header built), with the route and
// the IP header fields to send it with.
type waitingDatagram struct {
	r      *stack.Route // acquired: released when the datagram goes
	pkt    *stack.PacketBuffer
	params stack.NetworkHeaderParams
	cost   int
}

// neighWait is one neighbour's queue.
type neighWait struct {
	q     []waitingDatagram
	bytes int
	// ended is set when resolution ended, with err nil if it succeeded:
	// the first of the next sender and a clock callback flushes the queue,
	// and sets flushing.
	ended, flushing bool
	err             tcpip.Error
	// done is closed when a flush has sent everything and the queue is
	// gone: senders to k wait for it rather than overtake the flush.
	done chan struct{}
}

// neighQueues are a host's queues of datagrams waiting for neighbours.
type neighQueues struct {
	mu     sync.Mutex
	waits  map[neighKey]*neighWait
	closed bool
	// n is len(waits), read without the lock by senders: zero is the
	// common case, which costs them nothing more.
	n atomic.Int32
}

// sendOrHold writes pkt through r, or holds it when r's next hop is not
// resolved, or when datagrams already wait for it (a new one queues behind
// them, to keep the send order). It reports the write's error; a held
// datagram is a successful send. The caller keeps its reference to pkt.
func (h *Host) sendOrHold(r *stack.Route, params stack.NetworkHeaderParams, pkt *stack.PacketBuffer) tcpip.Error {
	k := neighFor(r)
	nq := &h.neigh
	for nq.n.Load() != 0 {
		nq.mu.Lock()
		w, ok := nq.waits[k]
		if !ok {
			nq.mu.Unlock()
			break
		}
		if !w.ended {
			h.appendLocked(w, r, params, pkt)
			return nil // appendLocked unlocked nq.mu
		}
		if w.flushing {
			// Another goroutine sends what waited: this datagram goes
			// after it, once it is done, as on Linux, where the queue is
			// flushed as resolution completes.
			done := w.done
			nq.mu.Unlock()
			<-done
			continue
		}
		// Resolution ended and nobody flushes the queue yet: this sender
		// does, before its own datagram goes.
		w.flushing = true
		nq.mu.Unlock()
		h.flush(k, w)
		break
	}
	if _, ok := r.ResolvedFields(nil).(*tcpip.ErrWouldBlock); ok {
		h.hold(k, r, params, pkt)
		return nil
	}
	return r.WritePacket(params, pkt)
}

// hold queues a datagram for k, and asks to hear when k resolves if it is
// the first.
func (h *Host) hold(k neighKey, r *stack.Route, params stack.NetworkHeaderParams, pkt *stack.PacketBuffer) {
	nq := &h.neigh
	nq.mu.Lock()
	if nq.closed {
		nq.mu.Unlock()
		r.Acquire()
		h.dropWaiting(waitingDatagram{r: r, pkt: pkt.IncRef(), params: params}, wire.DropHostClosed)
		return
	}
	if nq.waits == nil {
		nq.waits = make(map[neighKey]*neighWait)
	}
	w, existed := nq.waits[k]
	if !existed {
		w = &neighWait{done: make(chan struct{})}
		nq.waits[k] = w
		nq.n.Store(int32(len(nq.waits)))
	}
	h.appendLocked(w, r, params, pkt)
	if existed {
		return
	}
	h.watch(k, r)
}

// appendLocked adds a datagram to w, dropping the oldest ones (as
// unresolved) while w holds more than unresolvedQueueBytes. nq.mu is held;
// appendLocked unlocks it.
func (h *Host) appendLocked(w *neighWait, r *stack.Route, params stack.NetworkHeaderParams, pkt *stack.PacketBuffer) {
	r.Acquire()
	d := waitingDatagram{r: r, pkt: pkt.IncRef(), params: params, cost: rcvTruesize(pkt.Size())}
	w.q = append(w.q, d)
	w.bytes += d.cost
	var evicted []waitingDatagram
	for w.bytes > unresolvedQueueBytes && len(w.q) > 1 {
		evicted = append(evicted, w.q[0])
		w.bytes -= w.q[0].cost
		w.q[0] = waitingDatagram{}
		w.q = w.q[1:]
	}
	h.neigh.mu.Unlock()
	for _, e := range evicted {
		h.dropWaiting(e, wire.DropUnresolved)
	}
}

// resolved flushes what waits for k once its resolution ended, unless a
// sender does.
func (h *Host) resolved(k neighKey) {
	nq := &h.neigh
	nq.mu.Lock()
	w := nq.waits[k]
	if w == nil || !w.ended || w.flushing {
		nq.mu.Unlock()
		return
	}
	w.flushing = true
	nq.mu.Unlock()
	h.flush(k, w)
}

// flush sends, or drops if resolution failed, what waits in w, k's queue,
// until it is empty, then forgets the queue. Datagrams sent to k meanwhile
// join the queue, so none overtakes another.
func (h *Host) flush(k neighKey, w *neighWait) {
	nq := &h.neigh
	for {
		nq.mu.Lock()
		batch, err := w.q, w.err
		w.q, w.bytes = nil, 0
		if len(batch) == 0 {
			if nq.waits[k] == w {
				delete(nq.waits, k)
				nq.n.Store(int32(len(nq.waits)))
			}
			close(w.done) // the flusher's: closeNeigh leaves it to us
			nq.mu.Unlock()
			return
		}
		nq.mu.Unlock()
		for i, d := range batch {
			if err == nil {
				if _, ok := d.r.ResolvedFields(nil).(*tcpip.ErrWouldBlock); ok {
					// The neighbour is unresolved again (its entry went
					// away meanwhile): what is left waits once more.
					h.rehold(k, w, batch[i:])
					return
				}
				if tcpipErr := d.r.WritePacket(d.params, d.pkt); tcpipErr == nil {
					d.pkt.DecRef()
					d.r.Release()
					continue
				}
				h.udpStats.PacketSendErrors.Increment()
				nq.mu.Lock()
				closed := nq.closed
				nq.mu.Unlock()
				if closed {
					h.dropWaiting(d, wire.DropHostClosed)
					continue
				}
			}
			h.dropWaiting(d, wire.DropUnresolved)
		}
	}
}

// rehold puts datagrams a flush of w could not send back at the head of
// k's queue, ends the flush, and asks again to hear when k resolves.
func (h *Host) rehold(k neighKey, w *neighWait, ds []waitingDatagram) {
	nq := &h.neigh
	nq.mu.Lock()
	w.q = append(append([]waitingDatagram(nil), ds...), w.q...)
	for _, d := range ds {
		w.bytes += d.cost
	}
	w.ended, w.flushing, w.err = false, false, nil
	closed := nq.closed
	if closed {
		ds, w.q = w.q, nil
		close(w.done)
	}
	nq.mu.Unlock()
	if closed {
		for _, d := range ds {
			h.dropWaiting(d, wire.DropHostClosed)
		}
		return
	}
	h.watch(k, ds[0].r)
}

// watch asks gVisor to say when r's neighbour, k, resolves. gVisor calls
// back with the neighbour entry locked, or at once when it has resolved
// meanwhile: the queue is flushed by the next sender to k, or on a clock
// callback of its own, as gVisor flushes its own queue.
func (h *Host) watch(k neighKey, r *stack.Route) {
	nq := &h.neigh
	r.ResolvedFields(func(res stack.ResolvedFieldsResult) {
		nq.mu.Lock()
		if w := nq.waits[k]; w != nil && !w.ended {
			w.ended, w.err = true, res.Err
		}
		nq.mu.Unlock()
		h.clock.AfterFunc(0, func() { h.resolved(k) })
	})
}

// closeNeigh drops, as host-closed, what waits when the host closes. A
// flush under way finds its queue empty and ends; senders waiting for it
// go on.
func (h *Host) closeNeigh() {
	nq := &h.neigh
	var drop []waitingDatagram
	nq.mu.Lock()
	nq.closed = true
	for _, w := range nq.waits {
		drop = append(drop, w.q...)
		w.q, w.bytes = nil, 0
		if !w.flushing {
			close(w.done)
		}
	}
	nq.waits = nil
	nq.n.Store(0)
	nq.mu.Unlock()
	for _, d := range drop {
		h.dropWaiting(d, wire.DropHostClosed)
	}
}

// dropWaiting counts a waiting datagram as dropped, reports the packet it
// would have been (its IP header as the route would write it, the IP ID
// left zero) to the hooks of the NIC it was to leave by, and releases it.
func (h *Host) dropWaiting(d waitingDatagram, reason wire.DropReason) {
	defer d.r.Release()
	defer d.pkt.DecRef()
	h.drops.add(reason, 1)
	n := h.nicFor(d.r.NICID())
	if n == nil || !n.reporters.active() {
		return
	}
	v := stack.PayloadSince(d.pkt.TransportHeader())
	defer v.Release()
	n.reporters.report(ipPacket(d.r, d.params, v.AsSlice()), wire.Outbound, reason)
}

// ipPacket returns the IP packet that r would send with transport as its
// payload (without options or an IP ID).
func ipPacket(r *stack.Route, params stack.NetworkHeaderParams, transport []byte) []byte {
	if r.NetProto() == header.IPv4ProtocolNumber {
		b := make([]byte, header.IPv4MinimumSize+len(transport))
		ip := header.IPv4(b)
		fields := header.IPv4Fields{
			TotalLength: uint16(len(b)), TTL: params.TTL, TOS: params.TOS, Protocol: uint8(udp.ProtocolNumber),
			SrcAddr: r.LocalAddress(), DstAddr: r.RemoteAddress(),
		}
		if params.DF {
			fields.Flags = header.IPv4FlagDontFragment
		}
		ip.Encode(&fields)
		ip.SetChecksum(^ip.CalculateChecksum())
		copy(b[header.IPv4MinimumSize:], transport)
		return b
	}
	b := make([]byte, header.IPv6MinimumSize+len(transport))
	header.IPv6(b).Encode(&header.IPv6Fields{
		PayloadLength: uint16(len(transport)), TransportProtocol: udp.ProtocolNumber, HopLimit: params.TTL,
		TrafficClass: params.TOS, SrcAddr: r.LocalAddress(), DstAddr: r.RemoteAddress(),
	})
	copy(b[header.IPv6MinimumSize:], transport)
	return b
}
