// Package stack provides virtual hosts on gVisor's userspace network stack
// and the in-memory links that join them.
//
// A Host is one machine's network stack: IPv4, IPv6, ARP/NDP, UDP and ICMP,
// with a loopback interface of its own (127.0.0.1/8 and ::1), so programs
// written for a real machine run on it unchanged. Hosts are joined by links,
// which are gVisor link endpoints attached with Host.AddNIC:
//
//   - a Switch is an Ethernet segment: it learns MAC addresses, floods
//     broadcast, multicast and unknown unicast, and enforces an MTU on each
//     Port (a frame too big for a port is dropped and counted, whatever MTU
//     the sending NIC has);
//   - a Pipe is a point-to-point IP link between two hosts (no Ethernet).
//
// Links deliver synchronously (the receiving host runs on the sender's
// goroutine, with no queue between them), and every frame a link drops is
// counted with a reason (wire.DropMTU, wire.DropLinkDown,
// wire.DropDetached, ...) and reported to drop hooks (wire.DropHook), which
// capture taps use.
//
// A host counts, in its ledger (HostStats.Drops), every packet or
// datagram its own layers drop, under a reason (wire.DropBadChecksum,
// wire.DropBufferFull, wire.DropUnresolved, ...), and reports each to the
// drop hooks of the NIC it concerns (NIC.AddDropHook) and to capture taps
// on that NIC's link (HostDropRecorder). Receive buffers are charged per
// datagram as Linux charges them; plain unicast UDP takes a lean path from
// the link to the conn. docs/datapath.md in the repository tells the
// whole path.
//
// Host.ListenUDP and Host.ListenPacket open a UDPConn, a net.PacketConn
// whose errors behave like package net's (errors.Is(err, net.ErrClosed),
// errors.Is(err, syscall.EADDRINUSE)). A *Host is also a dgram.Network, for
// Node-style sockets (package dgram).
//
// Everything a host decides at random (ephemeral ports, IP IDs) comes from a
// seed (HostOptions.Seed, by default derived from the host's name), so a
// scenario runs the same way every time. Host.Close releases everything and
// leaves no goroutine behind (it also waits for the stack's timers that are
// running, an ARP probe crossing the switch, say).
//
// # Impairments
//
// Every Port and PipeEnd can impair the frames going through it, in each
// direction (wire.Outbound, wire.Inbound, or BothDirections), while traffic
// flows: Port.SetImpairments and PipeEnd.SetImpairments take an
// Impairments (loss, bursty loss, delay and jitter, duplication,
// corruption, reordering, a rate limit, a bounded queue), and NewImpairedLink does the same for any other link
// endpoint, a TUN device say. Every random choice comes from
// Impairments.Seed, so a seed loses the same frames on every run. Frames
// the impairments drop are counted (wire.DropLoss, wire.DropQueueFull) and
// reported to drop hooks like any other; frames still held when a link end
// is closed or removed are dropped as wire.DropDetached. Bad settings, delays
// beyond MaxDelay and rates beyond MaxRate included, are errors wrapping
// ErrInvalidImpairments. A link with nothing in force takes the same path
// as one that never had impairments.
//
// # Virtual time
//
// Links time their delays and rates, and hosts their timers, on a
// tcpip.Clock: the real clock by default, which inside a testing/synctest
// bubble is already virtual. Outside one, give one VirtualClock to the
// hosts (HostOptions.Clock), the links (SwitchOptions.Clock,
// PipeOptions.Clock) and the capture taps, and drive it from one goroutine
// with Advance: delays then cost no waiting, and a scenario puts the same
// frames on the wire in the same order at the same times on every run.
//
// # When the network goes away
//
// When the network goes away under a conn (its host is closed, or the
// device of its NIC vanishes: see StoppingLink), the conn is closed under
// its user: its calls fail with an error matching both net.ErrClosed and
// syscall.ENETDOWN, and a dgram socket on it gets an 'error' event
// ("recvmsg ENETDOWN"). Datagrams a conn held unread when it was closed are
// counted (UDPStats.ClosedUnread), like every other datagram a host drops.
package stack
