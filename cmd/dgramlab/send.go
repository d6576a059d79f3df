package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/dgramlab/dgramlab/dgram"
)

const sendArgs = "--tun NAME [--tap] [--create] --addr ADDR/PREFIX --to HOST:PORT [--broadcast] [--count N] [--size N] [--wait D] [--mtu N] [--pcap FILE] [IMPAIRMENTS] MESSAGE"

const sendSummary = `Attaches a userspace host (gVisor) to a TUN or TAP device and sends MESSAGE
from it to HOST:PORT, --count times, one after the other; prints each reply
until it has one per datagram or --wait has passed since the last send.
Needs CAP_NET_ADMIN. Example, with "dgramlab echo" or a kernel socket at
10.99.0.1:41234:
  dgramlab send --tun dgl0 --addr 10.99.0.3/24 --to 10.99.0.1:41234 hello

` + tunImpairHelp

// maxUDPPayload is the largest UDP payload of each IP version.
var maxUDPPayload = map[string]int{dgram.UDP4: 65507, dgram.UDP6: 65527}

func runSend(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("send", sendArgs, sendSummary, stdout)
	var tf tunFlags
	tf.register(fs, "10.99.0.3/24")
	to := fs.String("to", "", "where to send: HOST:PORT (required)")
	broadcast := fs.Bool("broadcast", false, "set SO_BROADCAST, to send to 255.255.255.255 or the subnet's broadcast address")
	count := fs.Int("count", 1, "how many datagrams to send")
	size := fs.Int("size", 0, "datagram size in bytes: MESSAGE repeated or cut to it (default: MESSAGE's length)")
	wait := fs.Duration("wait", time.Second, "how long to wait for replies after the last send")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("send: want exactly one MESSAGE, got %d arguments", fs.NArg())
	}
	cfg, err := tf.config("send")
	if err != nil {
		return err
	}
	host, port, err := parseHostPort(*to)
	if err != nil {
		return usagef("send: --to: %v", err)
	}
	if *count < 1 {
		return usagef("send: --count %d must be at least 1", *count)
	}
	if max := maxUDPPayload[cfg.socketType()]; *size < 0 || *size > max {
		return usagef("send: --size %d is out of range 0..%d", *size, max)
	}
	if *wait < 0 {
		return usagef("send: --wait must not be negative")
	}
	payload := []byte(fs.Arg(0))
	if *size > 0 {
		payload = fill(payload, *size)
	}

	th, err := openTunHost("send", "send", cfg)
	if err != nil {
		return err
	}
	th.describe(stdout, cfg)
	loop := dgram.NewLoop(th.host)
	sock, err := loop.CreateSocket(cfg.socketType(), nil)
	if err != nil {
		th.close()
		return fmt.Errorf("send: %w", err)
	}
	var (
		replies int
		sockErr error
		timer   *time.Timer
	)
	finish := func() {
		if timer != nil {
			timer.Stop()
		}
		sock.Close(nil)
	}
	sock.OnError(func(err error) {
		fmt.Fprintf(stdout, "socket error:\n%v\n", err)
		sockErr = err
		finish()
	})
	sock.OnMessage(func(msg []byte, rinfo dgram.RemoteInfo) {
		replies++
		fmt.Fprintf(stdout, "reply: %s from %s:%d\n", msg, rinfo.Address, rinfo.Port)
		if replies >= *count && timer != nil {
			finish()
		}
	})
	var sendNext func(i int)
	sendNext = func(i int) {
		sock.Send(payload, port, host, func(n int, err error) {
			if err != nil {
				fmt.Fprintf(stdout, "send %d failed: %v\n", i+1, err)
				sockErr = err
				if th.dev.Err() == nil {
					finish()
				}
				// Else the device vanished: the host fails the socket,
				// whose 'error' event comes next and finishes.
				return
			}
			fmt.Fprintf(stdout, "sent %d bytes to %s:%d\n", n, host, port)
			if i+1 < *count {
				// The next send waits for the I/O that came meanwhile
				// (setImmediate): replies print as they arrive.
				loop.Post(func() { sendNext(i + 1) })
				return
			}
			if replies >= *count {
				finish()
				return
			}
			timer = time.AfterFunc(*wait, func() { loop.Post(finish) })
		})
	}
	err = sock.Bind(0, "", func() {
		if *broadcast {
			if err := sock.SetBroadcast(true); err != nil {
				fmt.Fprintf(stdout, "setBroadcast failed: %v\n", err)
				sockErr = err
				finish()
				return
			}
		}
		sendNext(0)
	})
	if err != nil {
		th.close()
		return fmt.Errorf("send: %w", err)
	}
	runErr := loop.Run(ctx)
	if timer != nil {
		timer.Stop()
	}
	stats := sock.Stats()
	closeErr := th.close()
	fmt.Fprintf(stdout, "send: %d sent, %d replies\n", stats.Sent, replies)
	th.printCounters(stdout, stats)
	switch {
	case th.dev.Err() != nil:
		return fmt.Errorf("send: %w", th.dev.Err())
	case runErr != nil && ctx.Err() != nil:
		return fmt.Errorf("send: interrupted")
	case runErr != nil:
		return fmt.Errorf("send: %w", runErr)
	case sockErr != nil:
		return fmt.Errorf("send: %w", sockErr)
	case closeErr != nil:
		return fmt.Errorf("send: capture: %w", closeErr)
	}
	return nil
}

// parseHostPort splits "host:port" ("[v6]:port" for IPv6).
func parseHostPort(s string) (string, int, error) {
	if s == "" {
		return "", 0, fmt.Errorf("HOST:PORT is required")
	}
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not HOST:PORT", s)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("port %q is not in 1..65535", p)
	}
	if host == "" {
		return "", 0, fmt.Errorf("%q has no host", s)
	}
	return host, port, nil
}

// fill returns msg repeated or cut to size bytes ('x' if msg is empty).
func fill(msg []byte, size int) []byte {
	if len(msg) == 0 {
		msg = []byte("x")
	}
	return []byte(strings.Repeat(string(msg), size/len(msg)+1)[:size])
}
