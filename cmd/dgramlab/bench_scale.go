package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/dgramlab/dgramlab/dgram"
	"github.com/dgramlab/dgramlab/stack"
)

// scaleRow is one scale measurement: N hosts on one Switch.
type scaleRow struct {
	Hosts int `json:"hosts"`
	// StartNs is the time to create the hosts, attach them to the Switch
	// and bind a dgram socket on each, until the last one is listening.
	StartNs int64 `json:"startNs"`
	// RSSBytes is the process's resident memory with the hosts up;
	// RSSPerHost and HeapPerHost the growth of resident memory and of the
	// Go heap in use, per host.
	RSSBytes          int64   `json:"rssBytes"`
	RSSPerHost        float64 `json:"rssPerHostBytes"`
	HeapPerHost       float64 `json:"heapPerHostBytes"`
	GoroutinesPerHost float64 `json:"goroutinesPerHost"`
	// BroadcastNs is the time from host 0's Send to 255.255.255.255 to
	// the last 'message' on the N sockets (host 0's own included);
	// BroadcastReceived counts the sockets that got it.
	BroadcastNs       int64 `json:"broadcastNs"`
	BroadcastReceived int   `json:"broadcastReceived"`
	// GoroutinesLeft counts goroutines still running after everything was
	// closed, beyond those running before: it must be 0.
	GoroutinesLeft int `json:"goroutinesLeft"`
}

// scalePort is the port every scale host's socket binds.
const scalePort = 9999

// scaleAddr is host i's address: 10.0.0.1/16 onwards (a /24 holds only 254
// hosts).
func scaleAddr(i int) netip.Prefix {
	k := i + 1
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(k >> 8), byte(k)}), 16)
}

// measureScale starts n hosts on one Switch, each with a dgram socket on
// one shared Loop, measures them, broadcasts once, and closes everything.
func measureScale(ctx context.Context, n int) (scaleRow, error) {
	row := scaleRow{Hosts: n}
	settleMemory()
	g0 := runtime.NumGoroutine()
	rss0, err := residentBytes()
	if err != nil {
		return row, err
	}
	heap0 := heapInUse()

	sw := stack.NewSwitch(stack.SwitchOptions{Name: "scale"})
	loop := dgram.NewLoop(nil)
	release := loop.Hold()
	runDone := make(chan error, 1)
	go func() { runDone <- loop.Run(ctx) }()

	var (
		hosts = make([]*stack.Host, 0, n)
		socks = make([]*dgram.Socket, 0, n)
		// Used on the loop only, until runDone.
		listening, received int
		bcastStart          time.Time
		allListening        = make(chan struct{})
		allReceived         = make(chan time.Duration, 1)
	)
	closed, runReturned := false, false
	closeAll := func() error {
		if closed {
			return nil
		}
		closed = true
		for _, s := range socks {
			s.Close(nil)
		}
		release()
		var err error
		if !runReturned {
			err = <-runDone
		}
		for _, h := range hosts {
			h.Close()
		}
		return err
	}
	defer closeAll()
	onMessage := func(msg []byte, _ dgram.RemoteInfo) {
		if len(msg) == 1 && msg[0] == 'B' {
			received++
			if received == n {
				allReceived <- time.Since(bcastStart)
			}
		}
	}
	onListening := func() {
		listening++
		if listening == n {
			close(allListening)
		}
	}

	start := time.Now()
	for i := 0; i < n; i++ {
		h, err := stack.NewHost(stack.HostOptions{Name: "h" + strconv.Itoa(i)})
		if err != nil {
			return row, err
		}
		hosts = append(hosts, h)
		port, err := sw.NewPort(stack.PortOptions{})
		if err != nil {
			return row, err
		}
		if _, err := h.AddNIC(port, stack.NICOptions{Addresses: []netip.Prefix{scaleAddr(i)}}); err != nil {
			return row, err
		}
		s, err := loop.CreateSocketWith(dgram.SocketOptions{Type: dgram.UDP4, Network: h}, onMessage)
		if err != nil {
			return row, err
		}
		socks = append(socks, s)
		s.OnListening(onListening)
		if err := s.Bind(scalePort, "", nil); err != nil {
			return row, err
		}
	}
	timeout := time.NewTimer(setupTimeout + time.Duration(n)*10*time.Millisecond)
	defer timeout.Stop()
	select {
	case <-allListening:
	case err := <-runDone:
		runReturned = true
		return row, fmt.Errorf("binding: %v", err)
	case <-timeout.C:
		return row, errors.New("binding timed out")
	case <-ctx.Done():
		return row, ctx.Err()
	}
	row.StartNs = int64(time.Since(start))

	settleMemory()
	rss1, err := residentBytes()
	if err != nil {
		return row, err
	}
	row.RSSBytes = rss1
	row.RSSPerHost = float64(rss1-rss0) / float64(n)
	row.HeapPerHost = float64(int64(heapInUse())-int64(heap0)) / float64(n)
	row.GoroutinesPerHost = float64(runtime.NumGoroutine()-g0) / float64(n)

	loop.Post(func() {
		bcastStart = time.Now()
		if err := socks[0].SetBroadcast(true); err != nil {
			panic(err) // the socket is bound: cannot fail
		}
		socks[0].Send([]byte{'B'}, scalePort, "255.255.255.255", nil)
	})
	select {
	case d := <-allReceived:
		row.BroadcastNs = int64(d)
	case <-time.After(setupTimeout):
		// Not everyone got it: BroadcastReceived says how many did.
	case <-ctx.Done():
		return row, ctx.Err()
	}
	if err := closeAll(); err != nil {
		return row, err
	}
	row.BroadcastReceived = received // the loop has returned

	// Everything is closed: the goroutines must go away.
	deadline := time.Now().Add(setupTimeout)
	for runtime.NumGoroutine() > g0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	row.GoroutinesLeft = max(0, runtime.NumGoroutine()-g0)
	return row, nil
}

// settleMemory collects garbage and returns free memory to the OS, so that
// resident memory is live memory.
func settleMemory() {
	runtime.GC()
	debug.FreeOSMemory()
}

func heapInUse() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// residentBytes reads VmRSS from /proc/self/status.
func residentBytes() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			fields := strings.Fields(rest)
			if len(fields) == 2 && fields[1] == "kB" {
				kb, err := strconv.ParseInt(fields[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, errors.New("no VmRSS in /proc/self/status")
}
