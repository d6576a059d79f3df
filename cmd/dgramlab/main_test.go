package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// runCLI runs the CLI in-process and returns its exit code and output.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, &out, &errOut)
	code = exitCode(err, &errOut)
	return code, out.String(), errOut.String()
}

func TestUsage(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string // in stdout or stderr
	}{
		{nil, 2, "no command given"},
		{[]string{"nope"}, 2, `unknown command "nope"`},
		{[]string{"help"}, 0, "dgramlab demo [flags]"},
		{[]string{"--help"}, 0, "dgramlab inspect [flags] FILE"},
		{[]string{"demo", "--help"}, 0, "-pcap"},
		{[]string{"demo", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"demo", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"demo", "--timeout", "0s"}, 2, "--timeout must be positive"},
		{[]string{"inspect"}, 2, "want exactly one FILE"},
		{[]string{"inspect", "--help"}, 0, "-json"},
		{[]string{"echo", "--help"}, 0, "-tun"},
		{[]string{"send", "-h"}, 0, "-to"},
		{[]string{"bench", "--help"}, 0, "Usage: dgramlab bench"},
		{[]string{"inspect", "--bogus", "x"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"inspect", "x", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"inspect", "x", "--json", "y"}, 2, "want exactly one FILE, got 2 arguments"},
		{[]string{"inspect", "--", "x", "--json"}, 2, "want exactly one FILE, got 2 arguments"},
	}
	for _, c := range cases {
		code, stdout, stderr := runCLI(t, c.args...)
		if code != c.code || !strings.Contains(stdout+stderr, c.want) {
			t.Errorf("dgramlab %q: exit %d, output:\n%s%s\nwant exit %d and %q", c.args, code, stdout, stderr, c.code, c.want)
		}
		if code != 0 && strings.Count(strings.TrimSpace(stderr), "\n") > 0 && !strings.Contains(stderr, "Usage") {
			t.Errorf("dgramlab %q: error is not one line: %q", c.args, stderr)
		}
		if code == 2 && len(c.args) > 0 && stdout != "" {
			t.Errorf("dgramlab %q: a usage error printed to stdout:\n%s", c.args, stdout)
		}
		if n := strings.Count(stdout, "Usage:"); code == 0 && n != 1 {
			t.Errorf("dgramlab %q: the help is printed %d times:\n%s", c.args, n, stdout)
		}
	}
}

// TestDemo runs the demo and checks the story it tells.
func TestDemo(t *testing.T) {
	pcap := filepath.Join(t.TempDir(), "demo.pcapng")
	code, stdout, stderr := runCLI(t, "demo", "--pcap", pcap)
	if code != 0 {
		t.Fatalf("demo: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"server listening 0.0.0.0:41234",
		"server got: Some bytes from 10.0.0.2:",
		"client got the echo: Some bytes from 10.0.0.1:41234",
		"52 bytes = 10 payload + 8 UDP + 20 IPv4 + 14 Ethernet",
		`server got "hello LAN" from 10.0.0.2:`,
		`small  got "hello LAN" from 10.0.0.2:`,
		"4 frames to ff:ff:ff:ff:ff:ff",
		`1400 bytes to small: dropped by lan/port3 (reason "mtu"`,
		`captured as a drop on small/eth0: "dgramlab: dropped: mtu (link small/eth0, inbound)"`,
		"1400 bytes to peer: delivered (1442-byte frame)",
		"65507 bytes to peer: delivered, reassembled from 45 IPv4 fragments",
		"65508 bytes to peer: send EMSGSIZE 10.0.0.3:41236",
		"DROP REASON",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, stdout)
		}
	}
	// inspect reads the same capture back.
	code, out, errOut := runCLI(t, "inspect", pcap)
	if code != 0 || !strings.Contains(out, "mtu          1       1442") {
		t.Fatalf("inspect: exit %d\n%s%s", code, out, errOut)
	}
	for _, args := range [][]string{{"--json", pcap}, {pcap, "--json"}, {"--json", "--", pcap}} {
		code, out, errOut = runCLI(t, append([]string{"inspect"}, args...)...)
		if code != 0 || !strings.Contains(out, `"reason": "mtu"`) {
			t.Fatalf("inspect %q: exit %d\n%s%s", args, code, out, errOut)
		}
	}
}

// TestDemoNoPcap: --pcap ” writes nothing.
func TestDemoNoPcap(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir) // where the default capture file would go
	code, stdout, stderr := runCLI(t, "demo", "--pcap", "")
	if code != 0 || strings.Contains(stdout, "capture written") {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("demo --pcap '' wrote %v", entries)
	}
}

// A capture that cannot be written is an error before anything runs.
func TestDemoBadPcapPath(t *testing.T) {
	code, stdout, stderr := runCLI(t, "demo", "--pcap", filepath.Join(t.TempDir(), "no", "such", "dir", "x.pcapng"))
	if code != 1 || !strings.Contains(stderr, "cannot write the capture") || stdout != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// inspect on bad files: a clear error naming the file and offset, exit 1.
func TestInspectBadFiles(t *testing.T) {
	dir := t.TempDir()
	pcap := filepath.Join(dir, "demo.pcapng")
	if code, _, stderr := runCLI(t, "demo", "--pcap", pcap); code != 0 {
		t.Fatal(stderr)
	}
	data, err := os.ReadFile(pcap)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.pcapng")
	os.WriteFile(truncated, data[:len(data)/2], 0o644)
	text := filepath.Join(dir, "notes.txt")
	os.WriteFile(text, []byte("this is not a capture\n"), 0o644)
	for _, c := range []struct{ file, want string }{
		{truncated, "at byte"},
		{text, "at byte 0"},
		{filepath.Join(dir, "missing.pcap"), "no such file"},
	} {
		code, _, stderr := runCLI(t, "inspect", c.file)
		if code != 1 || !strings.Contains(stderr, c.want) || !strings.Contains(stderr, filepath.Base(c.file)) {
			t.Errorf("inspect %s: exit %d, stderr %q; want exit 1 naming the file and %q", filepath.Base(c.file), code, stderr, c.want)
		}
	}
}

// TestDemoPcapInTshark is issue 3's acceptance test: tshark opens the
// demo's capture without warnings, decodes the UDP frames on 41234, sees the
// broadcast, reassembles the 65507-byte datagram and shows the drop comment.
func TestDemoPcapInTshark(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("tshark is not installed (apt-get install tshark): skipping the Wireshark check")
	}
	pcap := filepath.Join(t.TempDir(), "demo.pcapng")
	if code, _, stderr := runCLI(t, "demo", "--pcap", pcap); code != 0 {
		t.Fatal(stderr)
	}
	query := func(filter string, fields ...string) string {
		t.Helper()
		args := []string{"-r", pcap, "-Y", filter, "-T", "fields"}
		for _, f := range fields {
			args = append(args, "-e", f)
		}
		cmd := exec.Command(tshark, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("tshark %v: %v\n%s", args, err, stderr.String())
		}
		for _, line := range strings.Split(stderr.String(), "\n") {
			if line != "" && !strings.Contains(line, "Running as user \"root\"") {
				t.Errorf("tshark warned: %s", line)
			}
		}
		return strings.TrimSpace(string(out))
	}
	if got := query("udp.port == 41234", "frame.len", "udp.length"); strings.Count(got, "\n") != 3 || !strings.Contains(got, "52\t18") {
		t.Errorf("UDP frames on 41234 (len, udp.length):\n%s", got)
	}
	if got := query("eth.dst == ff:ff:ff:ff:ff:ff && udp.dstport == 41235", "udp.length"); strings.Count(got, "17") != 4 {
		t.Errorf("broadcast frames:\n%s", got)
	}
	if got := query("udp.length == 65515", "ip.reassembled.length"); !strings.Contains(got, "65515") {
		t.Errorf("reassembled 65507-byte datagram (65515 with its UDP header): %q", got)
	}
	if got := query("frame.comment contains \"dropped: mtu\"", "frame.comment", "frame.len"); !strings.Contains(got, "dgramlab: dropped: mtu (link small/eth0") || !strings.HasSuffix(got, "1442") {
		t.Errorf("drop comment: %q", got)
	}
}
