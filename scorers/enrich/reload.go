package enrich

import (
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
)

// refFile is one reference file and the data last loaded from it. Scorers read the data
// through an atomic pointer; a reload parses the whole file to the side and swaps the
// pointer only when the file parsed cleanly, so a broken file leaves the old data in use.
type refFile[T any] struct {
	name string // the file's role in the config and in metrics: customers, deny.ips, ...
	path string
	load func(path string) (*T, int, error)
	log  *slog.Logger
	cur  atomic.Pointer[T]

	mu      sync.Mutex  // serialises reloads
	fi      os.FileInfo // the version of the file last parsed, cleanly or not
	statErr bool        // the last error was a failed stat, cleared once the file is back

	entries, reloads, failures atomic.Int64
	lastErr                    atomic.Pointer[string]
}

// get returns the data in use: nil when the file is not configured.
func (r *refFile[T]) get() *T {
	if r == nil {
		return nil
	}
	return r.cur.Load()
}

// open loads the file for the first time: any error is the caller's to report.
func (r *refFile[T]) open() error {
	fi, err := os.Stat(r.path)
	if err != nil {
		return fmt.Errorf("%s file: %w", r.name, err)
	}
	t, n, err := r.load(r.path)
	if err != nil {
		return fmt.Errorf("%s file: %w", r.name, err)
	}
	r.fi = fi
	r.cur.Store(t)
	r.entries.Store(int64(n))
	return nil
}

// check reloads the file when its size, modification time or identity (a new file renamed
// over it) changed since it was last parsed.
func (r *refFile[T]) check() {
	r.mu.Lock()
	defer r.mu.Unlock()
	fi, err := os.Stat(r.path)
	if err != nil {
		msg := fmt.Sprintf("%s file: %v; keeping the data loaded before", r.name, err)
		if p := r.lastErr.Load(); p == nil || *p != msg {
			r.failures.Add(1)
			r.lastErr.Store(&msg)
			r.statErr = true
			r.log.Error("reference file unreadable", "file", r.name, "path", r.path, "error", err)
		}
		return
	}
	if sameVersion(r.fi, fi) {
		if r.statErr {
			r.statErr = false
			r.lastErr.Store(nil)
		}
		return
	}
	t, n, err := r.load(r.path)
	if after, err2 := os.Stat(r.path); err2 != nil || !sameVersion(fi, after) {
		return // changed while it was read: parse it again at the next poll
	}
	r.fi, r.statErr = fi, false
	if err != nil {
		msg := err.Error()
		r.failures.Add(1)
		r.lastErr.Store(&msg)
		r.log.Error("reference file not reloaded, keeping the data loaded before: fix the file and it is reloaded", "file", r.name, "error", err)
		return
	}
	r.cur.Store(t)
	r.entries.Store(int64(n))
	r.reloads.Add(1)
	r.lastErr.Store(nil)
	r.log.Info("reference file reloaded", "file", r.name, "path", r.path, "entries", n)
}

func sameVersion(a, b os.FileInfo) bool {
	return a != nil && b != nil && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime()) && os.SameFile(a, b)
}

func (r *refFile[T]) stats() FileStats {
	st := FileStats{
		Name:     r.name,
		Path:     r.path,
		Entries:  r.entries.Load(),
		Reloads:  r.reloads.Load(),
		Failures: r.failures.Load(),
	}
	if p := r.lastErr.Load(); p != nil {
		st.LastError = *p
	}
	return st
}

// reloader is a refFile of any type, for the reload loop and Stats.
type reloader interface {
	check()
	stats() FileStats
}

// FileStats describes one reference file's reloads, for metrics and health checks.
type FileStats struct {
	Name     string // customers, merchants, countries, allow.cards, deny.ips, ...
	Path     string
	Entries  int64 // rows or list entries in the data in use
	Reloads  int64 // successful reloads since the start (the first load not counted)
	Failures int64 // reloads that failed and kept the data loaded before
	// LastError says why the latest reload failed, with the file and line; "" when the data
	// in use is the file's current content.
	LastError string
}
