package stack_test

import (
	"net/netip"
	"testing"
	"testing/synctest"

	"github.com/dgramlab/dgramlab/wire"
)

// Regression (a CI run's goroutine-leak check): Close returned while an ARP
// probe, sent by a gVisor timer on its own goroutine, was still on its way
// through the switch. Close now waits for such callbacks.
func TestCloseWaitsForProbeInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, hosts, ports := lan(t, 1500, 1500)
		a := hosts[0]
		ports[1].SetLinkUp(false) // the probe is dropped there, in the hook below
		entered := make(chan struct{})
		release := make(chan struct{})
		first := true
		ports[1].AddDropHook(func([]byte, wire.Direction, wire.DropReason) {
			if first {
				first = false
				close(entered)
				<-release
			}
		})
		c := listen(t, a, "udp4", "10.0.0.1:0")
		if _, err := c.WriteToUDPAddrPort([]byte("x"), netip.MustParseAddrPort("10.0.0.2:9")); err != nil {
			t.Fatal(err)
		}
		<-entered // the probe's timer callback is inside the switch

		closed := make(chan struct{})
		go func() {
			a.Close()
			close(closed)
		}()
		synctest.Wait()
		select {
		case <-closed:
			t.Fatal("Close returned while a timer callback of its stack was still running")
		default:
		}
		close(release)
		<-closed
	})
}
