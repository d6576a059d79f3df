package main

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/dgramlab/dgramlab/capture"
	"github.com/dgramlab/dgramlab/stack"
)

// lanHost is one host of the demo LAN.
type lanHost struct {
	name string
	addr netip.Addr
	mtu  int    // the MTU of its switch port (and NIC)
	link string // the name of its NIC's capture tap, "name/eth0"
	host *stack.Host
	port *stack.Port
}

// lan is the demo's virtual LAN: hosts on one switch, every NIC tapped.
type lan struct {
	sw    *stack.Switch
	hosts []*lanHost
}

// buildLAN creates the hosts on one switch; each NIC is wrapped in a
// capture tap named "host/eth0" that records into sink. With a virtual
// clock, the hosts and the switch run on it and the taps stamp frames with
// a captureClock over it; with nil, everything is on the real clock.
func buildLAN(specs []lanHost, sink capture.Sink, vc *stack.VirtualClock) (*lan, error) {
	swOpts := stack.SwitchOptions{Name: "lan"}
	var tapClock func() time.Time
	if vc != nil {
		swOpts.Clock = vc
		tapClock = (&captureClock{vc: vc}).now
	}
	l := &lan{sw: stack.NewSwitch(swOpts)}
	for _, spec := range specs {
		h := spec
		hostOpts := stack.HostOptions{Name: h.name}
		if vc != nil {
			hostOpts.Clock = vc
		}
		host, err := stack.NewHost(hostOpts)
		if err != nil {
			l.close()
			return nil, err
		}
		h.host = host
		l.hosts = append(l.hosts, &h)
		h.port, err = l.sw.NewPort(stack.PortOptions{MTU: h.mtu})
		if err != nil {
			l.close()
			return nil, err
		}
		h.link = h.name + "/eth0"
		tap := capture.NewTap(h.port, capture.TapOptions{Name: h.link, Sink: sink, Clock: tapClock})
		if _, err := host.AddNIC(tap, stack.NICOptions{Addresses: []netip.Prefix{netip.PrefixFrom(h.addr, 24)}}); err != nil {
			l.close()
			return nil, fmt.Errorf("%s: %w", h.name, err)
		}
	}
	// Every host knows the others by name.
	for _, a := range l.hosts {
		for _, b := range l.hosts {
			a.host.AddHostName(b.name, b.addr)
		}
	}
	return l, nil
}

func (l *lan) host(name string) *lanHost {
	for _, h := range l.hosts {
		if h.name == name {
			return h
		}
	}
	panic("demo: no host " + name)
}

func (l *lan) close() {
	for _, h := range l.hosts {
		if h.host != nil {
			h.host.Close()
		}
	}
}

// captureClock stamps captured frames in a deterministic mode: the virtual
// time, except that a frame recorded at the same virtual instant as the
// one before it (or earlier, which a frame recorded late can be) is put
// 1 µs after it, so that timestamps follow the order of the frames in the
// file and Wireshark shows them apart.
type captureClock struct {
	vc   *stack.VirtualClock
	mu   sync.Mutex
	last time.Time
}

func (c *captureClock) now() time.Time {
	t := c.vc.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !t.After(c.last) {
		t = c.last.Add(time.Microsecond)
	}
	c.last = t
	return t
}
