package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/dgramlab/dgramlab/wire"
)

// ErrClosed is returned by PcapngWriter.Flush after Close.
var ErrClosed = errors.New("capture: writer closed")

// PcapngWriter is a Sink that writes frames to a pcapng stream.
//
// Each link gets its own interface (IDB), named after the link, declared
// when a tap is created on it or at the link's first frame, with link type
// Ethernet for Ethernet links and LINKTYPE_RAW (101) for L3 links, no snap
// length and nanosecond timestamps (if_tsresol 9). Every frame is an
// Enhanced Packet Block whose flags word carries the direction (inbound or
// outbound). A dropped frame is written like the others, on its link's
// interface, with a packet comment made by DropComment, e.g.
// "dgramlab: dropped: mtu (link sw0/port2, outbound)". A timestamp the
// file cannot hold (before 1970, or after 2262-04-11, the last nanosecond
// an int64 counts from 1970) is written as the nearest one it can.
//
// A pcapng option holds at most MaxOptionLen (65535) bytes. A link name
// longer than that is an error (see AddLink); a drop comment that would be
// longer is shortened to fit: the link name in it (the interface's name
// has it in full) is cut, and so is a reason of more than half the room,
// each ending in "..."; the comment still parses with ParseDropComment. A
// frame whose Len is over math.MaxUint32 (a packet block's length fields
// are 32 bits) is an error.
//
// PcapngWriter is safe for concurrent use. Writes are buffered: call Flush
// to push them to the underlying writer, and Close at the end. The first
// error (a write error, or a link name or frame the writer refused) is
// kept and returned by Flush, Close and Err; frames recorded after an
// error or after Close are discarded. Close still writes out what was
// buffered before the error: complete blocks, so the file reads back.
type PcapngWriter struct {
	mu     sync.Mutex
	dst    io.Writer
	file   io.Closer // closed by Close when the writer made it
	ng     *pcapgo.NgWriter
	ifaces map[linkKey]int
	err    error
	closed bool
	// discarded counts frames not written: recorded after Close, or from
	// the first write error on.
	discarded int
}

type linkKey struct {
	name     string
	linkType layers.LinkType
}

var (
	_ Sink      = (*PcapngWriter)(nil)
	_ LinkAdder = (*PcapngWriter)(nil)
)

// pcapngSection is the section header information of every file written.
var pcapngSection = pcapgo.NgWriterOptions{
	SectionInfo: pcapgo.NgSectionInfo{Application: "dgramlab"},
}

// NewPcapngWriter returns a writer that writes pcapng to w. Nothing is
// written until the first link is added; a writer closed without links
// writes an empty section. Close does not close w.
func NewPcapngWriter(w io.Writer) *PcapngWriter {
	return &PcapngWriter{dst: w, ifaces: make(map[linkKey]int)}
}

// CreatePcapngFile creates (or truncates) the file at path and returns a
// writer to it; Close flushes and closes the file.
func CreatePcapngFile(path string) (*PcapngWriter, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	w := NewPcapngWriter(f)
	w.file = f
	return w, nil
}

// MaxOptionLen is the largest value a pcapng option can hold, in bytes
// (its length field is 16 bits): the limit on a link name, which is the
// interface's if_name option, and on a packet comment.
const MaxOptionLen = 65535

// AddLink implements LinkAdder: it declares an interface for the link now,
// so that interface numbers follow the order of AddLink calls. Adding a
// link twice does nothing.
//
// A name longer than MaxOptionLen bytes cannot be written: AddLink then
// sets the writer's error, which Err returns at once (NewTap calls AddLink:
// check Err after making a tap on the writer) and Flush and Close return.
func (w *PcapngWriter) AddLink(name string, linkType layers.LinkType) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.err != nil {
		return
	}
	if _, err := w.iface(name, linkType); err != nil {
		w.err = err
	}
}

// Record implements Sink.
func (w *PcapngWriter) Record(f Frame) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.err != nil {
		w.discarded++
		return
	}
	id, err := w.iface(f.Link, f.LinkType)
	if err != nil {
		w.err = err
		w.discarded++
		return
	}
	if err := checkFrameLen(f); err != nil {
		w.err = err
		w.discarded++
		return
	}
	opts := pcapgo.NgPacketOptions{Flags: &pcapgo.NgEpbFlags{Direction: epbDirection(f.Dir)}}
	if f.Drop != 0 {
		opts.Comments = []string{dropComment(f)}
	}
	ci := gopacket.CaptureInfo{
		Timestamp:      fileTime(f.Time),
		CaptureLength:  len(f.Data),
		Length:         max(f.Len, len(f.Data)),
		InterfaceIndex: id,
	}
	if err := w.ng.WritePacketWithOptions(ci, f.Data, opts); err != nil {
		w.err = err
		w.discarded++
	}
}

// Discarded returns how many recorded frames were not written: those
// recorded after Close (close the taps, or remove their NICs, first) and
// those from the first write error on (see Err).
func (w *PcapngWriter) Discarded() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.discarded
}

// Flush writes buffered frames to the underlying writer.
func (w *PcapngWriter) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	if w.err == nil && w.ng != nil {
		w.err = w.ng.Flush()
	}
	return w.err
}

// Close flushes the writer (writing an empty section if no link was ever
// added) and, for a writer made by CreatePcapngFile, closes the file. Later
// calls return the same error. Frames recorded after Close are discarded.
func (w *PcapngWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return w.err
	}
	w.closed = true
	switch {
	case w.ng != nil:
		// After an error the buffer holds the complete blocks written
		// before it (a write error stays in the buffer: nothing more is
		// written then).
		if err := w.ng.Flush(); w.err == nil {
			w.err = err
		}
	case w.err == nil:
		w.err = writeEmptySection(w.dst)
	}
	if w.file != nil {
		if err := w.file.Close(); w.err == nil {
			w.err = err
		}
	}
	return w.err
}

// Err returns the first error the writer met, or nil.
func (w *PcapngWriter) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// iface returns the interface id of a link, declaring it (and, on first
// use, the section) if needed. w.mu must be held.
func (w *PcapngWriter) iface(name string, linkType layers.LinkType) (int, error) {
	key := linkKey{name, linkType}
	if id, ok := w.ifaces[key]; ok {
		return id, nil
	}
	if len(name) > MaxOptionLen {
		return 0, fmt.Errorf("capture: link %s is %d bytes long, more than the %d bytes a pcapng interface name can have", quoteName(name), len(name), MaxOptionLen)
	}
	intf := pcapgo.NgInterface{
		Name:                name,
		LinkType:            linkType,
		TimestampResolution: 9,
	}
	var id int
	if w.ng == nil {
		ng, err := pcapgo.NewNgWriterInterface(w.dst, intf, pcapngSection)
		if err != nil {
			return 0, err
		}
		w.ng = ng
	} else {
		var err error
		if id, err = w.ng.AddInterface(intf); err != nil {
			return 0, err
		}
	}
	w.ifaces[key] = id
	return id, nil
}

// dropComment returns f's drop comment (DropComment), shortened to
// MaxOptionLen bytes if it is longer: the link name is cut to what is left
// by the comment's other words, and ends in "...".
func dropComment(f Frame) string {
	const ellipsis = "..."
	c := DropComment(f.Drop, f.Link, f.Dir)
	if len(c) <= MaxOptionLen {
		return c
	}
	link := cutUTF8(f.Link, len(f.Link)-(len(c)-MaxOptionLen)-len(ellipsis)) + ellipsis
	return DropComment(f.Drop, link, f.Dir)
}

// checkFrameLen says why f's lengths do not fit an Enhanced Packet Block,
// whose length fields are 32 bits, if they do not: a Len (the length on
// the wire) over math.MaxUint32, or more Data than a block can carry with
// its options.
func checkFrameLen(f Frame) error {
	const maxData = math.MaxUint32 - 1<<18 // room for the header and options
	switch {
	case int64(f.Len) > math.MaxUint32:
		return fmt.Errorf("capture: frame on link %s: length %d is more than the %d bytes a pcapng packet block can record", quoteName(f.Link), f.Len, uint64(math.MaxUint32))
	case int64(len(f.Data)) > maxData:
		return fmt.Errorf("capture: frame on link %s: %d bytes of data are more than the %d a pcapng packet block can carry", quoteName(f.Link), len(f.Data), maxData)
	}
	return nil
}

// quoteName quotes a name for an error, cut to its first 40 bytes.
func quoteName(name string) string {
	if len(name) <= 40 {
		return fmt.Sprintf("%q", name)
	}
	return fmt.Sprintf("%q", cutUTF8(name, 40)+"...")
}

// cutUTF8 returns s cut to at most n bytes, not inside a UTF-8 sequence.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	n = max(n, 0)
	for i := 0; i < utf8.UTFMax && n > 0 && !utf8.RuneStart(s[n]); i++ {
		n--
	}
	return s[:n]
}

func epbDirection(d wire.Direction) pcapgo.NgEpbFlag {
	switch d {
	case wire.Inbound:
		return pcapgo.NgEpbFlagDirectionInbound
	case wire.Outbound:
		return pcapgo.NgEpbFlagDirectionOutbound
	}
	return pcapgo.NgEpbFlagDirectionUnknown
}

// fileTime maps times a pcapng timestamp cannot hold to the nearest one
// it can: the zero time and anything before 1970 to the Unix epoch, and
// anything after the last nanosecond pcapgo counts in an int64 (in 2262)
// to that nanosecond, where UnixNano would wrap.
func fileTime(t time.Time) time.Time {
	if t.Before(time.Unix(0, 0)) {
		return time.Unix(0, 0)
	}
	if last := time.Unix(0, math.MaxInt64); t.After(last) {
		return last
	}
	return t
}

// writeEmptySection writes a little-endian pcapng Section Header Block
// without options, which is a complete, empty capture file.
func writeEmptySection(w io.Writer) error {
	var b [28]byte
	binary.LittleEndian.PutUint32(b[0:], 0x0A0D0D0A)          // block type
	binary.LittleEndian.PutUint32(b[4:], 28)                  // block length
	binary.LittleEndian.PutUint32(b[8:], 0x1A2B3C4D)          // byte-order magic
	binary.LittleEndian.PutUint16(b[12:], 1)                  // major version
	binary.LittleEndian.PutUint16(b[14:], 0)                  // minor version
	binary.LittleEndian.PutUint64(b[16:], 0xFFFFFFFFFFFFFFFF) // section length unknown
	binary.LittleEndian.PutUint32(b[24:], 28)                 // block length again
	_, err := w.Write(b[:])
	return err
}
