package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// fakeRun is a one-way run of round that sent sent datagrams at pps and
// lost lost of them; every datagram not lost arrived before the sender
// stopped.
func fakeRun(round int, pps float64, sent, lost uint64) oneWayRun {
	allocs, cpu := 1.0, 2500.0
	received := sent - lost
	return oneWayRun{Round: round, Sent: sent, Received: received, ReceivedBySendEnd: &received,
		PPS: pps, OfferedPPS: pps, AllocsPerDgram: &allocs, BytesPerDgram: &allocs, CPUNsPerDgram: &cpu}
}

// fakeReport returns a report of rounds rounds at 64 B: the kernel at
// 100k/s and stack.UDPConn/switch at 250k/s, neither losing anything, and
// ping-pong p50s of 10 µs and 4 µs. Tests then spoil some rounds.
func fakeReport(rounds int) *benchReport {
	rep := &benchReport{Rounds: rounds, Pace: 0.5}
	kernel := &oneWayRow{Path: refPathName, Size: 64}
	conn := &oneWayRow{Path: "stack.UDPConn/switch", Size: 64}
	paced := &oneWayRow{Path: "stack.UDPConn/switch", Size: 64}
	kping := &pingRow{Path: refPathName}
	cping := &pingRow{Path: "stack.UDPConn/switch"}
	for r := 1; r <= rounds; r++ {
		kernel.Runs = append(kernel.Runs, fakeRun(r, 100e3, 30000, 0))
		conn.Runs = append(conn.Runs, fakeRun(r, 250e3, 75000, 0))
		p := fakeRun(r, 125e3, 37500, 0)
		p.PaceRate = 125e3
		paced.Runs = append(paced.Runs, p)
		kping.Runs = append(kping.Runs, pingRun{Round: r, RoundTrips: 100, P50Ns: 10000, P99Ns: 20000})
		cping.Runs = append(cping.Runs, pingRun{Round: r, RoundTrips: 100, P50Ns: 4000, P99Ns: 9000})
	}
	rep.OneWay = []*oneWayRow{conn, kernel}
	rep.Paced = []*oneWayRow{paced}
	rep.PingPong = []*pingRow{cping, kping}
	return rep
}

// spoil makes the kernel's round lose lost of its 30000 datagrams, at a
// rate that would change the ratio if the round counted.
func spoil(rep *benchReport, round int, lost uint64) {
	for _, row := range rep.OneWay {
		if row.Path == refPathName {
			row.Runs[round-1] = fakeRun(round, 10e3, 30000, lost)
		}
	}
}

func (rep *benchReport) target(t *testing.T, prefix string) targetRow {
	t.Helper()
	for _, tr := range rep.Targets {
		if strings.HasPrefix(tr.Target, prefix) {
			return tr
		}
	}
	t.Fatalf("no target %q in %+v", prefix, rep.Targets)
	return targetRow{}
}

// checkTarget returns an error unless tr has verdict v and a value
// matching re.
func checkTarget(tr targetRow, v verdict, re string) error {
	var errs []error
	if tr.Verdict != v || tr.Met != (v == verdictMet) {
		errs = append(errs, fmt.Errorf("verdict %v (met %v), want %v", tr.Verdict, tr.Met, v))
	}
	if !regexp.MustCompile(re).MatchString(tr.Value) {
		errs = append(errs, fmt.Errorf("value %q, want it to match %q", tr.Value, re))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("target %q: %w", tr.Target, err)
	}
	return nil
}

// TestBenchInconclusive checks the marking of rounds in which the kernel
// lost too much (or fell too far behind), and what the ratios, the targets
// and the tables then say.
func TestBenchInconclusive(t *testing.T) {
	t.Run("clean", func(t *testing.T) {
		rep := fakeReport(3)
		rep.summarise()
		if len(rep.Inconclusive) != 0 || rep.OneWay[0].Ratio != 2.5 || rep.PingPong[0].Ratio != 0.4 {
			t.Errorf("inconclusive %+v, ratios %v and %v; want none, 2.5 and 0.4", rep.Inconclusive, rep.OneWay[0].Ratio, rep.PingPong[0].Ratio)
		}
		if err := errors.Join(
			checkTarget(rep.target(t, "stack.UDPConn/switch 64 B one-way >= 2.0x"), verdictMet, `^2\.50x$`),
			checkTarget(rep.target(t, "stack.UDPConn/switch ping-pong"), verdictMet, `^4\.0µs vs 10\.0µs \(0\.40x\)$`),
			checkTarget(rep.target(t, "stack.UDPConn/switch 64 B one-way: zero loss"), verdictMet, `^0 lost of 112500, paced at 125\.0k/s \(50% of full speed\)$`),
		); err != nil {
			t.Error(err)
		}
	})
	t.Run("one of three", func(t *testing.T) {
		rep := fakeReport(3)
		spoil(rep, 2, 9000) // 30% > 20%
		rep.summarise()
		want := []inconclusiveRun{{Round: 2, Size: 64, KernelLossPct: 30, KernelBehindPct: 30}}
		if fmt.Sprint(rep.Inconclusive) != fmt.Sprint(want) {
			t.Errorf("inconclusive = %+v, want %+v", rep.Inconclusive, want)
		}
		conn := rep.OneWay[0]
		if conn.CleanRounds != 2 || conn.Ratio != 2.5 || conn.RatioInconclusive {
			t.Errorf("clean rounds %d, ratio %v (inconclusive %v); want 2, 2.5 from rounds 1 and 3", conn.CleanRounds, conn.Ratio, conn.RatioInconclusive)
		}
		if err := errors.Join(
			checkTarget(rep.target(t, "stack.UDPConn/switch 64 B one-way >= 2.0x"), verdictMet, `^2\.50x \(2 of 3 rounds\)$`),
			checkTarget(rep.target(t, "stack.UDPConn/switch ping-pong"), verdictMet, `\(0\.40x\) \(2 of 3 rounds\)$`),
		); err != nil {
			t.Error(err)
		}
		var out bytes.Buffer
		rep.writeText(&out)
		text := out.String()
		for _, want := range []string{
			"inconclusive rounds (kernel net.UDPConn lost, or had not delivered, more than 20% when its full-speed sender stopped): round 2 (lost 30.00% at 64 B)\n",
			"2.50x (2/3)\n",
			"0.40x (2/3)\n",
		} {
			if !strings.Contains(text, want) {
				t.Errorf("the report lacks %q:\n%s", want, text)
			}
		}
	})
	t.Run("two of three", func(t *testing.T) {
		rep := fakeReport(3)
		spoil(rep, 1, 9000)
		spoil(rep, 3, 12000)
		rep.summarise()
		conn := rep.OneWay[0]
		if conn.Ratio != 0 || !conn.RatioInconclusive || !rep.PingPong[0].RatioInconclusive {
			t.Errorf("ratio %v (inconclusive %v), ping-pong inconclusive %v; want no ratio", conn.Ratio, conn.RatioInconclusive, rep.PingPong[0].RatioInconclusive)
		}
		if err := errors.Join(
			checkTarget(rep.target(t, "stack.UDPConn/switch 64 B one-way >= 2.0x"), verdictInconclusive, `^inconclusive \(kernel lost 30-40% in 2 of 3 rounds\)$`),
			checkTarget(rep.target(t, "stack.UDPConn/switch ping-pong"), verdictInconclusive, `^inconclusive \(kernel lost 30-40% in 2 of 3 rounds\)$`),
			// Nothing lost in the one clean round is not enough to claim zero loss.
			checkTarget(rep.target(t, "stack.UDPConn/switch 64 B one-way: zero loss"), verdictInconclusive, `^inconclusive \(kernel lost 30-40% in 2 of 3 rounds\)$`),
		); err != nil {
			t.Error(err)
		}
		var out bytes.Buffer
		rep.writeText(&out)
		if n := strings.Count(out.String(), "  inconclusive\n"); n != 4 {
			t.Errorf("want the VS KERNEL cells of both one-way and both ping-pong rows to say inconclusive, found %d:\n%s", n, out.String())
		}
	})
	t.Run("behind", func(t *testing.T) {
		// A large buffer: the starved kernel receiver lost nothing, but
		// had a quarter of the datagrams still queued when the sender
		// stopped.
		rep := fakeReport(2)
		spoil(rep, 1, 0)
		run := &rep.OneWay[1].Runs[0]
		atEnd := run.Sent * 3 / 4
		run.ReceivedBySendEnd = &atEnd
		spoil(rep, 2, 0)
		run = &rep.OneWay[1].Runs[1]
		run.ReceivedBySendEnd = &atEnd
		rep.summarise()
		if len(rep.Inconclusive) != 2 || rep.Inconclusive[0].KernelLossPct != 0 || rep.Inconclusive[0].KernelBehindPct != 25 {
			t.Errorf("inconclusive = %+v, want rounds 1 and 2, 0%% lost, 25%% behind", rep.Inconclusive)
		}
		if err := checkTarget(rep.target(t, "stack.UDPConn/switch 64 B one-way >= 2.0x"), verdictInconclusive,
			`^inconclusive \(kernel lost 0%, 25% undelivered when its sender stopped, in 2 of 2 rounds\)$`); err != nil {
			t.Error(err)
		}
	})
	t.Run("loss in a clean round", func(t *testing.T) {
		rep := fakeReport(3)
		spoil(rep, 1, 9000)
		rep.Paced[0].Runs[1] = fakeRun(2, 125e3, 37500, 3)
		rep.Paced[0].Runs[0] = fakeRun(1, 125e3, 37500, 5) // an inconclusive round: reported apart
		rep.Paced[0].Runs[0].PaceRate, rep.Paced[0].Runs[1].PaceRate = 125e3, 125e3
		rep.summarise()
		if err := checkTarget(rep.target(t, "stack.UDPConn/switch 64 B one-way: zero loss"), verdictMissed,
			`^3 lost of 75000 in 2 clean rounds of 3, paced at 125\.0k/s \(50% of full speed\); 5 lost in inconclusive rounds$`); err != nil {
			t.Error(err)
		}
	})
}

// TestBenchTargets checks each target's threshold on made-up rows.
func TestBenchTargets(t *testing.T) {
	row := func(path string, size int, pps, allocs float64) *oneWayRow {
		r := fakeRun(1, pps, 1000, 0)
		r.AllocsPerDgram = &allocs
		if strings.HasSuffix(path, "+tap") {
			frames := uint64(2000)
			r.TapFrames = &frames
		}
		return &oneWayRow{Path: path, Size: size, Runs: []oneWayRun{r}}
	}
	rep := &benchReport{Rounds: 1}
	rep.OneWay = []*oneWayRow{
		row("stack.UDPConn/switch", 64, 200e3, 1.004), // 2.0x exactly; 1.00 allocations
		row("dgram/switch", 64, 159e3, 3.006),         // 1.59x; 3.01 allocations
		row("stack.UDPConn/switch+tap", 64, 130e3, 9),
		row("dgram/switch+tap", 64, 131e3, 9),
		row(refPathName, 64, 100e3, 0),
		row("stack.UDPConn/switch", 1400, 130e3, 1),
		row("dgram/switch", 1400, 129e3, 3),
		row(refPathName, 1400, 100e3, 0),
	}
	short := uint64(1999) // one frame missing
	rep.OneWay[3].Runs[0].TapFrames = &short
	rep.PingPong = []*pingRow{
		{Path: "stack.UDPConn/switch", Runs: []pingRun{{Round: 1, RoundTrips: 1, P50Ns: 5000}}},
		{Path: "dgram/switch", Runs: []pingRun{{Round: 1, RoundTrips: 1, P50Ns: 7100}}},
		{Path: refPathName, Runs: []pingRun{{Round: 1, RoundTrips: 1, P50Ns: 10000}}},
	}
	rep.summarise() // no paced runs: zero loss is checked at full speed
	cases := []struct {
		prefix string
		v      verdict
		value  string
	}{
		{"stack.UDPConn/switch 64 B one-way >= 2.0x", verdictMet, `^2\.00x$`},
		{"dgram/switch 64 B one-way >= 1.6x", verdictMissed, `^1\.59x$`},
		{"stack.UDPConn/switch+tap 64 B one-way >= 1.3x", verdictMet, `^1\.30x$`},
		{"dgram/switch+tap 64 B one-way >= 1.3x", verdictMet, `^1\.31x$`},
		{"dgram/switch 64 B one-way: zero loss", verdictMet, `^0 lost of 1000 at full speed \(no paced runs\)$`},
		{"stack.UDPConn/switch+tap 64 B: the taps recorded every frame", verdictMet, `^2000 frames for 1000 datagrams sent, 0 short runs$`},
		{"dgram/switch+tap 64 B: the taps recorded every frame", verdictMissed, `^1999 frames for 1000 datagrams sent, 1 short runs$`},
		{"stack.UDPConn/switch 1400 B one-way >= 1.3x", verdictMet, `^1\.30x$`},
		{"dgram/switch 1400 B one-way >= 1.3x", verdictMissed, `^1\.29x$`},
		{"stack.UDPConn/switch ping-pong p50 <= 0.5x", verdictMet, `^5\.0µs vs 10\.0µs \(0\.50x\)$`},
		{"dgram/switch ping-pong p50 <= 0.7x", verdictMissed, `^7\.1µs vs 10\.0µs \(0\.71x\)$`},
		{"stack.UDPConn/switch allocations per datagram <= 1 ", verdictMet, `^1\.00$`},
		{"dgram/switch allocations per datagram <= 3 ", verdictMissed, `^3\.01$`},
	}
	for _, c := range cases {
		if err := checkTarget(rep.target(t, c.prefix), c.v, c.value); err != nil {
			t.Error(err)
		}
	}
	if len(rep.Targets) != len(cases)+3 { // + zero loss for the other three 64 B paths
		t.Errorf("%d targets, want %d: %+v", len(rep.Targets), len(cases)+3, rep.Targets)
	}
	b, err := json.Marshal(rep.Targets[0])
	if err != nil || !strings.Contains(string(b), `"verdict":"met"`) {
		t.Errorf("json.Marshal(%+v) = %s, %v; want a verdict of \"met\"", rep.Targets[0], b, err)
	}
	var back targetRow
	if err := json.Unmarshal(b, &back); err != nil || back != rep.Targets[0] {
		t.Errorf("json.Unmarshal(%s) = %+v, %v; want %+v", b, back, err, rep.Targets[0])
	}
}

// TestBenchCPUColumn checks that CPU time per datagram is measured and
// shown beside the rates.
func TestBenchCPUColumn(t *testing.T) {
	m := startMeter()
	deadline := time.Now().Add(20 * time.Millisecond)
	for time.Now().Before(deadline) { // burn some CPU
	}
	run := oneWayRun{Sent: 1000}
	m.stop(&run)
	if run.CPUNsPerDgram == nil || *run.CPUNsPerDgram < 1e3 || *run.CPUNsPerDgram > 1e6 {
		t.Errorf("20ms of CPU over 1000 datagrams: CPUNsPerDgram = %v, want about 20µs", run.CPUNsPerDgram)
	}

	rep := fakeReport(1)
	rep.OneWay[1].Runs[0].CPUNsPerDgram = nil // a path without the measurement
	rep.summarise()
	var out bytes.Buffer
	rep.writeText(&out)
	oneWay := section(t, out.String(), "One-way at full speed")
	paced := section(t, out.String(), "One-way paced")
	col := strings.Index(oneWay[0], "CPU/DGRAM")
	if col < 0 || !strings.Contains(paced[0], "CPU/DGRAM") {
		t.Fatalf("no CPU/DGRAM column:\n%s", out.String())
	}
	pcol := strings.Index(paced[0], "CPU/DGRAM")
	for _, c := range []struct {
		header, line string
		col          int
		want         string
	}{{oneWay[0], oneWay[1], col, "2.5µs "}, {oneWay[0], oneWay[2], col, "- "}, {paced[0], paced[1], pcol, "2.5µs "}} {
		if len(c.line) <= c.col || !strings.HasPrefix(c.line[c.col:], c.want) {
			t.Errorf("want CPU/DGRAM %q:\n%s\n%s", c.want, c.header, c.line)
		}
	}
}

func TestPacer(t *testing.T) {
	p := newPacer(10000) // 10 per ms; bursts of at most 20
	if n := p.take(0, 100); n != 0 {
		t.Errorf("take(0) = %d, want 0", n)
	}
	if w := p.wait(0); w != 100*time.Microsecond {
		t.Errorf("wait(0) = %v, want 100µs", w)
	}
	if n := p.take(time.Millisecond, 100); n != 10 {
		t.Errorf("take(1ms) = %d, want 10", n)
	}
	if n := p.take(1500*time.Microsecond, 3); n != 3 {
		t.Errorf("take(1.5ms, limit 3) = %d, want 3", n)
	}
	if n := p.take(1500*time.Microsecond, 100); n != 2 {
		t.Errorf("take(1.5ms) again = %d, want the 2 left", n)
	}
	// Late by 100ms: one burst, the rest forgiven.
	if n := p.take(101500*time.Microsecond, 1000); n != 20 {
		t.Errorf("take(101.5ms) = %d, want a burst of 20", n)
	}
	if n := p.take(101500*time.Microsecond, 1000); n != 0 {
		t.Errorf("take(101.5ms) again = %d, want 0: the rest is forgiven", n)
	}
	if p := newPacer(0); p.rate != minPaceRate || p.burst != 2 {
		t.Errorf("newPacer(0) = %+v, want the minimum rate", p)
	}
}
