package stack

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"iter"
	randv2 "math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/link/loopback"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// HostOptions configure a Host. The zero value is a host named "host" with
// a seed derived from its name, on the real clock.
type HostOptions struct {
	// Name names the host in errors, NIC names and captures. Default "host".
	Name string
	// Seed seeds every random choice the host makes (ephemeral ports, IP
	// IDs, ...). Default 0 means "derive from Name", so a scenario is the
	// same on every run; give hosts distinct names or seeds.
	Seed int64
	// Clock is the host's clock. Default: the real clock (which also works
	// inside a testing/synctest bubble, where it is virtual).
	Clock tcpip.Clock
	// Hosts is the host's hosts table: names it resolves besides
	// "localhost" (which is always 127.0.0.1 and ::1). Names are matched
	// case-insensitively, without a trailing dot.
	Hosts map[string][]netip.Addr
}

// A Host is one virtual machine's network stack: gVisor with IPv4, IPv6,
// ARP/NDP, UDP and ICMP, a loopback interface "lo" (127.0.0.1/8 and ::1),
// and the NICs added with AddNIC.
//
// A Host is safe for concurrent use. Close releases everything it holds.
type Host struct {
	name string
	s    *stack.Stack

	mu      sync.Mutex
	closed  bool
	nics    []*NIC
	nextNIC tcpip.NICID
	hosts   map[string][]netip.Addr
	conns   map[*UDPConn]struct{}
	bcast   bool // a limited-broadcast route exists
	mcast4  bool // a 224.0.0.0/4 route exists
	mcast6  bool // an ff00::/8 route exists

	clock *closeClock // the stack's clock; Close waits for its callbacks

	closing  chan struct{}  // closed when Close starts
	watchers sync.WaitGroup // the goroutines of watchLink

	// routeGen counts the changes to the host's routes, addresses and
	// NICs, which invalidate the routes conns cache (see udp_send.go).
	routeGen atomic.Uint64

	// drops is the host's ledger (ledger.go).
	drops hostDrops
	// nicTable maps NIC IDs to NICs for the delivery path (nicFor).
	nicTable atomic.Pointer[map[tcpip.NICID]*NIC]

	// udpStats are the stack's UDP counters, found once: Stack.Stats
	// copies every counter of the stack, too much for a datagram's path.
	udpStats tcpip.UDPStats

	// exposed is set once Stack handed the gVisor stack out.
	exposed atomic.Bool

	// reasm4 and reasm6 reassemble the fragments that come in for the
	// host (reasm.go), so that none is dropped without a count.
	reasm4, reasm6 *reassembler

	// neigh holds the datagrams waiting for ARP or NDP (neigh.go).
	neigh neighQueues

	// udp is the host's UDP demux table (udp_demux.go).
	udp *udpDemux
}

// loopbackNIC is the ID of every host's loopback NIC.
const loopbackNIC tcpip.NICID = 1

// NewHost creates a host with only its loopback interface.
func NewHost(opts HostOptions) (*Host, error) {
	if opts.Name == "" {
		opts.Name = "host"
	}
	seed := opts.Seed
	if seed == 0 {
		h := fnv.New64a()
		h.Write([]byte(opts.Name))
		seed = int64(h.Sum64())
	}
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], uint64(seed))
	clock := newCloseClock(opts.Clock)
	h := &Host{
		name:    opts.Name,
		clock:   clock,
		closing: make(chan struct{}),
		nextNIC: loopbackNIC + 1,
		hosts:   make(map[string][]netip.Addr),
		conns:   make(map[*UDPConn]struct{}),
		udp:     newUDPDemux(),
	}
	s := stack.New(stack.Options{
		NetworkProtocols: []stack.NetworkProtocolFactory{
			h.wrapProtocol(ipv4.NewProtocol),
			h.wrapProtocol(ipv6.NewProtocolWithOptions(ipv6.Options{AutoGenLinkLocal: true})),
			arp.NewProtocol,
		},
		TransportProtocols: []stack.TransportProtocolFactory{udp.NewProtocol, icmp.NewProtocol4, icmp.NewProtocol6},
		Clock:              clock,
		RandSource:         newLockedSource(seed),
		SecureRNG:          &lockedReader{r: randv2.NewChaCha8(key)},
	})
	h.s = s
	h.udpStats = s.Stats().UDP
	for _, v6 := range []bool{false, true} {
		r := newReassembler(reasmOptions{IPv6: v6, Clock: clock, Drop: h.dropFragments})
		if v6 {
			h.reasm6 = r
		} else {
			h.reasm4 = r
		}
	}
	for name, addrs := range opts.Hosts {
		h.hosts[normHostName(name)] = append([]netip.Addr(nil), addrs...)
	}
	if tcpipErr := s.CreateNICWithOptions(loopbackNIC, loopback.New(), stack.NICOptions{Name: "lo"}); tcpipErr != nil {
		s.Destroy()
		return nil, fmt.Errorf("stack: host %s: loopback: %s", h.name, tcpipErr)
	}
	lo := &NIC{host: h, id: loopbackNIC, name: "lo"}
	h.nics = append(h.nics, lo)
	h.publishNICsLocked() // nobody else has h yet
	for _, p := range []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8"), netip.MustParsePrefix("::1/128")} {
		if err := lo.AddAddress(p); err != nil {
			s.Destroy()
			return nil, err
		}
	}
	return h, nil
}

// Name returns the host's name.
func (h *Host) Name() string { return h.name }

// String returns the host's name.
func (h *Host) String() string { return h.name }

// Stack returns the underlying gVisor stack, for what this package does not
// wrap. Changing it behind the Host's back is at the caller's risk: in
// particular, the routes that UDP conns cache for their unconnected writes
// are found again when routes, addresses or NICs change through the Host,
// not when they change on the gVisor stack directly.
//
// Once the stack has been handed out, the host's NICs stop taking their
// lean input path for plain unicast datagrams (see nic_edge.go): iptables
// rules or packet endpoints made on the stack must see every packet.
func (h *Host) Stack() *stack.Stack {
	h.exposed.Store(true)
	return h.s
}

// NICOptions configure a NIC. The zero value is an unnamed NIC ("ethN")
// without addresses, using the link's MTU.
type NICOptions struct {
	// Name names the NIC; it is the zone of the host's IPv6 link-local
	// addresses (fe80::1%eth0). Default "eth0", "eth1", ... in order.
	Name string
	// Addresses are the NIC's IPv4 and IPv6 addresses with their prefix
	// length, IPv4 ones in their IPv4 form (10.9.0.1/24, not
	// ::ffff:10.9.0.1/120): see CheckNICAddress for what is refused. A
	// route to each prefix through the NIC is added. Default: none.
	Addresses []netip.Prefix
	// MTU overrides the MTU the link reports. Like a link's MTU it must
	// lie in [MinMTU, MaxMTU], [68, 65535]; IPv6 needs 1280, so below
	// that the NIC's IPv6 sends fail (EINVAL) and only IPv4 works.
	// Default (0): the link's.
	MTU int
}

// AddNIC attaches a link endpoint (a Switch port, a Pipe end, a TUN device,
// or any of them wrapped, e.g. by a capture tap) to the host as a new NIC.
//
// The first NIC with an IPv4 address also gets the route for the limited
// broadcast address 255.255.255.255 and the multicast route 224.0.0.0/4,
// and the first NIC the ff00::/8 route, as a LAN host's default route and
// Linux's per-interface multicast routes would: joining or sending to a
// group without naming an interface then uses that NIC.
//
// A link carries one NIC: AddNIC refuses a link that is attached already,
// or a wrapper around one, and a Port that has left its switch. It checks
// the options before it makes the NIC (an address CheckNICAddress refuses
// is an error wrapping ErrInvalidAddress), so that a refused option
// leaves the link free. If AddNIC fails after the NIC was made (gVisor
// refused an address, a duplicate one say, or the MTU), it removes the
// NIC, which closes the link: a Port then leaves its switch.
func (h *Host) AddNIC(ep stack.LinkEndpoint, opts NICOptions) (*NIC, error) {
	if ep == nil {
		return nil, fmt.Errorf("stack: host %s: AddNIC with a nil link endpoint", h.name)
	}
	// attachMu makes the check and the attach (in CreateNICWithOptions)
	// one step, so that two hosts cannot both take the same link.
	attachMu.Lock()
	defer attachMu.Unlock()
	if err := usableLink(ep); err != nil {
		return nil, fmt.Errorf("stack: host %s: %w", h.name, err)
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrHostClosed
	}
	id := h.nextNIC
	if opts.Name == "" {
		opts.Name = fmt.Sprintf("eth%d", id-loopbackNIC-1)
	}
	for _, n := range h.nics {
		if n.name == opts.Name {
			h.mu.Unlock()
			return nil, fmt.Errorf("stack: host %s: NIC %q exists", h.name, opts.Name)
		}
	}
	if err := h.checkNICOptions(opts); err != nil {
		h.mu.Unlock()
		return nil, err
	}
	h.nextNIC++
	h.mu.Unlock()

	edge := newNICEdge(h, id, ep)
	if tcpipErr := h.s.CreateNICWithOptions(id, edge, stack.NICOptions{Name: opts.Name, QDisc: &directQDisc{link: ep}}); tcpipErr != nil {
		return nil, fmt.Errorf("stack: host %s: add NIC %s: %s", h.name, opts.Name, tcpipErr)
	}
	h.routeGen.Add(1) // it may have an IPv6 link-local address already
	edge.initCounters()
	n := &NIC{host: h, id: id, name: opts.Name, ep: ep, edge: edge}
	n.reporters.recorders = hostDropRecorders(ep)
	if opts.MTU > 0 {
		if tcpipErr := h.s.SetNICMTU(id, uint32(opts.MTU)); tcpipErr != nil {
			h.s.RemoveNIC(id)
			h.routeGen.Add(1)
			return nil, fmt.Errorf("stack: host %s: NIC %s MTU %d: %s", h.name, opts.Name, opts.MTU, tcpipErr)
		}
	}
	for _, p := range opts.Addresses {
		if err := n.AddAddress(p); err != nil {
			h.s.RemoveNIC(id)
			h.routeGen.Add(1)
			return nil, err
		}
	}
	h.mu.Lock()
	h.nics = append(h.nics, n)
	h.publishNICsLocked()
	h.addMulticastRoutesLocked(n, opts.Addresses)
	if l := stoppingLink(ep); l != nil && !h.closed {
		h.watchers.Add(1)
		go h.watchLink(n, l)
	}
	h.mu.Unlock()
	return n, nil
}

// checkNICOptions says what is wrong with the options of a new NIC, named
// opts.Name, before anything is made: a refused address or MTU then
// leaves the link free (a Port stays on its switch).
func (h *Host) checkNICOptions(opts NICOptions) error {
	for _, p := range opts.Addresses {
		if err := CheckNICAddress(p); err != nil {
			return fmt.Errorf("stack: host %s: NIC %s: %w", h.name, opts.Name, err)
		}
	}
	if opts.MTU != 0 {
		if err := checkMTU(fmt.Sprintf("host %s: NIC %s", h.name, opts.Name), opts.MTU); err != nil {
			return err
		}
	}
	return nil
}

// A StoppingLink is a link endpoint that can stop by itself, as a TUN/TAP
// device does when it is deleted under the host (tun.Device is one). AddNIC
// also finds one under links that wrap it and have an Unwrap method
// returning the link they wrap (capture.Tap, ImpairedLink).
// Done is closed when the link stops, by itself or because it was closed;
// Err is nil after a plain close and says why otherwise.
//
// When the link of a NIC stops by itself, the host disables the NIC (its
// routes no longer lead anywhere: sends through it fail with
// ENETUNREACH) and fails the conns that used it: those bound to one of
// its addresses and those bound to a wildcard address (0.0.0.0 or ::).
// Their calls then fail with an error matching both net.ErrClosed and
// syscall.ENETDOWN, which a dgram socket reports as an 'error' event
// ("recvmsg ENETDOWN"). Conns bound to another NIC's address, or to
// loopback, keep working.
type StoppingLink interface {
	Done() <-chan struct{}
	Err() error
}

// attachMu serialises AddNIC's check that a link is free with its attach.
var attachMu sync.Mutex

// usableLink says why ep cannot carry a new NIC, if it cannot: ep, or a
// link it wraps, is attached to a NIC already (attaching it again would
// take its frames away from that NIC without a word), or is a Port that
// has left its switch.
func usableLink(ep stack.LinkEndpoint) error {
	for l := range linkChain(ep) {
		if l.IsAttached() {
			return errors.New("the link is attached to a NIC already (a link carries one NIC)")
		}
		if p, ok := l.(*Port); ok && p.closed.Load() {
			return errors.New("the switch port was removed (a port leaves its switch when it is removed, or when its NIC's host closes): make a new port")
		}
	}
	return nil
}

// linkChain yields ep and the links under it, through wrappers with an
// Unwrap method (capture.Tap, ImpairedLink).
func linkChain(ep stack.LinkEndpoint) iter.Seq[stack.LinkEndpoint] {
	return func(yield func(stack.LinkEndpoint) bool) {
		for ep != nil && yield(ep) {
			u, ok := ep.(interface{ Unwrap() stack.LinkEndpoint })
			if !ok {
				return
			}
			ep = u.Unwrap()
		}
	}
}

// stoppingLink finds a StoppingLink in ep or under it, through wrappers
// with an Unwrap method (capture.Tap, ImpairedLink).
func stoppingLink(ep stack.LinkEndpoint) StoppingLink {
	for l := range linkChain(ep) {
		if sl, ok := l.(StoppingLink); ok {
			return sl
		}
	}
	return nil
}

// watchLink waits for a NIC's link to stop, or for the host to close.
func (h *Host) watchLink(n *NIC, l StoppingLink) {
	defer h.watchers.Done()
	select {
	case <-l.Done():
	case <-h.closing:
		return
	}
	err := l.Err()
	if err == nil {
		return // closed, not stopped by itself
	}
	addrs := n.Addresses()
	why := &netDownError{why: fmt.Sprintf("%s: %v", n, err)}
	h.mu.Lock()
	conns := make([]*UDPConn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	// LocalAddrPort takes the conn's locks, and h.mu for a zone: not under
	// h.mu.
	var failed []*UDPConn
	for _, c := range conns {
		a := c.LocalAddrPort().Addr().WithZone("").Unmap()
		if !a.IsValid() || a.IsUnspecified() || slices.ContainsFunc(addrs, func(p netip.Prefix) bool { return p.Addr() == a }) {
			failed = append(failed, c)
		}
	}
	// Mark the conns, disable the NIC, then fail them: a mark makes a send
	// that finds no route meanwhile report ENETDOWN, and once a conn's
	// calls fail, sends from other conns through the NIC find no route.
	for _, c := range failed {
		c.failing.Store(why)
	}
	n.edge.disabled.Store(true)
	h.s.DisableNIC(n.id)
	h.routeGen.Add(1) // the conns' cached routes through it are gone
	for _, c := range failed {
		c.fail(why)
	}
}

// addMulticastRoutesLocked gives the first NICs the multicast routes.
func (h *Host) addMulticastRoutesLocked(n *NIC, addrs []netip.Prefix) {
	if !h.mcast6 {
		h.mcast6 = true
		h.addRouteLocked(Route{Destination: netip.MustParsePrefix("ff00::/8"), NIC: n})
	}
	if h.mcast4 {
		return
	}
	for _, p := range addrs {
		if p.Addr().Unmap().Is4() {
			h.mcast4 = true
			h.addRouteLocked(Route{Destination: netip.MustParsePrefix("224.0.0.0/4"), NIC: n})
			return
		}
	}
}

// NICs returns the host's NICs, loopback first.
func (h *Host) NICs() []*NIC {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*NIC(nil), h.nics...)
}

// NIC returns the NIC called name, or nil.
func (h *Host) NIC(name string) *NIC {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, n := range h.nics {
		if n.name == name {
			return n
		}
	}
	return nil
}

func (h *Host) nicByID(id tcpip.NICID) *NIC {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, n := range h.nics {
		if n.id == id {
			return n
		}
	}
	return nil
}

// Route is an entry of a host's routing table.
type Route struct {
	// Destination is the prefix the route covers; 0.0.0.0/0 or ::/0 for a
	// default route.
	Destination netip.Prefix
	// Gateway is the next hop; the zero Addr for an on-link route.
	Gateway netip.Addr
	// NIC is the interface the route leaves through.
	NIC *NIC
}

// AddRoute adds a route. Routes are matched longest prefix first.
func (h *Host) AddRoute(r Route) error {
	if !r.Destination.IsValid() || r.NIC == nil || r.NIC.host != h {
		return fmt.Errorf("stack: host %s: invalid route %v via %v", h.name, r.Destination, r.NIC)
	}
	if r.Gateway.IsValid() && r.Gateway.Is4() != r.Destination.Addr().Is4() {
		return fmt.Errorf("stack: host %s: route %v: gateway %v is of another family", h.name, r.Destination, r.Gateway)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrHostClosed
	}
	h.addRouteLocked(r)
	return nil
}

func (h *Host) addRouteLocked(r Route) {
	p := r.Destination.Masked()
	subnet, err := tcpip.NewSubnet(toTCPIPAddr(p.Addr()), tcpip.MaskFromBytes(net.CIDRMask(p.Bits(), p.Addr().BitLen())))
	if err != nil {
		panic(err) // a masked prefix is always a valid subnet
	}
	var gw tcpip.Address
	if r.Gateway.IsValid() {
		gw = toTCPIPAddr(r.Gateway)
	}
	// Longest prefix first, as gVisor picks the first match.
	table := h.s.GetRouteTable()
	route := tcpip.Route{Destination: subnet, Gateway: gw, NIC: r.NIC.id}
	i := 0
	for i < len(table) && table[i].Destination.Prefix() >= subnet.Prefix() {
		i++
	}
	table = append(table[:i], append([]tcpip.Route{route}, table[i:]...)...)
	h.s.SetRouteTable(table)
	h.routeGen.Add(1)
}

// SetDefaultRoute adds a default route for gw's family through nic.
func (h *Host) SetDefaultRoute(gw netip.Addr, nic *NIC) error {
	dst := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	if gw.Is6() {
		dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	return h.AddRoute(Route{Destination: dst, Gateway: gw, NIC: nic})
}

// Routes returns the host's routing table.
func (h *Host) Routes() []Route {
	var out []Route
	for _, r := range h.s.GetRouteTable() {
		rt := Route{
			Destination: netip.PrefixFrom(fromTCPIPAddr(r.Destination.ID()), r.Destination.Prefix()),
			NIC:         h.nicByID(r.NIC),
		}
		if r.Gateway.Len() > 0 {
			rt.Gateway = fromTCPIPAddr(r.Gateway)
		}
		out = append(out, rt)
	}
	return out
}

// AddHostName adds a name → addresses entry to the host's hosts table.
func (h *Host) AddHostName(name string, addrs ...netip.Addr) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := normHostName(name)
	h.hosts[n] = append(h.hosts[n], addrs...)
}

func normHostName(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}

// LookupNetIP resolves host with the host's hosts table, like
// (*net.Resolver).LookupNetIP: network is "ip", "ip4" or "ip6"; an IP
// literal resolves to itself; "localhost" is 127.0.0.1 and ::1. There is no
// DNS: any other name fails with a *net.DNSError whose IsNotFound is set.
func (h *Host) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if ctx == nil {
		return nil, errNilContext
	}
	if err := ctx.Err(); err != nil {
		return nil, &net.DNSError{Err: err.Error(), Name: host, IsTimeout: errors.Is(err, context.DeadlineExceeded)}
	}
	var want func(netip.Addr) bool
	switch network {
	case "ip":
		want = func(netip.Addr) bool { return true }
	case "ip4":
		want = func(a netip.Addr) bool { return a.Is4() || a.Is4In6() }
	case "ip6":
		want = func(a netip.Addr) bool { return a.Is6() }
	default:
		return nil, net.UnknownNetworkError(network)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if !want(a) {
			return nil, &net.DNSError{Err: "no suitable address", Name: host, IsNotFound: true}
		}
		return []netip.Addr{a}, nil
	}
	var cands []netip.Addr
	name := normHostName(host)
	if name == "localhost" {
		cands = []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}
	}
	h.mu.Lock()
	cands = append(cands, h.hosts[name]...)
	h.mu.Unlock()
	var out []netip.Addr
	for _, a := range cands {
		if want(a) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return out, nil
}

// Close closes every conn of the host (their calls fail with an error
// matching both net.ErrClosed and syscall.ENETDOWN), removes its NICs
// (their links are closed: a Switch port leaves its switch) and stops the
// stack. It leaves no goroutine behind: it waits for the stack's timer
// callbacks that are running (an ARP probe on its way, say), so it must
// not be called from code such a callback runs (a drop hook or capture
// sink seeing the host's own probes): that would wait for itself.
// Calling Close again does nothing.
func (h *Host) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	close(h.closing)
	conns := make([]*UDPConn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	why := &netDownError{why: "host " + h.name + " closed"}
	for _, c := range conns {
		c.fail(why)
	}
	h.closeNeigh()
	h.s.Destroy()
	h.reasm4.close()
	h.reasm6.close()
	h.watchers.Wait()
	h.clock.close()
	return nil
}

func (h *Host) track(c *UDPConn) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrHostClosed
	}
	h.conns[c] = struct{}{}
	return nil
}

func (h *Host) untrack(c *UDPConn) {
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
}

// toTCPIPAddr converts an address, dropping any zone.
func toTCPIPAddr(a netip.Addr) tcpip.Address {
	if a.Is4() {
		return tcpip.AddrFrom4(a.As4())
	}
	return tcpip.AddrFrom16(a.As16())
}

func fromTCPIPAddr(a tcpip.Address) netip.Addr {
	switch a.Len() {
	case 4:
		return netip.AddrFrom4(a.As4())
	case 16:
		return netip.AddrFrom16(a.As16())
	}
	return netip.Addr{}
}
