package main

import (
	"io"
	"sync/atomic"

	"github.com/gopacket/gopacket/layers"

	"github.com/dgramlab/dgramlab/capture"
)

// tapSink is what the +tap paths' capture taps record into: every frame is
// written as pcapng, as a capture to a file would be (the writer copies it
// into its buffer and encodes a block), to io.Discard so that memory stays
// bounded; and counted, so that the run can show that the taps saw every
// frame. Safe for concurrent use, as a capture.Sink must be.
type tapSink struct {
	w      *capture.PcapngWriter
	frames atomic.Uint64
}

var (
	_ capture.Sink      = (*tapSink)(nil)
	_ capture.LinkAdder = (*tapSink)(nil)
)

func newTapSink() *tapSink { return &tapSink{w: capture.NewPcapngWriter(io.Discard)} }

// Record implements capture.Sink.
func (s *tapSink) Record(f capture.Frame) {
	s.w.Record(f)
	s.frames.Add(1)
}

// AddLink implements capture.LinkAdder.
func (s *tapSink) AddLink(name string, linkType layers.LinkType) { s.w.AddLink(name, linkType) }

// check returns the writer's first error, if any: a frame it refused, or
// one it discarded.
func (s *tapSink) check() error {
	if err := s.w.Flush(); err != nil {
		return err
	}
	return s.w.Err()
}
