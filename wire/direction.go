package wire

import "strconv"

// Direction says which way a frame was going, seen from the host whose NIC
// or link it is. The zero Direction is unknown (a frame read back from a
// capture file without direction flags, say).
//
// Outbound and Inbound are distinct bits, so a set of directions fits in a
// Direction: stack.BothDirections is Outbound|Inbound.
type Direction uint8

const (
	// Outbound is host → link: a frame the host was sending.
	Outbound Direction = 1
	// Inbound is link → host: a frame on its way to the host.
	Inbound Direction = 2
)

// String returns "outbound", "inbound", "unknown" for the zero Direction,
// or "direction(N)" for any other value.
func (d Direction) String() string {
	switch d {
	case Outbound:
		return "outbound"
	case Inbound:
		return "inbound"
	case 0:
		return "unknown"
	}
	return "direction(" + strconv.Itoa(int(d)) + ")"
}
