package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// verdict is how a target fared in a run.
type verdict int

const (
	verdictMissed verdict = iota
	verdictMet
	// verdictInconclusive: too many of the run's rounds were inconclusive
	// (the kernel reference lost too much) to judge.
	verdictInconclusive
)

var verdictNames = [...]string{verdictMissed: "MISSED", verdictMet: "met", verdictInconclusive: "INCONCLUSIVE"}

func (v verdict) String() string {
	if v >= 0 && int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return fmt.Sprintf("verdict(%d)", int(v))
}

// MarshalText implements encoding.TextMarshaler: "met", "missed" or
// "inconclusive".
func (v verdict) MarshalText() ([]byte, error) {
	if v < 0 || int(v) >= len(verdictNames) {
		return nil, fmt.Errorf("bad verdict %d", int(v))
	}
	return []byte(strings.ToLower(v.String())), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (v *verdict) UnmarshalText(b []byte) error {
	for i, name := range verdictNames {
		if strings.EqualFold(string(b), name) {
			*v = verdict(i)
			return nil
		}
	}
	return fmt.Errorf("unknown verdict %q", b)
}

// targetRow is one of the targets checked against this run. Met is
// Verdict == met, kept for readers of older reports.
type targetRow struct {
	Target  string  `json:"target"`
	Value   string  `json:"value"`
	Met     bool    `json:"met"`
	Verdict verdict `json:"verdict"`
}

func newTarget(target, value string, v verdict) targetRow {
	return targetRow{Target: target, Value: value, Met: v == verdictMet, Verdict: v}
}

func metIf(ok bool) verdict {
	if ok {
		return verdictMet
	}
	return verdictMissed
}

// Targets of the performance issue: throughput ratios to kernel
// net.UDPConn (64 B over a Switch, the same with capture taps, 1400 B),
// ping-pong p50 ratios, and heap allocations per datagram end to end.
var (
	targetOneWay = []struct {
		path  string
		size  int
		ratio float64
	}{
		{"stack.UDPConn/switch", 64, 2.0},
		{"dgram/switch", 64, 1.6},
		{"stack.UDPConn/switch+tap", 64, 1.3},
		{"dgram/switch+tap", 64, 1.3},
		{"stack.UDPConn/switch", 1400, 1.3},
		{"dgram/switch", 1400, 1.3},
	}
	targetPing = []struct {
		path  string
		ratio float64
	}{
		{"stack.UDPConn/switch", 0.5},
		{"dgram/switch", 0.7},
	}
	targetAllocs = []struct {
		path   string
		allocs float64
	}{
		{"stack.UDPConn/switch", 1},
		{"dgram/switch", 3},
	}
)

// checkTargets checks the targets against what ran. Ratios come
// from the rounds that were not inconclusive; a target whose path or
// reference did not run is left out.
func (rep *benchReport) checkTargets() []targetRow {
	var out []targetRow
	find := func(rows []*oneWayRow, path string, size int) *oneWayRow {
		for _, r := range rows {
			if r.Path == path && r.Size == size && len(r.Runs) > 0 {
				return r
			}
		}
		return nil
	}
	for _, t := range targetOneWay {
		r, ref := find(rep.OneWay, t.path, t.size), rep.refOneWay[t.size]
		if r == nil || ref == nil {
			continue
		}
		name := fmt.Sprintf("%s %d B one-way >= %.1fx kernel net.UDPConn", t.path, t.size, t.ratio)
		if r.RatioInconclusive {
			out = append(out, newTarget(name, rep.inconclusiveNote(ref.Runs), verdictInconclusive))
		} else {
			out = append(out, newTarget(name, fmt.Sprintf("%.2fx%s", r.Ratio, roundsNote(r.CleanRounds, len(r.Runs))),
				metIf(r.Ratio >= t.ratio)))
		}
		if t.size == 64 {
			out = append(out, rep.zeroLossTarget(t.path, t.size, ref))
			if r.TapFrames != nil {
				out = append(out, newTarget(fmt.Sprintf("%s %d B: the taps recorded every frame", t.path, t.size),
					fmt.Sprintf("%d frames for %d datagrams sent, %d short runs", *r.TapFrames, r.Sent, r.TapShort),
					metIf(r.TapShort == 0)))
			}
		}
	}
	var refPing *pingRow
	for _, r := range rep.PingPong {
		if r.Path == refPathName && r.P50 > 0 {
			refPing = r
		}
	}
	for _, t := range targetPing {
		for _, r := range rep.PingPong {
			if r.Path != t.path || r.P50 == 0 || refPing == nil {
				continue
			}
			name := fmt.Sprintf("%s ping-pong p50 <= %.1fx kernel net.UDPConn's", t.path, t.ratio)
			if r.RatioInconclusive {
				out = append(out, newTarget(name, rep.inconclusiveNote(rep.refOneWayRuns()), verdictInconclusive))
				continue
			}
			out = append(out, newTarget(name, fmt.Sprintf("%s vs %s (%.2fx)%s", fmtDur(r.CleanP50), fmtDur(refPing.CleanP50),
				r.Ratio, roundsNote(r.CleanRounds, len(r.Runs))), metIf(r.Ratio <= t.ratio)))
		}
	}
	for _, t := range targetAllocs {
		r := find(rep.OneWay, t.path, 64)
		if r == nil || r.Allocs == nil {
			continue
		}
		// The value is printed to two decimals: a target is met when the
		// printed value is.
		out = append(out, newTarget(
			fmt.Sprintf("%s allocations per datagram <= %g (64 B one-way at full speed, whole process)", t.path, t.allocs),
			fmt.Sprintf("%.2f", *r.Allocs), metIf(math.Round(*r.Allocs*100) <= t.allocs*100)))
	}
	return out
}

// zeroLossTarget checks that path lost nothing at size while its receiver
// kept up: in its paced runs of the clean rounds (at full speed when there
// were no paced runs).
func (rep *benchReport) zeroLossTarget(path string, size int, ref *oneWayRow) targetRow {
	var r *oneWayRow
	rows := rep.OneWay
	if rep.Pace > 0 {
		rows = rep.Paced
	}
	for _, row := range rows {
		if row.Path == path && row.Size == size {
			r = row
		}
	}
	name := fmt.Sprintf("%s %d B one-way: zero loss while the receiver keeps up", path, size)
	if r == nil || len(r.Runs) == 0 {
		return newTarget(name, "not measured", verdictMissed)
	}
	if r.CleanLost == 0 && !enoughClean(ref.CleanRounds, len(ref.Runs)) {
		return newTarget(name, rep.inconclusiveNote(ref.Runs), verdictInconclusive)
	}
	value := fmt.Sprintf("%d lost of %d", r.CleanLost, r.CleanSent)
	if r.CleanRounds < len(r.Runs) {
		value += fmt.Sprintf(" in %d clean rounds of %d", r.CleanRounds, len(r.Runs))
	}
	if rep.Pace > 0 {
		value += fmt.Sprintf(", paced at %s/s (%.0f%% of full speed)", fmtRate(r.PaceRate), 100*rep.Pace)
	} else {
		value += " at full speed (no paced runs)"
	}
	if d := r.Lost - r.CleanLost; d != 0 {
		value += fmt.Sprintf("; %d lost in inconclusive rounds", d)
	}
	return newTarget(name, value, metIf(r.CleanLost == 0 && r.CleanSent > 0))
}

// refOneWayRuns returns the reference's full-speed runs at every size.
func (rep *benchReport) refOneWayRuns() []oneWayRun {
	var runs []oneWayRun
	for _, row := range rep.OneWay {
		if row.Path == refPathName {
			runs = append(runs, row.Runs...)
		}
	}
	return runs
}

// inconclusiveNote says why a ratio from refRuns' rounds is not stated:
// "inconclusive (kernel lost 31-45% in 3 of 5 rounds)", or, when the
// kernel fell behind more than it lost, "inconclusive (kernel lost 0-2%,
// 35-41% undelivered when its sender stopped, in 3 of 5 rounds)".
func (rep *benchReport) inconclusiveNote(refRuns []oneWayRun) string {
	rounds := map[int]bool{}
	for _, r := range refRuns {
		rounds[r.Round] = true
	}
	bad := map[int]bool{}
	var loss, behind []float64
	for _, ir := range rep.Inconclusive {
		if rounds[ir.Round] {
			bad[ir.Round] = true
			loss = append(loss, ir.KernelLossPct)
			behind = append(behind, ir.KernelBehindPct)
		}
	}
	if len(bad) == 0 {
		return "inconclusive"
	}
	what := "lost " + pctRange(loss)
	if pctRange(loss) != pctRange(behind) {
		what += ", " + pctRange(behind) + " undelivered when its sender stopped,"
	}
	return fmt.Sprintf("inconclusive (kernel %s in %d of %d rounds)", what, len(bad), len(rounds))
}

// pctRange prints percentages as "31%" or "31-45%".
func pctRange(v []float64) string {
	lo, hi := fmt.Sprintf("%.0f", slices.Min(v)), fmt.Sprintf("%.0f", slices.Max(v))
	if lo == hi {
		return lo + "%"
	}
	return lo + "-" + hi + "%"
}

// roundsNote is empty when every round counted, else " (K of R rounds)".
func roundsNote(clean, total int) string {
	if clean == total {
		return ""
	}
	return fmt.Sprintf(" (%d of %d rounds)", clean, total)
}
