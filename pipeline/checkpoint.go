package pipeline

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// CheckpointVersion is the version of the checkpoint format this build writes and reads.
const CheckpointVersion = 1

// ErrNoCheckpoint is returned by a CheckpointStore that holds no complete checkpoint.
var ErrNoCheckpoint = errors.New("no complete checkpoint")

// Snapshotter is implemented by the parts of a pipeline that keep state a checkpoint must
// carry: scorers (windows), sinks (how much of their output is committed), sources.
type Snapshotter interface {
	Snapshot() ([]byte, error)
	Restore(data []byte) error
}

// Positioner is implemented by sources that can rewind: Position is where the source would
// resume reading after the last batch it returned; Seek moves it there on recovery.
type Positioner interface {
	Position() ([]byte, error)
	Seek(pos []byte) error
}

// GroupPositioner is implemented by sources whose stream is partitioned by key (a NATS
// stream with subjects <prefix>.<p>.<key>), so that instances sharing the stream can hand
// partitions to each other with their state (EngineConfig.Groups).
type GroupPositioner interface {
	Positioner
	// GroupPositions is, for each partition the source reads, the position (stream
	// sequence) up to which every message of that partition was returned.
	GroupPositions() (map[int]uint64, error)
	// SeekGroups makes each partition resume after its own position; a partition missing
	// from pos starts from the beginning of the stream.
	SeekGroups(pos map[int]uint64) error
}

// Manifest describes one complete checkpoint. It is written last, so a checkpoint without
// a manifest, or whose files do not match the manifest's sizes and checksums, is incomplete
// and never loaded.
type Manifest struct {
	Version    int       `json:"version"`
	ID         uint64    `json:"id"`
	Created    time.Time `json:"created"`
	Partitions int       `json:"partitions"`
	NextSeq    uint64    `json:"next_seq"`  // sequence number of the first event after the checkpoint
	Watermark  int64     `json:"watermark"` // engine watermark at the barrier, Unix ms
	Source     string    `json:"source"`
	// Instance and Groups are set by a scaled-out instance (EngineConfig.Groups): which
	// instance wrote it ("1/3") and, for each stream partition it owned, the source
	// position (stream sequence) its partition-<p>.state covers.
	Instance string         `json:"instance,omitempty"`
	Groups   map[int]uint64 `json:"groups,omitempty"`
	// GroupTimes is each owned stream partition's newest event time (Unix ms), from which
	// its watermark resumes wherever it is taken over.
	GroupTimes map[int]int64       `json:"group_times,omitempty"`
	Files      map[string]FileInfo `json:"files"`
}

// FileInfo is the size and CRC32-C checksum of one checkpoint file.
type FileInfo struct {
	Size  int64  `json:"size"`
	CRC32 uint32 `json:"crc32c"`
}

// Checkpoint is a loaded checkpoint: its manifest and its files.
type Checkpoint struct {
	Manifest Manifest
	Files    map[string][]byte
	Location string // where it was read from, for messages
}

// CheckpointStore keeps checkpoints. Write stores the files first and the manifest last,
// atomically, so a crash mid-write leaves the previous checkpoint the newest complete one.
type CheckpointStore interface {
	Write(ctx context.Context, m Manifest, files map[string][]byte) error
	// Latest returns the newest complete, intact checkpoint, skipping damaged ones, or
	// ErrNoCheckpoint.
	Latest(ctx context.Context) (*Checkpoint, error)
	// Prune removes all but the newest keep checkpoints.
	Prune(ctx context.Context, keep int) error
	String() string
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Checksum is the CRC32-C of b, as recorded in manifests.
func Checksum(b []byte) uint32 { return crc32.Checksum(b, crcTable) }

// DirStore keeps checkpoints in a folder of the local file system (file:// URLs), one
// sub-folder per checkpoint: chk-<id>/ with its files and MANIFEST.json.
type DirStore struct {
	dir string
}

// NewDirStore returns a store in dir, creating it if needed.
func NewDirStore(dir string) (*DirStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("checkpoint store: %w", err)
	}
	return &DirStore{dir: dir}, nil
}

func (s *DirStore) String() string { return "file://" + s.dir }

const manifestName = "MANIFEST.json"

func chkDirName(id uint64) string { return fmt.Sprintf("chk-%012d", id) }

// Write stores a checkpoint: every file written and fsynced, then the manifest written to a
// temporary name, fsynced and renamed into place, then the folder fsynced.
func (s *DirStore) Write(ctx context.Context, m Manifest, files map[string][]byte) error {
	dir := filepath.Join(s.dir, chkDirName(m.ID))
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("checkpoint %d: %w", m.ID, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("checkpoint %d: %w", m.ID, err)
	}
	m.Version = CheckpointVersion
	m.Files = make(map[string]FileInfo, len(files))
	for name, data := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := writeFileSync(filepath.Join(dir, name), data); err != nil {
			return fmt.Errorf("checkpoint %d: %w", m.ID, err)
		}
		m.Files[name] = FileInfo{Size: int64(len(data)), CRC32: Checksum(data)}
	}
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("checkpoint %d: manifest: %w", m.ID, err)
	}
	tmp := filepath.Join(dir, manifestName+".tmp")
	if err := writeFileSync(tmp, mb); err != nil {
		return fmt.Errorf("checkpoint %d: %w", m.ID, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, manifestName)); err != nil {
		return fmt.Errorf("checkpoint %d: %w", m.ID, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("checkpoint %d: %w", m.ID, err)
	}
	return syncDir(s.dir)
}

func writeFileSync(path string, data []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// ids lists the checkpoint ids present, newest first.
func (s *DirStore) ids() ([]uint64, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("checkpoint store: %w", err)
	}
	var ids []uint64
	for _, e := range entries {
		name, ok := strings.CutPrefix(e.Name(), "chk-")
		if !ok || !e.IsDir() {
			continue
		}
		if id, err := strconv.ParseUint(name, 10, 64); err == nil {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] > ids[j] })
	return ids, nil
}

// Latest loads the newest checkpoint whose manifest and files are intact.
func (s *DirStore) Latest(ctx context.Context) (*Checkpoint, error) {
	ids, err := s.ids()
	if err != nil {
		return nil, err
	}
	var damaged []string
	for _, id := range ids {
		c, err := LoadCheckpointDir(filepath.Join(s.dir, chkDirName(id)))
		if err == nil {
			return c, nil
		}
		damaged = append(damaged, err.Error())
	}
	if len(damaged) > 0 {
		return nil, fmt.Errorf("%w in %s (skipped: %s)", ErrNoCheckpoint, s, strings.Join(damaged, "; "))
	}
	return nil, ErrNoCheckpoint
}

// LoadCheckpointDir reads and verifies one checkpoint folder.
func LoadCheckpointDir(dir string) (*Checkpoint, error) {
	mb, err := os.ReadFile(filepath.Join(dir, manifestName))
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: incomplete: %w", dir, err)
	}
	var m Manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		return nil, fmt.Errorf("checkpoint %s: manifest: %w", dir, err)
	}
	if m.Version != CheckpointVersion {
		return nil, fmt.Errorf("checkpoint %s: format version %d, this build reads %d", dir, m.Version, CheckpointVersion)
	}
	c := &Checkpoint{Manifest: m, Files: make(map[string][]byte, len(m.Files)), Location: dir}
	for name, fi := range m.Files {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
		}
		if int64(len(data)) != fi.Size || Checksum(data) != fi.CRC32 {
			return nil, fmt.Errorf("checkpoint %s: file %s is damaged (size %d, want %d; checksum mismatch)", dir, name, len(data), fi.Size)
		}
		c.Files[name] = data
	}
	return c, nil
}

// Prune removes all but the newest keep checkpoints (complete or not).
func (s *DirStore) Prune(_ context.Context, keep int) error {
	ids, err := s.ids()
	if err != nil {
		return err
	}
	if keep < 1 {
		keep = 1
	}
	for i := keep; i < len(ids); i++ {
		if err := os.RemoveAll(filepath.Join(s.dir, chkDirName(ids[i]))); err != nil {
			return fmt.Errorf("prune checkpoint %d: %w", ids[i], err)
		}
	}
	return nil
}

// Checkpoint file names.
const (
	sourceFile = "source.pos"
)

func partitionFile(p int) string { return fmt.Sprintf("partition-%04d.state", p) }
func sinkFile(i int) string      { return fmt.Sprintf("sink-%02d.state", i) }
func orderedFile(i int) string   { return fmt.Sprintf("ordered-%02d.state", i) }

// snapshot framing: a list of byte strings, each uvarint length-prefixed.
func appendFrames(b []byte, frames ...[]byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(frames)))
	for _, f := range frames {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}

func readFrames(b []byte) ([][]byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, errors.New("corrupt frame count")
	}
	b = b[k:]
	frames := make([][]byte, 0, n)
	for range n {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return nil, errors.New("corrupt frame")
		}
		frames = append(frames, b[k:k+int(l)])
		b = b[k+int(l):]
	}
	if len(b) != 0 {
		return nil, errors.New("trailing bytes after frames")
	}
	return frames, nil
}

// SharedStore is a checkpoint store that instances sharing a stream divide into stores of
// their own: instance i writes its checkpoints in Sub("instance-<i>") and reads the
// others' to take partitions over.
type SharedStore interface {
	CheckpointStore
	// Sub is the store named name inside this one.
	Sub(name string) (CheckpointStore, error)
	// Subs lists the names of the stores inside this one, sorted.
	Subs(ctx context.Context) ([]string, error)
}

// InstanceStoreName is the name of instance i's store inside a SharedStore.
func InstanceStoreName(i int) string { return fmt.Sprintf("instance-%d", i) }

// Sub is the folder name inside this store's folder.
func (s *DirStore) Sub(name string) (CheckpointStore, error) {
	if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return nil, fmt.Errorf("checkpoint store %s: %q is not a folder name", s, name)
	}
	return NewDirStore(filepath.Join(s.dir, name))
}

// Subs lists the folders of this store's folder that are not checkpoints themselves.
func (s *DirStore) Subs(context.Context) ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("checkpoint store: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), "chk-") && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}
