package capture

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// maxUnit bounds the pcap records and pcapng blocks the readers accept (and
// so what they hold in memory at once): 128 MiB, as Wireshark's largest
// block.
const maxUnit = 128 << 20

// A framer sits between the input and pcapgo's readers. It reads the
// capture one unit at a time (the file header or a record of a pcap file, a
// block of a pcapng file), checks the unit's framing whole (its length
// against the bytes left, a pcapng block's trailing length against its
// leading one, a packet's captured length against its unit) and only then
// lets pcapgo read it. So pcapgo never reads past a unit on the strength of
// a corrupt length, and every error can name the offset where the unit
// starts.
//
// Read returns at most the rest of the current unit, so pcapgo's buffered
// reader asks for the next unit only once it has consumed this one: start
// is the offset of the unit pcapgo is parsing.
type framer struct {
	src   *bufio.Reader
	off   int64 // offset in the input of the next byte of src
	start int64 // offset of the current unit
	buf   []byte
	pos   int // next byte of buf to hand out
	load  func(f *framer) error

	// err is the framing or read error that stopped the framer, found at
	// byte errOff; pcapgo sees it too, but may wrap it or lose it.
	err    error
	errOff int64

	// pcapng state: the byte order of the current section and the snap
	// length of its first interface (for Simple Packet Blocks).
	order    binary.ByteOrder
	idbs     int
	snapLen0 uint32
	// pcap state: the byte order of the file.
	pcapOrder binary.ByteOrder
}

func newPcapFramer(src *bufio.Reader) *framer {
	return &framer{src: src, load: (*framer).loadPcap}
}

func newPcapngFramer(src *bufio.Reader) *framer {
	return &framer{src: src, load: (*framer).loadPcapng}
}

// Read implements io.Reader.
func (f *framer) Read(p []byte) (int, error) {
	if f.pos == len(f.buf) {
		if f.err != nil {
			return 0, f.err
		}
		f.start, f.buf, f.pos = f.off, f.buf[:0], 0
		if err := f.load(f); err != nil {
			if err != io.EOF {
				f.errOff = f.start
				var re readError
				if errors.As(err, &re) {
					err, f.errOff = re.err, f.off
				}
			}
			f.err = err
			return 0, err
		}
	}
	n := copy(p, f.buf[f.pos:])
	f.pos += n
	return n, nil
}

// fail returns the *FormatError for err, which pcapgo returned after
// reading n packets from f. The framer's own error wins over pcapgo's
// (which may wrap it, or report its consequence); an error of pcapgo's is
// placed at the start of the unit it was parsing.
func (f *framer) fail(format string, n int, err error) error {
	if f.err != nil && f.err != io.EOF {
		return &FormatError{Format: format, Offset: f.errOff, Packets: n, Err: f.err}
	}
	return &FormatError{Format: format, Offset: f.start, Packets: n, Err: noEOF(err)}
}

// readError is a read error from the input (not a framing error).
type readError struct{ err error }

func (e readError) Error() string { return e.err.Error() }

// truncatedError says a unit runs past the end of the input; it is an
// io.ErrUnexpectedEOF.
type truncatedError struct{ msg string }

func (e *truncatedError) Error() string { return e.msg }
func (e *truncatedError) Unwrap() error { return io.ErrUnexpectedEOF }

// fill appends n more bytes of the input to buf. At the end of the input
// it returns how many bytes it got, with io.EOF; other read errors come as
// a readError. It never holds more than maxUnit bytes of a unit.
func (f *framer) fill(n int) (int, error) {
	got := 0
	for got < n {
		// Grow as the bytes arrive, not as the length claims.
		chunk := min(n-got, max(4<<10, len(f.buf)), 1<<20)
		if len(f.buf)+chunk > maxUnit {
			// Too long to hold: count what is left instead.
			d, err := f.src.Discard(n - got)
			f.off += int64(d)
			got += d
			return got, f.readErr(err)
		}
		at := len(f.buf)
		f.buf = slices.Grow(f.buf, chunk)[:at+chunk]
		r, err := io.ReadFull(f.src, f.buf[at:])
		f.buf = f.buf[:at+r]
		f.off += int64(r)
		got += r
		if err != nil {
			return got, f.readErr(err)
		}
	}
	return got, nil
}

func (f *framer) readErr(err error) error {
	switch err {
	case nil:
		return nil
	case io.EOF, io.ErrUnexpectedEOF:
		return io.EOF
	}
	return readError{err}
}

// unit reads the rest of a unit of length total (its first len(f.buf)
// bytes are read already). When the input ends first it returns a
// *truncatedError saying "<what> <total> exceeds the <n> bytes left",
// where n counts from the unit's start.
func (f *framer) unit(what string, total uint64) error {
	if _, err := f.fill(int(min(total, maxUnit+1) - uint64(len(f.buf)))); err == io.EOF {
		return &truncatedError{fmt.Sprintf("%s %d exceeds the %d bytes left", what, total, f.off-f.start)}
	} else if err != nil {
		return err
	}
	if total > maxUnit {
		return fmt.Errorf("%s %d exceeds the limit of %d bytes", what, total, maxUnit)
	}
	return nil
}

// header reads the first n bytes of a unit (some may be read already); at
// the end of the input before the unit's first byte it returns io.EOF.
func (f *framer) header(what string, n int) error {
	if _, err := f.fill(n - len(f.buf)); err != nil {
		if err == io.EOF {
			if len(f.buf) == 0 {
				return io.EOF
			}
			return &truncatedError{fmt.Sprintf("%s cut short: %d of %d bytes", what, len(f.buf), n)}
		}
		return err
	}
	return nil
}

// loadPcap loads the file header or the next record of a pcap file.
func (f *framer) loadPcap() error {
	if f.pcapOrder == nil {
		if err := f.header("file header", 24); err != nil {
			if err == io.EOF {
				err = &truncatedError{"file header cut short: 0 of 24 bytes"}
			}
			return err
		}
		f.pcapOrder = binary.LittleEndian
		switch binary.LittleEndian.Uint32(f.buf) {
		case 0xD4C3B2A1, 0x4D3CB2A1:
			f.pcapOrder = binary.BigEndian
		}
		return nil
	}
	if err := f.header("record header", 16); err != nil {
		return err
	}
	caplen := f.pcapOrder.Uint32(f.buf[8:12])
	err := f.unit("record: 16-byte header plus captured length", 16+uint64(caplen))
	var te *truncatedError
	if errors.As(err, &te) {
		return &truncatedError{fmt.Sprintf("record: captured length %d exceeds the %d bytes left after its header", caplen, f.off-f.start-16)}
	}
	return err
}

// pcapng block types the framer looks into.
const (
	ngSHB = 0x0A0D0D0A
	ngIDB = 0x00000001
	ngPB  = 0x00000002 // obsolete Packet Block
	ngSPB = 0x00000003
	ngEPB = 0x00000006
)

func ngBlockName(typ uint32) string {
	switch typ {
	case ngSHB:
		return "section header block"
	case ngIDB:
		return "interface description block"
	case ngPB:
		return "packet block"
	case ngSPB:
		return "simple packet block"
	case ngEPB:
		return "enhanced packet block"
	}
	return fmt.Sprintf("block of type %#x", typ)
}

// loadPcapng loads the next block of a pcapng file.
func (f *framer) loadPcapng() error {
	if err := f.header("block header", 8); err != nil {
		return err
	}
	typ := binary.LittleEndian.Uint32(f.buf)
	if typ == ngSHB {
		if err := f.header("section header block", 12); err != nil {
			return err
		}
		switch m := f.buf[8:12]; {
		case binary.LittleEndian.Uint32(m) == 0x1A2B3C4D:
			f.order = binary.LittleEndian
		case binary.BigEndian.Uint32(m) == 0x1A2B3C4D:
			f.order = binary.BigEndian
		default:
			return fmt.Errorf("section header block: byte-order magic %x is not 1a2b3c4d in either byte order", m)
		}
		f.idbs, f.snapLen0 = 0, 0
	} else if f.order == nil {
		return fmt.Errorf("%s before the section header block", ngBlockName(typ))
	} else {
		typ = f.order.Uint32(f.buf)
	}
	name := ngBlockName(typ)
	total := f.order.Uint32(f.buf[4:8])
	if total < 12 || total%4 != 0 {
		return fmt.Errorf("%s: total length %d is not a multiple of 4 of at least 12", name, total)
	}
	if err := f.unit(name+": total length", uint64(total)); err != nil {
		return err
	}
	b := f.buf
	if tail := f.order.Uint32(b[len(b)-4:]); tail != total {
		return fmt.Errorf("%s: total lengths differ: %d at the start, %d at the end", name, total, tail)
	}
	body := b[8 : len(b)-4]
	need := func(n int) error {
		if len(body) < n {
			return fmt.Errorf("%s: total length %d is too short for its %d-byte header", name, total, 12+n)
		}
		return nil
	}
	// The captured packet must fit in the block.
	var caplen uint32
	var fixed int
	switch typ {
	case ngSHB:
		return need(16)
	case ngIDB:
		if err := need(8); err != nil {
			return err
		}
		if f.idbs == 0 {
			f.snapLen0 = f.order.Uint32(body[4:8])
		}
		f.idbs++
		return nil
	case ngEPB, ngPB:
		fixed = 20
		if err := need(fixed); err != nil {
			return err
		}
		caplen = f.order.Uint32(body[12:16])
	case ngSPB:
		fixed = 4
		if err := need(fixed); err != nil {
			return err
		}
		caplen = f.order.Uint32(body[0:4])
		if f.snapLen0 != 0 && caplen > f.snapLen0 {
			caplen = f.snapLen0
		}
	default:
		return nil
	}
	if room := uint64(len(body) - fixed); uint64(caplen) > room {
		return fmt.Errorf("%s: captured length %d exceeds the %d bytes of packet data the block holds", name, caplen, room)
	}
	return nil
}
