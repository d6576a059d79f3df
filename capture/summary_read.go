package capture

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/dgramlab/dgramlab/wire"
)

// FormatError is returned by Summarize for input that is not a capture
// file, or that is truncated or corrupt.
type FormatError struct {
	// Format is "pcap" or "pcapng", or "" when the input was not
	// recognized.
	Format string
	// Offset is the byte offset in the input (in the decompressed bytes
	// for a gzip-compressed file) where the pcap record or pcapng block
	// that could not be read starts, or, for an error from the input
	// itself, where reading failed.
	Offset int64
	// Packets is the number of packets read before the failure.
	Packets int
	// Err is the underlying error.
	Err error
}

// Error returns e.g. "capture: pcapng: at byte 588 (after 4 packets):
// enhanced packet block: total length 2147483632 exceeds the 146240 bytes
// left".
func (e *FormatError) Error() string {
	f := e.Format
	if f == "" {
		f = "input"
	}
	return fmt.Sprintf("capture: %s: at byte %d (after %d packets): %v", f, e.Offset, e.Packets, e.Err)
}

// Unwrap returns the underlying error.
func (e *FormatError) Unwrap() error { return e.Err }

// errInternal marks a panic recovered while summarizing; it is a bug.
var errInternal = errors.New("internal error")

// SummarizeFile summarizes the capture file at path. See Summarize.
func SummarizeFile(path string) (*Summary, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Summarize(f)
}

// Summarize reads a pcap or pcapng capture (either byte order, micro- or
// nanosecond pcap, optionally gzip-compressed; the format is detected from
// the first bytes) and summarizes it. pcapng files may mix link types.
// Drops are recognized by the comments PcapngWriter writes (see
// DropComment).
//
// Each pcap record and pcapng block is checked whole before it is parsed:
// its length against the bytes left, a pcapng block's trailing total
// length against its leading one, and a packet's captured length against
// the record or block that holds it. Input that is not a capture file, or
// is truncated or corrupt, gives a *FormatError naming the offset where
// the bad record or block starts and what is wrong with it; an error
// reading the input (a directory, a failing disk) gives a *FormatError
// that wraps it.
func Summarize(r io.Reader) (s *Summary, err error) {
	in := newOffsetReader(r)
	defer func() {
		if p := recover(); p != nil {
			s, err = nil, &FormatError{Offset: in.offset(), Err: fmt.Errorf("%w: %v", errInternal, p)}
		}
	}()
	magic, err := in.br.Peek(4)
	if len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, gzErr := gzip.NewReader(in.br)
		if gzErr != nil {
			return nil, &FormatError{Offset: in.offset(), Err: fmt.Errorf("gzip: %w", gzErr)}
		}
		defer gz.Close()
		in = newOffsetReader(gz)
		magic, err = in.br.Peek(4)
		if err != nil && err != io.EOF {
			err = fmt.Errorf("gzip: %w", err)
		}
	}
	if len(magic) < 4 {
		if err != nil && err != io.EOF {
			// A read error, not a short file: say what it was.
			return nil, &FormatError{Offset: int64(len(magic)), Err: err}
		}
		return nil, &FormatError{Offset: int64(len(magic)), Err: fmt.Errorf("too short for a capture file (%d bytes)", len(magic))}
	}
	switch m := binary.LittleEndian.Uint32(magic); m {
	case 0x0A0D0D0A:
		return summarizePcapng(in)
	case 0xA1B2C3D4, 0xA1B23C4D, 0xD4C3B2A1, 0x4D3CB2A1:
		return summarizePcap(in)
	default:
		return nil, &FormatError{Err: fmt.Errorf("not a pcap or pcapng file (starts with %x)", magic)}
	}
}

func summarizePcap(in *offsetReader) (*Summary, error) {
	fr := newPcapFramer(in.br)
	fail := func(n int, err error) error { return fr.fail("pcap", n, err) }
	pr, err := pcapgo.NewReader(fr)
	if err != nil {
		return nil, fail(0, err)
	}
	z := newSummarizer("pcap")
	lt := pr.LinkType()
	link := z.link("pcap", lt)
	for n := 0; ; n++ {
		data, ci, err := pr.ZeroCopyReadPacketData()
		if err == io.EOF {
			return z.finish(), nil
		}
		if err != nil {
			return nil, fail(n, err)
		}
		z.add(link, lt, 0, data, max(ci.Length, len(data)), "")
	}
}

func summarizePcapng(in *offsetReader) (*Summary, error) {
	fr := newPcapngFramer(in.br)
	fail := func(n int, err error) error { return fr.fail("pcapng", n, err) }
	nr, err := pcapgo.NewNgReader(fr, pcapgo.NgReaderOptions{WantMixedLinkType: true})
	if err != nil {
		return nil, fail(0, err)
	}
	z := newSummarizer("pcapng")
	for n := 0; ; n++ {
		data, ci, opts, err := nr.ZeroCopyReadPacketDataWithOptions()
		if err == io.EOF {
			return z.finish(), nil
		}
		if err != nil {
			return nil, fail(n, err)
		}
		lt := packetLinkType(ci)
		name := "if" + strconv.Itoa(ci.InterfaceIndex)
		if intf, err := nr.Interface(ci.InterfaceIndex); err == nil && intf.Name != "" {
			name = intf.Name
		}
		var dir wire.Direction
		if opts.Flags != nil {
			switch opts.Flags.Direction {
			case pcapgo.NgEpbFlagDirectionInbound:
				dir = wire.Inbound
			case pcapgo.NgEpbFlagDirectionOutbound:
				dir = wire.Outbound
			}
		}
		drop := ""
		for _, c := range opts.Comments {
			if reason, _, d, ok := ParseDropComment(c); ok {
				drop = reason
				if dir == 0 {
					dir = d
				}
				break
			}
		}
		z.add(z.link(name, lt), lt, dir, data, max(ci.Length, len(data)), drop)
	}
}

func packetLinkType(ci gopacket.CaptureInfo) layers.LinkType {
	if len(ci.AncillaryData) > 0 {
		if lt, ok := ci.AncillaryData[0].(layers.LinkType); ok {
			return lt
		}
	}
	return layers.LinkTypeNull
}

// noEOF turns a bare io.EOF inside a record into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// offsetReader knows how many bytes its consumers have taken from br:
// what br read minus what it still buffers. (Summarize peeks at the magic
// through br, and the framer that feeds pcapgo reads from it.)
type offsetReader struct {
	n  int64 // bytes read from the source
	r  io.Reader
	br *bufio.Reader
}

func newOffsetReader(r io.Reader) *offsetReader {
	o := &offsetReader{r: r}
	o.br = bufio.NewReaderSize(countingReader{o}, 64<<10)
	return o
}

func (o *offsetReader) offset() int64 { return o.n - int64(o.br.Buffered()) }

type countingReader struct{ o *offsetReader }

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.o.r.Read(p)
	c.o.n += int64(n)
	return n, err
}
