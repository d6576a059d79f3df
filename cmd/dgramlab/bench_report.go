package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// benchReport is everything a bench run measured. It is printed as tables
// or, with --json, as it is.
type benchReport struct {
	Command     string    `json:"command"`
	Date        time.Time `json:"date"`
	CPUs        int       `json:"cpus"`
	GOMAXPROCS  int       `json:"gomaxprocs"`
	GoVersion   string    `json:"goVersion"`
	NodeVersion string    `json:"nodeVersion,omitempty"`
	OS          string    `json:"os"`
	Arch        string    `json:"arch"`
	Rounds      int       `json:"rounds"`
	Duration    string    `json:"duration"`
	Sizes       []int     `json:"sizes"`
	PingSize    int       `json:"pingSize"`
	Notes       []string  `json:"notes,omitempty"`

	OneWay   []*oneWayRow `json:"oneWay"`
	PingPong []*pingRow   `json:"pingPong"`
	Scale    []scaleRow   `json:"scale"`
	Targets  []targetRow  `json:"targets"`
}

// oneWayRun is one one-way measurement.
type oneWayRun struct {
	// Sent counts send attempts, failed ones (SendErrors) included.
	Sent       uint64 `json:"sent"`
	SendErrors uint64 `json:"sendErrors"`
	Received   uint64 `json:"received"`
	// BufferDrops counts datagrams the receiving side dropped for a full
	// receive buffer: the virtual host's counter, or the kernel's
	// RcvbufErrors (for the whole machine). Absent when unknown.
	BufferDrops *uint64 `json:"bufferDrops,omitempty"`
	// SendNs is the sending window; ElapsedNs runs from the first send to
	// the last datagram received.
	SendNs    int64 `json:"sendNs"`
	ElapsedNs int64 `json:"elapsedNs"`
	// PPS is Received / ElapsedNs; OfferedPPS is Sent / SendNs.
	PPS        float64 `json:"pps"`
	OfferedPPS float64 `json:"offeredPps"`
	// AllocsPerDgram and BytesPerDgram are the process's heap allocations
	// during the measurement per datagram sent (both ends are in the
	// process); absent for the node path.
	AllocsPerDgram *float64 `json:"allocsPerDgram,omitempty"`
	BytesPerDgram  *float64 `json:"bytesPerDgram,omitempty"`
}

// oneWayRow summarises one path at one size over the rounds.
type oneWayRow struct {
	Path string      `json:"path"`
	Size int         `json:"size"`
	Runs []oneWayRun `json:"runs"`

	MedianPPS  float64 `json:"medianPps"`
	MinPPS     float64 `json:"minPps"`
	MaxPPS     float64 `json:"maxPps"`
	OfferedPPS float64 `json:"medianOfferedPps"`
	// Sent, Received, Lost and LossPct are totals over the rounds.
	Sent        uint64   `json:"sent"`
	Received    uint64   `json:"received"`
	Lost        int64    `json:"lost"`
	LossPct     float64  `json:"lossPct"`
	BufferDrops *uint64  `json:"bufferDrops,omitempty"`
	Allocs      *float64 `json:"medianAllocsPerDgram,omitempty"`
	Bytes       *float64 `json:"medianBytesPerDgram,omitempty"`
	// Ratio is MedianPPS over the reference path's at the same size; 0
	// when the reference did not run.
	Ratio float64 `json:"ratioToKernel,omitempty"`
}

// pingRun is one ping-pong measurement.
type pingRun struct {
	RoundTrips int   `json:"roundTrips"`
	Timeouts   int   `json:"timeouts"`
	P50Ns      int64 `json:"p50Ns"`
	P99Ns      int64 `json:"p99Ns"`
}

// pingRow summarises one path's ping-pong over the rounds.
type pingRow struct {
	Path       string    `json:"path"`
	Runs       []pingRun `json:"runs"`
	P50        int64     `json:"medianP50Ns"`
	P50Min     int64     `json:"minP50Ns"`
	P50Max     int64     `json:"maxP50Ns"`
	P99        int64     `json:"medianP99Ns"`
	P99Min     int64     `json:"minP99Ns"`
	P99Max     int64     `json:"maxP99Ns"`
	RoundTrips int       `json:"roundTrips"`
	Timeouts   int       `json:"timeouts"`
	// Ratio is P50 over the reference path's P50: below 1 is faster.
	Ratio float64 `json:"p50RatioToKernel,omitempty"`
}

// targetRow is one of the targets checked against this run.
type targetRow struct {
	Target string `json:"target"`
	Value  string `json:"value"`
	Met    bool   `json:"met"`
}

// pingResult computes a ping-pong run's percentiles.
func pingResult(samples []time.Duration, timeouts int) pingRun {
	run := pingRun{RoundTrips: len(samples), Timeouts: timeouts}
	if len(samples) == 0 {
		return run
	}
	slices.Sort(samples)
	run.P50Ns = int64(percentile(samples, 0.50))
	run.P99Ns = int64(percentile(samples, 0.99))
	return run
}

// percentile returns the nearest-rank percentile of sorted values.
func percentile[T ~int64 | ~float64](sorted []T, p float64) T {
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// median returns the median of values (the mean of the two middle ones
// for an even count).
func median[T ~int64 | ~float64](values []T) T {
	s := slices.Clone(values)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// summarise fills the rows' medians, totals and ratios, and the targets.
func (rep *benchReport) summarise() {
	ref := map[int]float64{}
	for _, row := range rep.OneWay {
		var pps []float64
		var allocs, bytes []float64
		var drops uint64
		dropsKnown := len(row.Runs) > 0
		offered := make([]float64, 0, len(row.Runs))
		for _, r := range row.Runs {
			pps = append(pps, r.PPS)
			offered = append(offered, r.OfferedPPS)
			row.Sent += r.Sent
			row.Received += r.Received
			if r.AllocsPerDgram != nil {
				allocs = append(allocs, *r.AllocsPerDgram)
				bytes = append(bytes, *r.BytesPerDgram)
			}
			if r.BufferDrops != nil {
				drops += *r.BufferDrops
			} else {
				dropsKnown = false
			}
		}
		if len(pps) == 0 {
			continue
		}
		row.MedianPPS, row.MinPPS, row.MaxPPS = median(pps), slices.Min(pps), slices.Max(pps)
		row.OfferedPPS = median(offered)
		row.Lost = int64(row.Sent) - int64(row.Received)
		if row.Sent > 0 {
			row.LossPct = 100 * float64(row.Lost) / float64(row.Sent)
		}
		if dropsKnown {
			row.BufferDrops = &drops
		}
		if len(allocs) > 0 {
			a, b := median(allocs), median(bytes)
			row.Allocs, row.Bytes = &a, &b
		}
		if row.Path == refPathName {
			ref[row.Size] = row.MedianPPS
		}
	}
	for _, row := range rep.OneWay {
		if r := ref[row.Size]; r > 0 {
			row.Ratio = row.MedianPPS / r
		}
	}
	var refP50 int64
	for _, row := range rep.PingPong {
		var p50, p99 []int64
		for _, r := range row.Runs {
			row.RoundTrips += r.RoundTrips
			row.Timeouts += r.Timeouts
			if r.RoundTrips > 0 {
				p50 = append(p50, r.P50Ns)
				p99 = append(p99, r.P99Ns)
			}
		}
		if len(p50) == 0 {
			continue
		}
		row.P50, row.P50Min, row.P50Max = median(p50), slices.Min(p50), slices.Max(p50)
		row.P99, row.P99Min, row.P99Max = median(p99), slices.Min(p99), slices.Max(p99)
		if row.Path == refPathName {
			refP50 = row.P50
		}
	}
	for _, row := range rep.PingPong {
		if refP50 > 0 && row.P50 > 0 {
			row.Ratio = float64(row.P50) / float64(refP50)
		}
	}
	rep.Targets = rep.checkTargets()
}

// Targets of the performance issue.
const (
	targetDgramRatio   = 1.0
	targetConnRatio    = 1.3
	targetDgramAllocs  = 4
	targetConnAllocs   = 2
	targetScaleHosts   = 1000
	targetScaleRSS     = 1 << 30
	targetScaleStartup = 10 * time.Second
)

// checkTargets checks the targets against what ran.
func (rep *benchReport) checkTargets() []targetRow {
	var out []targetRow
	oneWay := func(path string) *oneWayRow {
		for _, r := range rep.OneWay {
			if r.Path == path && r.Size == 64 && len(r.Runs) > 0 {
				return r
			}
		}
		return nil
	}
	ping := func(path string) *pingRow {
		for _, r := range rep.PingPong {
			if r.Path == path && r.P50 > 0 {
				return r
			}
		}
		return nil
	}
	if r := oneWay("dgram/switch"); r != nil && r.Ratio > 0 {
		out = append(out, targetRow{"dgram/switch 64 B one-way >= 1.0x kernel net.UDPConn",
			fmt.Sprintf("%.3fx", r.Ratio), r.Ratio >= targetDgramRatio})
	}
	if r := oneWay("dgram/switch"); r != nil {
		out = append(out, targetRow{"dgram/switch 64 B one-way: zero loss",
			fmt.Sprintf("%s lost (%s)", lossPct(r.LossPct), dropsNote(r)), r.Lost == 0})
	}
	if r := oneWay("stack.UDPConn/switch"); r != nil && r.Ratio > 0 {
		out = append(out, targetRow{"stack.UDPConn/switch 64 B one-way >= 1.3x kernel net.UDPConn",
			fmt.Sprintf("%.3fx", r.Ratio), r.Ratio >= targetConnRatio})
	}
	for _, path := range []string{"dgram/switch", "stack.UDPConn/switch"} {
		if r := ping(path); r != nil && r.Ratio > 0 {
			out = append(out, targetRow{path + " ping-pong p50 <= kernel net.UDPConn's",
				fmt.Sprintf("%s vs %s (%.3fx)", fmtDur(r.P50), fmtDur(int64(float64(r.P50)/r.Ratio)), r.Ratio), r.Ratio <= 1})
		}
	}
	if r := oneWay("dgram/switch"); r != nil && r.Allocs != nil {
		out = append(out, targetRow{"dgram/switch allocations per datagram <= 4 (64 B one-way, whole process)",
			fmt.Sprintf("%.1f", *r.Allocs), *r.Allocs <= targetDgramAllocs+0.05})
	}
	if r := oneWay("stack.UDPConn/switch"); r != nil && r.Allocs != nil {
		out = append(out, targetRow{"stack.UDPConn/switch allocations per datagram <= 2 (64 B one-way, whole process)",
			fmt.Sprintf("%.1f", *r.Allocs), *r.Allocs <= targetConnAllocs+0.05})
	}
	for _, s := range rep.Scale {
		if s.Hosts != targetScaleHosts {
			continue
		}
		out = append(out, targetRow{"1000 hosts on one Switch: resident < 1 GiB",
			fmtBytes(float64(s.RSSBytes)), s.RSSBytes < targetScaleRSS})
		out = append(out, targetRow{"1000 hosts on one Switch: started in < 10 s",
			fmtDur(s.StartNs), time.Duration(s.StartNs) < targetScaleStartup})
	}
	return out
}

// writeText prints the report as tables.
func (rep *benchReport) writeText(w io.Writer) {
	fmt.Fprintf(w, "dgramlab bench: %s\n", rep.Command)
	fmt.Fprintf(w, "%s, %d CPUs (GOMAXPROCS %d), %s %s/%s", rep.Date.Format("2006-01-02 15:04 UTC"), rep.CPUs, rep.GOMAXPROCS, rep.GoVersion, rep.OS, rep.Arch)
	if rep.NodeVersion != "" {
		fmt.Fprintf(w, ", node %s", rep.NodeVersion)
	}
	fmt.Fprintf(w, "\n%d rounds x %s per measurement, interleaved; medians over the rounds [min-max]\n", rep.Rounds, rep.Duration)
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}

	if len(rep.OneWay) > 0 {
		fmt.Fprintf(w, "\nOne-way datagrams per second (delivered)\n")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "PATH\tSIZE\tDELIVERED/S\tMIN-MAX\tOFFERED/S\tLOSS\tBUFFER DROPS\tALLOCS/DGRAM\tB/DGRAM\tVS KERNEL")
		for _, r := range rep.OneWay {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s-%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Path, r.Size,
				fmtRate(r.MedianPPS), fmtRate(r.MinPPS), fmtRate(r.MaxPPS), fmtRate(r.OfferedPPS),
				fmt.Sprintf("%s (%d/%d)", lossPct(r.LossPct), r.Lost, r.Sent),
				optUint(r.BufferDrops), optFloat(r.Allocs, "%.1f"), optFloat(r.Bytes, "%.0f"), ratio(r.Ratio))
		}
		tw.Flush()
	}
	if len(rep.PingPong) > 0 {
		fmt.Fprintf(w, "\nPing-pong round trip, %d B\n", rep.PingSize)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "PATH\tP50\tMIN-MAX\tP99\tMIN-MAX\tROUND TRIPS\tTIMEOUTS\tP50 VS KERNEL")
		for _, r := range rep.PingPong {
			fmt.Fprintf(tw, "%s\t%s\t%s-%s\t%s\t%s-%s\t%d\t%d\t%s\n", r.Path,
				fmtDur(r.P50), fmtDur(r.P50Min), fmtDur(r.P50Max), fmtDur(r.P99), fmtDur(r.P99Min), fmtDur(r.P99Max),
				r.RoundTrips, r.Timeouts, ratio(r.Ratio))
		}
		tw.Flush()
	}
	if len(rep.Scale) > 0 {
		fmt.Fprintf(w, "\nScale: N hosts on one Switch, a dgram socket each (one Loop), one broadcast from host 0\n")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "HOSTS\tSTART\tSTART/HOST\tRSS\tRSS/HOST\tHEAP/HOST\tGOROUTINES/HOST\tBROADCAST TO ALL\tRECEIVED BY\tLEFT AFTER CLOSE")
		for _, s := range rep.Scale {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%.1f\t%s\t%d/%d\t%d goroutines\n", s.Hosts,
				fmtDur(s.StartNs), fmtDur(s.StartNs/int64(s.Hosts)), fmtBytes(float64(s.RSSBytes)),
				fmtBytes(s.RSSPerHost), fmtBytes(s.HeapPerHost), s.GoroutinesPerHost,
				fmtDur(s.BroadcastNs), s.BroadcastReceived, s.Hosts, s.GoroutinesLeft)
		}
		tw.Flush()
	}
	if len(rep.Targets) > 0 {
		fmt.Fprintf(w, "\nTargets (ratios from this run)\n")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, t := range rep.Targets {
			verdict := "MISSED"
			if t.Met {
				verdict = "met"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", verdict, t.Target, t.Value)
		}
		tw.Flush()
	}

	fmt.Fprintf(w, "\nPaths:\n")
	for _, p := range benchPaths() {
		fmt.Fprintf(w, "  %-21s %s\n", p.name, p.about)
	}
	fmt.Fprint(w, `How it is measured:
  one-way    the sender sends for the duration as fast as it can (dgram and node: batches of 32,
             the last send's callback sending the next batch); the receiver counts. When the
             sender stops, the receiver is given until all datagrams arrived or none did for 100ms.
             DELIVERED/S = received / (last receive - first send); OFFERED/S = sent / sending time;
             LOSS = (sent - received) / sent, totals over the rounds (sent counts every attempt);
             BUFFER DROPS = drops for a full receive buffer: the virtual receiver's counter, or
             the kernel's RcvbufErrors (the whole machine); ALLOCS/DGRAM and B/DGRAM = this
             process's heap allocations during the measurement per datagram sent (both ends).
             The first datagram (ARP on a Switch) is sent before the window and not counted.
  ping-pong  one datagram at a time to an echo socket; the first round trip is not counted;
             a ping with no pong within 500ms is a TIMEOUT and the next ping is sent.
             P50/P99 per round, then the median (and min-max) over the rounds.
  scale      START = create the hosts, their NICs on one Switch and bind a dgram socket each;
             RSS from /proc/self/status VmRSS and HEAP from the Go heap, after a GC that returns
             free memory to the OS, before and after; BROADCAST = one Send to 255.255.255.255
             from host 0 until every socket (host 0's own included) got it.
  Every measurement builds fresh hosts and sockets. Ratios are medians over the reference's median.
`)
}

func lossPct(p float64) string {
	switch {
	case p == 0:
		return "0%"
	case p < 0.01 && p > -0.01:
		return fmt.Sprintf("%.4f%%", p)
	default:
		return fmt.Sprintf("%.2f%%", p)
	}
}

func dropsNote(r *oneWayRow) string {
	if r.BufferDrops == nil {
		return "buffer drops unknown"
	}
	return fmt.Sprintf("%d for a full receive buffer", *r.BufferDrops)
}

func ratio(r float64) string {
	if r == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", r)
}

func optUint(v *uint64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprint(*v)
}

func optFloat(v *float64, format string) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf(format, *v)
}

// fmtRate prints a rate with a k or M suffix.
func fmtRate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

// fmtDur prints nanoseconds with three significant digits.
func fmtDur(ns int64) string {
	d := time.Duration(ns)
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	case d >= time.Microsecond:
		return fmt.Sprintf("%.1fµs", float64(d)/1e3)
	default:
		return fmt.Sprintf("%dns", ns)
	}
}

// fmtBytes prints a size in B, KiB, MiB or GiB.
func fmtBytes(b float64) string {
	neg := ""
	if b < 0 {
		neg, b = "-", -b
	}
	units := []string{"B", "KiB", "MiB", "GiB"}
	i := 0
	for b >= 1024 && i < len(units)-1 {
		b /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%s%.0f B", neg, b)
	}
	return neg + strings.TrimSuffix(fmt.Sprintf("%.1f", b), ".0") + " " + units[i]
}
