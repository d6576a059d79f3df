package stack_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/dgramlab/dgramlab/stack"
	"github.com/dgramlab/dgramlab/wire"
)

func TestImpairmentsValidate(t *testing.T) {
	cases := []struct {
		name string
		im   stack.Impairments
	}{
		{"loss>1", stack.Impairments{Loss: 1.5}},
		{"loss<0", stack.Impairments{Loss: -0.1}},
		{"loss NaN", stack.Impairments{Loss: math.NaN()}},
		{"duplicate", stack.Impairments{Duplicate: 2}},
		{"corrupt", stack.Impairments{Corrupt: -1}},
		{"reorder", stack.Impairments{Reorder: 1.01, Delay: time.Millisecond}},
		{"negative delay", stack.Impairments{Delay: -time.Millisecond}},
		{"negative jitter", stack.Impairments{Jitter: -1}},
		{"distribution", stack.Impairments{Distribution: 9}},
		{"negative rate", stack.Impairments{Rate: -1}},
		{"negative burst", stack.Impairments{Rate: 1000, RateBurst: -1}},
		{"burst without rate", stack.Impairments{RateBurst: 1500}},
		{"negative queue", stack.Impairments{QueueLimit: -1}},
		{"reorder without delay", stack.Impairments{Reorder: 0.5}},
		{"GE P", stack.Impairments{BurstLoss: &stack.GilbertElliott{P: 2, R: 0.5}}},
		{"GE R=0", stack.Impairments{BurstLoss: &stack.GilbertElliott{P: 0.1}}},
		{"delay near the Duration limit", stack.Impairments{Delay: 2562047 * time.Hour, Jitter: time.Hour}},
		{"delay above MaxDelay", stack.Impairments{Delay: stack.MaxDelay + 1}},
		{"jitter overflowing a Duration", stack.Impairments{Jitter: 2000000 * time.Hour, Distribution: stack.Pareto}},
		{"jitter above MaxDelay", stack.Impairments{Jitter: stack.MaxDelay + 1}},
		{"uniform reach", stack.Impairments{Delay: stack.MaxDelay, Jitter: 1}},
		{"normal reach", stack.Impairments{Delay: 19 * time.Hour, Jitter: time.Hour, Distribution: stack.Normal}},
		{"pareto reach", stack.Impairments{Jitter: time.Hour, Distribution: stack.Pareto}},
		{"rate above MaxRate", stack.Impairments{Rate: stack.MaxRate + 1}},
	}
	ea, _, _ := stack.NewPipe(stack.PipeOptions{})
	for _, c := range cases {
		if err := c.im.Validate(); !errors.Is(err, stack.ErrInvalidImpairments) {
			t.Errorf("%s: Validate() = %v, want ErrInvalidImpairments", c.name, err)
		}
		if err := ea.SetImpairments(stack.BothDirections, c.im); !errors.Is(err, stack.ErrInvalidImpairments) {
			t.Errorf("%s: SetImpairments = %v, want ErrInvalidImpairments", c.name, err)
		} else {
			t.Logf("%s: %v", c.name, err)
		}
		if got := ea.Impairments(wire.Outbound); !got.IsZero() {
			t.Errorf("%s: a refused setting was put in force: %v", c.name, got)
		}
	}
	for _, d := range []wire.Direction{0, 4, 7} {
		if err := ea.SetImpairments(d, stack.Impairments{Loss: 0.1}); !errors.Is(err, stack.ErrInvalidImpairments) {
			t.Errorf("SetImpairments(%v) = %v, want ErrInvalidImpairments", d, err)
		}
	}
	good := stack.Impairments{Loss: 1, Delay: 0, Jitter: time.Millisecond, Reorder: 0.1, Rate: 1, RateBurst: 1, BurstLoss: &stack.GilbertElliott{P: 1, R: 1, LossBad: 1}}
	if err := good.Validate(); err != nil {
		t.Errorf("Validate(%+v) = %v", good, err)
	}
	// The largest settings are allowed.
	for _, im := range []stack.Impairments{
		{Delay: stack.MaxDelay},
		{Delay: stack.MaxDelay - time.Hour, Jitter: time.Hour},
		{Delay: 18 * time.Hour, Jitter: time.Hour, Distribution: stack.Normal},
		{Jitter: stack.MaxDelay / 64, Distribution: stack.Pareto},
		{Rate: stack.MaxRate},
	} {
		if err := im.Validate(); err != nil {
			t.Errorf("Validate(%v) = %v, want nil", im, err)
		}
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]int64{"1mbit": 1e6, "250kbit": 250e3, "64000": 64000, "1.5Mbit": 1.5e6, "2gbps": 2e9, "100bit": 100} {
		if got, err := stack.ParseRate(in); err != nil || got != want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", in, got, err, want)
		}
		if got, _ := stack.ParseRate(stack.FormatRate(want)); got != want {
			t.Errorf("ParseRate(FormatRate(%d)) = %d", want, got)
		}
	}
	for in, want := range map[string]string{
		"0": "at least 1 bit/s", "0mbit": "at least 1 bit/s", "-1kbit": "at least 1 bit/s", "0.4bit": "at least 1 bit/s",
		"fast": "not a number", "1.5x": "not a number", "": "not a number", "NaN": "not a number",
		"1e30bit": "above the maximum, 1000gbit", "1001gbit": "above the maximum", "Inf": "above the maximum",
	} {
		if _, err := stack.ParseRate(in); !errors.Is(err, stack.ErrInvalidImpairments) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseRate(%q) = %v, want an error saying %q", in, err, want)
		}
	}
	if got, err := stack.ParseRate("1000gbit"); err != nil || got != stack.MaxRate {
		t.Errorf("ParseRate(1000gbit) = %d, %v; want MaxRate", got, err)
	}
}

func TestImpairmentsString(t *testing.T) {
	im := stack.Impairments{Loss: 0.05, Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond, Rate: 1e6, Seed: 7}
	if got, want := im.String(), "loss 5%, delay 20ms ±5ms (uniform), rate 1mbit, seed 7"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := (stack.Impairments{Seed: 3}).String(); got != "none" {
		t.Errorf("zero: %q", got)
	}
}
