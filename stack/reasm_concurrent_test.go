// Reassembler tests of locking, concurrency and the real clock in a synctest bubble.

package stack

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
	"gvisor.dev/gvisor/pkg/tcpip"
)

// The drop callback runs without the lock: it can look at the reassembler
// and add to it.
func TestReassemblerDropWithoutLock(t *testing.T) {
	var r *reassembler
	var calls atomic.Int32
	r = newReassembler(reasmOptions{Drop: func(frags []fragmentRecord, reason reasmReason) {
		if !r.mu.TryLock() {
			t.Errorf("drop called with the lock held")
			return
		}
		r.mu.Unlock()
		if calls.Add(1) == 1 {
			r.add(frags[0].key, reasmFrag(false, frags[0].key, 0, true, reasmPattern(7, 0)))
		}
	}})
	defer r.close()
	key := reasmKey(false, 1, 1)
	r.add(key, reasmFrag(false, key, 0, true, reasmPattern(8, 0)))
	r.add(key, reasmFrag(false, key, 0, true, reasmPattern(8, 0)))
	if n := calls.Load(); n != 2 {
		t.Errorf("drop called %d times, want 2 (the duplicate, then the add it made)", n)
	}
}

// With the real clock in a synctest bubble, the timer times datagrams out
// and close leaves nothing behind.
func TestReassemblerRealClockInSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var got []string
		r := newReassembler(reasmOptions{Drop: func(frags []fragmentRecord, reason reasmReason) {
			mu.Lock()
			got = append(got, fmt.Sprintf("%v/%d", reason, len(frags)))
			mu.Unlock()
		}})
		key := reasmKey(false, 1, 1)
		r.add(key, reasmFrag(false, key, 0, true, reasmPattern(8, 0)))
		time.Sleep(30*time.Second - time.Nanosecond)
		synctest.Wait()
		r.add(key, reasmFrag(false, key, 8, true, reasmPattern(8, 0)))
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		r.add(reasmKey(false, 1, 2), reasmFrag(false, reasmKey(false, 1, 2), 8, true, reasmPattern(8, 0)))
		r.close()
		mu.Lock()
		defer mu.Unlock()
		if want := []string{"timeout/2", "host-closed/1"}; !slices.Equal(got, want) {
			t.Errorf("drops = %q, want %q", got, want)
		}
	})
}

func TestReassemblerConcurrent(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	defer goleak.VerifyNone(t, leaks)
	var dropped atomic.Uint64
	r := newReassembler(reasmOptions{Drop: func(frags []fragmentRecord, _ reasmReason) {
		dropped.Add(uint64(len(frags)))
	}})
	const goroutines, datagrams = 4, 300
	var added atomic.Uint64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for d := range datagrams {
				// Each goroutine has datagrams of its own (NIC g+1) and adds
				// every fragment of the shared ones (NIC 99) too.
				// Each goroutine cuts the shared ones its own way.
				key, size := reasmKey(false, tcpip.NICID(g+1), uint32(d)), 1+rng.IntN(4000)
				if d%3 == 0 {
					key, size = reasmKey(false, 99, uint32(d)), 1+d*13
				}
				payload := reasmPattern(size, byte(d))
				ps := reasmSplit(payload, 8*(1+rng.IntN(100)))
				rng.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
				for _, p := range ps {
					added.Add(1)
					whole, why := r.add(key, reasmFrag(false, key, p.offset, p.more, p.data))
					if whole != nil && (why != 0 || !bytes.Equal(whole, reasmWhole(false, key, payload))) {
						t.Errorf("add(%v) = %d bytes, %v; want the datagram", key, len(whole), why)
					}
				}
			}
		})
	}
	wg.Wait()
	r.close()
	c := r.counters()
	var drops uint64
	for _, n := range c.Dropped {
		drops += n
	}
	if c.Held != 0 || c.Mem != 0 || drops != dropped.Load() || c.Fragments+drops != added.Load() {
		t.Errorf("counters = %+v, %d reported dropped; want %d added = reassembled + dropped, nothing held",
			c, dropped.Load(), added.Load())
	}
	if c.Reassembled < goroutines*datagrams*2/3 {
		t.Errorf("reassembled %d datagrams, want at least every unshared one", c.Reassembled)
	}
}
