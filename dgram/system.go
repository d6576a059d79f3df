package dgram

import (
	"context"
	"errors"
	"net"
	"net/netip"
)

// System returns the [Network] of the operating system's own sockets: OpenUDP
// creates a kernel UDP socket the way libuv does for Node (socket, then
// IPV6_V6ONLY and SO_REUSEADDR, then bind), so the same dgram code can run on
// loopback beside Node and be compared with it. Its zero configuration is the
// only one: the value holds no state and may be shared by any number of
// loops.
//
// The conns it returns are *net.UDPConn values driven by the Go runtime's
// poller, wrapped to add the socket options dgram needs (SetBroadcast,
// SetTTL, SetMulticastTTL, SetMulticastLoopback, ReadBufferSize,
// WriteBufferSize, Connect, Disconnect, LocalAddrPort, RemoteAddrPort). Like
// *net.UDPConn, every method may be called from any goroutine, concurrently
// with a read or write blocked in another; Close unblocks those with an
// error matching net.ErrClosed.
//
// Only Linux (but not linux/386) is supported; elsewhere OpenUDP fails with
// an error that unwraps to ENOSYS.
func System() Network { return systemNetwork{} }

// systemNetwork is the Network of [System].
type systemNetwork struct{}

var _ Network = systemNetwork{}

// LookupNetIP implements Network with net.DefaultResolver.LookupNetIP, with
// two of its quirks smoothed over so that it answers like a virtual host:
// for "ip4" it returns plain IPv4 addresses (the resolver returns them
// IPv4-mapped), and an IP literal comes back as written, zone included (the
// resolver drops the zone), or, when it is not of network's family, as a
// *net.DNSError with IsNotFound set.
func (systemNetwork) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if ctx == nil {
		return nil, errNilContext
	}
	var want func(netip.Addr) bool
	switch network {
	case "ip":
		want = func(netip.Addr) bool { return true }
	case "ip4":
		want = func(a netip.Addr) bool { return a.Is4() || a.Is4In6() }
	case "ip6":
		want = netip.Addr.Is6
	default:
		return nil, net.UnknownNetworkError(network)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if !want(a) {
			return nil, &net.DNSError{Err: "no suitable address", Name: host, IsNotFound: true}
		}
		return []netip.Addr{a}, nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, network, host)
	if network == "ip4" {
		for i, a := range addrs {
			addrs[i] = a.Unmap()
		}
	}
	return addrs, err
}

// errNilContext is what a lookup with a nil context fails with.
var errNilContext = errors.New("dgram: lookup with a nil context")
