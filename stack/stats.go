package stack

import "github.com/dgramlab/dgramlab/wire"

// HostStats counts what a host's stack did with UDP datagrams and the ICMP
// errors about them, since the host was created. Every UDP datagram that
// reached the host is either delivered to a conn or counted under one of
// the UDP drop counters.
type HostStats struct {
	UDP  UDPStats
	ICMP ICMPStats
	// Drops is the host's ledger: every packet or datagram the host itself
	// discarded, by reason (wire.DropBadChecksum, wire.DropBufferFull,
	// wire.DropNoListener, ...); only reasons with a non-zero count are
	// present. Each was also reported to the drop hooks of the NIC it
	// came in through or was to leave by (NIC.AddDropHook, and capture
	// taps on the NIC's link). What links drop is in their own counters.
	Drops map[wire.DropReason]uint64
}

// Dropped returns the total number of packets and datagrams the host
// dropped (the sum of Drops).
func (s HostStats) Dropped() uint64 {
	var n uint64
	for _, v := range s.Drops {
		n += v
	}
	return n
}

// UDPStats are a host's UDP counters.
type UDPStats struct {
	// Received counts datagrams the UDP layer matched to a conn, including
	// those it then dropped because the conn's receive buffer was full
	// (BufferFull): the conns got Received - BufferFull of them.
	Received uint64
	// Sent counts datagrams sent; SendErrors those that failed in the
	// stack after the conn accepted them (no route, link resolution...).
	Sent, SendErrors uint64
	// NoListener counts datagrams for a port no conn is bound to. Unicast
	// ones are answered with an ICMP port unreachable (see ICMP).
	NoListener uint64
	// BufferFull counts datagrams dropped because the receiving conn's
	// buffer was full (or the conn was closing): a slow reader.
	BufferFull uint64
	// Checksum counts datagrams dropped for a bad UDP checksum.
	Checksum uint64
	// Malformed counts datagrams dropped for a bad UDP header or length.
	Malformed uint64
	// SourceFiltered counts datagrams dropped for a conn, as they arrived,
	// because its source-specific multicast memberships exclude their
	// source.
	SourceFiltered uint64
	// ClosedUnread counts datagrams conns had received but not read yet
	// when they were closed (by their user, or by the host): delivered to
	// a conn, never to its reader.
	ClosedUnread uint64
}

// ICMPStats are a host's ICMP counters, by IP version.
type ICMPStats struct {
	V4, V6 ICMPCounters
}

// ICMPCounters count the ICMP messages of one IP version that report
// errors about datagrams.
type ICMPCounters struct {
	// DstUnreachableSent counts destination unreachable messages sent,
	// port unreachable included (a datagram to a port nobody listens on).
	DstUnreachableSent uint64
	// DstUnreachableReceived counts the ones received: on a connected conn
	// a port unreachable makes the next read or write fail with
	// ECONNREFUSED.
	DstUnreachableReceived uint64
	// TimeExceededSent and TimeExceededReceived count time exceeded
	// messages (TTL or reassembly).
	TimeExceededSent, TimeExceededReceived uint64
	// RateLimited counts ICMP errors not sent because of the stack's ICMP
	// rate limit.
	RateLimited uint64
}

// Stats returns the host's counters.
func (h *Host) Stats() HostStats {
	st := h.s.Stats()
	v4, v6 := st.ICMP.V4, st.ICMP.V6
	return HostStats{
		UDP: UDPStats{
			Received:       st.UDP.PacketsReceived.Value(),
			Sent:           st.UDP.PacketsSent.Value(),
			SendErrors:     st.UDP.PacketSendErrors.Value(),
			NoListener:     st.UDP.UnknownPortErrors.Value(),
			BufferFull:     st.UDP.ReceiveBufferErrors.Value(),
			Checksum:       st.UDP.ChecksumErrors.Value(),
			Malformed:      st.UDP.MalformedPacketsReceived.Value(),
			SourceFiltered: h.drops[wire.DropSourceFiltered].Load(),
			ClosedUnread:   h.drops[wire.DropClosedUnread].Load(),
		},
		Drops: h.drops.snapshot(),
		ICMP: ICMPStats{
			V4: ICMPCounters{
				DstUnreachableSent:     v4.PacketsSent.DstUnreachable.Value(),
				DstUnreachableReceived: v4.PacketsReceived.DstUnreachable.Value(),
				TimeExceededSent:       v4.PacketsSent.TimeExceeded.Value(),
				TimeExceededReceived:   v4.PacketsReceived.TimeExceeded.Value(),
				RateLimited:            v4.PacketsSent.RateLimited.Value(),
			},
			V6: ICMPCounters{
				DstUnreachableSent:     v6.PacketsSent.DstUnreachable.Value(),
				DstUnreachableReceived: v6.PacketsReceived.DstUnreachable.Value(),
				TimeExceededSent:       v6.PacketsSent.TimeExceeded.Value(),
				TimeExceededReceived:   v6.PacketsReceived.TimeExceeded.Value(),
				RateLimited:            v6.PacketsSent.RateLimited.Value(),
			},
		},
	}
}
