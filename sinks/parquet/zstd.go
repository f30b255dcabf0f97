package parquet

import (
	"sync"

	"github.com/apache/arrow/go/v17/parquet/compress"
	"github.com/klauspost/compress/zstd"
)

// Arrow v17's zstd codec builds a new encoder, with its megabytes of history tables, for
// every page it compresses at an explicit level (which is every page the column writer
// compresses). That dominated the sink's profile, so the codec is wrapped to keep one
// encoder per level; EncodeAll is safe for concurrent use and the output is the same zstd.
type cachedZstd struct {
	compress.Codec
	mu   sync.Mutex
	encs map[int]*zstd.Encoder
}

func (c *cachedZstd) encoder(level int) *zstd.Encoder {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.encs[level]; ok {
		return e
	}
	l := zstd.SpeedDefault
	if level != compress.DefaultCompressionLevel {
		l = zstd.EncoderLevelFromZstd(level)
	}
	e, err := zstd.NewWriter(nil, zstd.WithZeroFrames(true), zstd.WithEncoderLevel(l))
	if err != nil {
		return nil
	}
	c.encs[level] = e
	return e
}

// EncodeLevel compresses src with the cached encoder of level.
func (c *cachedZstd) EncodeLevel(dst, src []byte, level int) []byte {
	e := c.encoder(level)
	if e == nil {
		return c.Codec.EncodeLevel(dst, src, level)
	}
	return e.EncodeAll(src, dst[:0])
}

func init() {
	orig, err := compress.GetCodec(compress.Codecs.Zstd)
	if err != nil {
		return
	}
	if _, done := orig.(*cachedZstd); !done {
		compress.RegisterCodec(compress.Codecs.Zstd, &cachedZstd{Codec: orig, encs: map[int]*zstd.Encoder{}})
	}
}
