package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/dgramlab/dgramlab/stack"
)

const benchSummary = `Measures UDP datagram paths side by side, in one process run: dgram sockets
and stack.UDPConn on virtual hosts (Switch, Pipe), the same dgram API and Go's
net.UDPConn on kernel loopback (127.0.0.1), and Node's dgram on loopback (when
node is installed). Measurements are interleaved round by round (round r: every
path at the first size at full speed, then paced, then the next size, then
ping-pong), so machine noise
spreads over all paths alike; the table shows medians over the rounds, their
min-max, and ratios to kernel net.UDPConn from the same run. Then it starts N
virtual hosts on one Switch and reports start time, memory per host and one
broadcast delivered to all of them.

One-way: the sender sends for --duration as fast as it can; the receiver counts.
Then, paced: the sender spreads its datagrams evenly at --pace times the rate
the path delivered at full speed in the same round, and the receiver, which
keeps up, must lose nothing. Every one-way receiver asks for the same
SO_RCVBUF (--rcvbuf). When the sender stops, the receiver is given until every
datagram has arrived, or until none has arrived for 100ms. DELIVERED/S =
received / (last receive - first send); LOSS = (sent - received) / sent over
all rounds, where sent counts every send attempt (failed ones too); CPU/DGRAM
is CPU time per datagram sent. A round in which kernel net.UDPConn lost, or had
not yet delivered, more than 20% when its full-speed sender stopped is
inconclusive: ratios and targets leave it out.
Ping-pong: one 64-byte datagram at a time to an echo socket for --duration; a
ping with no pong within 500ms is a TIMEOUT and the next ping is sent. Real
traffic goes to 127.0.0.1 only.`

// benchConfig is a parsed bench command line.
type benchConfig struct {
	rounds   int
	duration time.Duration
	sizes    []int
	rcvbuf   int            // SO_RCVBUF every one-way receiver asks for; 0: defaults
	pace     float64        // paced runs' fraction of the full-speed rate; 0: none
	only     *regexp.Regexp // nil: every path
	scale    []int          // empty: no scale measurement
	node     string         // node binary, "" when unavailable
	json     bool
	command  string // the command line, for the report
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench", "[flags]", benchSummary, stdout)
	rounds := fs.Int("rounds", 5, "interleaved rounds; each measurement runs once per round")
	duration := fs.Duration("duration", 300*time.Millisecond, "length of one measurement (one path, one size, one round)")
	sizes := fs.String("sizes", "64,1400", "comma-separated one-way payload sizes in bytes (ping-pong is always 64 bytes)")
	rcvbuf := fs.Int("rcvbuf", stack.MaxSocketBuffer, "SO_RCVBUF in bytes every one-way receiver asks for, kernel, virtual and node alike (capped at the kernel's net.core.rmem_max, so that all get the same; 0 keeps each path's default)")
	pace := fs.Float64("pace", 0.5, "paced runs offer this fraction of the rate each path delivered at full speed in the same round (0 < pace <= 1; 0: no paced runs)")
	only := fs.String("only", "", "run only the paths whose name matches this regular expression (paths: "+strings.Join(benchPathNames(), ", ")+")")
	scale := fs.String("scale", "10,100,1000", "comma-separated numbers of virtual hosts for the scale measurement")
	noScale := fs.Bool("no-scale", false, "skip the scale measurement")
	node := fs.String("node", "", "the node binary for the \"node\" path (default: node on PATH; the path is skipped with a note when it is missing)")
	jsonOut := fs.Bool("json", false, "print the report as JSON instead of tables")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("bench: unexpected argument %q", fs.Arg(0))
	}
	cfg := benchConfig{rounds: *rounds, duration: *duration, json: *jsonOut,
		command: strings.TrimSpace("dgramlab bench " + strings.Join(args, " "))}
	if cfg.rounds < 1 {
		return usagef("bench: --rounds must be at least 1")
	}
	if cfg.duration <= 0 {
		return usagef("bench: --duration must be positive")
	}
	if *rcvbuf < 0 {
		return usagef("bench: --rcvbuf must not be negative")
	}
	if *pace < 0 || *pace > 1 {
		return usagef("bench: --pace must be within 0..1")
	}
	cfg.pace = *pace
	var err error
	if cfg.sizes, err = parseIntList(*sizes, 1, maxBenchSize); err != nil {
		return usagef("bench: --sizes: %v", err)
	}
	if len(cfg.sizes) == 0 {
		return usagef("bench: --sizes is empty")
	}
	if *only != "" {
		if cfg.only, err = regexp.Compile(*only); err != nil {
			return usagef("bench: --only: %v", err)
		}
	}
	if !*noScale {
		if cfg.scale, err = parseIntList(*scale, 1, maxScaleHosts); err != nil {
			return usagef("bench: --scale: %v", err)
		}
	}

	rep := &benchReport{
		Command: cfg.command, Date: time.Now().UTC().Truncate(time.Second),
		CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version(),
		OS: runtime.GOOS, Arch: runtime.GOARCH, LoadStart: loadAverage(), Rounds: cfg.rounds,
		Duration: cfg.duration.String(), Sizes: cfg.sizes, PingSize: pingSize, Pace: cfg.pace,
		MaxKernelLossPct: defaultMaxKernelLossPct,
	}
	// Every receiver gets the same buffer: no more than the kernel grants.
	cfg.rcvbuf = min(*rcvbuf, stack.MaxSocketBuffer)
	if rmem, ok := kernelRmemMax(); ok {
		rep.RmemMax = rmem
		if cfg.rcvbuf > rmem {
			rep.Notes = append(rep.Notes, fmt.Sprintf("--rcvbuf %d is above the kernel's rmem_max: every receiver asks for %d", *rcvbuf, rmem))
			cfg.rcvbuf = rmem
		}
	}
	if cfg.rcvbuf < *rcvbuf && rep.RmemMax == 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("--rcvbuf %d is above what a virtual host grants: every receiver asks for %d", *rcvbuf, cfg.rcvbuf))
	}
	rep.Rcvbuf = cfg.rcvbuf
	var nr *nodeRunner
	cfg.node, rep.NodeVersion, err = findNode(ctx, *node)
	if err != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("node: %v: the node path is skipped", err))
	} else if !strings.HasPrefix(rep.NodeVersion, "v20.") {
		rep.Notes = append(rep.Notes, fmt.Sprintf("node: %s is not Node v20, the version the targets were set against", rep.NodeVersion))
	}
	paths := benchPaths()
	var selected []*benchPath
	for _, p := range paths {
		if cfg.only != nil && !cfg.only.MatchString(p.name) {
			continue
		}
		if p.name == nodePathName {
			if cfg.node == "" {
				continue
			}
			nr, err = newNodeRunner(cfg.node)
			if err != nil {
				return fmt.Errorf("bench: %w", err)
			}
			defer nr.close()
			p.bindNode(nr)
		}
		selected = append(selected, p)
	}
	if len(selected) == 0 && len(cfg.scale) == 0 {
		return usagef("bench: --only %q matches no path and the scale measurement is off (paths: %s)", *only, strings.Join(benchPathNames(), ", "))
	}
	if cfg.only != nil && !cfg.only.MatchString(refPathName) {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%s was not run (--only): no ratios", refPathName))
	}

	if err := runRounds(ctx, &cfg, selected, rep, stderr); err != nil {
		return err
	}
	for _, n := range cfg.scale {
		fmt.Fprintf(stderr, "bench: scale: %d hosts\n", n)
		row, err := measureScale(ctx, n)
		if err != nil {
			return fmt.Errorf("bench: scale %d: %w", n, err)
		}
		rep.Scale = append(rep.Scale, row)
	}
	rep.LoadEnd = loadAverage()
	rep.summarise()
	if cfg.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		rep.writeText(stdout)
	}
	for _, s := range rep.Scale {
		if s.GoroutinesLeft > 0 {
			return fmt.Errorf("bench: %d goroutines were left after closing %d hosts", s.GoroutinesLeft, s.Hosts)
		}
	}
	return nil
}

// runRounds runs every selected path interleaved: a warm-up pass, then per
// round, for each size, every path's one-way measurement at full speed in
// turn and then every path's paced one, then every path's ping-pong.
func runRounds(ctx context.Context, cfg *benchConfig, paths []*benchPath, rep *benchReport, stderr io.Writer) error {
	if len(paths) == 0 {
		return nil
	}
	key := func(p *benchPath, size int) string { return fmt.Sprint(p.name, "/", size) }
	oneWay := make(map[string]*oneWayRow)
	paced := make(map[string]*oneWayRow)
	ping := make(map[string]*pingRow)
	for _, size := range cfg.sizes {
		for _, p := range paths {
			row := &oneWayRow{Path: p.name, Size: size}
			oneWay[key(p, size)] = row
			rep.OneWay = append(rep.OneWay, row)
		}
	}
	if cfg.pace > 0 {
		for _, size := range cfg.sizes {
			for _, p := range paths {
				row := &oneWayRow{Path: p.name, Size: size}
				paced[key(p, size)] = row
				rep.Paced = append(rep.Paced, row)
			}
		}
	}
	for _, p := range paths {
		row := &pingRow{Path: p.name}
		ping[p.name] = row
		rep.PingPong = append(rep.PingPong, row)
	}
	measure := func(p *benchPath, spec oneWaySpec, round int, what string) (oneWayRun, error) {
		if err := ctx.Err(); err != nil {
			return oneWayRun{}, err
		}
		runtime.GC()
		run, err := p.oneWay(ctx, spec)
		if err != nil {
			return oneWayRun{}, fmt.Errorf("bench: %s, %d bytes%s, round %d: %w", p.name, spec.size, what, round, err)
		}
		run.Round = round
		return run, nil
	}

	// Warm-up: every path once, briefly, at the first size; not recorded.
	warm := min(cfg.duration, 50*time.Millisecond)
	fmt.Fprintf(stderr, "bench: warm-up (%v per path)\n", warm)
	for _, p := range paths {
		if _, err := p.oneWay(ctx, oneWaySpec{size: cfg.sizes[0], duration: warm, rcvbuf: cfg.rcvbuf}); err != nil {
			return fmt.Errorf("bench: %s: warm-up: %w", p.name, err)
		}
	}
	for r := 1; r <= cfg.rounds; r++ {
		fmt.Fprintf(stderr, "bench: round %d/%d\n", r, cfg.rounds)
		for _, size := range cfg.sizes {
			spec := oneWaySpec{size: size, duration: cfg.duration, rcvbuf: cfg.rcvbuf}
			for _, p := range paths {
				run, err := measure(p, spec, r, "")
				if err != nil {
					return err
				}
				row := oneWay[key(p, size)]
				row.Runs = append(row.Runs, run)
			}
			if cfg.pace == 0 {
				continue
			}
			for _, p := range paths {
				full := oneWay[key(p, size)]
				spec.rate = max(cfg.pace*full.Runs[len(full.Runs)-1].PPS, minPaceRate)
				run, err := measure(p, spec, r, " paced")
				if err != nil {
					return err
				}
				row := paced[key(p, size)]
				row.Runs = append(row.Runs, run)
			}
		}
		for _, p := range paths {
			if err := ctx.Err(); err != nil {
				return err
			}
			runtime.GC()
			run, err := p.pingPong(ctx, pingSize, cfg.duration)
			if err != nil {
				return fmt.Errorf("bench: %s ping-pong, round %d: %w", p.name, r, err)
			}
			run.Round = r
			ping[p.name].Runs = append(ping[p.name].Runs, run)
		}
	}
	return nil
}

// Limits of the command line.
const (
	maxBenchSize  = 65507 // the largest UDP payload over IPv4
	maxScaleHosts = 65000 // hosts fit in 10.0.0.0/16
	pingSize      = 64
)

// parseIntList parses "64,1400" into ints within [lo, hi].
func parseIntList(s string, lo, hi int) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", f)
		}
		if n < lo || n > hi {
			return nil, fmt.Errorf("%d is outside %d..%d", n, lo, hi)
		}
		out = append(out, n)
	}
	return out, nil
}

// findNode resolves the node binary (flag value, or node on PATH) and its
// version. It fails when there is none that runs.
func findNode(ctx context.Context, flagValue string) (path, version string, err error) {
	name := flagValue
	if name == "" {
		name = "node"
	}
	path, err = exec.LookPath(name)
	if err != nil {
		if flagValue == "" {
			return "", "", fmt.Errorf("not found on PATH")
		}
		return "", "", fmt.Errorf("%s: %w", flagValue, unwrapExecErr(err))
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return "", "", fmt.Errorf("%s --version: %w", path, err)
	}
	return path, strings.TrimSpace(string(out)), nil
}

func unwrapExecErr(err error) error {
	if ee, ok := err.(*exec.Error); ok {
		if os.IsNotExist(ee.Err) {
			return fmt.Errorf("no such file")
		}
		return ee.Err
	}
	return err
}
