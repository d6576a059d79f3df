package tun

import (
	"errors"
	"io"
	"os"
	"syscall"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/dgramlab/dgramlab/wire"
)

// readBufSize holds the largest frame a device can give: a 65535-byte IP
// packet and an Ethernet header. Reading into a buffer larger than the MTU
// lets oversize frames be seen (and dropped) rather than truncated.
const readBufSize = MaxMTU + header.EthernetMinimumSize

// readLoop runs on the Device's reader goroutine: it reads one frame at a
// time and delivers it to the attached NIC on this goroutine. It returns
// when the device is closed or a read fails (the device vanished).
func (d *Device) readLoop() {
	defer close(d.readerDone)
	buf := make([]byte, readBufSize)
	for {
		n, err := d.file.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return // Close
			}
			d.errors.Add(1)
			d.fail(d.ioError("read", err))
			return
		}
		d.receive(buf[:n])
	}
}

// ioError describes a failed read or write of the device.
func (d *Device) ioError(op string, err error) *Error {
	var errno syscall.Errno
	if !errors.As(err, &errno) && !errors.Is(err, io.EOF) {
		// No errno (Go's poller answered for the device): ask it.
		if e := probe(d.file); gone(e) {
			errno = e
		}
	}
	kind := ErrFailed
	if errno != 0 && gone(errno) || errors.Is(err, io.EOF) {
		kind = ErrGone
	}
	var cause error = err
	if errno != 0 {
		cause = errno
	}
	return &Error{Op: op, Name: d.name, Kind: kind, Err: cause}
}

// receive checks one frame read from the device and delivers it. frame is
// the reader's buffer: it is copied before delivery.
func (d *Device) receive(frame []byte) {
	n := len(frame)
	if n <= d.hdrLen {
		d.dropBytes(frame, wire.Inbound, wire.DropMalformed)
		return
	}
	if n-d.hdrLen > int(d.mtu) {
		d.dropBytes(frame, wire.Inbound, wire.DropMTU)
		return
	}
	var (
		proto tcpip.NetworkProtocolNumber
		typ   = tcpip.PacketHost
	)
	if d.tap {
		eth := header.Ethernet(frame)
		proto = eth.Type()
		switch dst := eth.DestinationAddress(); {
		case dst == d.mac:
		case dst == header.EthernetBroadcastAddress:
			typ = tcpip.PacketBroadcast
		case header.IsMulticastEthernetAddress(dst):
			typ = tcpip.PacketMulticast
		default:
			d.filtered.Add(1) // for another MAC: a NIC's address filter
			return
		}
	} else {
		switch header.IPVersion(frame) {
		case header.IPv4Version:
			proto = header.IPv4ProtocolNumber
		case header.IPv6Version:
			proto = header.IPv6ProtocolNumber
		default:
			d.dropBytes(frame, wire.Inbound, wire.DropMalformed)
			return
		}
	}
	box := d.dispatcher.Load()
	if box == nil {
		d.dropBytes(frame, wire.Inbound, wire.DropDetached)
		return
	}
	d.rxFrames.Add(1)
	d.rxBytes.Add(uint64(n))
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(frame)})
	if d.tap {
		pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	}
	pkt.PktType = typ
	box.d.DeliverNetworkPacket(proto, pkt)
	pkt.DecRef()
}

// WritePackets implements stack.LinkWriter: it writes each frame to the
// device, one write(2) per frame, on the caller's goroutine. Frames larger
// than the device MTU are dropped (wire.DropMTU), as are frames written
// while the kernel's end is down (wire.DropLinkDown: Linux answers EIO) and
// frames the kernel refuses (wire.DropWriteError). Once the device has
// vanished or was closed, frames are dropped (wire.DropLinkDown) and
// WritePackets returns tcpip.ErrNetworkUnreachable, which reaches the
// sending socket.
func (d *Device) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	var tcpipErr tcpip.Error
	n := 0
	for _, pkt := range pkts.AsSlice() {
		if d.down.Load() {
			d.dropPacket(pkt, wire.DropLinkDown)
			tcpipErr = &tcpip.ErrNetworkUnreachable{}
			continue
		}
		size := pkt.Size()
		if size-d.hdrLen > int(d.mtu) {
			d.dropPacket(pkt, wire.DropMTU)
			n++
			continue
		}
		v := pkt.ToView()
		_, err := d.file.Write(v.AsSlice())
		v.Release()
		switch {
		case err == nil:
			d.txFrames.Add(1)
			d.txBytes.Add(uint64(size))
			n++
		case errors.Is(err, os.ErrClosed):
			d.dropPacket(pkt, wire.DropLinkDown)
			tcpipErr = &tcpip.ErrNetworkUnreachable{}
		case errors.Is(err, syscall.EIO):
			// The kernel's end of the device is down (ip link set down).
			d.dropPacket(pkt, wire.DropLinkDown)
			n++
		default:
			d.errors.Add(1)
			if e := d.ioError("write", err); e.Kind == ErrGone {
				d.fail(e)
				d.dropPacket(pkt, wire.DropLinkDown)
				tcpipErr = &tcpip.ErrNetworkUnreachable{}
				continue
			}
			d.dropPacket(pkt, wire.DropWriteError)
			n++
		}
	}
	return n, tcpipErr
}
