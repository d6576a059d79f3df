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
	edge *nicEdge           // in front of ep; nil for loopback
	// reporters hear of what the host drops on this NIC (ledger.go).
	reporters nicReporters
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
// prefix through this NIC. A prefix CheckNICAddress refuses is an error
// wrapping ErrInvalidAddress, and changes nothing.
func (n *NIC) AddAddress(p netip.Prefix) error {
	if err := CheckNICAddress(p); err != nil {
		return fmt.Errorf("stack: %v: %w", n, err)
	}
	a := p.Addr()
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

// CheckNICAddress says why p cannot be a NIC's address, or returns nil.
// Host.AddNIC and NIC.AddAddress refuse, with an error wrapping
// ErrInvalidAddress:
//
//   - an invalid prefix: the zero netip.Prefix, or a prefix length beyond
//     the address's bits;
//   - an IPv4-mapped IPv6 address (::ffff:10.9.0.1/120): Linux would add it
//     as an IPv6 address, which gVisor cannot use for IPv4 traffic, so the
//     error names the IPv4 form to use instead (10.9.0.1/24);
//   - an address no interface can have: the unspecified address (0.0.0.0,
//     ::), a multicast address (join a group with UDPConn.JoinGroup
//     instead) and the limited broadcast address 255.255.255.255;
//   - a /0 prefix, which would put every address on the NIC's link (add
//     a default route with Host.SetDefaultRoute instead).
//
// None of these gives a host an address it can be reached at. Loopback
// addresses are accepted on any NIC, as on Linux.
//
// The error does not start with "stack:", so that a caller can put it
// after its own context (a flag's name, say).
func CheckNICAddress(p netip.Prefix) error {
	a := p.Addr()
	switch {
	case !a.IsValid():
		return addressError("the address is missing (the zero netip.Prefix)")
	case !p.IsValid():
		return addressError(fmt.Sprintf("%v has a prefix length out of range [0, %d]", a, a.BitLen()))
	case a.Is4In6() && p.Bits() > 96:
		return addressError(fmt.Sprintf("%v is an IPv4-mapped IPv6 address, which a NIC cannot use for IPv4: use the IPv4 form %v", p, netip.PrefixFrom(a.Unmap(), p.Bits()-96)))
	case a.Is4In6():
		return addressError(fmt.Sprintf("%v is an IPv4-mapped IPv6 address, which a NIC cannot use for IPv4: use the IPv4 form, %v with an IPv4 prefix length", p, a.Unmap()))
	case a.IsUnspecified():
		return addressError(fmt.Sprintf("%v is the unspecified address, which no interface can have", p))
	case a.IsMulticast():
		return addressError(fmt.Sprintf("%v is a multicast address, which no interface can have (a host joins a group instead)", p))
	case a == limitedBroadcast:
		return addressError(fmt.Sprintf("%v is the limited broadcast address, which no interface can have", p))
	case p.Bits() == 0:
		return addressError(fmt.Sprintf("%v has prefix length 0, which would put every address on the link: give the subnet's prefix length", p))
	}
	return nil
}

// addressError says why a prefix cannot be a NIC's address.
type addressError string

func (e addressError) Error() string { return string(e) }

func (e addressError) Unwrap() error { return ErrInvalidAddress }
