package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/dgramlab/dgramlab/stack"
)

// addImpairmentFlags registers the link impairment flags on fs (--loss,
// --loss-burst, --delay, --jitter, --distribution, --duplicate, --corrupt,
// --reorder, --rate, --rate-burst, --queue, --seed) and returns a function
// to call after parsing: it returns the impairments the flags ask for (the
// zero Impairments, apart from the seed, when none was given) or a usage
// error naming the flag. Apply them with Port.SetImpairments, or wrap a
// TUN endpoint in stack.NewImpairedLink and call its SetImpairments.
func addImpairmentFlags(fs *flag.FlagSet) func() (stack.Impairments, error) {
	var im stack.Impairments
	fs.Var(probFlag{&im.Loss}, "loss", "lose this share of the frames, at random: 0.05 or 5%")
	burst := fs.String("loss-burst", "", "bursty (Gilbert-Elliott) loss `P,R[,BAD[,GOOD]]`: P = chance to enter a burst, R = chance to leave it, BAD/GOOD = loss inside/outside bursts (default 1 and 0)")
	fs.DurationVar(&im.Delay, "delay", 0, fmt.Sprintf("hold every frame this long, e.g. 20ms (at most %v, jitter included)", stack.MaxDelay))
	fs.DurationVar(&im.Jitter, "jitter", 0, "vary each frame's delay by up to this much (its spread), e.g. 5ms; frames keep their order unless --reorder")
	dist := fs.String("distribution", "uniform", "shape of the jitter: uniform, normal or pareto")
	fs.Var(probFlag{&im.Duplicate}, "duplicate", "deliver this share of the frames twice: 0.01 or 1%")
	fs.Var(probFlag{&im.Corrupt}, "corrupt", "flip one bit in this share of the frames (the receiver's checksums drop them): 0.01 or 1%")
	fs.Var(probFlag{&im.Reorder}, "reorder", "let this share of the frames skip the delay and overtake others (needs --delay, --jitter or --rate)")
	rate := fs.String("rate", "", fmt.Sprintf("limit the link to this rate, e.g. 1mbit, 250kbit, at most %s (default: no limit)", stack.FormatRate(stack.MaxRate)))
	fs.IntVar(&im.RateBurst, "rate-burst", 0, "bytes the rate limiter lets through at once after an idle time (needs --rate)")
	fs.IntVar(&im.QueueLimit, "queue", 0, fmt.Sprintf("frames the delay and rate stages hold at most; more are dropped as queue-full (default %d)", stack.DefaultQueueLimit))
	fs.Int64Var(&im.Seed, "seed", 0, "seed of every random choice the impairments make: the same seed, the same frames lost")

	return func() (stack.Impairments, error) {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		out := im
		switch {
		case out.Delay < 0:
			return out, usagef("--delay %v: must not be negative", out.Delay)
		case out.Jitter < 0:
			return out, usagef("--jitter %v: must not be negative", out.Jitter)
		case out.Delay > stack.MaxDelay:
			return out, usagef("--delay %v: above the maximum, %v", out.Delay, stack.MaxDelay)
		case out.Jitter > stack.MaxDelay:
			return out, usagef("--jitter %v: above the maximum, %v", out.Jitter, stack.MaxDelay)
		case out.RateBurst < 0:
			return out, usagef("--rate-burst %d: must not be negative", out.RateBurst)
		case set["queue"] && out.QueueLimit < 1:
			return out, usagef("--queue %d: must be at least 1", out.QueueLimit)
		}
		d, err := stack.ParseDistribution(*dist)
		if err != nil {
			return out, usagef("--distribution %q: want uniform, normal or pareto", *dist)
		}
		out.Distribution = d
		if set["rate"] {
			if out.Rate, err = stack.ParseRate(*rate); err != nil {
				// ParseRate says "invalid impairments: rate "X": why".
				_, why, _ := strings.Cut(err.Error(), "rate ")
				return out, usagef("--rate %s", why)
			}
		}
		if set["loss-burst"] {
			if out.BurstLoss, err = parseBurst(*burst); err != nil {
				return out, usagef("--loss-burst %q: %v", *burst, err)
			}
		}
		switch {
		case out.RateBurst > 0 && out.Rate == 0:
			return out, usagef("--rate-burst needs --rate")
		case out.Reorder > 0 && out.Delay == 0 && out.Jitter == 0 && out.Rate == 0:
			return out, usagef("--reorder needs --delay, --jitter or --rate: without them there is nothing to overtake")
		}
		if err := out.Validate(); err != nil {
			return out, usagef("%v", err)
		}
		return out, nil
	}
}

// probFlag is a probability flag: "0.05" or "5%", in [0,1].
type probFlag struct{ p *float64 }

func (f probFlag) String() string {
	if f.p == nil || *f.p == 0 {
		return "0"
	}
	return strconv.FormatFloat(*f.p, 'g', -1, 64)
}

func (f probFlag) Set(s string) error {
	p, err := parseProb(s)
	if err != nil {
		return err
	}
	*f.p = p
	return nil
}

func parseProb(s string) (float64, error) {
	t := strings.TrimSpace(s)
	scale := 1.0
	if pct, ok := strings.CutSuffix(t, "%"); ok {
		t, scale = pct, 100
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil {
		return 0, fmt.Errorf("not a number")
	}
	v /= scale
	if v != v || v < 0 || v > 1 {
		return 0, fmt.Errorf("not a probability between 0 and 1 (0%%-100%%)")
	}
	return v, nil
}

// parseBurst reads --loss-burst's P,R[,BAD[,GOOD]].
func parseBurst(s string) (*stack.GilbertElliott, error) {
	parts := strings.Split(s, ",")
	if len(parts) < 2 || len(parts) > 4 {
		return nil, fmt.Errorf("want P,R[,BAD[,GOOD]], e.g. 0.01,0.3")
	}
	var v [4]float64
	for i, p := range parts {
		var err error
		if v[i], err = parseProb(p); err != nil {
			return nil, fmt.Errorf("%q: %v", p, err)
		}
	}
	if v[0] > 0 && v[1] == 0 {
		return nil, fmt.Errorf("R is 0: a burst would never end")
	}
	return &stack.GilbertElliott{P: v[0], R: v[1], LossBad: v[2], LossGood: v[3]}, nil
}
