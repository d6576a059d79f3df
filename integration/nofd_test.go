package integration

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dgramlab/dgramlab/dgram"
	"github.com/dgramlab/dgramlab/stack"
)

// procFD is where Linux lists the process's open file descriptors, each a
// link to what it refers to: "socket:[1234]", "/dev/net/tun",
// "pipe:[5678]", "anon_inode:[eventpoll]", a file's path...
const procFD = "/proc/self/fd"

// fdTable is the process's open descriptors and what each refers to.
type fdTable map[int]string

// openFDs reads procFD, leaving out the descriptor it reads it through. A
// descriptor closed between the listing and its readlink is left out too.
func openFDs(t *testing.T) fdTable {
	t.Helper()
	d, err := os.Open(procFD)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	self := int(d.Fd())
	names, err := d.Readdirnames(-1)
	if err != nil {
		t.Fatal(err)
	}
	fds := fdTable{}
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil || fd == self {
			continue
		}
		target, err := os.Readlink(procFD + "/" + name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		fds[fd] = target
	}
	return fds
}

// openFD is one descriptor and what it refers to.
type openFD struct {
	fd     int
	target string
}

func (f openFD) String() string { return fmt.Sprintf("fd %d -> %s", f.fd, f.target) }

// newSince returns the descriptors of fds that before did not have, or had
// referring to something else, in order.
func (fds fdTable) newSince(before fdTable) []openFD {
	var out []openFD
	for fd, target := range fds {
		if was, ok := before[fd]; !ok || was != target {
			out = append(out, openFD{fd, target})
		}
	}
	slices.SortFunc(out, func(a, b openFD) int { return a.fd - b.fd })
	return out
}

// realNetworking reports whether a descriptor's target is a socket of any
// family (UDP, TCP, netlink, unix...) or a TUN/TAP device.
func realNetworking(target string) bool {
	return strings.HasPrefix(target, "socket:") || strings.HasPrefix(target, "/dev/net/")
}

// TestInMemoryLANOpensNoFD: an in-memory LAN (four hosts on a Switch, dgram
// sockets on a Loop exchanging IPv4 and IPv6 unicast and an IPv4
// broadcast) never opens a real socket or device, and leaves no descriptor
// of any kind behind once everything is closed. The process's descriptors
// are read from /proc/self/fd before the LAN exists, at each stage of its
// life (hosts up; sockets bound; after the exchange, every socket still
// open; sockets closed), and after it is closed. A descriptor opened and
// closed between two readings would go unseen: the readings are taken
// where the LAN's sockets and links are alive.
//
// Descriptors the Go runtime may open on its own (the poller's epoll and
// eventfd, say) are not the LAN's, so while the LAN lives only sockets
// and /dev/net/ devices fail the test (any other new descriptor is
// logged); once it is closed, any new descriptor fails it. The test must
// not run in parallel with others, or their sockets would count as the
// LAN's: it does not call t.Parallel, and the package's parallel tests
// resume only once every sequential test is done.
func TestInMemoryLANOpensNoFD(t *testing.T) {
	if _, err := os.Stat(procFD); err != nil {
		t.Skipf("cannot list this process's descriptors (%v): needs Linux's /proc", err)
	}
	before := openFDs(t)
	stage := func(when string) {
		t.Helper()
		for _, f := range openFDs(t).newSince(before) {
			if realNetworking(f.target) {
				t.Errorf("%s: the in-memory LAN opened a real socket or device: %v", when, f)
			} else {
				t.Logf("%s: a new descriptor, not a socket or device: %v", when, f)
			}
		}
	}

	// The LAN: host i is 10.0.0.(i+1)/24 and fd00::(i+1)/64 on a switch.
	const hosts = 4
	sw := stack.NewSwitch(stack.SwitchOptions{Name: "sw"})
	var hs []*stack.Host
	for i := range hosts {
		h, err := stack.NewHost(stack.HostOptions{Name: fmt.Sprintf("n%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() }) // on failure; closed below otherwise
		p, err := sw.NewPort(stack.PortOptions{})
		if err != nil {
			t.Fatal(err)
		}
		addrs := []netip.Prefix{
			netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 24),
			netip.PrefixFrom(netip.AddrFrom16([16]byte{0: 0xfd, 15: byte(i + 1)}), 64),
		}
		if _, err := h.AddNIC(p, stack.NICOptions{Addresses: addrs}); err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	stage("with the hosts up")

	// n0 has two senders (udp4, udp6); n1..n3 have a receiver of each
	// family (udp4 on port 9000, udp6 on 9006) that echoes unicast back. n0 sends each receiver one
	// datagram; once the six echoes are back, it broadcasts one IPv4
	// datagram, which n1..n3 receive. The loop has no network of its own,
	// so no socket can end up on the system's: each names its host.
	loop := dgram.NewLoop(nil)
	var all []*dgram.Socket
	open := func(h int, typ string) *dgram.Socket {
		s, err := loop.CreateSocketWith(dgram.SocketOptions{Type: typ, Network: hs[h]}, nil)
		if err != nil {
			t.Fatal(err)
		}
		s.OnError(func(err error) { t.Errorf("n%d %s: %v", h, typ, err) })
		all = append(all, s)
		return s
	}
	sent := func(what string) func(int, error) {
		return func(_ int, err error) {
			if err != nil {
				t.Errorf("send %s: %v", what, err)
			}
		}
	}
	tx4, tx6 := open(0, "udp4"), open(0, "udp6")
	var rx []*dgram.Socket
	for i := 1; i < hosts; i++ {
		rx = append(rx, open(i, "udp4"), open(i, "udp6"))
	}

	echoes, broadcasts := 0, 0
	done := func() {
		if echoes != 2*(hosts-1) || broadcasts != hosts-1 {
			return
		}
		stage("after the exchange, every socket open")
		for _, s := range all {
			s.Close(nil)
		}
	}
	for _, s := range rx {
		s.OnMessage(func(msg []byte, from dgram.RemoteInfo) {
			switch string(msg) {
			case "broadcast":
				broadcasts++
				done()
			case "ping":
				s.Send([]byte("pong"), from.Port, from.Address, sent("pong to "+from.Address))
			default:
				t.Errorf("a receiver got %q from %v", msg, from)
			}
		})
	}
	for _, s := range []*dgram.Socket{tx4, tx6} {
		s.OnMessage(func(msg []byte, from dgram.RemoteInfo) {
			if string(msg) != "pong" {
				t.Errorf("a sender got %q from %v", msg, from)
				return
			}
			echoes++
			if echoes == 2*(hosts-1) {
				if err := tx4.SetBroadcast(true); err != nil {
					t.Error(err)
				}
				tx4.Send([]byte("broadcast"), 9000, "255.255.255.255", sent("the broadcast"))
			}
			done()
		})
	}
	start := func() {
		stage("with every socket bound")
		for i := 1; i < hosts; i++ {
			tx4.Send([]byte("ping"), 9000, fmt.Sprintf("10.0.0.%d", i+1), sent("ping"))
			tx6.Send([]byte("ping"), 9006, fmt.Sprintf("fd00::%d", i+1), sent("ping"))
		}
	}
	bound := 0
	for _, s := range all {
		port := 9000 // udp4; udp6 (dual-stack) on 9006
		switch {
		case s == tx4 || s == tx6:
			port = 0
		case s.Type() == "udp6":
			port = 9006
		}
		s.Bind(port, "", func() {
			if bound++; bound == len(all) {
				start()
			}
		})
	}
	runLoop(t, loop)
	if echoes != 2*(hosts-1) || broadcasts != hosts-1 {
		t.Fatalf("%d echoes and %d broadcasts received, want %d and %d", echoes, broadcasts, 2*(hosts-1), hosts-1)
	}
	stage("with every socket closed")

	for _, h := range hs {
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range openFDs(t).newSince(before) {
		t.Errorf("after the LAN was closed: a descriptor it left open: %v", f)
	}
}
