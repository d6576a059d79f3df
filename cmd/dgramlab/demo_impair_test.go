package main

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dgramlab/dgramlab/capture"
	"github.com/dgramlab/dgramlab/stack"
	"github.com/dgramlab/dgramlab/wire"
)

var impairedArgs = []string{"--loss", "0.05", "--delay", "20ms", "--jitter", "5ms", "--seed", "7",
	"--duplicate", "1%", "--corrupt", "1%", "--reorder", "2%", "--rate", "1mbit", "--queue", "20"}

// demoPcap runs the demo with args and returns its capture and output.
func demoPcap(t *testing.T, args ...string) ([]byte, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "demo.pcapng")
	code, stdout, stderr := runCLI(t, append([]string{"demo", "--pcap", path}, args...)...)
	if code != 0 {
		t.Fatalf("demo %q: exit %d\n%s%s", args, code, stdout, stderr)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data, strings.ReplaceAll(stdout, path, "PCAP")
}

// The demo with impairments: step 4 runs, drops show by reason, and the
// same flags and seed write the same pcapng, byte for byte.
func TestDemoImpairedIsDeterministic(t *testing.T) {
	first, out := demoPcap(t, impairedArgs...)
	for _, want := range []string{
		"4. Impairments on client's cable, both ways: loss 5%, delay 20ms ±5ms (uniform), duplicate 1%, corrupt 1%, reorder 2%, rate 1mbit, queue 20, seed 7",
		"client sends 100 numbered datagrams to server:41237",
		"round trip (virtual time): min ",
		"client's cable: 9 frames lost",
		"loss          9",
		// the corrupted frames, dropped by the receivers, in their ledgers
		"bad-checksum  1",
		"bad-header    1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for range 2 {
		again, out2 := demoPcap(t, impairedArgs...)
		if !bytes.Equal(first, again) {
			t.Fatalf("two runs with the same flags wrote different captures (%d and %d bytes)", len(first), len(again))
		}
		if out2 != out {
			t.Fatalf("two runs printed different reports:\n%s\n----\n%s", out, out2)
		}
	}
	other, _ := demoPcap(t, append(impairedArgs, "--seed", "8")...)
	if bytes.Equal(first, other) {
		t.Errorf("seeds 7 and 8 wrote the same capture")
	}
	// Without impairments the demo is deterministic too, and has no step 4.
	plain, out := demoPcap(t)
	plain2, _ := demoPcap(t)
	if !bytes.Equal(plain, plain2) || strings.Contains(out, "4. Impairments") {
		t.Errorf("plain demo: captures equal %v; output:\n%s", bytes.Equal(plain, plain2), out)
	}
}

// Frames the impairments still hold when the demo gives up are not lost
// silently: the summary and the capture count them as detached.
func TestDemoHeldFramesAreDropped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "demo.pcapng")
	code, stdout, stderr := runCLI(t, "demo", "--pcap", path, "--delay", "20h")
	if code != 0 {
		t.Fatalf("demo --delay 20h: exit %d\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"server got 0 of the 100 datagrams",
		"client's cable: 0 frames lost, 0 dropped queue-full, 100 still held when the step ended (dropped as detached)",
		"detached     100     10600",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	sum, err := capture.SummarizeFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(sum.Drops, capture.DropSummary{Reason: wire.DropDetached.String(), Frames: 100, Bytes: 10600}) {
		t.Errorf("capture drops %+v, want 100 frames (10600 bytes) detached", sum.Drops)
	}
}

func TestImpairmentFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--loss", "1.5"}, `invalid value "1.5" for flag -loss: not a probability`},
		{[]string{"--loss", "-0.1"}, "not a probability"},
		{[]string{"--loss", "lots"}, "not a number"},
		{[]string{"--corrupt", "101%"}, "not a probability"},
		{[]string{"--delay", "-5ms"}, "--delay -5ms: must not be negative"},
		{[]string{"--jitter", "-1ms"}, "--jitter -1ms: must not be negative"},
		{[]string{"--rate", "0"}, `--rate "0": want a positive rate`},
		{[]string{"--rate", "1e30bit"}, `--rate "1e30bit": above the maximum, 1000gbit`},
		{[]string{"--delay", "25h"}, "--delay 25h0m0s: above the maximum, 24h0m0s"},
		{[]string{"--delay", "2562047h", "--jitter", "1h"}, "--delay 2562047h0m0s: above the maximum"},
		{[]string{"--jitter", "2000000h", "--distribution", "pareto"}, "--jitter 2000000h0m0s: above the maximum"},
		{[]string{"--jitter", "1h", "--distribution", "pareto"}, "can hold a frame 64h0m0s, above MaxDelay (24h0m0s)"},
		{[]string{"--rate", "fast"}, `--rate "fast"`},
		{[]string{"--rate-burst", "1500"}, "--rate-burst needs --rate"},
		{[]string{"--reorder", "0.1"}, "--reorder needs --delay, --jitter or --rate"},
		{[]string{"--queue", "0", "--delay", "1ms"}, "--queue 0: must be at least 1"},
		{[]string{"--distribution", "cauchy", "--jitter", "1ms"}, `--distribution "cauchy"`},
		{[]string{"--loss-burst", "0.1"}, "want P,R[,BAD[,GOOD]]"},
		{[]string{"--loss-burst", "0.1,0"}, "a burst would never end"},
		{[]string{"--loss-burst", "0.1,2"}, "not a probability"},
	} {
		code, _, stderr := runCLI(t, append([]string{"demo"}, c.args...)...)
		if code != 2 || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("demo %q: exit %d, stderr %q; want exit 2 and %q in one line", c.args, code, stderr, c.want)
		}
	}
}

func TestImpairmentFlags(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	get := addImpairmentFlags(fs)
	err := fs.Parse([]string{"--loss", "5%", "--loss-burst", "0.01,0.3,0.9", "--delay", "20ms", "--jitter", "5ms",
		"--distribution", "Pareto", "--duplicate", "0.01", "--corrupt", "0.02", "--reorder", "0.03",
		"--rate", "2.5mbit", "--rate-burst", "3000", "--queue", "50", "--seed", "-3"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := get()
	if err != nil {
		t.Fatal(err)
	}
	want := stack.Impairments{Loss: 0.05, BurstLoss: &stack.GilbertElliott{P: 0.01, R: 0.3, LossBad: 0.9},
		Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond, Distribution: stack.Pareto,
		Duplicate: 0.01, Corrupt: 0.02, Reorder: 0.03, Rate: 2_500_000, RateBurst: 3000, QueueLimit: 50, Seed: -3}
	if got.String() != want.String() || *got.BurstLoss != *want.BurstLoss {
		t.Errorf("got  %v\nwant %v", got, want)
	}
	// No flags: nothing impaired.
	fs = flag.NewFlagSet("y", flag.ContinueOnError)
	get = addImpairmentFlags(fs)
	fs.Parse(nil)
	if got, err := get(); err != nil || !got.IsZero() {
		t.Errorf("no flags: %v, %v", got, err)
	}
}
