package capture

import (
	"fmt"
	"strings"
)

// Matcher selects frames. Matchers compose with All, Any and Not; the
// predicates in this package decode a frame's headers with gopacket's
// layers (at most once per frame inside All, Any and Not).
//
// Match may be called with the Recorder's lock held: it must not call
// back into the Recorder.
type Matcher interface {
	// Match reports whether f is selected.
	Match(f Frame) bool
	// String describes the matcher for failure messages, e.g.
	// "outbound and udp dst port 53".
	String() string
}

// lazyInfo decodes a frame's headers the first time they are needed.
type lazyInfo struct {
	f    *Frame
	info Info
	done bool
}

func (l *lazyInfo) get() *Info {
	if !l.done {
		l.info, l.done = l.f.Info(), true
	}
	return &l.info
}

// infoMatcher is implemented by this package's matchers so that a
// composite decodes a frame once.
type infoMatcher interface {
	matchLazy(l *lazyInfo) bool
}

func matchLazy(m Matcher, l *lazyInfo) bool {
	if im, ok := m.(infoMatcher); ok {
		return im.matchLazy(l)
	}
	return m.Match(*l.f)
}

// pred is a leaf matcher.
type pred struct {
	desc string
	fn   func(f *Frame, l *lazyInfo) bool
}

func (p pred) Match(f Frame) bool         { return p.matchLazy(&lazyInfo{f: &f}) }
func (p pred) matchLazy(l *lazyInfo) bool { return p.fn(l.f, l) }
func (p pred) String() string             { return p.desc }

// Func returns a Matcher that calls fn; desc describes it in failures.
func Func(desc string, fn func(f Frame) bool) Matcher {
	return pred{desc, func(f *Frame, _ *lazyInfo) bool { return fn(*f) }}
}

// frameMatcher builds a predicate on the frame's own fields.
func frameMatcher(desc string, fn func(f *Frame) bool) Matcher {
	return pred{desc, func(f *Frame, _ *lazyInfo) bool { return fn(f) }}
}

// infoPred builds a predicate on the decoded headers.
func infoPred(desc string, fn func(i *Info) bool) Matcher {
	return pred{desc, func(_ *Frame, l *lazyInfo) bool { return fn(l.get()) }}
}

type all []Matcher
type anyOf []Matcher
type not struct{ m Matcher }

// All matches frames that every m matches; All() matches every frame.
func All(ms ...Matcher) Matcher { return all(ms) }

// Any matches frames that at least one m matches; Any() matches none.
func Any(ms ...Matcher) Matcher { return anyOf(ms) }

// Not matches frames that m does not match.
func Not(m Matcher) Matcher { return not{m} }

func (a all) Match(f Frame) bool { return a.matchLazy(&lazyInfo{f: &f}) }
func (a all) matchLazy(l *lazyInfo) bool {
	for _, m := range a {
		if !matchLazy(m, l) {
			return false
		}
	}
	return true
}
func (a all) String() string {
	if len(a) == 0 {
		return "any frame"
	}
	return join(a, " and ")
}

func (a anyOf) Match(f Frame) bool { return a.matchLazy(&lazyInfo{f: &f}) }
func (a anyOf) matchLazy(l *lazyInfo) bool {
	for _, m := range a {
		if matchLazy(m, l) {
			return true
		}
	}
	return false
}
func (a anyOf) String() string {
	if len(a) == 0 {
		return "no frame"
	}
	return join(a, " or ")
}

func (n not) Match(f Frame) bool         { return !matchLazy(n.m, &lazyInfo{f: &f}) }
func (n not) matchLazy(l *lazyInfo) bool { return !matchLazy(n.m, l) }
func (n not) String() string {
	switch n.m.(type) {
	case all, anyOf:
		return "not (" + n.m.String() + ")"
	}
	return "not " + n.m.String()
}

func join(ms []Matcher, sep string) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		s := m.String()
		switch m.(type) {
		case all, anyOf:
			if len(ms) > 1 {
				s = "(" + s + ")"
			}
		}
		parts[i] = s
	}
	return strings.Join(parts, sep)
}

// Filter returns the frames m matches, in order.
func Filter(frames []Frame, m Matcher) []Frame {
	var out []Frame
	for _, f := range frames {
		if m.Match(f) {
			out = append(out, f)
		}
	}
	return out
}

// Count returns how many frames m matches.
func Count(frames []Frame, m Matcher) int {
	n := 0
	for _, f := range frames {
		if m.Match(f) {
			n++
		}
	}
	return n
}

// CheckCount returns nil if m matches exactly want frames, else an error
// that lists every frame, one per line, the matching ones marked with '*'.
func CheckCount(frames []Frame, m Matcher, want int) error {
	got := Count(frames, m)
	if got == want {
		return nil
	}
	return fmt.Errorf("frames matching %s: got %d, want %d\n%s", m, got, want, Listing(frames, m))
}

// Listing returns one line per frame (see Frame.String), each prefixed
// with "* " when m matches it and "  " otherwise; m may be nil.
func Listing(frames []Frame, m Matcher) string {
	var b strings.Builder
	if len(frames) == 0 {
		b.WriteString("  (no frames)\n")
	}
	for _, f := range frames {
		mark := "  "
		if m != nil && m.Match(f) {
			mark = "* "
		}
		b.WriteString(mark)
		b.WriteString(f.String())
		b.WriteByte('\n')
	}
	return b.String()
}
