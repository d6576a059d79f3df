package stack_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/dgramlab/dgramlab/stack"
	"github.com/dgramlab/dgramlab/wire"
)

// A lossy, slow link in virtual time: the same seed loses the same
// datagrams on every run, and the 50 ms delay costs no waiting.
func ExamplePipeEnd_SetImpairments() {
	clock := stack.NewVirtualClock(time.Time{})
	a, b, _ := stack.NewPipe(stack.PipeOptions{Name: "wan", Clock: clock})
	ha, _ := stack.NewHost(stack.HostOptions{Name: "a", Clock: clock})
	hb, _ := stack.NewHost(stack.HostOptions{Name: "b", Clock: clock})
	defer ha.Close()
	defer hb.Close()
	ha.AddNIC(a, stack.NICOptions{Addresses: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/30")}})
	hb.AddNIC(b, stack.NICOptions{Addresses: []netip.Prefix{netip.MustParsePrefix("10.0.0.2/30")}})

	err := a.SetImpairments(wire.Outbound, stack.Impairments{Loss: 0.2, Delay: 50 * time.Millisecond, Seed: 1})
	fmt.Println("SetImpairments:", err)
	fmt.Println("bad input:", a.SetImpairments(wire.Outbound, stack.Impairments{Loss: 1.2}))

	tx, _ := ha.ListenUDP("udp4", netip.MustParseAddrPort("0.0.0.0:0"))
	rx, _ := hb.ListenUDP("udp4", netip.MustParseAddrPort("0.0.0.0:9000"))
	for i := range 10 {
		tx.WriteToUDPAddrPort([]byte{byte(i)}, netip.MustParseAddrPort("10.0.0.2:9000"))
	}
	clock.Advance(49 * time.Millisecond)
	buf := make([]byte, 10)
	_, _, err = rx.TryReadFromUDPAddrPort(buf)
	fmt.Println("after 49ms:", err != nil)
	clock.Advance(time.Millisecond)
	var got []byte
	for {
		if _, _, err := rx.TryReadFromUDPAddrPort(buf); err != nil {
			break
		}
		got = append(got, buf[0])
	}
	fmt.Println("after 50ms:", got)
	fmt.Println("drops:", a.Counters().Drops)
	// Output:
	// SetImpairments: <nil>
	// bad input: invalid impairments: Loss 1.2 is not a probability in [0,1]
	// after 49ms: true
	// after 50ms: [1 2 3 4 5 6 7 8 9]
	// drops: map[loss:1]
}
