package main

import (
	"slices"
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
	// LoadStart and LoadEnd are /proc/loadavg's 1, 5 and 15 minute load
	// averages when the run started and when it ended; empty where
	// unknown.
	LoadStart string   `json:"loadAvgStart,omitempty"`
	LoadEnd   string   `json:"loadAvgEnd,omitempty"`
	Rounds    int      `json:"rounds"`
	Duration  string   `json:"duration"`
	Sizes     []int    `json:"sizes"`
	PingSize  int      `json:"pingSize"`
	Notes     []string `json:"notes,omitempty"`
	// Rcvbuf is the SO_RCVBUF every one-way receiver asked for (each
	// row's rcvbufBytes is what it kept); 0 when each kept its default.
	Rcvbuf int `json:"rcvbufAsked"`
	// RmemMax is the kernel's net.core.rmem_max, which caps Rcvbuf; 0
	// where unknown.
	RmemMax int `json:"rmemMax,omitempty"`
	// Pace is the fraction of its full-speed delivered rate each path's
	// paced run offers, in the same round at the same size; 0 when no
	// paced runs were made.
	Pace float64 `json:"paceFraction"`
	// MaxKernelLossPct is the kernel loss above which a round is
	// inconclusive; Inconclusive lists those rounds.
	MaxKernelLossPct float64            `json:"maxKernelLossPct"`
	Inconclusive     []inconclusiveRun  `json:"inconclusive,omitempty"`
	OneWay           []*oneWayRow       `json:"oneWay"`
	Paced            []*oneWayRow       `json:"paced,omitempty"`
	PingPong         []*pingRow         `json:"pingPong"`
	Scale            []scaleRow         `json:"scale"`
	Targets          []targetRow        `json:"targets"`
	inconclusive     map[int]bool       // rounds, from Inconclusive
	refOneWay        map[int]*oneWayRow // the reference's full-speed rows by size
}

// inconclusiveRun is a full-speed one-way run in which the reference path
// (kernel net.UDPConn) lost more than MaxKernelLossPct of its datagrams,
// or had not yet delivered that many (lost or still queued: a large
// receive buffer turns a starved receiver's loss into a backlog) when its
// sender stopped: everything measured in its round is left out of the
// ratios and targets.
type inconclusiveRun struct {
	Round         int     `json:"round"`
	Size          int     `json:"size"`
	KernelLossPct float64 `json:"kernelLossPct"`
	// KernelBehindPct is the share not delivered when the sender stopped
	// (lost or queued); at least KernelLossPct.
	KernelBehindPct float64 `json:"kernelBehindPct"`
}

// kernelShortfall returns the share of r's datagrams lost, and the share
// lost or not yet delivered when the sender stopped, in percent.
func kernelShortfall(r oneWayRun) (loss, behind float64) {
	if r.Sent == 0 {
		return 0, 0
	}
	loss = 100 * float64(int64(r.Sent)-int64(r.Received)) / float64(r.Sent)
	behind = loss
	if r.ReceivedBySendEnd != nil {
		behind = max(loss, 100*float64(int64(r.Sent)-int64(*r.ReceivedBySendEnd))/float64(r.Sent))
	}
	return loss, behind
}

// oneWayRun is one one-way measurement.
type oneWayRun struct {
	Round int `json:"round"`
	// PaceRate is the rate the sender was paced at, datagrams per second;
	// 0 at full speed.
	PaceRate float64 `json:"paceRatePps,omitempty"`
	// Sent counts send attempts, failed ones (SendErrors) included.
	Sent       uint64 `json:"sent"`
	SendErrors uint64 `json:"sendErrors"`
	Received   uint64 `json:"received"`
	// ReceivedBySendEnd counts the datagrams received by the time the
	// sender stopped; the others were lost or still queued (absent for
	// node). With a large receive buffer a starved receiver falls behind
	// instead of losing datagrams.
	ReceivedBySendEnd *uint64 `json:"receivedBySendEnd,omitempty"`
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
	// CPUNsPerDgram is CPU time (user + system) per datagram sent, from
	// the first send until the receiver is done: this process's for the
	// in-process paths (both ends), the two node processes' for node.
	// Absent where it cannot be read.
	CPUNsPerDgram *float64 `json:"cpuNsPerDgram,omitempty"`
	// RcvbufBytes is the receiver's SO_RCVBUF as getsockopt reports it,
	// when one was asked for.
	RcvbufBytes int `json:"rcvbufBytes,omitempty"`
	// TapFrames counts the frames the +tap paths' taps recorded during
	// the measurement (both hosts): two per datagram sent, plus one per
	// datagram the receiving host dropped.
	TapFrames *uint64 `json:"tapFrames,omitempty"`
}

// oneWayRow summarises one path at one size over the rounds, at full speed
// or paced.
type oneWayRow struct {
	Path string      `json:"path"`
	Size int         `json:"size"`
	Runs []oneWayRun `json:"runs"`

	MedianPPS  float64 `json:"medianPps"`
	MinPPS     float64 `json:"minPps"`
	MaxPPS     float64 `json:"maxPps"`
	OfferedPPS float64 `json:"medianOfferedPps"`
	// PaceRate is the median rate the paced runs were paced at.
	PaceRate float64 `json:"medianPaceRatePps,omitempty"`
	// Sent, Received, Lost and LossPct are totals over the rounds;
	// CleanSent and CleanLost over the rounds that were not inconclusive.
	Sent        uint64   `json:"sent"`
	Received    uint64   `json:"received"`
	Lost        int64    `json:"lost"`
	LossPct     float64  `json:"lossPct"`
	CleanSent   uint64   `json:"cleanSent"`
	CleanLost   int64    `json:"cleanLost"`
	BufferDrops *uint64  `json:"bufferDrops,omitempty"`
	Allocs      *float64 `json:"medianAllocsPerDgram,omitempty"`
	Bytes       *float64 `json:"medianBytesPerDgram,omitempty"`
	CPU         *float64 `json:"medianCpuNsPerDgram,omitempty"`
	// Rcvbuf is the receive buffer the receivers kept (the largest over
	// the rounds); 0 when none was asked for.
	Rcvbuf int `json:"rcvbufBytes,omitempty"`
	// TapFrames totals the runs' tap frames; TapShort counts runs whose
	// taps recorded fewer than two frames per datagram sent.
	TapFrames *uint64 `json:"tapFrames,omitempty"`
	TapShort  int     `json:"tapShortRuns,omitempty"`
	// CleanRounds counts the runs in rounds that were not inconclusive;
	// CleanMedianPPS is their median.
	CleanRounds    int     `json:"cleanRounds"`
	CleanMedianPPS float64 `json:"cleanMedianPps,omitempty"`
	// Ratio is CleanMedianPPS over the reference path's at the same size
	// (full speed only); 0 when the reference did not run or the ratio is
	// inconclusive (RatioInconclusive: too few clean rounds).
	Ratio             float64 `json:"ratioToKernel,omitempty"`
	RatioInconclusive bool    `json:"ratioInconclusive,omitempty"`
}

// pingRun is one ping-pong measurement.
type pingRun struct {
	Round      int   `json:"round"`
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
	// CleanRounds and CleanP50 are as in oneWayRow.
	CleanRounds int   `json:"cleanRounds"`
	CleanP50    int64 `json:"cleanMedianP50Ns,omitempty"`
	// Ratio is CleanP50 over the reference path's: below 1 is faster.
	Ratio             float64 `json:"p50RatioToKernel,omitempty"`
	RatioInconclusive bool    `json:"ratioInconclusive,omitempty"`
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

// defaultMaxKernelLossPct: a round in which the reference lost more than
// this at full speed is inconclusive. On a shared 2-core machine the
// kernel path's receiver is the first to starve when other work runs, and
// the synchronous virtual paths suffer less, so such a round overstates
// every ratio to the kernel.
const defaultMaxKernelLossPct = 20

// enoughClean reports whether clean rounds out of total are enough to
// state a ratio: at least half of them, and at least one.
func enoughClean(clean, total int) bool { return clean > 0 && 2*clean >= total }

// summarise marks the inconclusive rounds and fills the rows' medians,
// totals and ratios, and the targets.
func (rep *benchReport) summarise() {
	if rep.MaxKernelLossPct == 0 {
		rep.MaxKernelLossPct = defaultMaxKernelLossPct
	}
	rep.Inconclusive, rep.inconclusive = nil, map[int]bool{}
	rep.refOneWay = map[int]*oneWayRow{}
	for _, row := range rep.OneWay {
		if row.Path != refPathName {
			continue
		}
		rep.refOneWay[row.Size] = row
		for _, r := range row.Runs {
			if loss, behind := kernelShortfall(r); behind > rep.MaxKernelLossPct {
				rep.Inconclusive = append(rep.Inconclusive, inconclusiveRun{Round: r.Round, Size: row.Size, KernelLossPct: loss, KernelBehindPct: behind})
				rep.inconclusive[r.Round] = true
			}
		}
	}
	slices.SortFunc(rep.Inconclusive, func(a, b inconclusiveRun) int { return a.Round - b.Round })
	for _, row := range rep.OneWay {
		rep.summariseOneWay(row)
	}
	for _, row := range rep.Paced {
		rep.summariseOneWay(row)
	}
	for _, row := range rep.OneWay {
		ref := rep.refOneWay[row.Size]
		if ref == nil {
			continue
		}
		if !enoughClean(ref.CleanRounds, len(ref.Runs)) || row.CleanRounds == 0 {
			row.RatioInconclusive = true
		} else if ref.CleanMedianPPS > 0 {
			row.Ratio = row.CleanMedianPPS / ref.CleanMedianPPS
		}
	}
	var ref *pingRow
	for _, row := range rep.PingPong {
		rep.summarisePing(row)
		if row.Path == refPathName {
			ref = row
		}
	}
	for _, row := range rep.PingPong {
		if ref == nil || row.P50 == 0 {
			continue
		}
		if !enoughClean(ref.CleanRounds, len(ref.Runs)) || row.CleanRounds == 0 {
			row.RatioInconclusive = true
		} else if ref.CleanP50 > 0 {
			row.Ratio = float64(row.CleanP50) / float64(ref.CleanP50)
		}
	}
	rep.Targets = rep.checkTargets()
}

// summariseOneWay fills row's medians and totals.
func (rep *benchReport) summariseOneWay(row *oneWayRow) {
	var pps, clean, offered, pace, allocs, bytes, cpu []float64
	var drops, frames uint64
	dropsKnown, framesKnown := len(row.Runs) > 0, false
	*row = oneWayRow{Path: row.Path, Size: row.Size, Runs: row.Runs}
	for _, r := range row.Runs {
		pps = append(pps, r.PPS)
		offered = append(offered, r.OfferedPPS)
		if r.PaceRate > 0 {
			pace = append(pace, r.PaceRate)
		}
		row.Sent += r.Sent
		row.Received += r.Received
		if !rep.inconclusive[r.Round] {
			clean = append(clean, r.PPS)
			row.CleanSent += r.Sent
			row.CleanLost += int64(r.Sent) - int64(r.Received)
		}
		if r.AllocsPerDgram != nil {
			allocs = append(allocs, *r.AllocsPerDgram)
			bytes = append(bytes, *r.BytesPerDgram)
		}
		if r.CPUNsPerDgram != nil {
			cpu = append(cpu, *r.CPUNsPerDgram)
		}
		if r.BufferDrops != nil {
			drops += *r.BufferDrops
		} else {
			dropsKnown = false
		}
		if r.TapFrames != nil {
			framesKnown = true
			frames += *r.TapFrames
			if *r.TapFrames < 2*(r.Sent-r.SendErrors) {
				row.TapShort++
			}
		}
		row.Rcvbuf = max(row.Rcvbuf, r.RcvbufBytes)
	}
	if len(pps) == 0 {
		return
	}
	row.MedianPPS, row.MinPPS, row.MaxPPS = median(pps), slices.Min(pps), slices.Max(pps)
	row.OfferedPPS = median(offered)
	row.PaceRate = median(pace)
	row.CleanRounds = len(clean)
	row.CleanMedianPPS = median(clean)
	row.Lost = int64(row.Sent) - int64(row.Received)
	if row.Sent > 0 {
		row.LossPct = 100 * float64(row.Lost) / float64(row.Sent)
	}
	if dropsKnown {
		row.BufferDrops = &drops
	}
	if framesKnown {
		row.TapFrames = &frames
	}
	row.Allocs, row.Bytes, row.CPU = optMedian(allocs), optMedian(bytes), optMedian(cpu)
}

// summarisePing fills row's medians and totals.
func (rep *benchReport) summarisePing(row *pingRow) {
	var p50, p99, clean []int64
	*row = pingRow{Path: row.Path, Runs: row.Runs}
	for _, r := range row.Runs {
		row.RoundTrips += r.RoundTrips
		row.Timeouts += r.Timeouts
		if r.RoundTrips == 0 {
			continue
		}
		p50 = append(p50, r.P50Ns)
		p99 = append(p99, r.P99Ns)
		if !rep.inconclusive[r.Round] {
			clean = append(clean, r.P50Ns)
		}
	}
	if len(p50) == 0 {
		return
	}
	row.P50, row.P50Min, row.P50Max = median(p50), slices.Min(p50), slices.Max(p50)
	row.P99, row.P99Min, row.P99Max = median(p99), slices.Min(p99), slices.Max(p99)
	row.CleanRounds = len(clean)
	row.CleanP50 = median(clean)
}

func optMedian(v []float64) *float64 {
	if len(v) == 0 {
		return nil
	}
	m := median(v)
	return &m
}
