package tun

import (
	"encoding/binary"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// runningTimeout bounds how long Open waits for the kernel to start
// transmitting on a device it attached to. Linux's link watcher runs at
// least once a second.
const runningTimeout = 2 * time.Second

// linkEvents is a netlink socket subscribed to link changes, in the
// calling thread's network namespace.
//
// It exists for one trap: attaching to a device that is already up turns
// its carrier on, and Linux starts transmitting on it only when its link
// watcher has run, asynchronously, up to a second later; until then
// whatever the kernel sends through the device is dropped (the device's
// tx_dropped). Open subscribes before attaching and waits for the event
// that says the device is running.
type linkEvents struct{ fd int }

func subscribeLinks() (*linkEvents, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: unix.RTMGRP_LINK}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	tv := unix.NsecToTimeval((50 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &linkEvents{fd: fd}, nil
}

func (l *linkEvents) close() { unix.Close(l.fd) }

// waitRunning returns when the device, if it is up, is running: at once
// if it is down (bringing it up later starts it synchronously) or running,
// else when the link watcher's event for it arrives, or after
// runningTimeout.
func (l *linkEvents) waitRunning(c *control, name string) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return
	}
	if err := unix.IoctlIfreq(c.fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return
	}
	index := int32(ifr.Uint32())
	state := func() (up, running bool) {
		if err := unix.IoctlIfreq(c.fd, unix.SIOCGIFFLAGS, ifr); err != nil {
			return false, false
		}
		f := ifr.Uint16()
		return f&unix.IFF_UP != 0, f&unix.IFF_RUNNING != 0
	}
	if up, running := state(); !up || running {
		return
	}
	buf := make([]byte, 1<<16)
	deadline := time.Now().Add(runningTimeout)
	for time.Now().Before(deadline) {
		n, _, err := unix.Recvfrom(l.fd, buf, 0)
		if err != nil {
			// A timeout (or an overrun): look at the flags themselves.
			if up, running := state(); !up || running {
				return
			}
			continue
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			continue
		}
		for _, m := range msgs {
			if m.Header.Type != unix.RTM_NEWLINK || len(m.Data) < unix.SizeofIfInfomsg {
				continue
			}
			// struct ifinfomsg: family, pad, type u16, index i32, flags u32.
			idx := int32(binary.NativeEndian.Uint32(m.Data[4:]))
			flags := binary.NativeEndian.Uint32(m.Data[8:])
			if idx == index && flags&unix.IFF_RUNNING != 0 {
				return
			}
		}
	}
}
