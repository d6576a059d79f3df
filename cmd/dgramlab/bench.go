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
)

const benchSummary = `Measures UDP datagram paths side by side, in one process run: dgram sockets
and stack.UDPConn on virtual hosts (Switch, Pipe), the same dgram API and Go's
net.UDPConn on kernel loopback (127.0.0.1), and Node's dgram on loopback (when
node is installed). Measurements are interleaved round by round (round r: every
path at the first size, then the next size, then ping-pong), so machine noise
spreads over all paths alike; the table shows medians over the rounds, their
min-max, and ratios to kernel net.UDPConn from the same run. Then it starts N
virtual hosts on one Switch and reports start time, memory per host and one
broadcast delivered to all of them.

One-way: the sender sends for --duration as fast as it can; the receiver counts.
When the sender stops, the receiver is given until every datagram has arrived,
or until none has arrived for 100ms. DELIVERED/S = received / (last receive -
first send); LOSS = (sent - received) / sent over all rounds, where sent counts
every send attempt (failed ones too). Ping-pong: one 64-byte datagram at a time
to an echo socket for --duration; a ping with no pong within 500ms is a TIMEOUT
and the next ping is sent. Real traffic goes to 127.0.0.1 only.`

// benchConfig is a parsed bench command line.
type benchConfig struct {
	rounds   int
	duration time.Duration
	sizes    []int
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
		OS: runtime.GOOS, Arch: runtime.GOARCH, Rounds: cfg.rounds, Duration: cfg.duration.String(),
		Sizes: cfg.sizes, PingSize: pingSize,
	}
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
// round each size's one-way measurement on every path in turn, then
// ping-pong on every path.
func runRounds(ctx context.Context, cfg *benchConfig, paths []*benchPath, rep *benchReport, stderr io.Writer) error {
	if len(paths) == 0 {
		return nil
	}
	oneWay := make(map[string]*oneWayRow)
	ping := make(map[string]*pingRow)
	for _, size := range cfg.sizes {
		for _, p := range paths {
			row := &oneWayRow{Path: p.name, Size: size}
			oneWay[fmt.Sprint(p.name, "/", size)] = row
			rep.OneWay = append(rep.OneWay, row)
		}
	}
	for _, p := range paths {
		row := &pingRow{Path: p.name}
		ping[p.name] = row
		rep.PingPong = append(rep.PingPong, row)
	}

	// Warm-up: every path once, briefly, at the first size; not recorded.
	warm := min(cfg.duration, 50*time.Millisecond)
	fmt.Fprintf(stderr, "bench: warm-up (%v per path)\n", warm)
	for _, p := range paths {
		if _, err := p.oneWay(ctx, cfg.sizes[0], warm); err != nil {
			return fmt.Errorf("bench: %s: warm-up: %w", p.name, err)
		}
	}
	for r := 1; r <= cfg.rounds; r++ {
		fmt.Fprintf(stderr, "bench: round %d/%d\n", r, cfg.rounds)
		for _, size := range cfg.sizes {
			for _, p := range paths {
				if err := ctx.Err(); err != nil {
					return err
				}
				runtime.GC()
				run, err := p.oneWay(ctx, size, cfg.duration)
				if err != nil {
					return fmt.Errorf("bench: %s, %d bytes, round %d: %w", p.name, size, r, err)
				}
				row := oneWay[fmt.Sprint(p.name, "/", size)]
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
