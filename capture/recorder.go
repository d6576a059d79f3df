package capture

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Recorder is a Sink that keeps every frame in memory, for tests. Its zero
// value is ready to use and it is safe for concurrent use.
//
// A Recorder is unbounded: it keeps every frame until Reset, which suits a
// test's few thousand frames. For long runs write to a PcapngWriter instead.
//
// Tests wait for traffic with Wait and WaitCount, which sleep until a
// matching frame is recorded (no polling) or the context ends.
type Recorder struct {
	mu     sync.Mutex
	frames []Frame
	epoch  int           // incremented by Reset
	notify chan struct{} // closed at the next Record; nil when nobody waits
}

var _ Sink = (*Recorder)(nil)

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{} }

// Record implements Sink. It appends f and wakes waiters.
func (r *Recorder) Record(f Frame) {
	r.mu.Lock()
	r.frames = append(r.frames, f)
	ch := r.notify
	r.notify = nil
	r.mu.Unlock()
	if ch != nil {
		close(ch)
	}
}

// Frames returns a copy of the list of frames recorded so far, oldest
// first. The frames' Data is shared and must not be modified.
func (r *Recorder) Frames() []Frame {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Frame(nil), r.frames...)
}

// Len returns the number of frames recorded so far.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.frames)
}

// Reset forgets every frame. Waiters keep waiting, for frames recorded
// after the reset.
func (r *Recorder) Reset() {
	r.mu.Lock()
	r.frames = nil
	r.epoch++
	ch := r.notify
	r.notify = nil
	r.mu.Unlock()
	if ch != nil {
		close(ch)
	}
}

// Wait returns the first recorded frame that m matches, waiting for it if
// needed. It fails with a *WaitError when ctx ends first.
func (r *Recorder) Wait(ctx context.Context, m Matcher) (Frame, error) {
	fs, err := r.WaitCount(ctx, m, 1)
	if err != nil {
		return Frame{}, err
	}
	return fs[0], nil
}

// WaitCount waits until m matches n recorded frames and returns the first
// n of them, oldest first. Frames recorded before the call count. It fails
// with a *WaitError, which holds every frame recorded so far, when ctx ends
// first.
func (r *Recorder) WaitCount(ctx context.Context, m Matcher, n int) ([]Frame, error) {
	if ctx == nil || m == nil {
		return nil, errors.New("capture: WaitCount needs a context and a matcher, not nil")
	}
	var (
		matched []Frame
		next    int // index of the next frame to look at
		epoch   int
	)
	r.mu.Lock()
	epoch = r.epoch
	for {
		if r.epoch != epoch {
			matched, next, epoch = nil, 0, r.epoch
		}
		for ; next < len(r.frames) && len(matched) < n; next++ {
			if m.Match(r.frames[next]) {
				matched = append(matched, r.frames[next])
			}
		}
		if len(matched) >= n {
			r.mu.Unlock()
			return matched, nil
		}
		if r.notify == nil {
			r.notify = make(chan struct{})
		}
		ch := r.notify
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, &WaitError{
				Matcher: m.String(),
				Want:    n,
				Got:     len(matched),
				Frames:  r.Frames(),
				Err:     ctx.Err(),
			}
		}
		r.mu.Lock()
	}
}

// WaitError is returned by Recorder.Wait and WaitCount when the context
// ends before enough frames matched.
type WaitError struct {
	Matcher   string  // the matcher's description
	Want, Got int     // frames wanted and matched
	Frames    []Frame // every frame recorded when the wait ended
	Err       error   // the context's error
}

// Error returns a one-line summary; the frames are in e.Frames.
func (e *WaitError) Error() string {
	return fmt.Sprintf("capture: waiting for %d frame(s) matching %s: %d matched among %d recorded: %v",
		e.Want, e.Matcher, e.Got, len(e.Frames), e.Err)
}

// Unwrap returns the context's error, so errors.Is(err,
// context.DeadlineExceeded) works.
func (e *WaitError) Unwrap() error { return e.Err }
