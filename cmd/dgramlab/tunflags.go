package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"

	"github.com/dgramlab/dgramlab/capture"
	"github.com/dgramlab/dgramlab/dgram"
	"github.com/dgramlab/dgramlab/stack"
	"github.com/dgramlab/dgramlab/tun"
	"github.com/dgramlab/dgramlab/wire"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

// tunFlags are the flags echo and send share: which device, and the
// userspace host's address on it.
type tunFlags struct {
	dev    string
	tap    bool
	create bool
	addr   string
	mtu    int
	pcap   string
	impair func() (stack.Impairments, error)
}

func (f *tunFlags) register(fs *flag.FlagSet, exampleAddr string) {
	f.impair = addImpairmentFlags(fs)
	fs.StringVar(&f.dev, "tun", "", "the TUN (or, with --tap, TAP) device to attach to (required)")
	fs.BoolVar(&f.tap, "tap", false, "the device is a TAP device (Ethernet, ARP with the kernel)")
	fs.BoolVar(&f.create, "create", false, "create the device (removed on exit) instead of attaching to one made with 'ip tuntap add'")
	fs.StringVar(&f.addr, "addr", "", "the userspace host's address with its prefix length, e.g. "+exampleAddr+" (required)")
	fs.IntVar(&f.mtu, "mtu", 0, "set the device's MTU (default: keep it; 1500 for a new device)")
	fs.StringVar(&f.pcap, "pcap", "", "capture the host's NIC to this pcapng file (raw IP for TUN, Ethernet for TAP)")
}

// tunConfig is what the flags ask for, checked.
type tunConfig struct {
	opts   tun.Options
	prefix netip.Prefix
	pcap   string
	// impair is applied to the device's traffic in both directions.
	impair stack.Impairments
}

// config checks the flags; every mistake is a usage error.
func (f *tunFlags) config(cmd string) (tunConfig, error) {
	if f.dev == "" {
		return tunConfig{}, usagef("%s: --tun NAME is required", cmd)
	}
	if f.addr == "" {
		return tunConfig{}, usagef("%s: --addr ADDRESS/PREFIX is required", cmd)
	}
	prefix, err := netip.ParsePrefix(f.addr)
	if err != nil {
		if a, aerr := netip.ParseAddr(f.addr); aerr == nil {
			bits := 24
			if a.Is6() {
				bits = 64
			}
			return tunConfig{}, usagef("%s: --addr %s has no prefix length (want e.g. %s/%d)", cmd, f.addr, f.addr, bits)
		}
		return tunConfig{}, usagef("%s: --addr %q is not an address with a prefix length: %v", cmd, f.addr, err)
	}
	if err := stack.CheckNICAddress(prefix); err != nil {
		// "--addr ::ffff:10.9.0.1/120 is an IPv4-mapped IPv6 address, ...:
		// use the IPv4 form 10.9.0.1/24", as AddNIC would say it.
		return tunConfig{}, usagef("%s: --addr %v", cmd, err)
	}
	if f.mtu != 0 && prefix.Addr().Is6() && f.mtu < tun.MinMTUIPv6 {
		return tunConfig{}, usagef("%s: --mtu %d is below the IPv6 minimum of %d", cmd, f.mtu, tun.MinMTUIPv6)
	}
	if f.mtu != 0 && f.mtu < tun.MinMTU {
		return tunConfig{}, usagef("%s: --mtu %d is below the IPv4 minimum of %d", cmd, f.mtu, tun.MinMTU)
	}
	im, err := f.impair()
	if err != nil {
		return tunConfig{}, usagef("%s: %v", cmd, err)
	}
	c := tunConfig{
		opts:   tun.Options{Name: f.dev, TAP: f.tap, Create: f.create, MTU: f.mtu},
		prefix: prefix,
		pcap:   f.pcap,
		impair: im,
	}
	if err := c.opts.Validate(); err != nil {
		return tunConfig{}, usagef("%s: %v", cmd, err)
	}
	return c, nil
}

// socketType is "udp4" or "udp6", after the host's address.
func (c tunConfig) socketType() string {
	if c.prefix.Addr().Is6() {
		return dgram.UDP6
	}
	return dgram.UDP4
}

// tunHost is a userspace host attached to a device. The host is the dgram
// network its sockets use: when the device vanishes, the host fails them
// (see stack.StoppingLink) and each gets an 'error' event, recvmsg ENETDOWN.
type tunHost struct {
	host *stack.Host
	dev  *tun.Device
	pcap *capture.PcapngWriter
	// impaired wraps dev when impairment flags were given; nil otherwise.
	impaired *stack.ImpairedLink
}

// openTunHost opens the device and attaches a new host named name to it.
// Mistakes in what the user asked for (no such device, the wrong type, a
// device that exists, an MTU the kernel refuses) are usage errors.
func openTunHost(cmd, name string, c tunConfig) (*tunHost, error) {
	dev, err := tun.Open(c.opts)
	if err != nil {
		if errors.Is(err, tun.ErrNotFound) {
			return nil, usagef("%s: %v, or pass --create", cmd, err)
		}
		for _, kind := range []error{tun.ErrInvalid, tun.ErrNotFound, tun.ErrWrongType, tun.ErrExists} {
			if errors.Is(err, kind) {
				return nil, usagef("%s: %v", cmd, err)
			}
		}
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	if c.prefix.Addr().Is6() && dev.DeviceMTU() < tun.MinMTUIPv6 {
		dev.Close()
		return nil, usagef("%s: device %s has MTU %d, below the IPv6 minimum of %d: pass --mtu", cmd, dev.Name(), dev.DeviceMTU(), tun.MinMTUIPv6)
	}
	th := &tunHost{dev: dev}
	th.host, err = stack.NewHost(stack.HostOptions{Name: name})
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	var ep gvstack.LinkEndpoint = dev
	if !c.impair.IsZero() {
		// Under the tap, so that the capture records what the impairments drop.
		il := stack.NewImpairedLink(dev, stack.ImpairedLinkOptions{Name: dev.Name()})
		if err := il.SetImpairments(stack.BothDirections, c.impair); err != nil {
			th.host.Close()
			il.Close() // closes dev
			return nil, usagef("%s: %v", cmd, err)
		}
		ep, th.impaired = il, il
	}
	if c.pcap != "" {
		if th.pcap, err = capture.CreatePcapngFile(c.pcap); err != nil {
			th.host.Close()
			ep.Close() // closes dev
			return nil, fmt.Errorf("%s: cannot write the capture: %w", cmd, err)
		}
		ep = capture.NewTap(ep, capture.TapOptions{Name: name + "/" + dev.Name(), Sink: th.pcap})
	}
	if _, err := th.host.AddNIC(ep, stack.NICOptions{Name: dev.Name(), Addresses: []netip.Prefix{c.prefix}}); err != nil {
		th.close()
		ep.Close() // AddNIC failed: the host does not own it (closing the wrappers closes dev)
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	return th, nil
}

// close closes the host, which closes the device, and the capture.
func (th *tunHost) close() error {
	th.host.Close()
	if th.pcap != nil {
		return th.pcap.Close()
	}
	return nil
}

// describe says what is attached to what.
func (th *tunHost) describe(w io.Writer, c tunConfig) {
	kind, how := "TUN", "attached to"
	if th.dev.IsTAP() {
		kind = "TAP"
	}
	if th.dev.Created() {
		how = "created"
	}
	fmt.Fprintf(w, "userspace host %s on %s device %s (%s, MTU %d)", c.prefix, kind, th.dev.Name(), how, th.dev.DeviceMTU())
	if th.pcap != nil {
		fmt.Fprintf(w, ", capturing to %s", c.pcap)
	}
	fmt.Fprintln(w)
	if th.impaired != nil {
		fmt.Fprintf(w, "impairments on %s, both ways: %v\n", th.dev.Name(), th.impaired.Impairments(wire.Outbound))
	}
}

// printCounters prints the socket's, the host's, the impairments' and the
// device's counters, so every datagram is accounted for. Call it after
// close: the frames the impairments still held then are counted as
// detached.
func (th *tunHost) printCounters(w io.Writer, s dgram.SocketStats) {
	fmt.Fprintf(w, "socket: received %d datagrams (%d bytes), sent %d (%d bytes), send errors %d\n",
		s.Received, s.ReceivedBytes, s.Sent, s.SentBytes, s.SendErrors)
	hs := th.host.Stats().UDP
	fmt.Fprintf(w, "host: UDP received %d, sent %d, send errors %d, no listener %d, buffer full %d\n",
		hs.Received, hs.Sent, hs.SendErrors, hs.NoListener, hs.BufferFull)
	if th.impaired != nil {
		ic := th.impaired.Counters()
		fmt.Fprintf(w, "impairments on %s (%v): dropped %d%s, duplicated %d, reordered %d, corrupted %d\n",
			th.dev.Name(), th.impaired.Impairments(wire.Outbound), ic.Dropped(), dropList(ic.Drops), ic.Duplicated, ic.Reordered, ic.Corrupted)
	}
	c := th.dev.Counters()
	fmt.Fprintf(w, "device %s: tx %d frames (%d bytes), rx %d frames (%d bytes), dropped %d%s",
		th.dev.Name(), c.TxFrames, c.TxBytes, c.RxFrames, c.RxBytes, c.Dropped(), dropList(c.Drops))
	if c.Filtered != 0 {
		fmt.Fprintf(w, ", filtered %d", c.Filtered)
	}
	if c.Errors != 0 {
		fmt.Fprintf(w, ", errors %d", c.Errors)
	}
	fmt.Fprintln(w)
}

// dropList formats drops by reason, in the order of their words:
// " (link-down 2, mtu 1)".
func dropList(drops map[wire.DropReason]uint64) string {
	if len(drops) == 0 {
		return ""
	}
	parts := make([]string, 0, len(drops))
	for r, n := range drops {
		parts = append(parts, fmt.Sprintf("%s %d", r, n))
	}
	sort.Strings(parts)
	return " (" + strings.Join(parts, ", ") + ")"
}
