package ledger

import (
	"sync"
	"sync/atomic"
	"time"
)

// checkpointer copies the write-ahead log into the database file from its own connection
// and goroutine, so that Post neither copies pages nor waits for the fsyncs a checkpoint
// makes. SQLite's automatic checkpoint, which runs inside the committing writer, is turned
// off while it runs. Every interval it runs a PASSIVE checkpoint if something was committed
// since the last one: PASSIVE never blocks the writer or the readers, and a writer
// restarts the log from its beginning once a checkpoint has copied all of it.
type checkpointer struct {
	c        *rawConn
	interval time.Duration
	commits  atomic.Uint64 // commits since the last checkpoint
	stop     chan struct{}
	wg       sync.WaitGroup

	// running is held during a checkpoint: SQLite runs one checkpoint at a time and
	// fails, rather than waits for, a second one, so Sync takes it too.
	running sync.Mutex
}

func startCheckpointer(path string, pragmas []string, interval time.Duration) (*checkpointer, error) {
	c, err := openRaw(path)
	if err != nil {
		return nil, err
	}
	for _, p := range pragmas {
		if err := c.query("PRAGMA "+p, func(*rawStmt) error { return nil }); err != nil {
			c.close()
			return nil, err
		}
	}
	cp := &checkpointer{c: c, interval: interval, stop: make(chan struct{})}
	cp.wg.Add(1)
	go cp.run()
	return cp, nil
}

func (cp *checkpointer) run() {
	defer cp.wg.Done()
	t := time.NewTicker(cp.interval)
	defer t.Stop()
	for {
		select {
		case <-cp.stop:
			return
		case <-t.C:
			if cp.commits.Swap(0) == 0 {
				continue
			}
			// An error (an I/O error) leaves the log to grow; the writer's next commit or
			// Sync meets the same error and reports it.
			_ = cp.checkpoint()
		}
	}
}

// checkpoint copies what it can of the log into the database file.
func (cp *checkpointer) checkpoint() error {
	cp.running.Lock()
	defer cp.running.Unlock()
	return cp.c.exec("PRAGMA wal_checkpoint(PASSIVE)")
}

// committed tells the checkpointer that the writer committed.
func (cp *checkpointer) committed() { cp.commits.Add(1) }

func (cp *checkpointer) close() error {
	close(cp.stop)
	cp.wg.Wait()
	return cp.c.close()
}
