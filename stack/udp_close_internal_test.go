package stack

import (
	"net/netip"
	"runtime"
	"sync"
	"testing"
)

// Regression (found in review): a write that passed write's closed check
// just before Close, and got the write lock after close flushed the route
// cache, filled it again: a stack.Route never released, and a datagram sent
// from a port the stack had given back.
func TestWriteRacingCloseLeavesNoRoute(t *testing.T) {
	sw := NewSwitch(SwitchOptions{Name: "sw"})
	var hosts []*Host
	for i := range 2 {
		h, err := NewHost(HostOptions{Name: string(rune('a' + i))})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		p, err := sw.NewPort(PortOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.AddNIC(p, NICOptions{Addresses: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 24)}}); err != nil {
			t.Fatal(err)
		}
		hosts = append(hosts, h)
	}
	dst := netip.MustParseAddrPort("10.0.0.2:7")
	for range 300 {
		c, err := hosts[0].ListenUDP("udp4", netip.MustParseAddrPort("0.0.0.0:0"))
		if err != nil {
			t.Fatal(err)
		}
		var writers sync.WaitGroup
		for range 4 {
			writers.Go(func() {
				for {
					if _, err := c.WriteToUDPAddrPort([]byte("x"), dst); err != nil {
						return
					}
					runtime.Gosched()
				}
			})
		}
		runtime.Gosched()
		c.Close()
		writers.Wait()
		c.writeMu.Lock()
		n := len(c.routes.routes)
		c.writeMu.Unlock()
		if n > 0 {
			t.Fatalf("%d cached routes left after Close: never released", n)
		}
	}
}
