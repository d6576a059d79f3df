package stack

import (
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/dgramlab/dgramlab/wire"
)

// A UDPConn's receive queue: the datagrams the host's dispatcher delivered
// to it (udp_demux.go), in arrival order, until the conn's reader takes
// them. The queue is the conn's own, not its gVisor endpoint's: Disconnect
// may replace the endpoint, and the queue goes on.
//
// The queue is charged as Linux charges a socket's receive buffer: each
// datagram costs what the kernel would allocate for it (rcvTruesize), and
// is admitted only if it fits in the buffer size (SO_RCVBUF, as doubled)
// beside what is queued, or the queue is empty. Zero-length datagrams cost
// as much as small ones: no flood of them queues without bound.

// rxDatagram is one received datagram with what its headers said.
type rxDatagram struct {
	buf   *[]byte // pooled; the payload is (*buf)[:n]
	n     int
	from  tcpip.FullAddress // the sender, and the NIC it came in through
	dst   tcpip.Address     // the datagram's destination address
	port  uint16            // and port
	proto tcpip.NetworkProtocolNumber
	tos   uint8 // IPv4 TOS or IPv6 traffic class
	ttl   uint8 // IPv4 TTL or IPv6 hop limit
	cost  int   // what it is charged to the buffer
}

// rxQueue is a conn's queue of received datagrams.
type rxQueue struct {
	mu     sync.Mutex
	ring   []rxDatagram // a ring of len(ring) slots; n from head
	head   int
	n      int
	used   int         // bytes charged
	closed bool        // no more datagrams: the conn closed
	w      sliceWriter // where deliver copies a payload, under mu
	// limit is the receive buffer size (SO_RCVBUF as Linux reports it).
	limit atomic.Int64
}

// rcvTruesize is what Linux charges a received datagram of payload bytes
// to its socket's buffer (skb->truesize): the sk_buff (256 bytes) plus the
// allocation of its head, which holds the payload, the UDP and IP headers
// and the link-layer headroom (59 bytes in all, 64-byte aligned) and the
// skb_shared_info (320 bytes): 576 bytes from the small-head cache when
// the data fits in 256, else the power of two kmalloc rounds it up to.
//
// Measured on Linux 6.18 (loopback, a private network namespace, IPv4 and
// IPv6 alike) by filling a socket nobody reads with 100,000 datagrams:
//
//	payload (bytes)         0, 1, 64   512   1400   8000
//	truesize (bytes)        832        1280  2304   16640
//	queued, rcvbuf 212992   256        166   92     12
//	queued, rcvbuf 16384    19         12    7      1
//	queued, rcvbuf 8192     9          6     3      1
//
// A datagram is admitted when it fits whole beside what is queued, or
// when the queue is empty (rcvFits): the kernel's __udp_enqueue_schedule_skb.
// Sizes above 8000 bytes follow the same rule, unmeasured.
func rcvTruesize(payload int) int {
	const skb, shinfo, headers, smallHead = 256, 320, 59, 576
	data := (payload + headers + 63) &^ 63
	if data <= smallHead-shinfo {
		return skb + smallHead
	}
	head := 1024
	for head < data+shinfo {
		head <<= 1
	}
	return skb + head
}

// rcvFits reports whether a datagram costing cost is admitted to a queue
// holding used bytes of a buffer of limit bytes.
func rcvFits(used, cost int, limit int64) bool {
	return used == 0 || int64(used+cost) <= limit
}

// Payload buffers are pooled by size class: powers of two from 64 bytes.
const (
	minPayloadClass = 6  // 64 bytes
	maxPayloadClass = 16 // 65536 bytes
)

var payloadPools [maxPayloadClass + 1]sync.Pool

func payloadClass(n int) int {
	c := minPayloadClass
	for 1<<c < n {
		c++
	}
	return c
}

func getPayload(n int) *[]byte {
	c := payloadClass(n)
	if b, ok := payloadPools[c].Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 1<<c)
	return &b
}

func putPayload(b *[]byte) {
	if b == nil {
		return
	}
	c := payloadClass(cap(*b))
	if 1<<c != cap(*b) || c > maxPayloadClass {
		return
	}
	payloadPools[c].Put(b)
}

// deliver copies a datagram into c's queue, or counts why it cannot. It
// runs on the goroutine that delivered the frame; rx has the datagram's
// addresses and header fields, pkt its payload (pkt stays the caller's).
func (c *UDPConn) deliver(rx *rxDatagram, pkt *stack.PacketBuffer) {
	h := c.host
	if c.ssm.Load() && !c.admit(rx.from.Addr, rx.from.NIC, rx.dst) {
		h.dropPacket(rx.from.NIC, wire.Inbound, wire.DropSourceFiltered, pkt)
		return
	}
	n := pkt.Data().Size()
	cost := rcvTruesize(n)
	q := &c.rx
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		// The conn is closing: it got the datagram, its reader never will.
		h.dropPacket(rx.from.NIC, wire.Inbound, wire.DropClosedUnread, pkt)
		return
	}
	if !rcvFits(q.used, cost, q.limit.Load()) {
		q.mu.Unlock()
		h.udpStats.ReceiveBufferErrors.Increment()
		h.dropPacket(rx.from.NIC, wire.Inbound, wire.DropBufferFull, pkt)
		return
	}
	d := *rx
	d.buf = getPayload(n)
	d.n = n
	d.cost = cost
	q.w = (*d.buf)[:n]
	pkt.Data().ReadTo(&q.w, true) // &q.w: no allocation, unlike a slice in an interface
	q.w = nil
	if q.n == len(q.ring) {
		q.grow()
	}
	q.ring[(q.head+q.n)%len(q.ring)] = d
	q.n++
	q.used += d.cost
	wasEmpty := q.n == 1
	q.mu.Unlock()
	if wasEmpty {
		c.wq.Notify(waiter.ReadableEvents)
	}
}

// push appends d to the queue, whatever it costs; it reports false, and
// keeps nothing, when the queue is closed.
func (q *rxQueue) push(d rxDatagram) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		putPayload(d.buf)
		return false
	}
	if q.n == len(q.ring) {
		q.grow()
	}
	q.ring[(q.head+q.n)%len(q.ring)] = d
	q.n++
	q.used += d.cost
	return true
}

// grow doubles the ring; q.mu is held.
func (q *rxQueue) grow() {
	ring := make([]rxDatagram, max(8, 2*len(q.ring)))
	for i := 0; i < q.n; i++ {
		ring[i] = q.ring[(q.head+i)%len(q.ring)]
	}
	q.ring, q.head = ring, 0
}

// pop takes the oldest datagram; ok is false when there is none. The
// caller gives d.buf back with putPayload.
func (q *rxQueue) pop() (d rxDatagram, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		return rxDatagram{}, false
	}
	d = q.ring[q.head]
	q.ring[q.head] = rxDatagram{}
	q.head = (q.head + 1) % len(q.ring)
	q.n--
	q.used -= d.cost
	if q.n == 0 {
		q.head = 0
	}
	return d, true
}

// len returns how many datagrams are queued.
func (q *rxQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// close empties the queue for good and returns the datagrams it held, in
// order; the caller gives their buffers back with putPayload.
func (q *rxQueue) close() []rxDatagram {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	out := make([]rxDatagram, 0, q.n)
	for i := 0; i < q.n; i++ {
		out = append(out, q.ring[(q.head+i)%len(q.ring)])
	}
	q.ring, q.head, q.n, q.used = nil, 0, 0, 0
	return out
}

// dropUnread counts the datagrams a closing conn held unread as
// closed-unread, and reports each, as the IP packet it came in, to the
// hooks of the NIC it came in through.
func (h *Host) dropUnread(ds []rxDatagram) {
	for i := range ds {
		d := &ds[i]
		h.drops.add(wire.DropClosedUnread, 1)
		if n := h.nicFor(d.from.NIC); n != nil && n.reporters.active() {
			n.reporters.report(datagramPacket(d), wire.Inbound, wire.DropClosedUnread)
		}
		putPayload(d.buf)
		d.buf = nil
	}
}

// datagramPacket rebuilds the IP packet a received datagram came in (its
// IP ID and options are not kept, so they are zero and none).
func datagramPacket(d *rxDatagram) []byte {
	payload := (*d.buf)[:d.n]
	udpLen := header.UDPMinimumSize + len(payload)
	ipLen := header.IPv4MinimumSize
	if d.proto == header.IPv6ProtocolNumber {
		ipLen = header.IPv6MinimumSize
	}
	b := make([]byte, ipLen+udpLen)
	u := header.UDP(b[ipLen:])
	u.Encode(&header.UDPFields{SrcPort: d.from.Port, DstPort: d.port, Length: uint16(udpLen)})
	copy(b[ipLen+header.UDPMinimumSize:], payload)
	sum := header.PseudoHeaderChecksum(header.UDPProtocolNumber, d.from.Addr, d.dst, uint16(udpLen))
	if xsum := ^checksum.Checksum(b[ipLen:], sum); xsum != 0 {
		u.SetChecksum(xsum)
	} else {
		u.SetChecksum(0xffff)
	}
	if d.proto == header.IPv6ProtocolNumber {
		header.IPv6(b).Encode(&header.IPv6Fields{PayloadLength: uint16(udpLen), TransportProtocol: header.UDPProtocolNumber,
			HopLimit: d.ttl, TrafficClass: d.tos, SrcAddr: d.from.Addr, DstAddr: d.dst})
		return b
	}
	ip := header.IPv4(b)
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(b)), TTL: d.ttl, TOS: d.tos, Protocol: uint8(header.UDPProtocolNumber),
		SrcAddr: d.from.Addr, DstAddr: d.dst})
	ip.SetChecksum(^ip.CalculateChecksum())
	return b
}

// sliceWriter is an io.Writer that fills a fixed slice.
type sliceWriter []byte

func (w *sliceWriter) Write(b []byte) (int, error) {
	n := copy(*w, b)
	*w = (*w)[n:]
	return n, nil
}
