package capture

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/dgramlab/dgramlab/wire"
)

func TestMatchers(t *testing.T) {
	fs := scenario(t)
	for _, tc := range []struct {
		m    Matcher
		desc string
		want int
	}{
		{All(), "any frame", len(fs)},
		{Any(), "no frame", 0},
		{Dir(wire.Outbound), "outbound", 12},
		{Dir(wire.Inbound), "inbound", 2},
		{Link("tun0"), `link "tun0"`, 3},
		{Broadcast(), "dst mac broadcast", 2},
		{MulticastMAC(), "dst mac multicast", 1},
		{DstMAC(mac1), "dst mac 02:00:00:00:00:01", 1},
		{SrcMAC(mac2), "src mac 02:00:00:00:00:02", 1},
		{EtherType(layers.EthernetTypeARP), "ethertype ARP", 1},
		{IPv6(), "ipv6", 3},
		{IPv4(), "ipv4", 10},
		{UDP(), "udp", 13},
		{SrcIP(ip2), "src ip 10.0.0.2", 1},
		{DstIP(netip.MustParseAddr("fd00::2")), "dst ip fd00::2", 3},
		{All(DstPort(9000), OnWire()), "dst port 9000 and on wire", 3},
		{SrcPort(9000), "src port 9000", 1},
		{FrameLen(142), "frame len 142", 4},
		{UDPPayloadLen(100), "udp payload 100", 4},
		{UDPPayloadLen(3000), "udp payload 3000", 1},
		{Fragment(), "fragment", 5},
		{FirstFragment(), "first fragment", 2},
		{MiddleFragment(), "middle fragment", 1},
		{LastFragment(), "last fragment", 2},
		{ReassembledSize(108), "reassembled size 108", 4},   // 100-byte UDP payloads
		{ReassembledSize(3008), "reassembled size 3008", 1}, // the IPv4 last fragment
		{ReassembledSize(2008), "reassembled size 2008", 1}, // the IPv6 last fragment
		{ReassembledSize(38), "reassembled size 38", 1},     // IPv6, not fragmented
		// The dropped 1472-byte datagram, not the 1480-byte first fragment.
		{ReassembledSize(1480), "reassembled size 1480", 1},
		{All(OnWire(), ReassembledSize(1480)), "on wire and reassembled size 1480", 0},
		{Any(ReassembledSize(3008), ReassembledSize(2008)), "reassembled size 3008 or reassembled size 2008", 2},
		{All(LastFragment(), Not(ReassembledSize(3008))), "last fragment and not reassembled size 3008", 1},
		{Dropped(0), "dropped", 2},
		{Dropped(wire.DropMTU), "dropped (mtu)", 1},
		{Not(Dropped(0)), "not dropped", len(fs) - 2},
		{Any(Link("tun0"), Broadcast()), `link "tun0" or dst mac broadcast`, 5},
		{All(Not(Any(IPv6(), Dropped(0))), Dir(wire.Outbound)), `not (ipv6 or dropped) and outbound`, 8},
		{Func("custom", func(f Frame) bool { return f.Len > 1000 }), "custom", 4},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if got := tc.m.String(); got != tc.desc {
				t.Errorf("String() = %q, want %q", got, tc.desc)
			}
			if err := CheckCount(fs, tc.m, tc.want); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestCheckCountListsFrames(t *testing.T) {
	fs := scenario(t)
	err := CheckCount(fs, Dropped(wire.DropMTU), 2)
	if err == nil {
		t.Fatal("CheckCount = nil, want an error")
	}
	msg := err.Error()
	lines := strings.Split(strings.TrimSpace(msg), "\n")
	if len(lines) != 1+len(fs) {
		t.Fatalf("error has %d lines, want a header and one per frame:\n%s", len(lines), msg)
	}
	if !strings.HasPrefix(lines[0], "frames matching dropped (mtu): got 1, want 2") {
		t.Errorf("first line = %q", lines[0])
	}
	want := "* 12:00:00.009000009 sw0/port2 in len=1514 02:00:00:00:00:01>02:00:00:00:00:02 udp 10.0.0.1:40000>10.0.0.2:9000 payload=1472 DROPPED mtu"
	if !strings.Contains(msg, want+"\n") {
		t.Errorf("listing lacks %q:\n%s", want, msg)
	}
}

func TestFrameString(t *testing.T) {
	fs := scenario(t)
	for i, want := range map[int]string{
		0:  "12:00:00.000000000 h1/eth0 out len=60 02:00:00:00:00:01>ff:ff:ff:ff:ff:ff arp",
		4:  "12:00:00.004000004 h1/eth0 out len=1514 02:00:00:00:00:01>02:00:00:00:00:02 udp 10.0.0.1:40000>10.0.0.2:9000 payload=3000 frag(id=7 off=0 len=1480 more)",
		5:  "12:00:00.004000005 h1/eth0 out len=1514 02:00:00:00:00:01>02:00:00:00:00:02 udp 10.0.0.1>10.0.0.2 frag(id=7 off=1480 len=1480 more)",
		10: "12:00:00.008000008 tun0 out len=1280 udp [fd00::1]:1234>[fd00::2]:9053 payload=2000 frag(id=99 off=0 len=1232 more)",
		11: "12:00:00.008000009 tun0 out len=824 udp fd00::1>fd00::2 frag(id=99 off=1232 len=776)",
	} {
		if got := fs[i].String(); got != want {
			t.Errorf("frame %d:\n got %s\nwant %s", i, got, want)
		}
	}
	bad := Frame{Link: "x", LinkType: layers.LinkTypeEthernet, Dir: wire.Inbound, Data: []byte{1, 2, 3}, Len: 3}
	if got := bad.String(); !strings.HasPrefix(got, "- x in len=3 [") {
		t.Errorf("truncated frame: %s", got)
	}
}

func TestDecodeMalformed(t *testing.T) {
	for _, tc := range []struct {
		name string
		lt   layers.LinkType
		data []byte
	}{
		{"empty raw", layers.LinkTypeRaw, nil},
		{"empty ethernet", layers.LinkTypeEthernet, nil},
		{"short ipv4", layers.LinkTypeRaw, []byte{0x45, 0, 0, 40}},
		{"short ipv6", layers.LinkTypeRaw, []byte{0x60, 0, 0, 0}},
		{"ipv6 truncated ext", layers.LinkTypeRaw, append(append([]byte{0x60, 0, 0, 0, 0, 8, 60, 64}, make([]byte, 32)...), 17, 5)},
		{"unknown link", layers.LinkType(147), []byte{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i := Decode(tc.lt, tc.data)
			if i.Err == nil {
				t.Errorf("Decode(% x) = %+v, want an error", tc.data, i)
			}
		})
	}
}

func TestDropComment(t *testing.T) {
	for _, tc := range []struct {
		reason     wire.DropReason
		link       string
		dir        wire.Direction
		comment    string
		wantReason string
	}{
		{wire.DropMTU, "sw0/port2", wire.Outbound, "dgramlab: dropped: mtu (link sw0/port2, outbound)", "mtu"},
		{wire.DropQueueFull, "a, b (c)", wire.Inbound, "dgramlab: dropped: queue-full (link a, b (c), inbound)", "queue-full"},
		{wire.DropNoListener, "x", 0, "dgramlab: dropped: no-listener (link x, unknown)", "no-listener"},
		{0, "x", wire.Inbound, "dgramlab: dropped: unknown (link x, inbound)", "unknown"},
		{wire.MaxDropReason + 1, "x", wire.Outbound, "dgramlab: dropped: unknown (link x, outbound)", "unknown"},
	} {
		c := DropComment(tc.reason, tc.link, tc.dir)
		if c != tc.comment {
			t.Errorf("DropComment(%v, %q, %v) = %q, want %q", tc.reason, tc.link, tc.dir, c, tc.comment)
		}
		reason, link, dir, ok := ParseDropComment(c)
		if !ok || reason != tc.wantReason || link != tc.link || dir != tc.dir {
			t.Errorf("ParseDropComment(%q) = %q, %q, %v, %v", c, reason, link, dir, ok)
		}
	}
	for _, c := range []string{"", "hello", "dgramlab: dropped: mtu", "dgramlab: dropped:  (link x, inbound)", "dgramlab: dropped: mtu (link x, sideways)", "dgramlab: dropped: mtu (link x)"} {
		if _, _, _, ok := ParseDropComment(c); ok {
			t.Errorf("ParseDropComment(%q) ok, want not ok", c)
		}
	}
}

func TestDecodeLinuxCooked(t *testing.T) {
	ip := udpSpec{src: ip1, dst: ip2, sport: 40000, dport: 9000, payload: 10}.build(t)[0]
	sll := append([]byte{0, 4, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00}, ip...)
	sll2 := append([]byte{0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 4, 6, 2, 0, 0, 0, 0, 1, 0, 0}, ip...)
	for _, tc := range []struct {
		lt   layers.LinkType
		data []byte
	}{{layers.LinkTypeLinuxSLL, sll}, {layers.LinkTypeLinuxSLL2, sll2}} {
		i := Decode(tc.lt, tc.data)
		if i.Err != nil || i.SrcIP != ip1 || i.DstPort != 9000 || i.UDPPayloadLen() != 10 {
			t.Errorf("Decode(%v) = %+v", tc.lt, i)
		}
	}
}
