// Command dgramlab runs Node-style UDP sockets on virtual hosts.
//
//	dgramlab demo [flags]          the seed scenarios on a built-in virtual LAN
//	dgramlab inspect [flags] FILE  summarise a pcap or pcapng file
//
// Run "dgramlab help" or "dgramlab CMD --help" for the flags. Exit codes: 0
// success, 1 failure, 2 usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// usageError is a mistake in the command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// exitCode prints err in one line and returns the process exit code.
func exitCode(err error, stderr io.Writer) int {
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "dgramlab: %v (see dgramlab help)\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "dgramlab: %v\n", err)
		return 1
	}
}

// command is one subcommand.
type command struct {
	name, args, summary string
	run                 func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"demo", "[flags]", "run the seed scenarios on a built-in virtual LAN and show what went on the wire", runDemo},
		{"inspect", "[flags] FILE", "summarise a pcap or pcapng file: flows, sizes, fragments, broadcasts, drops", runInspect},
		{"echo", echoArgs, "attach a userspace host to a TUN/TAP device and echo UDP datagrams (the seed's server)", runEcho},
		{"send", sendArgs, "send UDP datagrams from a userspace host on a TUN/TAP device and print the replies", runSend},
		{"bench", "[flags]", "measure datagram paths side by side (virtual hosts, kernel loopback, Node) and N hosts on a Switch", runBench},
	}
}

// run is the whole program: it parses args and runs a subcommand.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		printUsage(stderr)
		return usagef("no command given")
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		printUsage(stdout)
		return nil
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	return usagef("unknown command %q", name)
}

func printUsage(w io.Writer) {
	fmt.Fprintf(w, "dgramlab: Node-style UDP sockets on virtual hosts (gVisor), with captures.\n\nUsage:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  dgramlab %s %s\n      %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintf(w, "\nRun \"dgramlab COMMAND --help\" for a command's flags.\nExit codes: 0 success, 1 failure, 2 usage error.\n")
}

// newFlagSet returns a flag set that reports errors as usage errors and
// prints its help to stdout on --help.
func newFlagSet(name, args, summary string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: dgramlab %s %s\n\n%s\n\nFlags:\n", name, args, summary)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

// parseFlags parses args, turning flag errors into usage errors. The help
// goes to stdout once, and only when asked for: package flag would also
// print it on a bad flag, where the one-line error on stderr says enough.
func parseFlags(fs *flag.FlagSet, args []string) error {
	help := fs.Usage
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.Usage = help
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			help()
			return flag.ErrHelp
		}
		return usagef("%s: %v", fs.Name(), err)
	}
	return nil
}

// parseInterspersed is parseFlags for a command whose arguments are
// operands, such as file names, that may come before flags as well as
// after them ("inspect FILE --json"); package flag alone stops at the
// first operand. It returns the operands in order. "--" ends the flags:
// everything after it is an operand.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var operands []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(operands, rest...), nil
		}
		if len(rest) == 0 {
			return operands, nil
		}
		operands = append(operands, rest[0])
		args = rest[1:]
	}
}
