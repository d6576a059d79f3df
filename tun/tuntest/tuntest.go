// Package tuntest helps tests that need real TUN/TAP devices: it creates a
// network namespace per test (never touching the host's interfaces), runs
// code inside it, and opens kernel sockets there.
//
//	tuntest.Require(t) // skips unless root with /dev/net/tun and ip(8)
//	ns := tuntest.NewNetns(t)
//	var dev *tun.Device
//	ns.Do(t, func() (err error) { dev, err = tun.Open(tun.Options{Name: "dgl0", Create: true}); return })
//	ns.IP(t, "addr", "add", "10.99.0.1/24", "dev", "dgl0")
//	ns.IP(t, "link", "set", "dgl0", "up")
//	peer := ns.ListenUDP(t, "10.99.0.1:0") // a kernel socket in the namespace
package tuntest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// Require skips t unless the process can make network namespaces and
// TUN/TAP devices: it runs as root, /dev/net/tun exists and ip(8) is on
// PATH. The skip message says which is missing.
func Require(t testing.TB) {
	t.Helper()
	if reason := Missing(); reason != "" {
		t.Skip("needs a network namespace and /dev/net/tun: " + reason)
	}
}

// Missing returns why TUN tests cannot run here, or "" if they can.
func Missing() string {
	if runtime.GOOS != "linux" {
		return "not Linux"
	}
	if missing := missingCaps(); missing != "" {
		return missing
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return "/dev/net/tun is missing (modprobe tun)"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "the ip command (iproute2) is not on PATH"
	}
	return ""
}

// missingCaps says which of the capabilities the tests need the process
// lacks: CAP_NET_ADMIN (devices, addresses) and CAP_SYS_ADMIN (network
// namespaces). It reads them from /proc/self/status, so that root in a
// container without them skips too, and falls back to asking for root
// where that cannot be read.
func missingCaps() string {
	const capNetAdmin, capSysAdmin = 12, 21
	caps, ok := effectiveCaps()
	if !ok {
		if os.Geteuid() != 0 {
			return "not root (run the tests as root, e.g. sudo go test)"
		}
		return ""
	}
	var lack []string
	if caps&(1<<capNetAdmin) == 0 {
		lack = append(lack, "CAP_NET_ADMIN")
	}
	if caps&(1<<capSysAdmin) == 0 {
		lack = append(lack, "CAP_SYS_ADMIN")
	}
	if len(lack) == 0 {
		return ""
	}
	who := "root without"
	if os.Geteuid() != 0 {
		who = "not root, without"
	}
	return who + " " + strings.Join(lack, " and ") + " (run the tests as root with them, e.g. sudo go test)"
}

// LacksNetAdmin reports whether the process surely lacks CAP_NET_ADMIN
// (its effective capabilities say so), so that opening a TUN/TAP device
// cannot create anything: tests of the permission errors run only then.
func LacksNetAdmin() bool {
	const capNetAdmin = 12
	caps, ok := effectiveCaps()
	return ok && caps&(1<<capNetAdmin) == 0
}

// effectiveCaps returns the process's effective capabilities (CapEff in
// /proc/self/status); false where they cannot be read.
func effectiveCaps() (uint64, bool) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(status), "\n") {
		if hexCaps, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(hexCaps), 16, 64)
			return caps, err == nil
		}
	}
	return 0, false
}

// Netns is a network namespace a test created; it is deleted when the
// test ends. Its loopback interface is up.
type Netns struct {
	name string
}

// NewNetns creates a namespace named "dgl-" and a random suffix, and
// registers its deletion with t.Cleanup.
func NewNetns(t testing.TB) *Netns {
	t.Helper()
	Require(t)
	var b [4]byte
	rand.Read(b[:])
	ns := &Netns{name: "dgl-" + hex.EncodeToString(b[:])}
	if out, err := exec.Command("ip", "netns", "add", ns.name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", ns.name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns.name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns.name, err, out)
		}
	})
	ns.IP(t, "link", "set", "lo", "up")
	return ns
}

// Name returns the namespace's name (as "ip netns" knows it).
func (ns *Netns) Name() string { return ns.name }

// Path returns the namespace's file, for setns(2) or nsenter --net.
func (ns *Netns) Path() string { return "/var/run/netns/" + ns.name }

// Run runs fn on an OS thread switched into the namespace and returns its
// error. Sockets and devices fn opens belong to the namespace and keep
// working from any goroutine afterwards. The caller's thread never
// changes namespace; fn must not start goroutines that expect to be in it.
func (ns *Netns) Run(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- ns.runLocked(fn)
	}()
	return <-errc
}

// Do is Run that fails t on error.
func (ns *Netns) Do(t testing.TB, fn func() error) {
	t.Helper()
	if err := ns.Run(fn); err != nil {
		t.Fatal(err)
	}
}

// IP runs "ip -n NAME args..." and returns its output; it fails t if the
// command fails.
func (ns *Netns) IP(t testing.TB, args ...string) string {
	t.Helper()
	out, err := ns.TryIP(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TryIP runs "ip -n NAME args..." and returns its output.
func (ns *Netns) TryIP(args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"-n", ns.name}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip -n %s %s: %v: %s", ns.name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// LinkExists reports whether the namespace has an interface called name.
func (ns *Netns) LinkExists(name string) bool {
	_, err := ns.TryIP("link", "show", "dev", name)
	return err == nil
}

// Link is what "ip -j -s link show" says about an interface.
type Link struct {
	Name      string   `json:"ifname"`
	MTU       int      `json:"mtu"`
	Flags     []string `json:"flags"`
	OperState string   `json:"operstate"`
	Address   string   `json:"address"`
	Stats     struct {
		RX LinkStats `json:"rx"`
		TX LinkStats `json:"tx"`
	} `json:"stats64"`
}

// LinkStats are an interface's packet counters in one direction.
type LinkStats struct {
	Bytes   uint64 `json:"bytes"`
	Packets uint64 `json:"packets"`
	Errors  uint64 `json:"errors"`
	Dropped uint64 `json:"dropped"`
}

// Link returns the interface called name; it fails t if there is none.
func (ns *Netns) Link(t testing.TB, name string) Link {
	t.Helper()
	out := ns.IP(t, "-j", "-s", "link", "show", "dev", name)
	var links []Link
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -j link show %s: %v: %s", name, err, out)
	}
	return links[0]
}

// ListenUDP opens a kernel UDP socket in the namespace bound to address
// ("10.99.0.1:0", "0.0.0.0:41234", "[fd00::1]:0"...): an IPv4 socket for an
// IPv4 address. It is closed when the test ends.
func (ns *Netns) ListenUDP(t testing.TB, address string) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	ns.Do(t, func() error {
		a, err := net.ResolveUDPAddr("udp", address)
		if err != nil {
			return err
		}
		network := "udp6"
		if a.IP.To4() != nil {
			network = "udp4" // not a dual-stack socket
		}
		c, err = net.ListenUDP(network, a)
		return err
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// CountFDs returns how many file descriptors the process has open.
func CountFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents) - 1 // the directory's own
}
