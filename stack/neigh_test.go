package stack_test

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dgramlab/dgramlab/stack"
	"github.com/dgramlab/dgramlab/wire"
)

// Datagrams to an address nobody on the LAN has wait for ARP or NDP, then
// are each counted as unresolved and reported to the NIC's drop hooks; a
// queue holds 212992 bytes (as Linux's), and the oldest datagram makes
// room; what waits when the host closes is counted as host-closed. The
// sends themselves succeed, as on Linux.
func TestUnresolvedNeighbour(t *testing.T) {
	for _, tc := range []struct {
		name, from, to string
		prefix         string
	}{
		{"ipv4", "10.0.0.1:5000", "10.0.0.99:9", "10.0.0.1/24"},
		{"ipv6", "[fd00::1]:5000", "[fd00::99]:9", "fd00::1/64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sw := stack.NewSwitch(stack.SwitchOptions{})
				h, err := stack.NewHost(stack.HostOptions{Name: "lonely"})
				if err != nil {
					t.Fatal(err)
				}
				defer h.Close()
				p, _ := sw.NewPort(stack.PortOptions{})
				nic, err := h.AddNIC(p, stack.NICOptions{Addresses: []netip.Prefix{netip.MustParsePrefix(tc.prefix)}})
				if err != nil {
					t.Fatal(err)
				}
				hooked := map[wire.DropReason]int{}
				nic.AddDropHook(func(packet []byte, dir wire.Direction, reason wire.DropReason) {
					if dir != wire.Outbound || len(packet) < 28 {
						t.Errorf("drop hook: %d bytes %v", len(packet), dir)
					}
					hooked[reason]++
				})
				network := "udp4"
				if tc.name == "ipv6" {
					network = "udp6"
				}
				c := listen(t, h, network, tc.from)
				to := netip.MustParseAddrPort(tc.to)
				for range 10 {
					send(t, c, "anyone?", to)
				}
				time.Sleep(10 * time.Second) // ARP or NDP gives up after 3 s
				synctest.Wait()
				st := h.Stats()
				if st.UDP.Sent != 10 || st.UDP.SendErrors != 0 || st.Drops[wire.DropUnresolved] != 10 || hooked[wire.DropUnresolved] != 10 {
					t.Fatalf("after 10 sends: Stats() = %+v, hooked %v; want 10 sent, 10 unresolved", st, hooked)
				}
				// 1000 quick sends: a queue holds 256 small datagrams
				// (212992 bytes at 832 each); the oldest make room.
				for range 1000 {
					send(t, c, "x", to)
				}
				if got := h.Stats().Drops[wire.DropUnresolved]; got != 10+744 {
					t.Errorf("after 1000 quick sends: %d unresolved, want %d at once", got, 10+744)
				}
				time.Sleep(10 * time.Second)
				synctest.Wait()
				if got := h.Stats().Drops[wire.DropUnresolved]; got != 1010 {
					t.Errorf("after resolution failed: %d unresolved, want 1010", got)
				}
				// A connected conn's datagrams too, and it sees no error,
				// as Node and Linux (without IP_RECVERR) report none.
				cc := listen(t, h, network, tc.from[:len(tc.from)-4]+"0")
				if err := cc.Connect(to); err != nil {
					t.Fatal(err)
				}
				for range 3 {
					if _, err := cc.Write([]byte("connected")); err != nil {
						t.Fatalf("connected Write = %v", err)
					}
				}
				time.Sleep(10 * time.Second)
				synctest.Wait()
				if got := h.Stats().Drops[wire.DropUnresolved]; got != 1013 {
					t.Errorf("after 3 connected sends: %d unresolved, want 1013", got)
				}
				if _, _, err := cc.TryReadFromUDPAddrPort(make([]byte, 10)); err == nil || !isEAGAIN(err) {
					t.Errorf("connected read after the failure = %v, want EAGAIN (no error reported)", err)
				}
				cc.Close()
				if tc.name == "ipv4" {
					// A dual-stack udp6 conn's IPv4 datagrams too.
					c6 := listen(t, h, "udp6", "[::]:0")
					send(t, c6, "mapped", netip.MustParseAddrPort("[::ffff:10.0.0.99]:9"))
					time.Sleep(10 * time.Second)
					synctest.Wait()
					if got := h.Stats().Drops[wire.DropUnresolved]; got != 1014 {
						t.Errorf("after a v4-mapped send: %d unresolved, want 1014", got)
					}
					c6.Close()
				}
				// What waits when the host closes is counted too.
				for range 5 {
					send(t, c, "late", to)
				}
				c.Close()
				h.Close()
				if st := h.Stats(); st.Drops[wire.DropHostClosed] != 5 || hooked[wire.DropHostClosed] != 5 {
					t.Errorf("after Close: Drops = %v, hooked %v; want 5 host-closed", st.Drops, hooked)
				}
			})
		})
	}
}

func isEAGAIN(err error) bool { return errors.Is(err, syscall.EAGAIN) }

// Datagrams that waited for ARP go out in the order they were sent, the
// later ones behind them.
func TestResolvedNeighbourKeepsOrder(t *testing.T) {
	_, hosts, _ := lan(t, 1500, 1500)
	c := listen(t, hosts[1], "udp4", "10.0.0.2:9000")
	if err := c.SetReadBuffer(stack.MaxSocketBuffer); err != nil {
		t.Fatal(err)
	}
	from := listen(t, hosts[0], "udp4", "10.0.0.1:0")
	for i := range 200 {
		send(t, from, string(rune('a'+i%26))+string(rune(i)), netip.MustParseAddrPort("10.0.0.2:9000"))
	}
	for i := range 200 {
		b, _ := recv(t, c)
		if want := string(rune('a'+i%26)) + string(rune(i)); string(b) != want {
			t.Fatalf("datagram %d is %q, want %q", i, b, want)
		}
	}
	if st := hosts[0].Stats(); st.Dropped() != 0 {
		t.Errorf("sender dropped %v", st.Drops)
	}
}
