package main

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/dgramlab/dgramlab/capture"
	"github.com/dgramlab/dgramlab/stack"
)

// lanHost is one host of the demo LAN.
type lanHost struct {
	name string
	addr netip.Addr
	mtu  int // the MTU of its switch port (and NIC)
	host *stack.Host
	port *stack.Port
}

// lan is the demo's virtual LAN: hosts on one switch, every NIC tapped.
type lan struct {
	sw    *stack.Switch
	hosts []*lanHost
}

// buildLAN creates the hosts on one switch; each NIC is wrapped in a
// capture tap named "host/eth0" that records into sink.
func buildLAN(specs []lanHost, sink capture.Sink, clock func() time.Time) (*lan, error) {
	l := &lan{sw: stack.NewSwitch(stack.SwitchOptions{Name: "lan"})}
	for _, spec := range specs {
		h := spec
		host, err := stack.NewHost(stack.HostOptions{Name: h.name})
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
		tap := capture.NewTap(h.port, capture.TapOptions{Name: h.name + "/eth0", Sink: sink, Clock: clock})
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
