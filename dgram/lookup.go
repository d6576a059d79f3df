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
// in call order, so their results come back in that order. send says that
// a send waits for the result: if the socket closes first, or the loop
// stops on a fatal error, that send is counted as discarded.
func (s *Socket) lookup(host string, send bool, cb func(netip.Addr, error)) {
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
			l.endWork(s, send, func() { cb(ip, err) })
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
		var addrs []netip.Addr
		var err error
		if a, ok := parseInetAton(host); ok {
			// glibc's getaddrinfo reads inet_aton's numeric forms
			// ("127.1", "0x7f.1", "2130706433") before any name lookup,
			// and refuses them for AF_INET6 (B31, measured on Node v20).
			if family == 4 {
				addrs = []netip.Addr{a}
			} else {
				err = &Error{Name: "Error", Code: "EAI_ADDRFAMILY", Errno: -3000, Syscall: "getaddrinfo",
					Hostname: host, Message: "getaddrinfo EAI_ADDRFAMILY " + host}
			}
		} else {
			addrs, err = s.network.LookupNetIP(s.ctx, network, host)
		}
		var ip netip.Addr
		if err == nil {
			if len(addrs) == 0 {
				err = &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
			} else {
				ip = addrs[0]
			}
		}
		l.endWork(s, send, func() { cb(ip, err) })
	}()
}

// parseInetAton parses the numeric IPv4 forms of inet_aton, as glibc's
// getaddrinfo does for the whole string: one to four parts separated by
// dots, each decimal, octal (leading 0) or hexadecimal (leading 0x); the
// last part fills the bytes the others leave (a: 32 bits, a.b: 8.24,
// a.b.c: 8.8.16, a.b.c.d: 8.8.8.8). Anything else is not numeric.
func parseInetAton(s string) (netip.Addr, bool) {
	var parts [4]uint64
	n := 0
	for i := 0; ; {
		if n == len(parts) || i == len(s) {
			return netip.Addr{}, false
		}
		base, j := uint64(10), i
		if s[j] == '0' {
			base = 8
			if j+1 < len(s) && (s[j+1] == 'x' || s[j+1] == 'X') {
				base, j = 16, j+2
			}
		}
		var v uint64
		k := j
		for ; k < len(s) && s[k] != '.'; k++ {
			d, ok := digitValue(s[k])
			if !ok || d >= base {
				return netip.Addr{}, false
			}
			if v = v*base + d; v > 0xffffffff {
				return netip.Addr{}, false
			}
		}
		if k == j && base != 8 { // "0x" alone or an empty part
			return netip.Addr{}, false
		}
		parts[n] = v
		n++
		if k == len(s) {
			break
		}
		i = k + 1
	}
	var ip uint32
	last := parts[n-1]
	if last > uint64(0xffffffff)>>(8*(n-1)) {
		return netip.Addr{}, false
	}
	for i := 0; i < n-1; i++ {
		if parts[i] > 0xff {
			return netip.Addr{}, false
		}
		ip |= uint32(parts[i]) << (24 - 8*i)
	}
	ip |= uint32(last)
	return netip.AddrFrom4([4]byte{byte(ip >> 24), byte(ip >> 16), byte(ip >> 8), byte(ip)}), true
}

func digitValue(c byte) (uint64, bool) {
	switch {
	case '0' <= c && c <= '9':
		return uint64(c - '0'), true
	case 'a' <= c && c <= 'f':
		return uint64(c-'a') + 10, true
	case 'A' <= c && c <= 'F':
		return uint64(c-'A') + 10, true
	}
	return 0, false
}
