package stack

import (
	"encoding/binary"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"

	"github.com/dgramlab/dgramlab/wire"
)

// Random streams of one direction: each stage draws from its own, so that
// turning one stage on does not change the frames another one picks.
const (
	streamLoss = iota
	streamBurst
	streamDuplicate
	streamCorrupt
	streamReorder
	streamJitter
	numStreams
)

// impairDir is the impairment state of one direction of one link end.
// Frames reach it on the goroutine that moves them; delayed frames leave
// it on the scheduler's.
type impairDir struct {
	end     *linkEnd
	name    string         // the link end's name, part of the seed
	dir     wire.Direction // wire.Outbound or wire.Inbound
	idx     int            // outIdx or inIdx
	hdrLen  int            // link header bytes that corruption leaves alone
	sched   *scheduler
	deliver func(f *heldFrame) // moves a frame on; owns f.buf; no lock held

	mu       sync.Mutex
	cfg      Impairments
	seeded   bool
	rng      [numStreams]*rand.Rand
	bad      bool      // Gilbert-Elliott state
	lastDue  time.Time // due time of the last held frame (keeps FIFO)
	rateFree time.Time // when the rate limiter has sent what it holds
	tokens   float64   // token bucket, bytes
	tokensAt time.Time // when tokens was last brought up to date
	pending  int       // frames held by the scheduler
}

// initImpair makes the end's two impairment directions. deliverOut and
// deliverIn move a frame on once its impairments let it go: into the link
// (wire.Outbound) or to the host (wire.Inbound).
func (l *linkEnd) initImpair(name string, hdrLen int, sched *scheduler, deliverOut, deliverIn func(*heldFrame)) {
	l.dirs[outIdx] = &impairDir{end: l, name: name, dir: wire.Outbound, idx: outIdx, hdrLen: hdrLen, sched: sched, deliver: deliverOut}
	l.dirs[inIdx] = &impairDir{end: l, name: name, dir: wire.Inbound, idx: inIdx, hdrLen: hdrLen, sched: sched, deliver: deliverIn}
}

// setImpairments validates im and puts it in force for dir.
func (l *linkEnd) setImpairments(dir wire.Direction, im Impairments) error {
	if err := validDirection(dir); err != nil {
		return err
	}
	if err := im.Validate(); err != nil {
		return err
	}
	if im.BurstLoss != nil {
		ge := *im.BurstLoss // the caller may reuse theirs
		im.BurstLoss = &ge
	}
	for _, d := range l.dirs {
		if dir&d.dir != 0 {
			d.set(im)
		}
	}
	return nil
}

// impairments returns the settings in force for one direction (those of
// wire.Outbound for any value but wire.Inbound).
func (l *linkEnd) impairments(dir wire.Direction) Impairments {
	d := l.dirs[outIdx]
	if dir == wire.Inbound {
		d = l.dirs[inIdx]
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	im := d.cfg
	if im.BurstLoss != nil {
		ge := *im.BurstLoss
		im.BurstLoss = &ge
	}
	return im
}

// purgeImpairments drops (as wire.DropDetached) every frame the end's
// impairments hold; the end is going away.
func (l *linkEnd) purgeImpairments() {
	for _, d := range l.dirs {
		if d == nil {
			continue
		}
		frames := d.sched.purge(d)
		d.mu.Lock()
		d.pending -= len(frames)
		d.mu.Unlock()
		for i := range frames {
			l.dropHeld(&frames[i], d.dir, wire.DropDetached)
		}
	}
}

// dropHeld counts and reports a held frame as dropped, and releases it.
func (l *linkEnd) dropHeld(f *heldFrame, dir wire.Direction, reason wire.DropReason) {
	reason = l.count(reason)
	if hooks := l.hooks.Load(); hooks != nil && len(*hooks) > 0 {
		b := f.buf.Flatten()
		for _, h := range *hooks {
			h.fn(b, dir, reason)
		}
	}
	f.buf.Release()
}

func (d *impairDir) set(im Impairments) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.seeded || im.Seed != d.cfg.Seed {
		d.seeded = true
		d.bad = false
		for s := range d.rng {
			d.rng[s] = rand.New(rand.NewPCG(d.seedFor(im.Seed, s, 0), d.seedFor(im.Seed, s, 1)))
		}
	}
	d.cfg = im
	if !im.IsZero() {
		d.end.impair[d.idx].Store(d)
	} else if d.pending == 0 {
		d.end.impair[d.idx].Store(nil)
	}
	// Otherwise the held frames still go out first (FIFO), and the last
	// one's delivery clears the pointer.
}

// seedFor derives a stream's seed from the user's seed, the link end's
// name and the direction, so that links do not share streams.
func (d *impairDir) seedFor(seed int64, stream, half int) uint64 {
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(seed))
	h.Write(b[:])
	h.Write([]byte(d.name))
	h.Write([]byte{byte(d.dir), byte(stream), byte(half)}) // 1 out, 2 in: part of the seed
	return h.Sum64()
}

// process applies the impairments to one frame and delivers it now, holds
// it for later, or drops it. It owns f.buf.
func (d *impairDir) process(f heldFrame) {
	dir := d.dir
	var frames [2]heldFrame
	var held [2]bool
	var drops [2]wire.DropReason // zero: not dropped
	d.mu.Lock()
	cfg := &d.cfg
	if d.lostLocked() {
		d.mu.Unlock()
		d.end.dropHeld(&f, dir, wire.DropLoss)
		return
	}
	frames[0] = f
	n := 1
	if cfg.Duplicate > 0 && d.rng[streamDuplicate].Float64() < cfg.Duplicate {
		frames[1] = f
		frames[1].buf = f.buf.Clone()
		n = 2
		d.end.duplicated.Add(1)
	}
	if cfg.Corrupt > 0 {
		for i := range n {
			if d.rng[streamCorrupt].Float64() < cfg.Corrupt {
				d.corruptLocked(&frames[i])
			}
		}
	}
	reorder := cfg.Reorder > 0 && d.rng[streamReorder].Float64() < cfg.Reorder
	if reorder {
		d.end.reordered.Add(1)
	}
	if !reorder && (cfg.Delay > 0 || cfg.Jitter > 0 || cfg.Rate > 0 || d.pending > 0) {
		limit := cfg.QueueLimit
		if limit == 0 {
			limit = DefaultQueueLimit
		}
		now := d.sched.now()
		for i := range n {
			if d.pending >= limit {
				drops[i] = wire.DropQueueFull
				continue
			}
			due := d.rateLocked(now, frames[i].size).Add(d.delayLocked())
			if due.Before(d.lastDue) {
				due = d.lastDue
			}
			d.lastDue = due
			d.pending++
			held[i] = true
			d.sched.add(d, due, frames[i])
		}
	}
	d.mu.Unlock()
	for i := range n {
		switch {
		case drops[i] != 0:
			d.end.dropHeld(&frames[i], dir, drops[i])
		case !held[i]:
			d.deliver(&frames[i])
		}
	}
}

// deliverHeld is the scheduler's delivery of a frame that is due.
func (d *impairDir) deliverHeld(f *heldFrame) {
	d.mu.Lock()
	d.pending--
	if d.pending == 0 && d.cfg.IsZero() {
		d.end.impair[d.idx].CompareAndSwap(d, nil)
	}
	d.mu.Unlock()
	d.deliver(f)
}

// lostLocked draws whether the next frame is lost.
func (d *impairDir) lostLocked() bool {
	cfg := &d.cfg
	lost := cfg.Loss > 0 && d.rng[streamLoss].Float64() < cfg.Loss
	if ge := cfg.BurstLoss; ge != nil && (ge.P > 0 || ge.LossGood > 0) {
		r := d.rng[streamBurst]
		p := ge.LossGood
		if d.bad {
			if p = ge.LossBad; p == 0 {
				p = 1
			}
		}
		if r.Float64() < p {
			lost = true
		}
		if d.bad {
			d.bad = r.Float64() >= ge.R
		} else {
			d.bad = r.Float64() < ge.P
		}
	}
	return lost
}

// corruptLocked flips one random bit of the frame past its link header.
func (d *impairDir) corruptLocked(f *heldFrame) {
	bits := (f.size - d.hdrLen) * 8
	if bits <= 0 {
		return
	}
	b := f.buf.Flatten() // a copy: the original bytes may be shared
	f.buf.Release()
	bit := d.rng[streamCorrupt].IntN(bits)
	b[d.hdrLen+bit/8] ^= 1 << (bit % 8)
	f.buf = buffer.MakeWithData(b)
	d.end.corrupted.Add(1)
}

// rateLocked returns when a frame of size bytes arriving at now leaves the
// token bucket, and takes its tokens.
func (d *impairDir) rateLocked(now time.Time, size int) time.Time {
	rate := d.cfg.Rate
	if rate == 0 {
		return now
	}
	bytesPerSec := float64(rate) / 8
	start := now
	if d.rateFree.After(start) {
		start = d.rateFree
	}
	burst := float64(d.cfg.RateBurst)
	if d.tokensAt.IsZero() {
		d.tokens = burst
	} else {
		d.tokens = min(burst, d.tokens+start.Sub(d.tokensAt).Seconds()*bytesPerSec)
	}
	depart := start
	if need := float64(size) - d.tokens; need > 0 {
		depart = start.Add(time.Duration(math.Ceil(need / bytesPerSec * 1e9)))
		d.tokens = float64(size)
	}
	d.tokens -= float64(size)
	d.tokensAt = depart
	d.rateFree = depart
	return depart
}

// delayLocked draws a frame's delay.
func (d *impairDir) delayLocked() time.Duration {
	// Validate keeps Delay and its jitter within MaxDelay; saturate all
	// the same, so that no setting can wrap a Duration around.
	delay := min(d.cfg.Delay, MaxDelay)
	j := d.cfg.Jitter
	if j == 0 {
		return delay
	}
	r := d.rng[streamJitter]
	var x float64
	switch d.cfg.Distribution {
	case Normal:
		x = min(max(r.NormFloat64(), -normalTruncate), normalTruncate)
	case Pareto:
		// Pareto with shape 3 and scale xm has mean 1.5·xm and standard
		// deviation xm·√3/2: shift it to mean 0 and scale it to sd 1.
		const xm = 2 / 1.7320508075688772
		x = min(xm*math.Pow(1-r.Float64(), -1.0/3)-1.5*xm, paretoCap)
	default:
		x = 2*r.Float64() - 1
	}
	off := min(max(x*float64(j), -float64(MaxDelay)), float64(MaxDelay))
	delay += time.Duration(off)
	return min(max(delay, 0), MaxDelay)
}
