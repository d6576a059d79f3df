//go:build !linux

package tuntest

import (
	"errors"
	"runtime"
)

// runLocked fails: network namespaces are Linux's.
func (ns *Netns) runLocked(func() error) error {
	runtime.UnlockOSThread()
	return errors.New("tuntest: network namespaces need Linux")
}
