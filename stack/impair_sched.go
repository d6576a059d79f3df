package stack

import (
	"container/heap"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// heldFrame is a frame an impairment holds: its bytes (link header
// included) and what its delivery needs to rebuild a packet.
type heldFrame struct {
	buf   buffer.Buffer // owned by the frame until delivered or dropped
	size  int
	proto tcpip.NetworkProtocolNumber
	typ   tcpip.PacketType
	route stack.RouteInfo // outbound frames of an ImpairedLink only
}

// schedItem is a held frame waiting for its time.
type schedItem struct {
	due   time.Time
	seq   uint64 // breaks ties: frames due together leave in the order they came
	dir   *impairDir
	frame heldFrame
	index int
}

type schedHeap []*schedItem

func (h schedHeap) Len() int { return len(h) }
func (h schedHeap) Less(i, j int) bool {
	if !h[i].due.Equal(h[j].due) {
		return h[i].due.Before(h[j].due)
	}
	return h[i].seq < h[j].seq
}
func (h schedHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *schedHeap) Push(x any) {
	it := x.(*schedItem)
	it.index = len(*h)
	*h = append(*h, it)
}
func (h *schedHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	it.index = -1
	return it
}

// scheduler delivers held frames when they are due. A Switch has one for
// all its ports and a Pipe one for both ends, so that frames due at the
// same instant anywhere on the link leave one at a time, in the order they
// were scheduled: with a virtual clock, a scenario then puts the same
// frames on the wire in the same order on every run.
//
// It keeps one timer on its clock, armed for the earliest frame. The timer's
// callback delivers every due frame on its own goroutine (with the real
// clock, a goroutine of the time package, which is virtual inside a
// testing/synctest bubble; with a VirtualClock, the goroutine that advances
// it). When nothing is held the timer is stopped, so an idle link has no
// goroutine and no pending timer.
type scheduler struct {
	clock tcpip.Clock

	mu      sync.Mutex
	items   schedHeap
	seq     uint64
	timer   tcpip.Timer
	running bool // a callback is delivering frames
}

func newScheduler(clock tcpip.Clock) *scheduler {
	if clock == nil {
		clock = tcpip.NewStdClock()
	}
	return &scheduler{clock: clock}
}

func (s *scheduler) now() time.Time { return s.clock.Now() }

// add schedules a frame; the caller has checked the queue limit.
func (s *scheduler) add(d *impairDir, due time.Time, f heldFrame) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	it := &schedItem{due: due, seq: s.seq, dir: d, frame: f}
	heap.Push(&s.items, it)
	if !s.running && s.items[0] == it {
		s.armLocked()
	}
}

// armLocked sets the timer for the earliest frame, or stops it.
func (s *scheduler) armLocked() {
	if len(s.items) == 0 {
		if s.timer != nil {
			s.timer.Stop()
		}
		return
	}
	wait := max(s.items[0].due.Sub(s.clock.Now()), 0)
	if s.timer == nil {
		s.timer = s.clock.AfterFunc(wait, s.fire)
	} else {
		s.timer.Reset(wait)
	}
}

// fire is the timer's callback: it delivers every frame that is due, one
// at a time, holding no lock while a frame is delivered.
func (s *scheduler) fire() {
	s.mu.Lock()
	if s.running {
		// Another callback is delivering; it will rearm.
		s.mu.Unlock()
		return
	}
	s.running = true
	for len(s.items) > 0 && !s.items[0].due.After(s.clock.Now()) {
		it := heap.Pop(&s.items).(*schedItem)
		s.mu.Unlock()
		it.dir.deliverHeld(&it.frame)
		s.mu.Lock()
	}
	s.running = false
	s.armLocked()
	s.mu.Unlock()
}

// purge removes every frame held for d and returns them.
func (s *scheduler) purge(d *impairDir) []heldFrame {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []heldFrame
	kept := s.items[:0]
	for _, it := range s.items {
		if it.dir == d {
			out = append(out, it.frame)
			continue
		}
		kept = append(kept, it)
	}
	for i := len(kept); i < len(s.items); i++ {
		s.items[i] = nil
	}
	s.items = kept
	for i, it := range s.items {
		it.index = i
	}
	heap.Init(&s.items)
	if !s.running {
		s.armLocked()
	}
	return out
}
