package capture

import (
	"strings"

	"github.com/dgramlab/dgramlab/wire"
)

// DropCommentPrefix starts the pcapng comment of every dropped frame.
const DropCommentPrefix = "dgramlab: dropped: "

// DropComment returns the pcapng packet comment that marks a dropped frame:
//
//	dgramlab: dropped: <reason> (link <link>, <direction>)
//
// for example "dgramlab: dropped: mtu (link sw0/port2, outbound)". The
// reason is its word (reason.String()); the zero reason and one outside the
// enumeration are written as wire.DropUnknown's, "unknown". The direction
// is "outbound" or "inbound", or "unknown" for any other value. The link
// name is written as is. ParseDropComment reverses it.
func DropComment(reason wire.DropReason, link string, dir wire.Direction) string {
	return DropCommentPrefix + knownReason(reason).String() + " (link " + link + ", " + dirWord(dir) + ")"
}

// ParseDropComment parses a comment written by DropComment. ok is false for
// any other comment. reason is the word as written: a file may hold a word
// this version does not know, so it stays a string; ParseDropReason turns a
// known one into a wire.DropReason.
func ParseDropComment(comment string) (reason, link string, dir wire.Direction, ok bool) {
	rest, found := strings.CutPrefix(comment, DropCommentPrefix)
	if !found {
		return "", "", 0, false
	}
	reason, rest, found = strings.Cut(rest, " (link ")
	if !found || reason == "" || !strings.HasSuffix(rest, ")") {
		return "", "", 0, false
	}
	rest = strings.TrimSuffix(rest, ")")
	sep := strings.LastIndex(rest, ", ")
	if sep < 0 {
		return "", "", 0, false
	}
	link = rest[:sep]
	switch rest[sep+2:] {
	case "outbound":
		dir = wire.Outbound
	case "inbound":
		dir = wire.Inbound
	case "unknown":
		dir = 0
	default:
		return "", "", 0, false
	}
	return reason, link, dir, true
}

// dirWord is the direction in a drop comment: anything but Outbound and
// Inbound is "unknown", as ParseDropComment reads it.
func dirWord(d wire.Direction) string {
	if d != wire.Outbound && d != wire.Inbound {
		return "unknown"
	}
	return d.String()
}

// knownReason returns reason, or wire.DropUnknown for the zero reason and
// one outside the enumeration, so that a drop stays a drop and its comment
// keeps one word.
func knownReason(reason wire.DropReason) wire.DropReason {
	if reason == 0 || reason > wire.MaxDropReason {
		return wire.DropUnknown
	}
	return reason
}
