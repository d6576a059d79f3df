package main

import (
	"context"
	"fmt"
	"io"

	"github.com/dgramlab/dgramlab/dgram"
)

const echoArgs = "--tun NAME [--tap] [--create] --addr ADDR/PREFIX [--port N] [--mtu N] [--pcap FILE] [IMPAIRMENTS]"

// tunImpairHelp is the paragraph echo's and send's help give to the
// impairment flags.
const tunImpairHelp = `IMPAIRMENTS are the demo's impairment flags (--loss, --loss-burst, --delay,
--jitter, --distribution, --duplicate, --corrupt, --reorder, --rate,
--rate-burst, --queue, --seed): they impair the device's traffic both ways,
and the counters show what they dropped, by reason. Example:
  --loss 5% --delay 20ms --jitter 5ms --seed 7`

const echoSummary = `Attaches a userspace host (gVisor) to a TUN or TAP device and runs the seed's
UDP server on it: each datagram is logged ("server got: ... from ADDR:PORT")
and sent back. Runs until SIGINT or SIGTERM, then prints its counters. If the
device vanishes (ip link del), the socket gets an 'error' event and echo exits
with status 1. Needs CAP_NET_ADMIN. Example, with the kernel's end at
10.99.0.1/24:
  dgramlab echo --tun dgl0 --addr 10.99.0.2/24

` + tunImpairHelp

func runEcho(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("echo", echoArgs, echoSummary, stdout)
	var tf tunFlags
	tf.register(fs, "10.99.0.2/24")
	port := fs.Int("port", 41234, "the UDP port to listen on")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("echo: unexpected argument %q", fs.Arg(0))
	}
	if *port < 1 || *port > 65535 {
		return usagef("echo: --port %d is out of range 1..65535", *port)
	}
	cfg, err := tf.config("echo")
	if err != nil {
		return err
	}
	th, err := openTunHost("echo", "echo", cfg)
	if err != nil {
		return err
	}
	th.describe(stdout, cfg)

	loop := dgram.NewLoop(th.host)
	server, err := loop.CreateSocket(cfg.socketType(), nil)
	if err != nil {
		th.close()
		return fmt.Errorf("echo: %w", err)
	}
	var serverErr error
	server.OnError(func(err error) {
		fmt.Fprintf(stdout, "server error:\n%v\n", err)
		serverErr = err
		server.Close(nil)
	})
	server.OnMessage(func(msg []byte, rinfo dgram.RemoteInfo) {
		fmt.Fprintf(stdout, "server got: %s from %s:%d\n", msg, rinfo.Address, rinfo.Port)
		server.Send(msg, rinfo.Port, rinfo.Address, func(_ int, err error) {
			if err != nil {
				fmt.Fprintf(stdout, "server: echo to %s:%d failed: %v\n", rinfo.Address, rinfo.Port, err)
			}
		})
	})
	server.OnListening(func() {
		address, _ := server.Address()
		fmt.Fprintf(stdout, "server listening %s:%d\n", address.Address, address.Port)
	})
	if err := server.Bind(*port, "", nil); err != nil {
		th.close()
		return fmt.Errorf("echo: %w", err)
	}
	runErr := loop.Run(ctx)
	stats := server.Stats()
	closeErr := th.close()
	fmt.Fprintln(stdout, "echo: stopped")
	th.printCounters(stdout, stats)
	switch {
	case th.dev.Err() != nil:
		return fmt.Errorf("echo: %w", th.dev.Err())
	case runErr != nil && ctx.Err() != nil:
		// SIGINT or SIGTERM: a clean stop.
	case runErr != nil:
		return fmt.Errorf("echo: %w", runErr)
	case serverErr != nil:
		return fmt.Errorf("echo: %w", serverErr)
	case closeErr != nil:
		return fmt.Errorf("echo: capture: %w", closeErr)
	}
	return nil
}
