package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/dgramlab/dgramlab/capture"
)

const inspectSummary = `Summarises a pcap or pcapng file (written by dgramlab, tcpdump, tshark or
Wireshark): frames and bytes per link, each flow's count and sizes, IP
fragments, broadcasts and multicasts, and the drops dgramlab recorded with
their reasons. Flags may come before or after FILE.`

func runInspect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("inspect", "[flags] FILE", inspectSummary, stdout)
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return usagef("inspect: want exactly one FILE, got %d arguments", len(files))
	}
	sum, err := capture.SummarizeFile(files[0])
	if err != nil {
		return fmt.Errorf("inspect %s: %w", files[0], err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(sum)
	}
	return sum.WriteText(stdout)
}
