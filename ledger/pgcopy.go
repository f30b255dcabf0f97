package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

// copyBuf builds the data of a COPY ... FROM STDIN (FORMAT binary) in memory, one buffer
// reused from batch to batch. pgx's CopyFrom encodes each value through an interface and
// its type map; writing the few column types of entries and postings directly costs the
// client a fraction of that, and the client shares the cores with the server.
type copyBuf struct {
	b []byte
	r bytes.Reader
}

// copyHeader starts binary COPY data: the signature, no flags, no header extension.
var copyHeader = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")

func (c *copyBuf) reset() {
	c.b = append(c.b[:0], copyHeader...)
}

// row starts a tuple of n fields.
func (c *copyBuf) row(n int) {
	c.b = binary.BigEndian.AppendUint16(c.b, uint16(n))
}

// int8 appends a bigint.
func (c *copyBuf) int8(v int64) {
	c.b = binary.BigEndian.AppendUint32(c.b, 8)
	c.b = binary.BigEndian.AppendUint64(c.b, uint64(v))
}

// int8OrNull appends a bigint, or NULL when v is 0.
func (c *copyBuf) int8OrNull(v int64) {
	if v == 0 {
		c.null()
		return
	}
	c.int8(v)
}

// int4OrNull appends an integer, or NULL when v is 0.
func (c *copyBuf) int4OrNull(v int64) {
	if v == 0 {
		c.null()
		return
	}
	c.b = binary.BigEndian.AppendUint32(c.b, 4)
	c.b = binary.BigEndian.AppendUint32(c.b, uint32(int32(v)))
}

// text appends a text value (its binary form is its bytes).
func (c *copyBuf) text(s string) {
	c.b = binary.BigEndian.AppendUint32(c.b, uint32(len(s)))
	c.b = append(c.b, s...)
}

func (c *copyBuf) null() {
	c.b = binary.BigEndian.AppendUint32(c.b, 0xffffffff)
}

// copyIn ends the data and runs the COPY statement sql over it on conn, checking that it
// wrote want rows.
func (c *copyBuf) copyIn(ctx context.Context, conn *pgconn.PgConn, sql string, want int) error {
	c.b = binary.BigEndian.AppendUint16(c.b, 0xffff) // the trailer: a field count of -1
	c.r.Reset(c.b)
	tag, err := conn.CopyFrom(ctx, &c.r, sql)
	if err != nil {
		return err
	}
	if got := tag.RowsAffected(); got != int64(want) {
		return fmt.Errorf("%d rows copied, want %d", got, want)
	}
	return nil
}
