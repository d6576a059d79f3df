package tun

import (
	"os"
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/dgramlab/dgramlab/wire"
)

// Device is an open TUN or TAP device and the gVisor link endpoint of the
// NIC attached to it: give it to a host's AddNIC (optionally wrapped, e.g.
// by a capture tap).
//
// One reader goroutine, started when a NIC attaches, reads frames from the
// device and delivers them to the host; frames the host sends are written
// to the device on the sender's goroutine. Frames larger than the device
// MTU are dropped and counted in both directions, as are frames the host
// sends after the device vanished or was closed (see Counters and
// AddDropHook).
//
// When the device vanishes under a running Device ("ip link del"), the
// reader stops, Err returns an error matching ErrGone, Done is closed, and
// every later write fails with tcpip.ErrNetworkUnreachable (ENETUNREACH in
// a socket's send callback, as Linux says once the interface and its
// routes are gone).
//
// Close closes the device (removing it if Open created it) and waits for
// the reader; removing the NIC from its host, or closing the host, calls
// it, so that after Host.Close no goroutine of the Device is left. A
// Device is safe for concurrent use.
type Device struct {
	counters

	name    string
	tap     bool
	created bool
	mtu     uint32 // the device's MTU, enforced on every frame
	hdrLen  int    // link header bytes: 14 for TAP, 0 for TUN
	mac     tcpip.LinkAddress
	file    *os.File
	nicMTU  atomic.Uint32
	down    atomic.Bool // closed or vanished: writes are dropped

	dispatcher atomic.Pointer[dispatcherBox]

	mu         sync.Mutex
	started    bool // the reader goroutine was started
	closed     bool
	err        error
	onClose    func()
	restore    func() // undoes what Open changed on a device it attached to
	readerDone chan struct{}
	done       chan struct{}
	doneOnce   sync.Once
}

type dispatcherBox struct{ d stack.NetworkDispatcher }

var _ stack.LinkEndpoint = (*Device)(nil)

func newDevice(name string, tap, created bool, mtu, nicMTU int, mac tcpip.LinkAddress, file *os.File) *Device {
	d := &Device{
		name:       name,
		tap:        tap,
		created:    created,
		mtu:        uint32(mtu),
		mac:        mac,
		file:       file,
		readerDone: make(chan struct{}),
		done:       make(chan struct{}),
	}
	if tap {
		d.hdrLen = header.EthernetMinimumSize
	}
	d.nicMTU.Store(uint32(nicMTU))
	return d
}

// Name returns the device's name.
func (d *Device) Name() string { return d.name }

// IsTAP reports whether the device is a TAP (Ethernet) device.
func (d *Device) IsTAP() bool { return d.tap }

// Created reports whether Open created the device (Close then removes it).
func (d *Device) Created() bool { return d.created }

// DeviceMTU returns the device's MTU, which the Device enforces.
func (d *Device) DeviceMTU() int { return int(d.mtu) }

// Counters returns a snapshot of the device's counters.
func (d *Device) Counters() Counters { return d.snapshot() }

// AddDropHook registers fn to be called for every frame the device drops
// and returns a function that removes it. Capture taps use it to record
// drops with their reason. fn runs on the goroutine that was moving the
// frame: the host's sender (wire.Outbound) or the Device's reader
// (wire.Inbound).
func (d *Device) AddDropHook(fn wire.DropHook) (remove func()) {
	return d.addHook(fn)
}

// Done returns a channel that is closed when the device stops: when it
// vanished (Err then says why) or when Close is done.
func (d *Device) Done() <-chan struct{} { return d.done }

// Err returns why the device stopped by itself: an *Error matching ErrGone
// when it vanished (or ErrFailed for another read error). It is nil while
// the device runs and after a plain Close.
func (d *Device) Err() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

// fail records that the device stopped working, on the goroutine that
// found out (the reader, or a sender). The first failure is kept.
func (d *Device) fail(err *Error) {
	d.down.Store(true)
	d.mu.Lock()
	if d.err == nil && !d.closed {
		d.err = err
	}
	d.mu.Unlock()
	d.doneOnce.Do(func() { close(d.done) })
}

// Close implements stack.LinkEndpoint. It closes the device, which the
// kernel removes if Open created it (one Open attached to gets back the
// MTU it had), waits for the reader goroutine to exit and closes Done.
// Frames the host writes afterwards are dropped (wire.DropLinkDown).
// Calling Close again only waits.
func (d *Device) Close() {
	d.mu.Lock()
	first := !d.closed
	d.closed = true
	started := d.started
	onClose := d.onClose
	d.onClose = nil
	d.mu.Unlock()
	if first {
		d.down.Store(true)
		d.file.Close() // unblocks the reader's Read
	}
	if started {
		<-d.readerDone
	}
	if first {
		if d.restore != nil {
			d.restore()
		}
		d.doneOnce.Do(func() { close(d.done) })
		if onClose != nil {
			onClose()
		}
	}
}

// Wait implements stack.LinkEndpoint. It returns at once: gVisor calls it
// while holding the stack's lock, which the reader may need to deliver the
// frame it holds (an ARP or ICMP reply looks up a route), so waiting there
// could deadlock. Close, which gVisor calls next without that lock, waits
// for the reader.
func (d *Device) Wait() {}

// SetOnCloseAction implements stack.LinkEndpoint.
func (d *Device) SetOnCloseAction(fn func()) {
	d.mu.Lock()
	d.onClose = fn
	d.mu.Unlock()
}

// Attach implements stack.LinkEndpoint. The first attach starts the reader
// goroutine; frames read while no NIC is attached are dropped
// (wire.DropDetached).
func (d *Device) Attach(disp stack.NetworkDispatcher) {
	if disp == nil {
		d.dispatcher.Store(nil)
		return
	}
	d.dispatcher.Store(&dispatcherBox{disp})
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.started && !d.closed {
		d.started = true
		go d.readLoop()
	}
}

// IsAttached implements stack.LinkEndpoint.
func (d *Device) IsAttached() bool { return d.dispatcher.Load() != nil }

// MTU implements stack.LinkEndpoint: the MTU the NIC is told (NICMTU, by
// default the device's).
func (d *Device) MTU() uint32 { return d.nicMTU.Load() }

// SetMTU implements stack.LinkEndpoint. It changes the MTU the NIC is
// told, not the device's MTU, which the Device keeps enforcing.
func (d *Device) SetMTU(mtu uint32) { d.nicMTU.Store(mtu) }

// MaxHeaderLength implements stack.LinkEndpoint.
func (d *Device) MaxHeaderLength() uint16 { return uint16(d.hdrLen) }

// LinkAddress implements stack.LinkEndpoint: the host's MAC on a TAP
// device, none on a TUN device.
func (d *Device) LinkAddress() tcpip.LinkAddress { return d.mac }

// SetLinkAddress implements stack.LinkEndpoint. The address is fixed by
// Open; the call is ignored.
func (d *Device) SetLinkAddress(tcpip.LinkAddress) {}

// Capabilities implements stack.LinkEndpoint. A TAP device resolves
// addresses with ARP/NDP. No checksum is offloaded: the kernel checks them,
// and gVisor must not trust unchecked fragments.
func (d *Device) Capabilities() stack.LinkEndpointCapabilities {
	if d.tap {
		return stack.CapabilityResolutionRequired
	}
	return 0
}

// ARPHardwareType implements stack.LinkEndpoint: Ethernet for TAP, none
// (raw IP) for TUN.
func (d *Device) ARPHardwareType() header.ARPHardwareType {
	if d.tap {
		return header.ARPHardwareEther
	}
	return header.ARPHardwareNone
}

// AddHeader implements stack.LinkEndpoint: the Ethernet header of a TAP
// frame; nothing for TUN.
func (d *Device) AddHeader(pkt *stack.PacketBuffer) {
	if !d.tap {
		return
	}
	eth := header.Ethernet(pkt.LinkHeader().Push(header.EthernetMinimumSize))
	eth.Encode(&header.EthernetFields{
		SrcAddr: pkt.EgressRoute.LocalLinkAddress,
		DstAddr: pkt.EgressRoute.RemoteLinkAddress,
		Type:    pkt.NetworkProtocolNumber,
	})
}

// ParseHeader implements stack.LinkEndpoint.
func (d *Device) ParseHeader(pkt *stack.PacketBuffer) bool {
	if !d.tap {
		return true
	}
	_, ok := pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	return ok
}
