package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// writeText prints the report as tables.
func (rep *benchReport) writeText(w io.Writer) {
	fmt.Fprintf(w, "dgramlab bench: %s\n", rep.Command)
	fmt.Fprintf(w, "%s, %d CPUs (GOMAXPROCS %d), %s %s/%s", rep.Date.Format("2006-01-02 15:04 UTC"), rep.CPUs, rep.GOMAXPROCS, rep.GoVersion, rep.OS, rep.Arch)
	if rep.NodeVersion != "" {
		fmt.Fprintf(w, ", node %s", rep.NodeVersion)
	}
	fmt.Fprintf(w, "\nload average (1, 5, 15 min): %s at the start, %s at the end\n", orUnknown(rep.LoadStart), orUnknown(rep.LoadEnd))
	fmt.Fprintf(w, "%d rounds x %s per measurement, interleaved; medians over the rounds [min-max]\n", rep.Rounds, rep.Duration)
	if rep.Rcvbuf > 0 {
		fmt.Fprintf(w, "receive buffers: SO_RCVBUF %s asked on every one-way receiver", fmtBytes(float64(rep.Rcvbuf)))
		if rep.RmemMax > 0 {
			fmt.Fprintf(w, " (kernel rmem_max %s)", fmtBytes(float64(rep.RmemMax)))
		}
		fmt.Fprintf(w, "; kept: %s\n", rep.rcvbufKept())
	} else {
		fmt.Fprintf(w, "receive buffers: each path's default (--rcvbuf 0)\n")
	}
	if rep.Pace > 0 {
		fmt.Fprintf(w, "paced runs: each path's sender at %.0f%% of the rate it delivered at full speed in the same round\n", 100*rep.Pace)
	}
	fmt.Fprintf(w, "inconclusive rounds (%s lost, or had not delivered, more than %.0f%% when its full-speed sender stopped): %s\n",
		refPathName, rep.MaxKernelLossPct, rep.inconclusiveRounds())
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}

	if len(rep.OneWay) > 0 {
		fmt.Fprintf(w, "\nOne-way at full speed, datagrams per second (delivered)\n")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "PATH\tSIZE\tDELIVERED/S\tMIN-MAX\tOFFERED/S\tLOSS\tBUFFER DROPS\tCPU/DGRAM\tALLOCS/DGRAM\tB/DGRAM\tVS KERNEL")
		for _, r := range rep.OneWay {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s-%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Path, r.Size,
				fmtRate(r.MedianPPS), fmtRate(r.MinPPS), fmtRate(r.MaxPPS), fmtRate(r.OfferedPPS),
				fmt.Sprintf("%s (%d/%d)", lossPct(r.LossPct), r.Lost, r.Sent),
				optUint(r.BufferDrops), optNs(r.CPU), optFloat(r.Allocs, "%.2f"), optFloat(r.Bytes, "%.0f"),
				ratioCell(r.Ratio, r.RatioInconclusive, r.CleanRounds, len(r.Runs)))
		}
		tw.Flush()
	}
	if len(rep.Paced) > 0 {
		fmt.Fprintf(w, "\nOne-way paced, the zero-loss check (the receiver keeps up: loss must be 0)\n")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "PATH\tSIZE\tPACED AT\tOFFERED/S\tDELIVERED/S\tLOSS\tIN CLEAN ROUNDS\tBUFFER DROPS\tCPU/DGRAM\tALLOCS/DGRAM")
		for _, r := range rep.Paced {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Path, r.Size,
				fmtRate(r.PaceRate), fmtRate(r.OfferedPPS), fmtRate(r.MedianPPS),
				fmt.Sprintf("%s (%d/%d)", lossPct(r.LossPct), r.Lost, r.Sent),
				fmt.Sprintf("%d lost, %d of %d rounds", r.CleanLost, r.CleanRounds, len(r.Runs)),
				optUint(r.BufferDrops), optNs(r.CPU), optFloat(r.Allocs, "%.2f"))
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
				r.RoundTrips, r.Timeouts, ratioCell(r.Ratio, r.RatioInconclusive, r.CleanRounds, len(r.Runs)))
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
		fmt.Fprintf(w, "\nTargets (this run's medians of interleaved rounds; inconclusive rounds left out)\n")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, t := range rep.Targets {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", t.Verdict, t.Target, t.Value)
		}
		tw.Flush()
	}

	fmt.Fprintf(w, "\nPaths:\n")
	for _, p := range benchPaths() {
		fmt.Fprintf(w, "  %-25s %s\n", p.name, p.about)
	}
	fmt.Fprint(w, `How it is measured:
  one-way    full speed: the sender sends for the duration as fast as it can (dgram and node:
             batches of 32, the last send's callback sending the next batch); the receiver counts.
             Paced: the same, the sender spreading its datagrams evenly at a fraction (--pace) of
             what the path delivered at full speed just before, in the same round: a receiver
             that keeps up must lose nothing. When the sender stops, the receiver is given until
             all datagrams arrived or none did for 100ms. Every receiver asks for the same
             SO_RCVBUF (--rcvbuf; virtual hosts charge buffers as Linux does).
             DELIVERED/S = received / (last receive - first send); OFFERED/S = sent / sending time;
             LOSS = (sent - received) / sent, totals over the rounds (sent counts every attempt);
             BUFFER DROPS = drops for a full receive buffer: the virtual receiver's counter, or
             the kernel's RcvbufErrors (the whole machine); CPU/DGRAM = CPU time (user + system)
             per datagram sent, from the first send until the receiver is done: this process's
             (both ends; for the kernel paths the loopback softirq work may be charged
             elsewhere), the two node processes' for node; ALLOCS/DGRAM and B/DGRAM = this
             process's heap allocations per datagram sent (both ends).
             The first datagram (ARP on a Switch) is sent before the window and not counted.
  ping-pong  one datagram at a time to an echo socket; the first round trip is not counted;
             a ping with no pong within 500ms is a TIMEOUT and the next ping is sent.
             P50/P99 per round, then the median (and min-max) over the rounds.
  rounds     a round in which kernel net.UDPConn, at full speed (at any size), lost more than 20%
             of its datagrams, or had not delivered more than 20% (lost or still queued: a large
             buffer turns a starved receiver's loss into a backlog) when its sender stopped, is
             inconclusive: the machine was too busy for the kernel's receiver. Its measurements
             stay in the medians and min-max, but ratios (VS KERNEL) and targets use only the
             other rounds: "x (K/R)" when K of R rounds counted, "inconclusive" when fewer than
             half did.
  scale      START = create the hosts, their NICs on one Switch and bind a dgram socket each;
             RSS from /proc/self/status VmRSS and HEAP from the Go heap, after a GC that returns
             free memory to the OS, before and after; BROADCAST = one Send to 255.255.255.255
             from host 0 until every socket (host 0's own included) got it.
  Every measurement builds fresh hosts and sockets. A ratio is the path's median over the reference's
  median, both over the clean rounds.
`)
}

// rcvbufKept says what receive buffers the one-way receivers kept: one
// size when all kept the same, else each path's.
func (rep *benchReport) rcvbufKept() string {
	sizes := map[int][]string{}
	var order []int
	for _, r := range rep.OneWay {
		if _, ok := sizes[r.Rcvbuf]; !ok {
			order = append(order, r.Rcvbuf)
		}
		if !slices.Contains(sizes[r.Rcvbuf], r.Path) {
			sizes[r.Rcvbuf] = append(sizes[r.Rcvbuf], r.Path)
		}
	}
	switch len(order) {
	case 0:
		return "-"
	case 1:
		return fmtBytes(float64(order[0])) + " on every path (getsockopt)"
	}
	var parts []string
	for _, n := range order {
		parts = append(parts, fmt.Sprintf("%s by %s", fmtBytes(float64(n)), strings.Join(sizes[n], ", ")))
	}
	return "NOT THE SAME: " + strings.Join(parts, "; ")
}

// inconclusiveRounds lists the inconclusive rounds, or says there were
// none.
func (rep *benchReport) inconclusiveRounds() string {
	if rep.refOneWay == nil || len(rep.refOneWay) == 0 {
		return "not known (" + refPathName + " did not run)"
	}
	if len(rep.Inconclusive) == 0 {
		return "none"
	}
	var parts []string
	for _, ir := range rep.Inconclusive {
		what := "lost " + lossPct(ir.KernelLossPct)
		if ir.KernelBehindPct-ir.KernelLossPct >= 0.5 {
			what += fmt.Sprintf(", %s undelivered when the sender stopped", lossPct(ir.KernelBehindPct))
		}
		parts = append(parts, fmt.Sprintf("round %d (%s at %d B)", ir.Round, what, ir.Size))
	}
	return strings.Join(parts, ", ")
}

// ratioCell prints a ratio: "2.13x", "2.13x (4/5)" when only 4 of 5 rounds
// counted, "inconclusive", or "-" when there is no reference.
func ratioCell(r float64, inconclusive bool, clean, total int) string {
	switch {
	case inconclusive:
		return "inconclusive"
	case r == 0:
		return "-"
	case clean < total:
		return fmt.Sprintf("%.2fx (%d/%d)", r, clean, total)
	default:
		return fmt.Sprintf("%.2fx", r)
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
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

// optNs prints a duration in nanoseconds, or "-".
func optNs(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmtDur(int64(*v + 0.5))
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
