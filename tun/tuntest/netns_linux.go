package tuntest

import (
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// runLocked switches the locked thread in and out. If it cannot switch
// back, it leaves the thread locked, so the runtime discards it with the
// goroutine.
func (ns *Netns) runLocked(fn func() error) error {
	self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("tuntest: own namespace: %w", err)
	}
	defer unix.Close(self)
	target, err := unix.Open(ns.Path(), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("tuntest: namespace %s: %w", ns.name, err)
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("tuntest: setns %s: %w", ns.name, err)
	}
	ferr := fn()
	if err := unix.Setns(self, unix.CLONE_NEWNET); err != nil {
		return errors.Join(ferr, fmt.Errorf("tuntest: setns back: %w", err))
	}
	runtime.UnlockOSThread()
	return ferr
}
