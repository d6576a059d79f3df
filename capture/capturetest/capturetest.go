// Package capturetest holds test helpers over package capture: count
// expectations and waits that fail the test with a listing of every frame
// seen, and a pcapng dump of a Recorder when a test fails.
package capturetest

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgramlab/dgramlab/capture"
)

// WaitTimeout bounds WaitFor and WaitForCount. It is long: a wait only
// times out when the frames never come, and the failure then lists every
// frame recorded.
var WaitTimeout = 10 * time.Second

// Expect fails the test unless m matches exactly want of frames. The
// failure message lists every frame, one per line, the matching ones
// marked with '*'.
func Expect(t testing.TB, frames []capture.Frame, m capture.Matcher, want int) {
	t.Helper()
	if err := capture.CheckCount(frames, m, want); err != nil {
		t.Error(err)
	}
}

// ExpectNone fails the test if m matches any of frames.
func ExpectNone(t testing.TB, frames []capture.Frame, m capture.Matcher) {
	t.Helper()
	Expect(t, frames, m, 0)
}

// WaitFor waits until rec holds a frame m matches and returns the first
// one. It stops the test (t.Fatal) with the frames seen when the test's
// context ends or WaitTimeout passes first.
func WaitFor(t testing.TB, rec *capture.Recorder, m capture.Matcher) capture.Frame {
	t.Helper()
	return WaitForCount(t, rec, m, 1)[0]
}

// WaitForCount waits until m matches n frames of rec and returns the first
// n. It stops the test with the frames seen when the test's context ends or
// WaitTimeout passes first.
func WaitForCount(t testing.TB, rec *capture.Recorder, m capture.Matcher, n int) []capture.Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), WaitTimeout)
	defer cancel()
	fs, err := rec.WaitCount(ctx, m, n)
	if err != nil {
		t.Fatalf("%v\n%s", err, capture.Listing(rec.Frames(), m))
	}
	return fs
}

// ExpectReassembled puts together the IP fragments among the frames m
// matches (see capture.Reassemble) and fails the test unless there is at
// least one datagram and every one is a complete UDP datagram with a
// payload of size bytes. It returns the datagrams. Pass capture.All() as m
// to consider every frame; a datagram seen by two taps counts once per
// tap.
func ExpectReassembled(t testing.TB, frames []capture.Frame, m capture.Matcher, size int) []capture.Datagram {
	t.Helper()
	sel := capture.Filter(frames, m)
	ds := capture.Reassemble(sel)
	var bad []string
	for _, d := range ds {
		if got := d.UDPPayloadLen(); got != size {
			bad = append(bad, fmt.Sprintf("  %s %s %v>%v id=%d: %d fragments, complete=%v, udp payload %d",
				d.Link, d.Dir, d.Src, d.Dst, d.ID, d.Fragments, d.Complete, got))
		}
	}
	if len(ds) == 0 || len(bad) > 0 {
		t.Errorf("fragmented UDP datagrams matching %s: want every one complete with a %d-byte payload, found %d datagram(s)\n%s\nframes:\n%s",
			m, size, len(ds), strings.Join(bad, "\n"), capture.Listing(frames, capture.All(m, capture.Fragment())))
	}
	return ds
}

// DumpOnFailure registers a cleanup that, if the test failed, writes every
// frame rec holds to a pcapng file in t.ArtifactDir() (kept with go test
// -artifacts) and logs its path.
func DumpOnFailure(t testing.TB, rec *capture.Recorder) {
	t.Helper()
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		path := filepath.Join(t.ArtifactDir(), "frames.pcapng")
		w, err := capture.CreatePcapngFile(path)
		if err != nil {
			t.Logf("capturetest: cannot dump frames: %v", err)
			return
		}
		for _, f := range rec.Frames() {
			w.Record(f)
		}
		if err := w.Close(); err != nil {
			t.Logf("capturetest: cannot dump frames: %v", err)
			return
		}
		t.Logf("capturetest: %d frames written to %s", rec.Len(), path)
	})
}
