package dgram

import (
	"context"
	"net"
	"net/netip"
)

// LookupFunc resolves host for a socket of family 4 ("udp4") or 6
// ("udp6"): Node's lookup option. It is called off the loop, on its own
// goroutine, and may block; ctx is done when the socket closes. Its error is
// delivered where a DNS error would be (the send or connect callback, or an
// 'error' event); an *Error is delivered as it is, any other error as
// "getaddrinfo ENOTFOUND <host>" wrapping it.
type LookupFunc func(ctx context.Context, host string, family int) (netip.Addr, error)

// literal returns host as an address when lookup would answer it at once:
// host is an IP literal and the socket has no custom lookup.
func (s *Socket) literal(host string) (netip.Addr, bool) {
	if s.opts.Lookup != nil {
		return netip.Addr{}, false
	}
	ip, err := netip.ParseAddr(host)
	return ip, err == nil
}

// lookup resolves host and calls cb on the loop. Without a custom lookup an
// IP literal is answered at once (the caller is already in a tick) and a
// name by the network's resolver, off the loop, its result arriving as an
// I/O event. A custom lookup is called for every address, literals
// included, as in Node v20; one socket's custom lookups run one at a time,
// in call order, so their results come back in that order.
func (s *Socket) lookup(host string, cb func(netip.Addr, error)) {
	family, network := 4, "ip4"
	if s.typ == UDP6 {
		family, network = 6, "ip6"
	}
	l := s.loop
	if fn := s.opts.Lookup; fn != nil {
		l.mu.Lock()
		prev := s.lookupTail
		done := make(chan struct{})
		s.lookupTail = done
		l.inflight++
		l.mu.Unlock()
		go func() {
			if prev != nil {
				<-prev
			}
			ip, err := fn(s.ctx, host, family)
			if err == nil && !ip.IsValid() {
				err = &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
			}
			l.endWork(func() { cb(ip, err) })
			close(done)
		}()
		return
	}
	if ip, ok := s.literal(host); ok {
		cb(ip, nil)
		return
	}
	l.startWork()
	go func() {
		addrs, err := s.network.LookupNetIP(s.ctx, network, host)
		var ip netip.Addr
		if err == nil {
			if len(addrs) == 0 {
				err = &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
			} else {
				ip = addrs[0]
			}
		}
		l.endWork(func() { cb(ip, err) })
	}()
}
