// Package watch calls a reload function when a configuration file may have changed: on change
// notifications of its directory (fsnotify, which also sees a Kubernetes ConfigMap's symlink swap),
// after a short settle delay, and on a fixed interval as the fallback. What a reload reads, compares
// and refuses is the caller's business.
package watch

import (
	"context"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// SettleDelay lets a burst of file events (an editor's write-and-rename, a ConfigMap's symlink swap)
// finish before the file is read.
const SettleDelay = 100 * time.Millisecond

// File calls reload once at once (changes made before the watch was set up would otherwise wait for
// the interval), then on every change notification in path's directory and every interval, until
// ctx is done. Without change notifications (no inotify, no directory yet) it polls only, and says so
// once on logger. It returns when ctx is done and leaves no goroutine behind.
func File(ctx context.Context, path string, interval time.Duration, logger *slog.Logger, reload func()) {
	var (
		events <-chan fsnotify.Event
		errs   <-chan error
	)
	if w, err := fsnotify.NewWatcher(); err != nil {
		logger.Warn("cannot watch the file; re-reading it periodically only", "err", err, "interval", interval)
	} else {
		defer func() { _ = w.Close() }()
		// The directory, not the file: editors and Kubernetes replace the file rather than write it.
		if err := w.Add(filepath.Dir(path)); err != nil {
			logger.Warn("cannot watch the file's directory; re-reading it periodically only", "err", err, "interval", interval)
		} else {
			events, errs = w.Events, w.Errors
		}
	}
	reload()

	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	settle := time.NewTimer(SettleDelay)
	settle.Stop()
	defer settle.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			// Any change in the directory may be ours (symlink swaps name other files); reading an
			// unchanged file costs a hash.
			settle.Reset(SettleDelay)
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			logger.Warn("watching the file", "err", err)
		case <-settle.C:
			reload()
		case <-ticker.C:
			reload()
		}
	}
}

// Refusals remembers why the last load of a watched file was refused, so that a bad file read again
// unchanged (every interval, on every event of its directory) is reported once. It is not safe for
// concurrent use: callers hold the lock that serialises their loads.
type Refusals struct {
	err  error
	what string
}

// Refused records that a load was refused with err; what identifies the failure (the read error,
// the refused content's hash). It reports whether the failure is new: log it and count it then.
func (r *Refusals) Refused(what string, err error) (isNew bool) {
	r.err = err
	if what == r.what {
		return false
	}
	r.what = what
	return true
}

// Loaded records that the file serving is the one on disk: nothing is refused any more.
func (r *Refusals) Loaded() { r.err, r.what = nil, "" }

// Err is why the last load was refused, or nil after Loaded.
func (r *Refusals) Err() error { return r.err }
