package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"time"

	"github.com/dgramlab/dgramlab/stack"
	"github.com/dgramlab/dgramlab/wire"
)

// The impaired phase of the demo: numbered datagrams from client to server
// and back, across client's impaired cable.
const (
	impairedPort      = 41237
	impairedCount     = 100
	impairedInterval  = 10 * time.Millisecond
	impairedQuiet     = 3 * time.Second  // stop after this long with nothing delivered...
	impairedMaxLength = 60 * time.Second // ...or after this long in all
)

// runImpaired is step 4 of the demo, run when impairment flags are given.
// Steps 1-3 wait for each delivery, which loss would stall, so they run on
// unimpaired links; then the impairments go on client's cable, in both
// directions, and this step sends numbered datagrams that server echoes,
// and reports what arrived. When it ends (3 s of virtual time with nothing
// delivered, or 60 s in all), it takes client's port out of the switch, so
// that the frames the impairments still hold are dropped, and counted,
// before the capture closes.
//
// It runs on the calling goroutine alone, driving the virtual clock
// itself: it sends, advances the clock to the next thing due (a delayed
// frame, a host's timer), reads what arrived without waiting, echoes it,
// and so on. Nothing else runs meanwhile, so the same flags put the same
// frames on the wire, in the same order, at the same virtual times, on
// every run.
func runImpaired(ctx context.Context, out io.Writer, l *lan, vc *stack.VirtualClock, im stack.Impairments) error {
	client, server := l.host("client"), l.host("server")
	fmt.Fprintf(out, "\n4. Impairments on client's cable, both ways: %v\n", im)
	if err := client.port.SetImpairments(stack.BothDirections, im); err != nil {
		return err
	}
	srv, err := server.host.ListenUDP("udp4", netip.AddrPortFrom(netip.IPv4Unspecified(), impairedPort))
	if err != nil {
		return err
	}
	defer srv.Close()
	cli, err := client.host.ListenUDP("udp4", netip.AddrPortFrom(netip.IPv4Unspecified(), 0))
	if err != nil {
		return err
	}
	defer cli.Close()
	fmt.Fprintf(out, "  client sends %d numbered datagrams to server:%d, one every %v of virtual time; server echoes each one it gets\n",
		impairedCount, impairedPort, impairedInterval)

	dst := netip.AddrPortFrom(server.addr, impairedPort)
	sent := make([]time.Time, impairedCount)
	serverGot := make([]int, impairedCount) // copies of each datagram server got
	clientGot := make([]int, impairedCount) // copies of each echo client got
	var rtts []time.Duration
	late := 0 // echoes that came after a later one
	highest := -1
	lastDelivery := vc.Now()
	buf := make([]byte, 2048)

	// drain reads what arrived: server echoes, client takes note.
	drain := func() {
		for {
			n, from, err := srv.TryReadFromUDPAddrPort(buf)
			if err != nil {
				break
			}
			lastDelivery = vc.Now()
			if seq, ok := seqOf(buf[:n]); ok {
				serverGot[seq]++
			}
			srv.WriteToUDPAddrPort(buf[:n], from)
		}
		for {
			n, _, err := cli.TryReadFromUDPAddrPort(buf)
			if err != nil {
				break
			}
			lastDelivery = vc.Now()
			seq, ok := seqOf(buf[:n])
			if !ok {
				continue
			}
			if clientGot[seq]++; clientGot[seq] == 1 {
				rtts = append(rtts, vc.Now().Sub(sent[seq]))
			}
			if seq < highest {
				late++
			}
			highest = max(highest, seq)
		}
	}
	// runUntil advances the clock to t one event at a time, draining after
	// each.
	runUntil := func(t time.Time) {
		for {
			next, ok := vc.Next()
			if !ok || next.After(t) {
				vc.AdvanceTo(t)
				drain()
				return
			}
			vc.AdvanceTo(next)
			drain()
		}
	}

	msg := make([]byte, 64)
	for i := range impairedCount {
		if err := ctx.Err(); err != nil {
			return err
		}
		copy(msg, fmt.Sprintf("dgramlab %03d ", i))
		binary.BigEndian.PutUint32(msg[60:], uint32(i))
		sent[i] = vc.Now()
		if _, err := cli.WriteToUDPAddrPort(msg, dst); err != nil {
			return err
		}
		runUntil(vc.Now().Add(impairedInterval))
	}
	end := vc.Now().Add(impairedMaxLength)
	for vc.Now().Before(end) && vc.Now().Sub(lastDelivery) < impairedQuiet {
		if err := ctx.Err(); err != nil {
			return err
		}
		runUntil(vc.Now().Add(impairedInterval))
	}

	count := func(got []int) (distinct, copies int) {
		for _, n := range got {
			if n > 0 {
				distinct++
				copies += n - 1
			}
		}
		return distinct, copies
	}
	sd, sdup := count(serverGot)
	cd, cdup := count(clientGot)
	fmt.Fprintf(out, "  server got %d of the %d datagrams (and %d extra copies); client got %d echoes back (and %d extra copies; %d came after a later one)\n",
		sd, impairedCount, sdup, cd, cdup, late)
	if len(rtts) > 0 {
		slices.Sort(rtts)
		fmt.Fprintf(out, "  round trip (virtual time): min %v, median %v, max %v\n",
			rtts[0], rtts[len(rtts)/2], rtts[len(rtts)-1])
	}
	// Frames the impairments still hold (a delay longer than the step) are
	// lost too: taking client's port out of the switch drops them, counted
	// as detached and reported to the capture taps, which are still there.
	client.port.Remove()
	c := client.port.Counters()
	fmt.Fprintf(out, "  client's cable: %d frames lost, %d dropped queue-full, %d still held when the step ended (dropped as %s), %d duplicated, %d reordered, %d corrupted (the receivers' checksums drop those)\n",
		c.Drops[wire.DropLoss], c.Drops[wire.DropQueueFull], c.Drops[wire.DropDetached], wire.DropDetached, c.Duplicated, c.Reordered, c.Corrupted)
	return nil
}

// seqOf reads the number runImpaired puts at the end of each datagram.
func seqOf(b []byte) (int, bool) {
	if len(b) != 64 {
		return 0, false
	}
	seq := int(binary.BigEndian.Uint32(b[60:]))
	return seq, seq < impairedCount
}
