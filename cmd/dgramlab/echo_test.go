package main

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgramlab/dgramlab/capture"
	"github.com/dgramlab/dgramlab/tun/tuntest"
	"github.com/dgramlab/dgramlab/wire"
)

func TestTunUsage(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"echo"}, "echo: --tun NAME is required"},
		{[]string{"echo", "--tun", "dgl0"}, "echo: --addr ADDRESS/PREFIX is required"},
		{[]string{"echo", "--tun", "dgl0", "--addr", "10.99.0.2"}, "--addr 10.99.0.2 has no prefix length (want e.g. 10.99.0.2/24)"},
		{[]string{"echo", "--tun", "dgl0", "--addr", "fd00::2"}, "--addr fd00::2 has no prefix length (want e.g. fd00::2/64)"},
		{[]string{"echo", "--tun", "dgl0", "--addr", "nope/24"}, `--addr "nope/24" is not an address with a prefix length`},
		{[]string{"echo", "--tun", "dgl0", "--addr", "224.0.0.1/4"}, "echo: --addr 224.0.0.1/4 is a multicast address"},
		{[]string{"echo", "--tun", "dgl0", "--addr", "::ffff:10.9.0.1/120"}, "echo: --addr ::ffff:10.9.0.1/120 is an IPv4-mapped IPv6 address, which a NIC cannot use for IPv4: use the IPv4 form 10.9.0.1/24"},
		{[]string{"send", "--tun", "dgl0", "--addr", "::ffff:10.9.0.1/96", "--to", "10.99.0.1:9", "hi"}, "send: --addr ::ffff:10.9.0.1/96 is an IPv4-mapped IPv6 address, which a NIC cannot use for IPv4: use the IPv4 form, 10.9.0.1 with an IPv4 prefix length"},
		{[]string{"echo", "--tun", "dgl0", "--addr", "0.0.0.0/0"}, "echo: --addr 0.0.0.0/0 is the unspecified address"},
		{[]string{"echo", "--tun", "dgl0", "--addr", "10.99.0.2/0"}, "echo: --addr 10.99.0.2/0 has prefix length 0"},
		{[]string{"echo", "--tun", "dgl0", "--addr", "255.255.255.255/32"}, "echo: --addr 255.255.255.255/32 is the limited broadcast address"},
		{[]string{"echo", "--tun", "a-very-long-device", "--addr", "10.99.0.2/24"}, `device name "a-very-long-device" is 18 bytes long, more than Linux's 15`},
		{[]string{"echo", "--tun", "dgl0", "--addr", "10.99.0.2/24", "--mtu", "60"}, "--mtu 60 is below the IPv4 minimum of 68"},
		{[]string{"echo", "--tun", "dgl0", "--addr", "fd00::2/64", "--mtu", "1000"}, "--mtu 1000 is below the IPv6 minimum of 1280"},
		{[]string{"echo", "--tun", "dgl0", "--addr", "10.99.0.2/24", "--mtu", "70000"}, "MTU 70000 is out of range 68..65535"},
		{[]string{"echo", "--tun", "dgl0", "--addr", "10.99.0.2/24", "--port", "70000"}, "--port 70000 is out of range"},
		{[]string{"echo", "--tun", "dgl0", "--addr", "10.99.0.2/24", "extra"}, `unexpected argument "extra"`},
		{[]string{"send", "--tun", "dgl0", "--addr", "10.99.0.3/24", "--to", "10.99.0.1:41234"}, "want exactly one MESSAGE"},
		{[]string{"send", "--tun", "dgl0", "--addr", "10.99.0.3/24", "hi"}, "--to: HOST:PORT is required"},
		{[]string{"send", "--tun", "dgl0", "--addr", "10.99.0.3/24", "--to", "10.99.0.1", "hi"}, `"10.99.0.1" is not HOST:PORT`},
		{[]string{"send", "--tun", "dgl0", "--addr", "10.99.0.3/24", "--to", "10.99.0.1:0", "hi"}, `port "0" is not in 1..65535`},
		{[]string{"send", "--tun", "dgl0", "--addr", "10.99.0.3/24", "--to", "10.99.0.1:9", "--count", "0", "hi"}, "--count 0 must be at least 1"},
		{[]string{"send", "--tun", "dgl0", "--addr", "10.99.0.3/24", "--to", "10.99.0.1:9", "--size", "65508", "hi"}, "--size 65508 is out of range 0..65507"},
		{[]string{"send", "--tun", "dgl0", "--to", "10.99.0.1:9", "hi"}, "send: --addr ADDRESS/PREFIX is required"},
		// Impairment flags, shared with the demo.
		{[]string{"echo", "--tun", "dgl0", "--addr", "10.99.0.2/24", "--loss", "1.5"}, "flag -loss: not a probability between 0 and 1"},
		{[]string{"echo", "--tun", "dgl0", "--addr", "10.99.0.2/24", "--delay", "-1s"}, "delay"},
		{[]string{"send", "--tun", "dgl0", "--addr", "10.99.0.3/24", "--to", "10.99.0.1:9", "--rate", "0", "hi"}, "rate"},
	}
	for _, c := range cases {
		code, stdout, stderr := runCLI(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("dgramlab %q: exit %d, output:\n%s%s\nwant exit 2 and %q", c.args, code, stdout, stderr, c.want)
		}
	}
	for _, cmd := range []string{"echo", "send"} {
		code, stdout, _ := runCLI(t, cmd, "--help")
		if code != 0 || !strings.Contains(stdout, "-tun") || !strings.Contains(stdout, "CAP_NET_ADMIN") ||
			!strings.Contains(stdout, "[IMPAIRMENTS]") || !strings.Contains(stdout, "IMPAIRMENTS are the demo's impairment flags (--loss") ||
			!strings.Contains(stdout, "-jitter duration") {
			t.Errorf("dgramlab %s --help: exit %d, output:\n%s", cmd, code, stdout)
		}
	}
}

// syncBuffer is an output buffer the CLI writes on its goroutine while the
// test reads it.
type syncBuffer struct {
	mu   sync.Mutex
	b    bytes.Buffer
	grew chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{grew: make(chan struct{}, 1)} }

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case s.grew <- struct{}{}:
	default:
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor waits until the output contains want.
func (s *syncBuffer) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for !strings.Contains(s.String(), want) {
		select {
		case <-s.grew:
		case <-deadline:
			t.Fatalf("output lacks %q after 10s:\n%s", want, s.String())
		}
	}
}

// cliRun is the CLI running in the background inside a namespace.
type cliRun struct {
	out  *syncBuffer
	code chan int
	stop context.CancelFunc
}

// startCLI runs the CLI on a goroutine whose thread is inside ns, as "ip
// netns exec NS dgramlab ..." would.
func startCLI(t *testing.T, ns *tuntest.Netns, args ...string) *cliRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &cliRun{out: newSyncBuffer(), code: make(chan int, 1), stop: cancel}
	go func() {
		var code int
		err := ns.Run(func() error {
			code = exitCode(run(ctx, args, r.out, r.out), r.out)
			return nil
		})
		if err != nil {
			r.out.Write([]byte(err.Error()))
			code = -1
		}
		r.code <- code
	}()
	t.Cleanup(func() {
		cancel()
		r.wait(t)
	})
	return r
}

// wait waits for the CLI to exit and returns its exit code.
func (r *cliRun) wait(t *testing.T) int {
	t.Helper()
	select {
	case c := <-r.code:
		r.code <- c
		return c
	case <-time.After(10 * time.Second):
		t.Fatalf("the CLI did not exit after 10s:\n%s", r.out.String())
		return -1
	}
}

// kernelEcho answers every datagram on c with the same bytes until c is
// closed.
func kernelEcho(c *net.UDPConn) {
	buf := make([]byte, 65536)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		c.WriteToUDPAddrPort(buf[:n], from)
	}
}

// tunNamespace makes a namespace with a persistent device dgl0 whose
// kernel end is 10.99.0.1/24, as the README's commands do.
func tunNamespace(t *testing.T, tap bool) *tuntest.Netns {
	ns := tuntest.NewNetns(t)
	mode := "tun"
	if tap {
		mode = "tap"
	}
	ns.IP(t, "tuntap", "add", "dev", "dgl0", "mode", mode)
	ns.IP(t, "addr", "add", "10.99.0.1/24", "brd", "+", "dev", "dgl0")
	ns.IP(t, "link", "set", "dgl0", "up")
	return ns
}

func tunModes(t *testing.T, fn func(t *testing.T, tap bool)) {
	tuntest.Require(t)
	for _, tap := range []bool{false, true} {
		name := map[bool]string{false: "tun", true: "tap"}[tap]
		t.Run(name, func(t *testing.T) { fn(t, tap) })
	}
}

// echo serves the kernel; SIGINT (the context) stops it cleanly.
func TestEcho(t *testing.T) {
	tunModes(t, func(t *testing.T, tap bool) {
		ns := tunNamespace(t, tap)
		args := []string{"echo", "--tun", "dgl0", "--addr", "10.99.0.2/24"}
		if tap {
			args = append(args, "--tap")
		}
		r := startCLI(t, ns, args...)
		r.out.waitFor(t, "server listening 0.0.0.0:41234")
		k := ns.ListenUDP(t, "10.99.0.1:0")
		for _, msg := range []string{"hello", strings.Repeat("x", 3000)} {
			k.WriteToUDPAddrPort([]byte(msg), netip.MustParseAddrPort("10.99.0.2:41234"))
			k.SetReadDeadline(time.Now().Add(10 * time.Second))
			buf := make([]byte, 4000)
			n, from, err := k.ReadFromUDPAddrPort(buf)
			if err != nil || string(buf[:n]) != msg || from.String() != "10.99.0.2:41234" {
				t.Fatalf("kernel got %d bytes from %v (%v), want the %d-byte echo from 10.99.0.2:41234\n%s", n, from, err, len(msg), r.out.String())
			}
		}
		r.out.waitFor(t, "server got: hello from 10.99.0.1:"+strings.TrimPrefix(k.LocalAddr().String(), "10.99.0.1:"))
		r.stop() // as SIGINT does
		if code := r.wait(t); code != 0 {
			t.Fatalf("echo stopped with exit %d, want 0:\n%s", code, r.out.String())
		}
		for _, want := range []string{"echo: stopped", "socket: received 2 datagrams (3005 bytes), sent 2 (3005 bytes), send errors 0", "device dgl0: tx "} {
			if !strings.Contains(r.out.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, r.out.String())
			}
		}
		if !ns.LinkExists("dgl0") {
			t.Error("echo removed a device it had attached to")
		}
	})
}

// The device vanishing under echo is an 'error' event on its socket, and
// echo exits with status 1.
func TestEchoDeviceVanishes(t *testing.T) {
	tunModes(t, func(t *testing.T, tap bool) {
		ns := tunNamespace(t, tap)
		args := []string{"echo", "--tun", "dgl0", "--addr", "10.99.0.2/24"}
		if tap {
			args = append(args, "--tap")
		}
		r := startCLI(t, ns, args...)
		r.out.waitFor(t, "server listening")
		ns.IP(t, "link", "del", "dgl0")
		if code := r.wait(t); code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", code, r.out.String())
		}
		for _, want := range []string{"server error:\nrecvmsg ENETDOWN\n", "errors 1", "dgramlab: echo: tun: read dgl0: device vanished"} {
			if !strings.Contains(r.out.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, r.out.String())
			}
		}
	})
}

// echo --create makes the device and removes it when it stops.
func TestEchoCreate(t *testing.T) {
	tuntest.Require(t)
	ns := tuntest.NewNetns(t)
	r := startCLI(t, ns, "echo", "--tun", "dgl9", "--create", "--mtu", "1400", "--addr", "10.99.0.2/24")
	r.out.waitFor(t, "server listening")
	if l := ns.Link(t, "dgl9"); l.MTU != 1400 {
		t.Errorf("created device has MTU %d, want 1400", l.MTU)
	}
	r.stop()
	if code := r.wait(t); code != 0 {
		t.Fatalf("exit %d, want 0:\n%s", code, r.out.String())
	}
	if ns.LinkExists("dgl9") {
		t.Error("the device echo --create made is still there after it stopped")
	}
}

func TestSend(t *testing.T) {
	tunModes(t, func(t *testing.T, tap bool) {
		ns := tunNamespace(t, tap)
		tapFlag := map[bool][]string{false: nil, true: {"--tap"}}[tap]
		k := ns.ListenUDP(t, "10.99.0.1:41234")
		go kernelEcho(k)

		args := append([]string{"send", "--tun", "dgl0", "--addr", "10.99.0.3/24", "--to", "10.99.0.1:41234", "--count", "3", "--size", "3000"}, tapFlag...)
		r := startCLI(t, ns, append(args, "hello")...)
		if code := r.wait(t); code != 0 {
			t.Fatalf("send: exit %d:\n%s", code, r.out.String())
		}
		out := r.out.String()
		if n := strings.Count(out, "reply: hellohello"); n != 3 || !strings.Contains(out, "send: 3 sent, 3 replies") || !strings.Contains(out, "from 10.99.0.1:41234") {
			t.Errorf("send printed %d replies, want 3:\n%s", n, out)
		}

		// Broadcast to a kernel socket bound to 0.0.0.0, which does not
		// answer: send waits --wait for replies, then succeeds.
		b := ns.ListenUDP(t, "0.0.0.0:41235")
		args = append([]string{"send", "--tun", "dgl0", "--addr", "10.99.0.3/24", "--to", "255.255.255.255:41235", "--broadcast", "--wait", "10ms"}, tapFlag...)
		r = startCLI(t, ns, append(args, "hello LAN")...)
		if code := r.wait(t); code != 0 {
			t.Fatalf("send --broadcast: exit %d:\n%s", code, r.out.String())
		}
		b.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 100)
		n, from, err := b.ReadFromUDPAddrPort(buf)
		if err != nil || string(buf[:n]) != "hello LAN" || from.Addr().String() != "10.99.0.3" {
			t.Errorf("kernel got %q from %v (%v), want \"hello LAN\" from 10.99.0.3", buf[:n], from, err)
		}

		// Without --broadcast, the send callback gets EACCES, as on Linux.
		args = append([]string{"send", "--tun", "dgl0", "--addr", "10.99.0.3/24", "--to", "255.255.255.255:41235"}, tapFlag...)
		r = startCLI(t, ns, append(args, "no")...)
		if code := r.wait(t); code != 1 || !strings.Contains(r.out.String(), "send 1 failed: send EACCES 255.255.255.255:41235") {
			t.Errorf("send to broadcast without --broadcast: exit %d:\n%s", code, r.out.String())
		}
	})
}

// send prints each reply as it comes, between its sends (not after the
// last one), and a device deleted under a long send is an 'error' event
// on its socket before send exits with status 1.
func TestSendDeviceVanishes(t *testing.T) {
	tunModes(t, func(t *testing.T, tap bool) {
		ns := tunNamespace(t, tap)
		k := ns.ListenUDP(t, "10.99.0.1:41234")
		go kernelEcho(k)
		args := []string{"send", "--tun", "dgl0", "--addr", "10.99.0.3/24", "--to", "10.99.0.1:41234", "--count", "100000000"}
		if tap {
			args = append(args, "--tap")
		}
		r := startCLI(t, ns, append(args, "ping")...)
		r.out.waitFor(t, "reply: ping from 10.99.0.1:41234")
		ns.IP(t, "link", "del", "dgl0")
		if code := r.wait(t); code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", code, tail(r.out.String()))
		}
		for _, want := range []string{"socket error:\nrecvmsg ENETDOWN\n", "dgramlab: send: tun: ", " dgl0: device vanished"} {
			if !strings.Contains(r.out.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, tail(r.out.String()))
			}
		}
	})
}

// tail is the end of a long output.
func tail(s string) string {
	if len(s) > 3000 {
		return "..." + s[len(s)-3000:]
	}
	return s
}

// send with impairments reports what they dropped, by reason, and the
// counts match what was lost: each of the datagrams is one frame, lost on
// its way out or its echo's way back.
func TestSendImpairedCountsDrops(t *testing.T) {
	tuntest.Require(t)
	ns := tunNamespace(t, false)
	// No IPv6 on the kernel's end: its router solicitations and MLD
	// reports would cross the impaired link too.
	ns.Do(t, func() error {
		return os.WriteFile("/proc/sys/net/ipv6/conf/dgl0/disable_ipv6", []byte("1"), 0)
	})
	k := ns.ListenUDP(t, "10.99.0.1:41234")
	go kernelEcho(k)

	const count = 40
	pcap := filepath.Join(t.TempDir(), "send.pcapng")
	r := startCLI(t, ns, "send", "--tun", "dgl0", "--addr", "10.99.0.3/24", "--to", "10.99.0.1:41234",
		"--count", strconv.Itoa(count), "--wait", "500ms", "--loss", "0.5", "--seed", "3", "--pcap", pcap, "hello")
	if code := r.wait(t); code != 0 {
		t.Fatalf("send: exit %d:\n%s", code, r.out.String())
	}
	out := r.out.String()
	if !strings.Contains(out, "impairments on dgl0, both ways: loss 50%, seed 3\n") {
		t.Errorf("the startup lines do not show the impairments:\n%s", out)
	}
	var replies int
	if m := regexp.MustCompile(`send: \d+ sent, (\d+) replies`).FindStringSubmatch(out); m != nil {
		replies, _ = strconv.Atoi(m[1])
	}
	m := regexp.MustCompile(`impairments on dgl0 \(loss 50%, seed 3\): dropped (\d+) \(loss (\d+)\), duplicated 0, reordered 0, corrupted 0\n`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("output lacks the impairments' counters:\n%s", out)
	}
	dropped, _ := strconv.Atoi(m[1])
	lost, _ := strconv.Atoi(m[2])
	if lost != count-replies || dropped != lost || replies == 0 || lost == 0 {
		t.Errorf("%d replies to %d datagrams, but the impairments say they dropped %d (loss %d):\n%s", replies, count, dropped, lost, out)
	}
	sum, err := capture.SummarizeFile(pcap)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(sum.Drops, func(d capture.DropSummary) bool { return d.Reason == wire.DropLoss.String() && d.Frames == lost }) {
		t.Errorf("capture drops %+v, want %d frames lost", sum.Drops, lost)
	}
}
