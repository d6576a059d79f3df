package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestBenchUsage(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"bench", "--rounds", "0"}, "--rounds must be at least 1"},
		{[]string{"bench", "--duration", "0s"}, "--duration must be positive"},
		{[]string{"bench", "--sizes", "64,big"}, `--sizes: "big" is not a number`},
		{[]string{"bench", "--sizes", "0"}, "--sizes: 0 is outside 1..65507"},
		{[]string{"bench", "--sizes", ","}, "--sizes is empty"},
		{[]string{"bench", "--scale", "10,-1"}, "--scale: -1 is outside"},
		{[]string{"bench", "--only", "("}, "--only: error parsing regexp"},
		{[]string{"bench", "--rcvbuf", "-1"}, "--rcvbuf must not be negative"},
		{[]string{"bench", "--pace", "1.5"}, "--pace must be within 0..1"},
		{[]string{"bench", "--only", "nothing-matches", "--no-scale"}, "matches no path"},
		{[]string{"bench", "extra"}, `unexpected argument "extra"`},
	}
	for _, c := range cases {
		code, stdout, stderr := runCLI(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) || stdout != "" {
			t.Errorf("dgramlab %q: exit %d, stdout %q, stderr %q; want exit 2 and %q", c.args, code, stdout, stderr, c.want)
		}
	}
	code, stdout, _ := runCLI(t, "bench", "--help")
	for _, flag := range []string{"-rounds", "-duration", "-sizes", "-rcvbuf", "-pace", "-only", "-scale", "-no-scale", "-node", "-json"} {
		if code != 0 || !strings.Contains(stdout, flag) {
			t.Errorf("bench --help: exit %d, lacks %s:\n%s", code, flag, stdout)
		}
	}
}

// TestBenchTable runs every path once, briefly, and checks the tables'
// shape: a row per path and size at full speed and paced, a ping-pong row
// per path, the scale row, the header's load and buffer lines. It asserts
// nothing about speed.
func TestBenchTable(t *testing.T) {
	args := []string{"bench", "--rounds", "1", "--duration", "10ms", "--sizes", "64,200", "--scale", "5"}
	_, nodeErr := exec.LookPath("node")
	if nodeErr != nil {
		t.Log("node is not installed: the node path is skipped")
	}
	// The node path writes its script to a temporary directory: keep it
	// under the test's, and check it is removed.
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	code, stdout, stderr := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("dgramlab %q: exit %d\n%s\n%s", args, code, stdout, stderr)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("bench left %d temporary file(s) behind, first %s", len(left), left[0].Name())
	}
	paths := []string{"dgram/switch", "dgram/switch+tap", "stack.UDPConn/switch", "stack.UDPConn/switch+tap",
		"stack.UDPConn/pipe", "dgram/kernel", "kernel net.UDPConn"}
	if nodeErr == nil {
		paths = append(paths, "node")
	} else if !strings.Contains(stdout, "note: node: not found on PATH") {
		t.Errorf("no note that node was skipped:\n%s", stdout)
	}
	for _, head := range []string{"load average (1, 5, 15 min): ", "receive buffers: SO_RCVBUF ", "paced runs: ", "inconclusive rounds ("} {
		if !strings.Contains(stdout, "\n"+head) {
			t.Errorf("the header lacks a line %q...:\n%s", head, stdout)
		}
	}
	if !regexp.MustCompile(`\nload average \(1, 5, 15 min\): [0-9.]+ [0-9.]+ [0-9.]+ at the start, [0-9.]+ [0-9.]+ [0-9.]+ at the end\n`).MatchString(stdout) {
		t.Errorf("no load averages in the header:\n%s", stdout)
	}
	if !strings.Contains(stdout, "kept: 8 MiB on every path (getsockopt)") && !strings.Contains(stdout, "kernel rmem_max") {
		t.Errorf("the receive buffer line does not say what the receivers kept:\n%s", stdout)
	}
	oneWay := section(t, stdout, "One-way at full speed")
	paced := section(t, stdout, "One-way paced")
	ping := section(t, stdout, "Ping-pong round trip")
	scale := section(t, stdout, "Scale:")
	for _, head := range []string{"DELIVERED/S", "MIN-MAX", "LOSS", "BUFFER DROPS", "CPU/DGRAM", "ALLOCS/DGRAM", "VS KERNEL"} {
		if !strings.Contains(oneWay[0], head) {
			t.Errorf("one-way header lacks %s: %q", head, oneWay[0])
		}
	}
	for _, head := range []string{"PACED AT", "OFFERED/S", "DELIVERED/S", "LOSS", "IN CLEAN ROUNDS", "CPU/DGRAM"} {
		if !strings.Contains(paced[0], head) {
			t.Errorf("paced header lacks %s: %q", head, paced[0])
		}
	}
	if got, want := len(oneWay)-1, 2*len(paths); got != want {
		t.Errorf("one-way table has %d rows, want %d (paths × sizes):\n%s", got, want, strings.Join(oneWay, "\n"))
	}
	if got, want := len(paced)-1, 2*len(paths); got != want {
		t.Errorf("paced table has %d rows, want %d (paths × sizes):\n%s", got, want, strings.Join(paced, "\n"))
	}
	if got, want := len(ping)-1, len(paths); got != want {
		t.Errorf("ping-pong table has %d rows, want %d:\n%s", got, want, strings.Join(ping, "\n"))
	}
	// A row: path, size, rate, min-max, offered, loss "x% (lost/sent)",
	// buffer drops, CPU per datagram (a duration, or - for node without
	// getrusage), ...
	rowRE := regexp.MustCompile(`^(\S+(?: net\.UDPConn)?)\s+(64|200)\s+\S+\s+\S+-\S+\s+\S+\s+-?[0-9.]+%\s+\(-?\d+/\d+\)\s+\d+\s+[0-9.]+(?:ns|µs|ms)\s+`)
	// A paced row: path, size, paced at, offered, delivered, loss, "N lost, K of R rounds".
	pacedRE := regexp.MustCompile(`^(\S+(?: net\.UDPConn)?)\s+(64|200)\s+\S+\s+\S+\s+\S+\s+-?[0-9.]+%\s+\(-?\d+/\d+\)\s+-?\d+ lost, [01] of 1 rounds\s+`)
	for _, p := range paths {
		for _, size := range []string{"64", "200"} {
			if !hasRow(oneWay[1:], rowRE, p, size) {
				t.Errorf("no well-formed one-way row for %s at %s bytes:\n%s", p, size, strings.Join(oneWay, "\n"))
			}
			if !hasRow(paced[1:], pacedRE, p, size) {
				t.Errorf("no well-formed paced row for %s at %s bytes:\n%s", p, size, strings.Join(paced, "\n"))
			}
		}
		if !hasPrefixRow(ping[1:], p+" ") {
			t.Errorf("no ping-pong row for %s", p)
		}
	}
	if len(scale) != 2 || !regexp.MustCompile(`^5\s.*\s5/5\s+0 goroutines$`).MatchString(scale[1]) {
		t.Errorf("scale table: want one row for 5 hosts, all receiving the broadcast, no goroutine left:\n%s", strings.Join(scale, "\n"))
	}
	targets := section(t, stdout, "Targets (")
	verdictRE := regexp.MustCompile(`^(met|MISSED|INCONCLUSIVE)\s+\S`)
	for _, line := range targets {
		if !verdictRE.MatchString(line) {
			t.Errorf("target line without a verdict: %q", line)
		}
	}
	for _, want := range []string{
		"stack.UDPConn/switch 64 B one-way >= 2.0x kernel net.UDPConn",
		"stack.UDPConn/switch 64 B one-way: zero loss while the receiver keeps up",
		"dgram/switch+tap 64 B one-way >= 1.3x kernel net.UDPConn",
		"dgram/switch+tap 64 B: the taps recorded every frame",
		"stack.UDPConn/switch ping-pong p50 <= 0.5x kernel net.UDPConn's",
		"dgram/switch allocations per datagram <= 3",
	} {
		if !strings.Contains(strings.Join(targets, "\n"), want) {
			t.Errorf("targets lack %q:\n%s", want, strings.Join(targets, "\n"))
		}
	}
	// 1400 B was not measured: no target for it.
	if strings.Contains(strings.Join(targets, "\n"), "1400 B") {
		t.Errorf("a 1400 B target without a 1400 B run:\n%s", strings.Join(targets, "\n"))
	}
	if !strings.Contains(stderr, "bench: round 1/1") {
		t.Errorf("no progress on stderr: %q", stderr)
	}
}

// TestBenchJSON checks the JSON report's accounting on two paths, at full
// speed and paced.
func TestBenchJSON(t *testing.T) {
	args := []string{"bench", "--json", "--rounds", "2", "--duration", "10ms", "--sizes", "64",
		"--only", `^(stack\.UDPConn/pipe|kernel net\.UDPConn)$`, "--scale", "3", "--node", "/nonexistent/node"}
	code, stdout, stderr := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("dgramlab %q: exit %d\n%s\n%s", args, code, stdout, stderr)
	}
	var rep benchReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("output is not a JSON report: %v\n%s", err, stdout)
	}
	if rep.Rounds != 2 || rep.Duration != "10ms" || rep.CPUs < 1 || rep.GoVersion == "" || rep.Date.IsZero() {
		t.Errorf("report header: %+v", rep)
	}
	if len(rep.Notes) == 0 || !strings.Contains(rep.Notes[0], "/nonexistent/node: no such file") {
		t.Errorf("notes = %q, want one saying node is skipped", rep.Notes)
	}
	if rep.LoadStart == "" || rep.LoadEnd == "" || rep.Pace != 0.5 || rep.Rcvbuf <= 0 || rep.MaxKernelLossPct != 20 {
		t.Errorf("report header: load %q %q, pace %v, rcvbuf %d, max kernel loss %v", rep.LoadStart, rep.LoadEnd, rep.Pace, rep.Rcvbuf, rep.MaxKernelLossPct)
	}
	if len(rep.OneWay) != 2 || len(rep.Paced) != 2 || len(rep.PingPong) != 2 {
		t.Fatalf("%d one-way, %d paced and %d ping-pong rows, want 2, 2 and 2", len(rep.OneWay), len(rep.Paced), len(rep.PingPong))
	}
	for i, row := range append(append([]*oneWayRow(nil), rep.OneWay...), rep.Paced...) {
		paced := i >= len(rep.OneWay)
		if len(row.Runs) != 2 {
			t.Errorf("%s: %d runs, want 2", row.Path, len(row.Runs))
		}
		var sent, received uint64
		for j, r := range row.Runs {
			if r.Round != j+1 || r.Sent == 0 || r.Received > r.Sent || r.AllocsPerDgram == nil || r.CPUNsPerDgram == nil || *r.CPUNsPerDgram <= 0 ||
				r.BufferDrops == nil && row.Path != refPathName || r.ReceivedBySendEnd == nil || *r.ReceivedBySendEnd > r.Received ||
				r.RcvbufBytes != 2*rep.Rcvbuf || (r.PaceRate > 0) != paced {
				t.Errorf("%s (paced %v): run %d %+v", row.Path, paced, j+1, r)
			}
			sent += r.Sent
			received += r.Received
		}
		if row.Sent != sent || row.Received != received || row.Lost != int64(sent)-int64(received) {
			t.Errorf("%s: totals sent %d received %d lost %d, want %d, %d, %d", row.Path, row.Sent, row.Received, row.Lost, sent, received, int64(sent)-int64(received))
		}
		if row.MinPPS > row.MedianPPS || row.MedianPPS > row.MaxPPS || row.CPU == nil {
			t.Errorf("%s: min %v median %v max %v cpu %v", row.Path, row.MinPPS, row.MedianPPS, row.MaxPPS, row.CPU)
		}
		// The machine may be busy enough to make a round inconclusive:
		// then there is no ratio, and it must say so.
		switch {
		case paced:
			if row.Ratio != 0 || row.PaceRate <= 0 {
				t.Errorf("paced %s: ratio %v, pace %v; want no ratio, a pace", row.Path, row.Ratio, row.PaceRate)
			}
		case row.RatioInconclusive:
			if row.Ratio != 0 || len(rep.Inconclusive) == 0 {
				t.Errorf("%s: ratio %v inconclusive, rounds %+v", row.Path, row.Ratio, rep.Inconclusive)
			}
		case row.Ratio <= 0:
			t.Errorf("%s: no ratio", row.Path)
		case row.Path == refPathName && row.Ratio != 1:
			t.Errorf("the reference's ratio is %v, want 1", row.Ratio)
		}
	}
	for _, tr := range rep.Targets {
		if tr.Met != (tr.Verdict == verdictMet) {
			t.Errorf("target %+v: met and verdict disagree", tr)
		}
	}
	for _, row := range rep.PingPong {
		if row.RoundTrips == 0 || row.P50 <= 0 || row.P50 > row.P99 || row.P50Min > row.P50 || row.P50 > row.P50Max {
			t.Errorf("ping-pong %s: %+v", row.Path, row)
		}
	}
	if len(rep.Scale) != 1 || rep.Scale[0].Hosts != 3 || rep.Scale[0].BroadcastReceived != 3 || rep.Scale[0].GoroutinesLeft != 0 || rep.Scale[0].RSSBytes <= 0 {
		t.Errorf("scale = %+v", rep.Scale)
	}
}

func TestPercentiles(t *testing.T) {
	var samples []time.Duration
	for i := 100; i >= 1; i-- {
		samples = append(samples, time.Duration(i))
	}
	run := pingResult(samples, 2)
	if run.P50Ns != 50 || run.P99Ns != 99 || run.RoundTrips != 100 || run.Timeouts != 2 {
		t.Errorf("pingResult(1..100) = %+v, want p50 50, p99 99", run)
	}
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median(3,1,2) = %v", m)
	}
	if m := median([]int64{4, 1, 3, 2}); m != 2 {
		t.Errorf("median(4,1,3,2) = %v (integer mean of 2 and 3)", m)
	}
	if run := pingResult(nil, 1); run.P50Ns != 0 || run.Timeouts != 1 {
		t.Errorf("pingResult(nil) = %+v", run)
	}
}

// section returns the header line and the rows of the table under title.
func section(t *testing.T, out, title string) []string {
	t.Helper()
	i := strings.Index(out, "\n"+title)
	if i < 0 {
		t.Fatalf("no %q table in:\n%s", title, out)
	}
	lines := strings.Split(out[i+1:], "\n")[1:]
	for j, l := range lines {
		if strings.TrimSpace(l) == "" {
			return lines[:j]
		}
	}
	return lines
}

func hasRow(rows []string, re *regexp.Regexp, path, size string) bool {
	for _, r := range rows {
		if m := re.FindStringSubmatch(r); m != nil && m[1] == path && m[2] == size {
			return true
		}
	}
	return false
}

func hasPrefixRow(rows []string, prefix string) bool {
	for _, r := range rows {
		if strings.HasPrefix(r, prefix) {
			return true
		}
	}
	return false
}
