package wire_test

import (
	"testing"

	"github.com/dgramlab/dgramlab/wire"
)

// The words are part of the capture format (pcapng comments, summaries,
// golden files): they must never change.
var words = map[wire.DropReason]string{
	wire.DropMTU:             "mtu",
	wire.DropLinkDown:        "link-down",
	wire.DropDetached:        "detached",
	wire.DropMalformed:       "malformed",
	wire.DropQueueFull:       "queue-full",
	wire.DropLoss:            "loss",
	wire.DropWriteError:      "write-error",
	wire.DropNoDestination:   "no-destination",
	wire.DropUnresolved:      "unresolved",
	wire.DropBadHeader:       "bad-header",
	wire.DropBadChecksum:     "bad-checksum",
	wire.DropNotForUs:        "not-for-us",
	wire.DropNoRoute:         "no-route",
	wire.DropReassembly:      "reassembly",
	wire.DropNoMember:        "no-member",
	wire.DropNoListener:      "no-listener",
	wire.DropBufferFull:      "buffer-full",
	wire.DropClosedUnread:    "closed-unread",
	wire.DropHostClosed:      "host-closed",
	wire.DropSourceFiltered:  "source-filtered",
	wire.DropUnknownProtocol: "unknown-protocol",
	wire.DropBadLength:       "bad-length",
	wire.DropUnknown:         "unknown",
}

func TestDropReasonWords(t *testing.T) {
	all := wire.AllDropReasons()
	if len(all) != len(words) || len(all) != int(wire.MaxDropReason) {
		t.Fatalf("AllDropReasons() has %d reasons, MaxDropReason = %d, want %d", len(all), wire.MaxDropReason, len(words))
	}
	seen := map[string]bool{}
	for i, r := range all {
		if r != wire.DropReason(i+1) {
			t.Errorf("AllDropReasons()[%d] = %d, want %d", i, r, i+1)
		}
		w := r.String()
		if w != words[r] {
			t.Errorf("DropReason(%d).String() = %q, want %q", r, w, words[r])
		}
		if seen[w] {
			t.Errorf("word %q is used twice", w)
		}
		seen[w] = true
		if got, ok := wire.ParseDropReason(w); !ok || got != r {
			t.Errorf("ParseDropReason(%q) = %d, %v, want %d, true", w, got, ok, r)
		}
	}
}

// The values index counter arrays and feed nothing else, but the
// enumeration is append-only: the first reasons keep their values.
func TestDropReasonValues(t *testing.T) {
	for r, want := range map[wire.DropReason]int{wire.DropMTU: 1, wire.DropNoDestination: 8, wire.DropUnresolved: 9, wire.DropBadLength: 22, wire.DropUnknown: 23} {
		if int(r) != want {
			t.Errorf("%v = %d, want %d", r, int(r), want)
		}
	}
}

func TestDropReasonOutside(t *testing.T) {
	for r, want := range map[wire.DropReason]string{0: "none", wire.MaxDropReason + 1: "reason(24)", 255: "reason(255)"} {
		if got := r.String(); got != want {
			t.Errorf("DropReason(%d).String() = %q, want %q", uint8(r), got, want)
		}
	}
	for _, w := range []string{"", "none", "MTU", "reason(24)", "mtu "} {
		if r, ok := wire.ParseDropReason(w); ok {
			t.Errorf("ParseDropReason(%q) = %v, true, want false", w, r)
		}
	}
}

func TestDirectionString(t *testing.T) {
	for d, want := range map[wire.Direction]string{0: "unknown", wire.Outbound: "outbound", wire.Inbound: "inbound", wire.Outbound | wire.Inbound: "direction(3)", 200: "direction(200)"} {
		if got := d.String(); got != want {
			t.Errorf("Direction(%d).String() = %q, want %q", uint8(d), got, want)
		}
	}
}
