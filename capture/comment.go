package capture

import "strings"

// DropCommentPrefix starts the pcapng comment of every dropped frame.
const DropCommentPrefix = "dgramlab: dropped: "

// DropComment returns the pcapng packet comment that marks a dropped frame:
//
//	dgramlab: dropped: <reason> (link <link>, <direction>)
//
// for example "dgramlab: dropped: mtu (link sw0/port2, outbound)". The
// reason is one word: spaces, parentheses and commas in it become '-', and
// an empty reason becomes "unknown". The direction is "outbound" or
// "inbound". The link name is written as is. ParseDropComment reverses it.
func DropComment(reason, link string, dir Direction) string {
	return DropCommentPrefix + cleanReason(reason) + " (link " + link + ", " + dirWord(dir) + ")"
}

// ParseDropComment parses a comment written by DropComment. ok is false for
// any other comment.
func ParseDropComment(comment string) (reason, link string, dir Direction, ok bool) {
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
		dir = Outbound
	case "inbound":
		dir = Inbound
	case "unknown":
		dir = 0
	default:
		return "", "", 0, false
	}
	return reason, link, dir, true
}

func dirWord(d Direction) string {
	switch d {
	case Outbound:
		return "outbound"
	case Inbound:
		return "inbound"
	}
	return "unknown"
}

// cleanReason makes reason a single word that cannot confuse
// ParseDropComment.
func cleanReason(reason string) string {
	if reason == "" {
		return "unknown"
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\n', '\r', '(', ')', ',':
			return '-'
		}
		return r
	}, reason)
}
