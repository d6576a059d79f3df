package stack

import (
	"fmt"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// A NIC is one network interface of a Host.
type NIC struct {
	host *Host
	id   tcpip.NICID
	name string
	ep   stack.LinkEndpoint // nil for loopback
}

// Name returns the NIC's name ("lo", "eth0", ...).
func (n *NIC) Name() string { return n.name }

// String returns "host/nic".
func (n *NIC) String() string { return n.host.name + "/" + n.name }

// Host returns the NIC's host.
func (n *NIC) Host() *Host { return n.host }

// Link returns the link endpoint the NIC was added with (nil for "lo").
func (n *NIC) Link() stack.LinkEndpoint { return n.ep }

// MTU returns the NIC's MTU.
func (n *NIC) MTU() int {
	if info, ok := n.host.s.NICInfo()[n.id]; ok {
		return int(info.MTU)
	}
	return 0
}

// Addresses returns the NIC's addresses with their prefix lengths,
// including any IPv6 link-local address the host generated (a
// netip.Prefix carries no zone: the zone of a link-local address is the
// NIC's Name).
func (n *NIC) Addresses() []netip.Prefix {
	var out []netip.Prefix
	for _, pa := range n.host.s.AllAddresses()[n.id] {
		a := fromTCPIPAddr(pa.AddressWithPrefix.Address)
		if a == limitedBroadcast {
			continue // gVisor's own entry for receiving broadcasts
		}
		out = append(out, netip.PrefixFrom(a, pa.AddressWithPrefix.PrefixLen))
	}
	return out
}

var limitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// AddAddress adds an address with its prefix length and a route to the
// prefix through this NIC.
func (n *NIC) AddAddress(p netip.Prefix) error {
	if !p.IsValid() {
		return fmt.Errorf("stack: %v: invalid address %v", n, p)
	}
	a := p.Addr().Unmap()
	p = netip.PrefixFrom(a.WithZone(""), p.Bits())
	if a.Is4() && p.Bits() > 32 {
		return fmt.Errorf("stack: %v: invalid prefix length in %v", n, p)
	}
	proto := ipv4.ProtocolNumber
	if a.Is6() {
		proto = ipv6.ProtocolNumber
	}
	h := n.host
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrHostClosed
	}
	tcpipErr := h.s.AddProtocolAddress(n.id, tcpip.ProtocolAddress{
		Protocol:          proto,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: toTCPIPAddr(a), PrefixLen: p.Bits()},
	}, stack.AddressProperties{})
	if tcpipErr != nil {
		return fmt.Errorf("stack: %v: add address %v: %s", n, p, tcpipErr)
	}
	h.addRouteLocked(Route{Destination: p.Masked(), NIC: n})
	if a.Is4() && n.id != loopbackNIC && !h.bcast {
		h.bcast = true
		h.addRouteLocked(Route{Destination: netip.MustParsePrefix("255.255.255.255/32"), NIC: n})
	}
	return nil
}
