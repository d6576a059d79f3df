package tun_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/dgramlab/dgramlab/tun"
	"github.com/dgramlab/dgramlab/tun/tuntest"
)

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		opts tun.Options
		want string // in the error; "" for valid
	}{
		{"zero value needs a name", tun.Options{}, "a device name is required"},
		{"create without a name", tun.Options{Create: true}, ""},
		{"name", tun.Options{Name: "dgl0"}, ""},
		{"15 bytes", tun.Options{Name: "abcdefghijklmno"}, ""},
		{"16 bytes", tun.Options{Name: "abcdefghijklmnop"}, `device name "abcdefghijklmnop" is 16 bytes long, more than Linux's 15`},
		{"slash", tun.Options{Name: "a/b"}, "contains '/'"},
		{"space", tun.Options{Name: "a b"}, "white space"},
		{"dot", tun.Options{Name: "."}, "is not allowed"},
		{"MTU 67", tun.Options{Name: "dgl0", MTU: 67}, "MTU 67 is out of range 68..65535"},
		{"MTU 68", tun.Options{Name: "dgl0", MTU: 68}, ""},
		{"MTU 65536", tun.Options{Name: "dgl0", MTU: 65536}, "MTU 65536 is out of range"},
		{"negative MTU", tun.Options{Name: "dgl0", MTU: -1}, "MTU -1 is out of range"},
		{"NIC MTU", tun.Options{Name: "dgl0", NICMTU: 40}, "NIC MTU 40 is out of range"},
		{"multicast MAC", tun.Options{Name: "dgl0", TAP: true, MAC: net.HardwareAddr{1, 0, 0, 0, 0, 1}}, "not a 6-byte unicast address"},
		{"MAC ignored for TUN", tun.Options{Name: "dgl0", MAC: net.HardwareAddr{1}}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.opts.Validate()
			if c.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, tun.ErrInvalid) {
				t.Fatalf("Validate() = %v, want ErrInvalid saying %q", err, c.want)
			}
			if _, oerr := tun.Open(c.opts); !errors.Is(oerr, tun.ErrInvalid) {
				t.Fatalf("Open() = %v, want ErrInvalid", oerr)
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	err := &tun.Error{Op: "attach", Name: "tun9", Kind: tun.ErrNotFound, Err: syscall.ENODEV, Hint: "create it"}
	if got, want := err.Error(), "tun: attach tun9: no such device (create it)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, tun.ErrNotFound) || !errors.Is(err, syscall.ENODEV) {
		t.Errorf("errors.Is(%v, ErrNotFound / ENODEV) = false", err)
	}
	perm := &tun.Error{Op: "create", Kind: tun.ErrPermission, Err: syscall.EPERM}
	if !errors.Is(perm, os.ErrPermission) {
		t.Errorf("errors.Is(%v, os.ErrPermission) = false", perm)
	}
}

// TestOpenErrorHints: a refused open of /dev/net/tun (EACCES: its mode;
// EPERM: a rule above it) and a refused device setup (no CAP_NET_ADMIN)
// name different causes; all are ErrPermission.
func TestOpenErrorHints(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{syscall.EACCES, "cannot open /dev/net/tun"},
		{syscall.EPERM, "--device /dev/net/tun"},
	} {
		e := tun.CloneOpenError(&os.PathError{Op: "open", Path: "/dev/net/tun", Err: c.err})
		if !errors.Is(e, tun.ErrPermission) || !strings.Contains(e.Error(), c.want) {
			t.Errorf("open /dev/net/tun: %v: %v; want ErrPermission saying %q", c.err, e, c.want)
		}
	}
	opts := tun.Options{Name: "dgl0", Create: true}
	for _, c := range []struct {
		op   string
		err  error
		want string
	}{
		{"create", syscall.EPERM, "missing CAP_NET_ADMIN"},
		{"attach", syscall.EPERM, "ip tuntap add dev NAME mode tun user $USER"},
		{"set MTU", syscall.EPERM, "changing the MTU needs CAP_NET_ADMIN"},
	} {
		e := tun.OpenError(c.op, opts, c.err)
		if !errors.Is(e, tun.ErrPermission) || !strings.Contains(e.Error(), c.want) {
			t.Errorf("%s, %v: %v; want ErrPermission saying %q", c.op, c.err, e, c.want)
		}
	}
}

// TestOpenWithoutPrivilege: without CAP_NET_ADMIN (make test-unprivileged
// runs the tests so), Open fails with ErrPermission naming what is
// missing: access to /dev/net/tun when its mode refuses the user, else the
// capability. It runs only where the process surely lacks the capability,
// so that it can create nothing.
func TestOpenWithoutPrivilege(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("TUN/TAP devices are supported on Linux only")
	}
	if !tuntest.LacksNetAdmin() {
		t.Skip("the process has CAP_NET_ADMIN: make test-unprivileged runs this test")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skip("no /dev/net/tun (TestOpenNoDriver covers that)")
	}
	want := "missing CAP_NET_ADMIN"
	if unix.Access("/dev/net/tun", unix.R_OK|unix.W_OK) != nil {
		want = "cannot open /dev/net/tun"
	}
	for _, opts := range []tun.Options{{Name: "dglperm0", Create: true}, {Name: "dglperm0", TAP: true, Create: true}} {
		d, err := tun.Open(opts)
		if err == nil {
			d.Close()
			t.Fatalf("Open(%+v) succeeded without CAP_NET_ADMIN", opts)
		}
		if !errors.Is(err, tun.ErrPermission) || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%+v) = %v; want ErrPermission saying %q", opts, err, want)
		}
	}
}

// TestOpenNoDriver: without /dev/net/tun, Open says what is missing.
func TestOpenNoDriver(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("TUN/TAP devices are supported on Linux only")
	}
	defer tun.SetDevicePath(filepath.Join(t.TempDir(), "no-tun"))()
	_, err := tun.Open(tun.Options{Name: "dgl0", Create: true})
	if !errors.Is(err, tun.ErrUnsupported) || !strings.Contains(err.Error(), "modprobe tun") {
		t.Fatalf("Open without the driver = %v, want ErrUnsupported with a hint", err)
	}
}
