package capture

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteText writes the summary as aligned tables, for people:
//
//	pcapng: 9 frames, 4242 bytes, 1 dropped
//
//	LINK     TYPE      FRAMES  BYTES  IN  OUT  DROPS
//	h1/eth0  ethernet  5       2222   2   3    1
//	...
//
//	FLOW                            PROTO  FRAMES  BYTES  MIN   MAX
//	10.0.0.1:40000 > 10.0.0.2:9000  udp    2       2884   1442  1442
//	...
//
//	fragments: 4 frames, 2 datagrams, 2 reassembled
//	broadcasts: 1  multicasts: 0  non-ip: 2
//
//	DROP REASON  FRAMES  BYTES
//	mtu          1       1514
//
// For programs, encode the Summary as JSON instead.
func (s *Summary) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	drops := 0
	for _, d := range s.Drops {
		drops += d.Frames
	}
	fmt.Fprintf(tw, "%s: %d frames, %d bytes, %d dropped\n", s.Format, s.Frames, s.Bytes, drops)

	fmt.Fprintf(tw, "\nLINK\tTYPE\tFRAMES\tBYTES\tIN\tOUT\tDROPS\n")
	for _, l := range s.Links {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\n", l.Name, l.LinkType, l.Frames, l.Bytes, l.Inbound, l.Outbound, l.Drops)
	}

	if len(s.Flows) > 0 {
		fmt.Fprintf(tw, "\nFLOW\tPROTO\tFRAMES\tBYTES\tMIN\tMAX\n")
		for _, f := range s.Flows {
			fmt.Fprintf(tw, "%s > %s\t%s\t%d\t%d\t%d\t%d\n",
				hostPort(f.Src, f.SrcPort), hostPort(f.Dst, f.DstPort), f.Proto, f.Frames, f.Bytes, f.MinLen, f.MaxLen)
		}
	}

	fmt.Fprintf(tw, "\nfragments: %d frames, %d datagrams, %d reassembled",
		s.Fragments.Frames, s.Fragments.Datagrams, s.Fragments.Reassembled)
	if s.Fragments.Duplicates > 0 {
		fmt.Fprintf(tw, ", %d duplicates", s.Fragments.Duplicates)
	}
	fmt.Fprintf(tw, "\n")
	fmt.Fprintf(tw, "broadcasts: %d  multicasts: %d  non-ip: %d\n", s.Broadcasts, s.Multicasts, s.NonIP)

	if len(s.Drops) > 0 {
		fmt.Fprintf(tw, "\nDROP REASON\tFRAMES\tBYTES\n")
		for _, d := range s.Drops {
			fmt.Fprintf(tw, "%s\t%d\t%d\n", d.Reason, d.Frames, d.Bytes)
		}
	}
	return tw.Flush()
}
