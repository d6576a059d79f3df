package tun

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"strconv"
	"sync"
	"syscall"

	"github.com/songgao/water"
	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
)

// Open opens a TUN or TAP device as opts say, sets its MTU and returns it,
// ready to be attached to a host with AddNIC.
//
// Everything Open does happens on the calling goroutine's OS thread, so
// a caller that has locked its thread into another network namespace gets
// the device of that namespace; the Device keeps working from any thread
// afterwards.
//
// When the device is already up, Open returns once the kernel transmits on
// it (Linux starts doing so asynchronously, up to a second after a device
// gets its carrier, and drops what it sends before).
//
// Errors are *Error values matching a sentinel: ErrInvalid for bad options,
// ErrUnsupported without /dev/net/tun, ErrPermission without
// CAP_NET_ADMIN, ErrNotFound or ErrWrongType when attaching, ErrExists when
// creating, ErrBusy when the device is in use.
func Open(opts Options) (*Device, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	op, name := opts.op(), opts.Name
	if _, err := os.Stat(devicePath); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &Error{Op: op, Name: name, Kind: ErrUnsupported, Err: err,
				Hint: "load the tun module (modprobe tun); in a container, pass the device and the capability (--device /dev/net/tun --cap-add NET_ADMIN)"}
		}
		return nil, openError(op, name, opts, err)
	}
	// Open the clone device once by itself, so that a refusal there is
	// told apart from the kernel refusing the device (CAP_NET_ADMIN).
	clone, err := os.OpenFile(devicePath, os.O_RDWR, 0)
	if err != nil {
		return nil, cloneOpenError(op, name, err)
	}
	clone.Close()
	ctl, err := newControl()
	if err != nil {
		return nil, &Error{Op: op, Name: name, Kind: ErrFailed, Err: err}
	}
	keepCtl := false // the Device keeps it to restore the MTU
	defer func() {
		if !keepCtl {
			ctl.close()
		}
	}()
	if name != "" {
		if err := ctl.check(opts); err != nil {
			return nil, err
		}
	}

	cfg := water.Config{DeviceType: water.TUN}
	if opts.TAP {
		cfg.DeviceType = water.TAP
	}
	cfg.Name = name
	// water sets or clears the persist flag on every open: keep a device
	// we attach to persistent, or "ip tuntap add"'s device would vanish
	// when we close it.
	cfg.Persist = !opts.Create
	events, err := subscribeLinks()
	if err != nil {
		return nil, &Error{Op: op, Name: name, Kind: ErrFailed, Err: err}
	}
	defer events.close()
	ifce, err := openWater(cfg)
	if err != nil {
		return nil, openError(op, name, opts, err)
	}
	file := ifce.ReadWriteCloser.(*os.File)
	name = ifce.Name()
	events.waitRunning(ctl, name)

	mtu, err := ctl.mtu(name)
	oldMTU := mtu
	if err == nil && opts.MTU != 0 && opts.MTU != mtu {
		if err = ctl.setMTU(name, opts.MTU); err == nil {
			mtu = opts.MTU
		}
	}
	if err != nil {
		file.Close()
		e := openError("set MTU", name, opts, err)
		if errors.Is(err, syscall.EINVAL) {
			e.Kind, e.Hint = ErrInvalid, fmt.Sprintf("the kernel refused MTU %d for this device", opts.MTU)
		}
		return nil, e
	}
	nicMTU := opts.NICMTU
	if nicMTU == 0 {
		nicMTU = mtu
	}
	var mac tcpip.LinkAddress
	if opts.TAP {
		mac = tcpip.LinkAddress(opts.MAC)
		if opts.MAC == nil {
			mac = defaultMAC(name)
		}
	}
	d := newDevice(name, opts.TAP, opts.Create, mtu, nicMTU, mac, file)
	if index, ierr := ctl.index(name); ierr == nil && !opts.Create && mtu != oldMTU {
		// A device we attached to gets its MTU back when we close. The
		// control socket stays in the namespace the device is in,
		// whichever thread Close runs on; the index tells a device made
		// anew under the same name, which is left alone.
		keepCtl = true
		d.restore = func() {
			if now, err := ctl.index(name); err == nil && now == index {
				ctl.setMTU(name, oldMTU)
			}
			ctl.close()
		}
	}
	return d, nil
}

// defaultMAC derives a locally administered unicast MAC from the device
// name: 02:64:67 ("dg") and three bytes of its hash.
func defaultMAC(name string) tcpip.LinkAddress {
	h := fnv.New32a()
	h.Write([]byte(name))
	s := h.Sum32()
	return tcpip.LinkAddress([]byte{0x02, 0x64, 0x67, byte(s >> 16), byte(s >> 8), byte(s)})
}

// openMu serialises openWater, so that the file descriptors it finds
// appearing are water's.
var openMu sync.Mutex

// openWater is water.New without water's two file-descriptor traps: it
// opens /dev/net/tun without O_CLOEXEC (child processes would inherit the
// device and keep it alive), and leaks the descriptor when the setup
// ioctls fail. ForkLock keeps any fork from happening before the
// descriptor is marked close-on-exec; a failed open's descriptor is found
// in /proc/self/fd and closed.
func openWater(cfg water.Config) (*water.Interface, error) {
	openMu.Lock()
	defer openMu.Unlock()
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	before := waterFDs(nil)
	ifce, err := water.New(cfg)
	if err != nil {
		for _, fd := range waterFDs(before) {
			unix.Close(fd)
		}
		return nil, err
	}
	rc, err := ifce.ReadWriteCloser.(*os.File).SyscallConn()
	if err == nil {
		cerr := rc.Control(func(fd uintptr) { _, err = unix.FcntlInt(fd, unix.F_SETFD, unix.FD_CLOEXEC) })
		err = errors.Join(err, cerr)
	}
	if err != nil {
		ifce.Close()
		return nil, err
	}
	return ifce, nil
}

// waterFDs returns the descriptors of /dev/net/tun that are not
// close-on-exec (water's; Go opens everything else close-on-exec) and are
// not in skip.
func waterFDs(skip []int) []int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil
	}
	var fds []int
next:
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		for _, s := range skip {
			if s == fd {
				continue next
			}
		}
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err != nil || target != "/dev/net/tun" {
			continue
		}
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC != 0 {
			continue
		}
		fds = append(fds, fd)
	}
	return fds
}

// openError turns a failed open, attach or ioctl into an *Error.
func openError(op, name string, opts Options, err error) *Error {
	e := &Error{Op: op, Name: name, Kind: ErrFailed, Err: err}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		e.Err = errno
	}
	switch {
	case op == "set MTU" && (errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES)):
		e.Kind = ErrPermission
		e.Hint = "changing the MTU needs CAP_NET_ADMIN: leave the MTU as it is, or set it with ip link set dev " + name + " mtu N"
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		// /dev/net/tun opened (Open tries that first), but the kernel
		// refused to create or attach the device.
		e.Kind = ErrPermission
		e.Hint = "missing CAP_NET_ADMIN: run as root, grant the capability (setcap cap_net_admin+ep BINARY), or attach to a device made for your user (ip tuntap add dev NAME mode " + opts.kind() + " user $USER)"
	case errors.Is(err, syscall.EBUSY):
		e.Kind = ErrBusy
		e.Hint = "another program (or Device) has it open"
	case errors.Is(err, syscall.EINVAL) && op != "set MTU":
		e.Kind = ErrWrongType
		e.Hint = "the device exists with other flags (a " + otherKind(opts) + " device, or multi-queue)"
	}
	return e
}

// cloneOpenError is why /dev/net/tun itself cannot be opened for reading
// and writing: its mode (EACCES), or a rule above it such as a
// container's device list (EPERM).
func cloneOpenError(op, name string, err error) *Error {
	e := &Error{Op: op, Name: name, Kind: ErrFailed, Err: err}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		e.Err = errno
	}
	mode := ""
	if fi, serr := os.Stat(devicePath); serr == nil {
		mode = fmt.Sprintf(" (mode %04o)", fi.Mode().Perm())
	}
	switch {
	case errors.Is(err, syscall.EACCES):
		e.Kind = ErrPermission
		e.Hint = "cannot open " + devicePath + mode + " for reading and writing: run as root, or make it usable (chmod 0666 " + devicePath + ", as most distributions ship it)"
	case errors.Is(err, syscall.EPERM):
		e.Kind = ErrPermission
		e.Hint = "cannot open " + devicePath + mode + ": the system refuses it to this process (in a container, pass the device: --device /dev/net/tun)"
	default:
		e.Hint = "cannot open " + devicePath + mode
	}
	return e
}

func otherKind(opts Options) string {
	if opts.TAP {
		return "TUN"
	}
	return "TAP"
}

// control is a socket for interface ioctls, in the calling thread's
// network namespace.
type control struct{ fd int }

func newControl() (*control, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	return &control{fd: fd}, nil
}

func (c *control) close() { unix.Close(c.fd) }

// check tells, before water touches anything, whether a named device
// exists and is of the right kind for opts.
func (c *control) check(opts Options) error {
	op, name := opts.op(), opts.Name
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return &Error{Op: op, Name: name, Kind: ErrInvalid, Err: err}
	}
	err = unix.IoctlIfreq(c.fd, unix.SIOCGIFHWADDR, ifr)
	exists := err == nil
	if err != nil && !errors.Is(err, unix.ENODEV) {
		return &Error{Op: op, Name: name, Kind: ErrFailed, Err: err}
	}
	switch {
	case opts.Create && exists:
		return &Error{Op: op, Name: name, Kind: ErrExists, Err: unix.EEXIST,
			Hint: "attach to it instead of creating it, or remove it first (ip link del " + name + ")"}
	case opts.Create:
		return nil
	case !exists:
		return &Error{Op: op, Name: name, Kind: ErrNotFound, Err: unix.ENODEV,
			Hint: "create it first with: ip tuntap add dev " + name + " mode " + opts.kind()}
	}
	if info, err := unix.IoctlGetEthtoolDrvinfo(c.fd, name); err != nil || unix.ByteSliceToString(info.Driver[:]) != "tun" {
		return &Error{Op: op, Name: name, Kind: ErrWrongType, Err: unix.EINVAL, Hint: name + " is not a TUN/TAP device"}
	}
	isTAP := ifr.Uint16() == unix.ARPHRD_ETHER
	if isTAP != opts.TAP {
		return &Error{Op: op, Name: name, Kind: ErrWrongType, Err: unix.EINVAL,
			Hint: name + " is a " + otherKind(opts) + " device: open it in " + otherKind(opts) + " mode"}
	}
	return nil
}

// index returns the interface index of name.
func (c *control) index(name string) (int, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(c.fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, os.NewSyscallError("ioctl SIOCGIFINDEX", err)
	}
	return int(ifr.Uint32()), nil
}

func (c *control) mtu(name string) (int, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(c.fd, unix.SIOCGIFMTU, ifr); err != nil {
		return 0, os.NewSyscallError("ioctl SIOCGIFMTU", err)
	}
	return int(ifr.Uint32()), nil
}

func (c *control) setMTU(name string, mtu int) error {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	ifr.SetUint32(uint32(mtu))
	if err := unix.IoctlIfreq(c.fd, unix.SIOCSIFMTU, ifr); err != nil {
		return os.NewSyscallError("ioctl SIOCSIFMTU", err)
	}
	return nil
}
