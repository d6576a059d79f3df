package integration

import (
	"bytes"
	"context"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/dgramlab/dgramlab/capture"
	"github.com/dgramlab/dgramlab/stack"
	"github.com/dgramlab/dgramlab/wire"
)

var _ stack.HostDropRecorder = (*capture.Tap)(nil)

// What a host drops is counted in its ledger under a reason and recorded by
// the capture tap on the NIC it concerns, as a raw IP packet with the
// reason, beside the link's Ethernet frames; tshark reads the file.
func TestHostDropsInLedgerAndCapture(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "drops.pcapng")
	w, err := capture.CreatePcapngFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rec := capture.NewRecorder()
	sink := capture.SinkFunc(func(f capture.Frame) { w.Record(f); rec.Record(f) })
	sw := stack.NewSwitch(stack.SwitchOptions{Name: "sw"})
	var hosts []*stack.Host
	var nics []*stack.NIC
	for i := range 2 {
		h, err := stack.NewHost(stack.HostOptions{Name: "h" + string(rune('0'+i))})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		p, err := sw.NewPort(stack.PortOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tap := capture.NewTap(p, capture.TapOptions{Name: h.Name() + "/eth0", Sink: sink})
		n, err := h.AddNIC(tap, stack.NICOptions{Addresses: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 24)}})
		if err != nil {
			t.Fatal(err)
		}
		hosts, nics = append(hosts, h), append(nics, n)
	}
	var hookMu sync.Mutex
	var hooked []wire.DropReason
	fourHooked := make(chan struct{})
	remove := nics[1].AddDropHook(func(packet []byte, dir wire.Direction, reason wire.DropReason) {
		hookMu.Lock()
		defer hookMu.Unlock()
		if len(hooked) == 3 {
			close(fourHooked)
		}
		if dir != wire.Inbound || len(packet) < 28 || packet[0]>>4 != 4 {
			t.Errorf("drop hook: %d bytes %v %v, want an inbound IPv4 packet", len(packet), dir, reason)
		}
		hooked = append(hooked, reason)
	})
	defer remove()
	from, err := hosts[0].ListenUDP("udp4", netip.MustParseAddrPort("10.0.0.1:5000"))
	if err != nil {
		t.Fatal(err)
	}
	defer from.Close()
	to, err := hosts[1].ListenUDP("udp4", netip.MustParseAddrPort("10.0.0.2:6000"))
	if err != nil {
		t.Fatal(err)
	}
	defer to.Close()
	if err := to.SetReadBuffer(0); err != nil { // the smallest buffer: 2304 bytes
		t.Fatal(err)
	}
	// Nobody on 10.0.0.2:6001; 10.0.0.2:6000 holds two 1400-byte
	// datagrams, so the next ones find the buffer full.
	for _, port := range []uint16{6001, 6000, 6000, 6000, 6000} {
		if _, err := from.WriteToUDPAddrPort(make([]byte, 1000), netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), port)); err != nil {
			t.Fatal(err)
		}
	}
	// The first datagram waits for ARP: wait for the four drops to be
	// recorded.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := rec.WaitCount(ctx, capture.All(capture.Dropped(0), capture.Link("h1/eth0")), 4); err != nil {
		t.Fatalf("waiting for 4 drops on h1/eth0: %v", err)
	}
	// The tap hears of a drop just before the hook: wait for the hook too.
	select {
	case <-fourHooked:
	case <-ctx.Done():
		t.Fatal("the NIC's drop hook did not see 4 drops")
	}
	st := hosts[1].Stats()
	want := map[wire.DropReason]uint64{wire.DropNoListener: 1, wire.DropBufferFull: 3}
	if len(st.Drops) != len(want) || st.Drops[wire.DropNoListener] != 1 || st.Drops[wire.DropBufferFull] != 3 {
		t.Errorf("Stats().Drops = %v, want %v", st.Drops, want)
	}
	hookMu.Lock()
	if len(hooked) != 4 {
		t.Errorf("NIC drop hook saw %v, want 4 drops", hooked)
	}
	hookMu.Unlock() // closing the hosts below reports what they drop
	drops := rec.Frames()
	var raw int
	for _, f := range drops {
		if f.Dropped() && f.LinkType == layers.LinkTypeRaw && f.Link == "h1/eth0" && f.Dir == wire.Inbound {
			raw++
		}
	}
	if raw != 4 {
		t.Errorf("the tap recorded %d raw IP drops on h1/eth0, want 4:\n%v", raw, drops)
	}
	for _, h := range hosts {
		h.Close()
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("tshark is not on PATH (apt-get install tshark); cannot check the file with Wireshark's reader")
	}
	cmd := exec.Command(tshark, "-r", path, "-Y", "frame.comment", "-T", "fields", "-E", "separator=|",
		"-e", "frame.interface_name", "-e", "udp.dstport", "-e", "frame.comment")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("tshark: %v\n%s", err, stderr.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if line != "" && !strings.Contains(line, "Running as user \"root\"") {
			t.Errorf("tshark wrote to stderr: %s", line)
		}
	}
	out := stdout.String()
	for _, w := range []string{
		"h1/eth0|6001|dgramlab: dropped: no-listener (link h1/eth0, inbound)",
		"h1/eth0|6000|dgramlab: dropped: buffer-full (link h1/eth0, inbound)",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("tshark output lacks %q:\n%s", w, out)
		}
	}
}
