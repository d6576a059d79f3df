package stack

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/dgramlab/dgramlab/wire"
)

// BothDirections is wire.Outbound|wire.Inbound: SetImpairments with it
// gives each direction the same settings (and its own random stream).
// Impairments are set per direction, seen from the host attached to the
// link end: wire.Outbound is what the host sends into the link (counted in
// LinkCounters' Tx), wire.Inbound what the link delivers to it (Rx).
const BothDirections = wire.Outbound | wire.Inbound

// Indexes of a single direction in linkEnd.impair and linkEnd.dirs.
const (
	outIdx = 0 // wire.Outbound
	inIdx  = 1 // wire.Inbound
)

// Distribution is the shape of a delay's jitter.
type Distribution uint8

const (
	// Uniform jitter is drawn evenly from [-Jitter, +Jitter].
	Uniform Distribution = iota
	// Normal jitter is Gaussian with mean 0 and standard deviation Jitter,
	// truncated at 6 standard deviations.
	Normal
	// Pareto jitter has mean 0 and standard deviation Jitter with a heavy
	// right tail (shape 3): most frames come a little early, a few very
	// late. The tail is capped at 64×Jitter.
	Pareto
)

// reach is how far past Delay the distribution's jitter can take a
// frame, in units of Jitter: uniform draws stay within ±Jitter, normal ones
// are truncated at 6 standard deviations (one frame in 500 million goes
// that far), and the Pareto tail is capped at 64.
func (d Distribution) reach() float64 {
	switch d {
	case Normal:
		return normalTruncate
	case Pareto:
		return paretoCap
	}
	return 1
}

const (
	normalTruncate = 6
	paretoCap      = 64
)

// String returns "uniform", "normal" or "pareto".
func (d Distribution) String() string {
	switch d {
	case Uniform:
		return "uniform"
	case Normal:
		return "normal"
	case Pareto:
		return "pareto"
	}
	return fmt.Sprintf("Distribution(%d)", uint8(d))
}

// ParseDistribution returns the Distribution named s ("uniform", "normal"
// or "pareto", case-insensitive).
func ParseDistribution(s string) (Distribution, error) {
	for _, d := range []Distribution{Uniform, Normal, Pareto} {
		if strings.EqualFold(s, d.String()) {
			return d, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown delay distribution %q (want uniform, normal or pareto)", ErrInvalidImpairments, s)
}

// GilbertElliott is a two-state model of bursty loss: the link is in a
// Good or a Bad state, which it may leave after each frame. The zero value
// never enters the Bad state, so it loses nothing.
type GilbertElliott struct {
	// P is the probability of moving from Good to Bad after a frame. Zero:
	// the link stays Good.
	P float64
	// R is the probability of moving from Bad back to Good after a frame;
	// the mean burst lasts 1/R frames. It must be above zero when P is.
	R float64
	// LossBad is the probability that a frame is lost in the Bad state.
	// Zero means 1: every frame in a burst is lost.
	LossBad float64
	// LossGood is the probability that a frame is lost in the Good state.
	// Zero: none.
	LossGood float64
}

// Impairments describe what a link does to frames in one direction. The
// zero value impairs nothing, and costs nothing: a link end whose
// impairments are all zero takes the same path as one that never had any.
//
// The stages, in order: Loss and BurstLoss drop; Duplicate makes a second
// copy; Corrupt flips a bit; Reorder lets a frame skip what follows; Rate
// paces frames through a token bucket; Delay and Jitter hold them. Frames
// waiting in the last two stages are bounded by QueueLimit. Without Reorder,
// frames leave in the order they came, whatever the jitter.
//
// Every random choice comes from Seed: the same seed on the same link
// end, direction and traffic drops, duplicates, corrupts and delays the
// same frames, on every run and whatever other links do. Each stage has its
// own random stream, so enabling one stage does not change which frames
// another one picks.
type Impairments struct {
	// Loss is the probability that a frame is lost (dropped and counted as
	// wire.DropLoss). Zero: no random loss.
	Loss float64
	// BurstLoss adds bursty loss (Gilbert-Elliott), on top of Loss; frames
	// it loses are counted as wire.DropLoss too. Nil: no bursts.
	BurstLoss *GilbertElliott
	// Delay is how long every frame is held before it goes on. Zero: none.
	// Delay plus the jitter's reach must not exceed MaxDelay.
	Delay time.Duration
	// Jitter varies each frame's delay around Delay, with the shape given
	// by Distribution; a delay never goes below zero. How far above Delay
	// it can go is Jitter for Uniform, 6×Jitter for Normal and 64×Jitter
	// for Pareto; with Delay that must not exceed MaxDelay. Zero: every
	// frame is held exactly Delay.
	Jitter time.Duration
	// Distribution is the shape of the jitter. The zero value is Uniform.
	Distribution Distribution
	// Duplicate is the probability that a frame is delivered twice. Zero:
	// never.
	Duplicate float64
	// Corrupt is the probability that one random bit of a frame's IP
	// packet is flipped (the link header is left alone). The frame is still
	// delivered: the receiver's checksums catch it, as a NIC would. Zero:
	// never.
	Corrupt float64
	// Reorder is the probability that a frame skips the delay and the rate
	// queue and so overtakes the frames still held. It needs Delay, Jitter
	// or Rate. Zero: frames keep their order.
	Reorder float64
	// Rate limits the link to this many bits per second, counting whole
	// frames, at most MaxRate. Frames over the rate wait in a queue (see
	// QueueLimit). Zero: no limit.
	Rate int64
	// RateBurst is the token bucket's depth in bytes: how much may go at
	// once, at line speed, after the link was idle. Zero: no burst, every
	// frame is paced at Rate. It needs Rate.
	RateBurst int
	// QueueLimit bounds the frames held by Delay, Jitter and Rate at once;
	// a frame that finds the queue full is dropped and counted as
	// wire.DropQueueFull. Zero means DefaultQueueLimit.
	QueueLimit int
	// Seed seeds every random choice. Zero is a seed like any other.
	Seed int64
}

// DefaultQueueLimit is the queue bound of Impairments whose QueueLimit is
// zero (the same as Linux netem's).
const DefaultQueueLimit = 1000

// MaxDelay bounds how long Delay and Jitter may hold a frame: Validate
// refuses a Delay and Jitter whose worst case (Delay plus the jitter's
// reach, see Impairments.Jitter) is longer, and no drawn delay exceeds it.
// A day is far beyond any network; a frame meant to vanish is better lost
// (Loss: 1) or the link cut (SetLinkUp(false)).
const MaxDelay = 24 * time.Hour

// MaxRate is the highest Rate, in bits per second: 1 Tbit/s
// ("1000gbit"), far above what a userspace link carries.
const MaxRate int64 = 1_000_000_000_000

// ErrInvalidImpairments is wrapped by every error about impairment
// settings: a probability outside [0,1], a negative duration, rate or size,
// a delay or rate above MaxDelay or MaxRate, an unknown direction or
// distribution, a setting that needs another one.
var ErrInvalidImpairments = errors.New("invalid impairments")

// Validate reports the first setting that is out of range, or nil.
func (im Impairments) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidImpairments}, args...)...)
	}
	probs := []struct {
		name string
		p    float64
	}{{"Loss", im.Loss}, {"Duplicate", im.Duplicate}, {"Corrupt", im.Corrupt}, {"Reorder", im.Reorder}}
	if ge := im.BurstLoss; ge != nil {
		probs = append(probs, []struct {
			name string
			p    float64
		}{{"BurstLoss.P", ge.P}, {"BurstLoss.R", ge.R}, {"BurstLoss.LossBad", ge.LossBad}, {"BurstLoss.LossGood", ge.LossGood}}...)
	}
	for _, pr := range probs {
		if math.IsNaN(pr.p) || pr.p < 0 || pr.p > 1 {
			return bad("%s %v is not a probability in [0,1]", pr.name, pr.p)
		}
	}
	if ge := im.BurstLoss; ge != nil && ge.P > 0 && ge.R == 0 {
		return bad("BurstLoss.R is 0, so a burst would never end (to cut a link, use SetLinkUp(false))")
	}
	switch {
	case im.Delay < 0:
		return bad("negative Delay %v", im.Delay)
	case im.Jitter < 0:
		return bad("negative Jitter %v", im.Jitter)
	case im.Distribution > Pareto:
		return bad("unknown Distribution %d", im.Distribution)
	case im.Delay > MaxDelay:
		return bad("Delay %v is above MaxDelay (%v)", im.Delay, MaxDelay)
	case im.Jitter > MaxDelay:
		return bad("Jitter %v is above MaxDelay (%v)", im.Jitter, MaxDelay)
	case float64(im.Delay)+im.Distribution.reach()*float64(im.Jitter) > float64(MaxDelay):
		return bad("Delay %v with %v Jitter %v can hold a frame %v, above MaxDelay (%v)", im.Delay, im.Distribution, im.Jitter,
			im.Delay+time.Duration(im.Distribution.reach()*float64(im.Jitter)), MaxDelay)
	case im.Rate < 0:
		return bad("negative Rate %d bit/s (0 means no limit)", im.Rate)
	case im.Rate > MaxRate:
		return bad("Rate %d bit/s is above MaxRate (%s)", im.Rate, FormatRate(MaxRate))
	case im.RateBurst < 0:
		return bad("negative RateBurst %d", im.RateBurst)
	case im.RateBurst > 0 && im.Rate == 0:
		return bad("RateBurst %d without a Rate", im.RateBurst)
	case im.QueueLimit < 0:
		return bad("negative QueueLimit %d", im.QueueLimit)
	case im.Reorder > 0 && im.Delay == 0 && im.Jitter == 0 && im.Rate == 0:
		return bad("Reorder %v without Delay, Jitter or Rate: there is nothing to overtake", im.Reorder)
	}
	return nil
}

// IsZero reports whether im impairs nothing (whatever its Seed and
// QueueLimit).
func (im Impairments) IsZero() bool {
	return im.Loss == 0 && (im.BurstLoss == nil || im.BurstLoss.P == 0 && im.BurstLoss.LossGood == 0) &&
		im.Delay == 0 && im.Jitter == 0 && im.Duplicate == 0 && im.Corrupt == 0 &&
		im.Reorder == 0 && im.Rate == 0
}

// String describes the settings in force, e.g. "loss 5%, delay 20ms ±5ms
// (uniform), seed 7", or "none".
func (im Impairments) String() string {
	var parts []string
	pct := func(p float64) string { return fmt.Sprintf("%g%%", p*100) }
	if im.Loss > 0 {
		parts = append(parts, "loss "+pct(im.Loss))
	}
	if ge := im.BurstLoss; ge != nil && (ge.P > 0 || ge.LossGood > 0) {
		bad := ge.LossBad
		if bad == 0 {
			bad = 1
		}
		parts = append(parts, fmt.Sprintf("burst loss (p %s, r %s, bad %s, good %s)", pct(ge.P), pct(ge.R), pct(bad), pct(ge.LossGood)))
	}
	if im.Delay > 0 || im.Jitter > 0 {
		s := "delay " + im.Delay.String()
		if im.Jitter > 0 {
			s += fmt.Sprintf(" ±%v (%v)", im.Jitter, im.Distribution)
		}
		parts = append(parts, s)
	}
	if im.Duplicate > 0 {
		parts = append(parts, "duplicate "+pct(im.Duplicate))
	}
	if im.Corrupt > 0 {
		parts = append(parts, "corrupt "+pct(im.Corrupt))
	}
	if im.Reorder > 0 {
		parts = append(parts, "reorder "+pct(im.Reorder))
	}
	if im.Rate > 0 {
		s := "rate " + FormatRate(im.Rate)
		if im.RateBurst > 0 {
			s += fmt.Sprintf(" (burst %d B)", im.RateBurst)
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return "none"
	}
	if im.QueueLimit > 0 {
		parts = append(parts, fmt.Sprintf("queue %d", im.QueueLimit))
	}
	return strings.Join(parts, ", ") + fmt.Sprintf(", seed %d", im.Seed)
}

// FormatRate writes a rate in bits per second the way ParseRate reads it:
// "1500bit", "64kbit", "10mbit", "1gbit".
func FormatRate(bps int64) string {
	for _, u := range []struct {
		name string
		n    int64
	}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}} {
		if bps >= u.n && bps%u.n == 0 {
			return fmt.Sprintf("%d%s", bps/u.n, u.name)
		}
	}
	return fmt.Sprintf("%dbit", bps)
}

// ParseRate reads a rate in bits per second: a number with an optional
// unit "bit", "kbit", "mbit" or "gbit" (decimal, case-insensitive; "bps",
// "kbps", ... are accepted too), e.g. "1mbit", "250kbit", "1.5mbit". It
// must be at least 1 bit/s and at most MaxRate. Errors wrap
// ErrInvalidImpairments and name the rate: "invalid impairments: rate
// "0": ...".
func ParseRate(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := 1.0
	for _, u := range []struct {
		suffix string
		m      float64
	}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}, {"gbps", 1e9}, {"mbps", 1e6}, {"kbps", 1e3}, {"bps", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSuffix(t, u.suffix), u.m
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(v) {
		return 0, fmt.Errorf("%w: rate %q: not a number with an optional unit (want e.g. 1mbit, 250kbit, 64000)", ErrInvalidImpairments, s)
	}
	bps := math.Round(v * mult)
	switch {
	case bps < 1:
		return 0, fmt.Errorf("%w: rate %q: want a positive rate of at least 1 bit/s, such as 1mbit or 250kbit (leave the rate out for no limit)", ErrInvalidImpairments, s)
	case bps > float64(MaxRate):
		return 0, fmt.Errorf("%w: rate %q: above the maximum, %s", ErrInvalidImpairments, s, FormatRate(MaxRate))
	}
	return int64(bps), nil
}

// validDirection checks a Direction argument.
func validDirection(d wire.Direction) error {
	if d == 0 || d&^BothDirections != 0 {
		return fmt.Errorf("%w: direction %v (want wire.Outbound, wire.Inbound or BothDirections)", ErrInvalidImpairments, d)
	}
	return nil
}
