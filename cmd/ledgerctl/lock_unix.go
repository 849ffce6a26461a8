//go:build unix

package main

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockRebuild takes an exclusive lock that only another rebuild of the same read models
// contends for: two rebuilds at once would share (and delete) each other's work file. The
// lock is an flock, so the kernel drops it when the process dies and a crashed rebuild
// never blocks the next one.
func lockRebuild(dbPath string) (unlock func(), err error) {
	path := dbPath + ".rebuild.lock"
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another ledgerctl rebuild of %s is running (it holds %s)", dbPath, path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}
