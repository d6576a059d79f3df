package main

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// meter measures what one measurement costs this process: heap allocations
// (runtime.MemStats) and CPU time (user + system, getrusage RUSAGE_SELF).
// Both are the whole process's: every goroutine, the GC and the runtime.
type meter struct {
	mallocs, bytes uint64
	cpu            time.Duration
	cpuOK          bool
}

func startMeter() meter {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := meter{mallocs: ms.Mallocs, bytes: ms.TotalAlloc}
	m.cpu, m.cpuOK = processCPU()
	return m
}

// stop records in run what the process spent since start, per datagram
// sent.
func (m meter) stop(run *oneWayRun) {
	cpu, cpuOK := processCPU()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if run.Sent == 0 {
		return
	}
	allocs := float64(ms.Mallocs-m.mallocs) / float64(run.Sent)
	bytes := float64(ms.TotalAlloc-m.bytes) / float64(run.Sent)
	run.AllocsPerDgram, run.BytesPerDgram = &allocs, &bytes
	if m.cpuOK && cpuOK {
		run.setCPU(cpu - m.cpu)
	}
}

// setCPU records cpu, spent on run's datagrams, per datagram sent.
func (run *oneWayRun) setCPU(cpu time.Duration) {
	if run.Sent == 0 || cpu < 0 {
		return
	}
	ns := float64(cpu) / float64(run.Sent)
	run.CPUNsPerDgram = &ns
}

// loadAverage returns the first three fields of /proc/loadavg (the 1, 5
// and 15 minute load averages), or "" where it cannot be read.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// kernelRmemMax returns net.core.rmem_max, the largest SO_RCVBUF an
// unprivileged socket may ask for; ok is false where it cannot be read.
func kernelRmemMax() (n int, ok bool) {
	b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		return 0, false
	}
	n, err = strconv.Atoi(strings.TrimSpace(string(b)))
	return n, err == nil && n > 0
}
