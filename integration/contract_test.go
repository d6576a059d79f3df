package integration

import (
	"github.com/dgramlab/dgramlab/capture"
	"github.com/dgramlab/dgramlab/stack"
	"github.com/dgramlab/dgramlab/tun"
)

// The links report their drops to capture taps through capture's
// DropReporter, which they meet without importing capture: their
// AddDropHook takes a wire.DropHook. A link whose hook type drifts from it
// would silently stop being recorded by taps (NewTap finds the reporter by
// a type assertion); these lines make that a compile error.
var (
	_ capture.DropReporter = (*stack.Port)(nil)
	_ capture.DropReporter = (*stack.PipeEnd)(nil)
	_ capture.DropReporter = (*stack.ImpairedLink)(nil)
	_ capture.DropReporter = (*tun.Device)(nil)
	_ capture.DropReporter = (*capture.Tap)(nil)
)
