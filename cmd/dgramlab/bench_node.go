package main

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// nodeBenchScript is the Node side of the node path. It is written to a
// temporary file for the run.
//
//go:embed benchnode/dgram_bench.js
var nodeBenchScript []byte

// nodeRunner runs the node path's processes.
type nodeRunner struct {
	node   string // the node binary
	dir    string // temporary directory holding the script
	script string
}

// newNodeRunner writes the script to a temporary directory; close removes
// it.
func newNodeRunner(node string) (*nodeRunner, error) {
	dir, err := os.MkdirTemp("", "dgramlab-bench-")
	if err != nil {
		return nil, err
	}
	script := filepath.Join(dir, "dgram_bench.js")
	if err := os.WriteFile(script, nodeBenchScript, 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &nodeRunner{node: node, dir: dir, script: script}, nil
}

func (r *nodeRunner) close() { os.RemoveAll(r.dir) }

// nodeProc is one running node process speaking JSON lines on stdout.
type nodeProc struct {
	mode   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Scanner
	stderr bytes.Buffer
}

// start runs the script in mode with args. The process is killed when ctx
// is done.
func (r *nodeRunner) start(ctx context.Context, mode string, args ...string) (*nodeProc, error) {
	p := &nodeProc{mode: mode}
	p.cmd = exec.CommandContext(ctx, r.node, append([]string{r.script, mode}, args...)...)
	p.cmd.Stderr = &p.stderr
	p.cmd.WaitDelay = time.Second
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("node %s: %w", mode, err)
	}
	p.out = bufio.NewScanner(stdout)
	p.out.Buffer(make([]byte, 0, 64<<10), 64<<20)
	return p, nil
}

// next decodes the process's next line of output into v.
func (p *nodeProc) next(v any) error {
	if !p.out.Scan() {
		err := p.out.Err()
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return p.fail(fmt.Errorf("reading its output: %w", err))
	}
	if err := json.Unmarshal(p.out.Bytes(), v); err != nil {
		return p.fail(fmt.Errorf("bad output %.200q: %w", p.out.Text(), err))
	}
	return nil
}

// fail kills the process and describes err with what it wrote on stderr.
func (p *nodeProc) fail(err error) error {
	p.cmd.Process.Kill()
	p.cmd.Wait()
	if msg := strings.TrimSpace(p.stderr.String()); msg != "" {
		err = fmt.Errorf("%w (stderr: %s)", err, msg)
	}
	return fmt.Errorf("node %s: %w", p.mode, err)
}

// wait closes stdin and waits for the process to exit.
func (p *nodeProc) wait() error {
	p.stdin.Close()
	if err := p.cmd.Wait(); err != nil {
		msg := strings.TrimSpace(p.stderr.String())
		return fmt.Errorf("node %s: %w (stderr: %s)", p.mode, err, msg)
	}
	return nil
}

// kill ends the process if it is still running.
func (p *nodeProc) kill() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
	}
}

// nodeHello is what recv and echo print once bound: the port and, for
// recv, the receive buffer size (SO_RCVBUF as getsockopt reports it).
type nodeHello struct {
	Port   int `json:"port"`
	Rcvbuf int `json:"rcvbuf"`
}

// oneWay runs a receiver process, then a sender process for
// spec.duration, as fast as it can or paced at spec.rate. CPU time is what
// the two processes report for the measurement (process.cpuUsage(): the
// sender while sending, the receiver from binding to its report).
func (r *nodeRunner) oneWay(ctx context.Context, spec oneWaySpec) (oneWayRun, error) {
	d := spec.duration
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	recv, err := r.start(ctx, "recv", fmt.Sprintf("--idle-ms=%g", float64(drainIdle)/float64(time.Millisecond)),
		fmt.Sprintf("--rcvbuf=%d", spec.rcvbuf))
	if err != nil {
		return oneWayRun{}, err
	}
	defer recv.kill()
	var hello nodeHello
	if err := recv.next(&hello); err != nil {
		return oneWayRun{}, err
	}
	drops := kernelDrops()
	send, err := r.start(ctx, "send", fmt.Sprintf("--port=%d", hello.Port), fmt.Sprintf("--size=%d", spec.size),
		fmt.Sprintf("--batch=%d", sendBatch), fmt.Sprintf("--duration-ns=%d", d.Nanoseconds()),
		fmt.Sprintf("--rate=%g", spec.rate), fmt.Sprintf("--window-ns=%d", pacerWindow.Nanoseconds()))
	if err != nil {
		return oneWayRun{}, err
	}
	defer send.kill()
	var sres struct {
		Sent    uint64 `json:"sent"`
		Errors  uint64 `json:"errors"`
		StartNs string `json:"startNs"`
		EndNs   string `json:"endNs"`
		CPUUs   int64  `json:"cpuUs"`
	}
	if err := send.next(&sres); err != nil {
		return oneWayRun{}, err
	}
	if err := send.wait(); err != nil {
		return oneWayRun{}, err
	}
	if _, err := fmt.Fprintf(recv.stdin, "%d %s\n", sres.Sent, sres.EndNs); err != nil {
		return oneWayRun{}, recv.fail(err)
	}
	var rres struct {
		Received uint64 `json:"received"`
		LastNs   string `json:"lastNs"`
		CPUUs    int64  `json:"cpuUs"`
	}
	if err := recv.next(&rres); err != nil {
		return oneWayRun{}, err
	}
	if err := recv.wait(); err != nil {
		return oneWayRun{}, err
	}
	start, err1 := strconv.ParseInt(sres.StartNs, 10, 64)
	end, err2 := strconv.ParseInt(sres.EndNs, 10, 64)
	last, err3 := strconv.ParseInt(rres.LastNs, 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return oneWayRun{}, fmt.Errorf("node: bad times: %w", err)
	}
	if last == 0 { // nothing received
		last = start
	}
	run := oneWayResult(sres.Sent, sres.Errors, rres.Received, 0, time.Duration(end-start), time.Duration(last-start))
	run.setCPU(time.Duration(sres.CPUUs+rres.CPUUs) * time.Microsecond)
	run.PaceRate = spec.rate
	if spec.rcvbuf > 0 {
		run.RcvbufBytes = hello.Rcvbuf
	}
	if drops != nil {
		v := drops()
		run.BufferDrops = &v
	}
	return run, nil
}

// pingPong runs an echo process, then a ping process for d.
func (r *nodeRunner) pingPong(ctx context.Context, size int, d time.Duration) (pingRun, error) {
	ctx, cancel := context.WithTimeout(ctx, d+setupTimeout+30*time.Second)
	defer cancel()
	echo, err := r.start(ctx, "echo")
	if err != nil {
		return pingRun{}, err
	}
	defer echo.kill()
	var hello nodeHello
	if err := echo.next(&hello); err != nil {
		return pingRun{}, err
	}
	ping, err := r.start(ctx, "ping", fmt.Sprintf("--port=%d", hello.Port), fmt.Sprintf("--size=%d", size),
		fmt.Sprintf("--duration-ns=%d", d.Nanoseconds()),
		fmt.Sprintf("--timeout-ms=%g", float64(pingTimeout)/float64(time.Millisecond)),
		fmt.Sprintf("--setup-ms=%g", float64(setupTimeout)/float64(time.Millisecond)))
	if err != nil {
		return pingRun{}, err
	}
	defer ping.kill()
	var res struct {
		Samples  []int64 `json:"samples"`
		Timeouts int     `json:"timeouts"`
		Primed   bool    `json:"primed"`
	}
	if err := ping.next(&res); err != nil {
		return pingRun{}, err
	}
	if err := ping.wait(); err != nil {
		return pingRun{}, err
	}
	if err := echo.wait(); err != nil {
		return pingRun{}, err
	}
	if !res.Primed {
		return pingRun{}, errors.New("node: no pong while priming")
	}
	samples := make([]time.Duration, len(res.Samples))
	for i, ns := range res.Samples {
		samples[i] = time.Duration(ns)
	}
	return pingResult(samples, res.Timeouts), nil
}
