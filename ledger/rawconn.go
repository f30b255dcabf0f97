package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// rawConn is the writer's connection. It calls the SQLite C API that modernc.org/sqlite/lib
// exposes directly rather than through database/sql: on the posting path database/sql and
// the driver cost as much as SQLite itself (an interface and a C string allocated per bound
// value, locks and argument conversion per statement). It binds integers directly and text
// as pointers into one C buffer filled per statement, and is opened without SQLite's own
// mutex: the store serializes every use under its mutex.
//
// Every uintptr held here points to C memory that SQLite or libc allocated; no Go pointer
// is handed to SQLite.
type rawConn struct {
	tls  *libc.TLS
	db   uintptr
	out  uintptr // 8 bytes for the C API's out parameters
	text textBuf // the text values bound for the statement being executed
}

// sqliteError is an error SQLite returned.
type sqliteError struct {
	code int32 // extended result code
	msg  string
}

func (e *sqliteError) Error() string {
	return e.msg + " (" + strconv.Itoa(int(e.code)) + ")"
}

var errConnClosed = errors.New("connection closed")

func openRaw(path string) (_ *rawConn, err error) {
	c := &rawConn{tls: libc.NewTLS()}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	if c.out = sqlite3.Xsqlite3_malloc64(c.tls, 8); c.out == 0 {
		return nil, errors.New("out of memory")
	}
	cpath, err := libc.CString(path)
	if err != nil {
		return nil, err
	}
	defer libc.Xfree(c.tls, cpath)
	rc := sqlite3.Xsqlite3_open_v2(c.tls, cpath, c.out,
		sqlite3.SQLITE_OPEN_READWRITE|sqlite3.SQLITE_OPEN_CREATE|sqlite3.SQLITE_OPEN_NOMUTEX, 0)
	c.db = c.outPtr()
	if rc != sqlite3.SQLITE_OK {
		if c.db == 0 {
			return nil, &sqliteError{code: rc, msg: libc.GoString(sqlite3.Xsqlite3_errstr(c.tls, rc))}
		}
		return nil, c.error(rc)
	}
	sqlite3.Xsqlite3_extended_result_codes(c.tls, c.db, 1)
	return c, nil
}

// outPtr reads the pointer a C call stored in c.out.
func (c *rawConn) outPtr() uintptr {
	return uintptr(binary.NativeEndian.Uint64(libc.GoBytes(c.out, 8)))
}

func (c *rawConn) error(rc int32) error {
	if c.db == 0 {
		return errConnClosed
	}
	return &sqliteError{
		code: sqlite3.Xsqlite3_extended_errcode(c.tls, c.db),
		msg:  libc.GoString(sqlite3.Xsqlite3_errmsg(c.tls, c.db)),
	}
}

func (c *rawConn) close() error {
	var err error
	if c.db != 0 {
		// Finalize every statement first, so that closing rolls back an open transaction
		// and releases the locks now rather than leaving a zombie connection.
		for p := sqlite3.Xsqlite3_next_stmt(c.tls, c.db, 0); p != 0; p = sqlite3.Xsqlite3_next_stmt(c.tls, c.db, 0) {
			sqlite3.Xsqlite3_finalize(c.tls, p)
		}
		if rc := sqlite3.Xsqlite3_close_v2(c.tls, c.db); rc != sqlite3.SQLITE_OK {
			err = c.error(rc)
		}
		c.db = 0
	}
	c.text.free(c.tls)
	if c.out != 0 {
		sqlite3.Xsqlite3_free(c.tls, c.out)
		c.out = 0
	}
	if c.tls != nil {
		c.tls.Close()
		c.tls = nil
	}
	return err
}

// exec runs SQL statements that return no rows.
func (c *rawConn) exec(sql string) error {
	if c.db == 0 {
		return errConnClosed
	}
	csql, err := libc.CString(sql)
	if err != nil {
		return err
	}
	defer libc.Xfree(c.tls, csql)
	if rc := sqlite3.Xsqlite3_exec(c.tls, c.db, csql, 0, 0, 0); rc != sqlite3.SQLITE_OK {
		return c.error(rc)
	}
	return nil
}

// inTx reports whether a transaction is open.
func (c *rawConn) inTx() bool {
	return c.db != 0 && sqlite3.Xsqlite3_get_autocommit(c.tls, c.db) == 0
}

// rawStmt is a prepared statement of a rawConn.
type rawStmt struct {
	c *rawConn
	p uintptr
}

// prepare compiles one statement, meant to be kept and run many times.
func (c *rawConn) prepare(sql string) (*rawStmt, error) {
	if c.db == 0 {
		return nil, errConnClosed
	}
	csql, err := libc.CString(sql)
	if err != nil {
		return nil, err
	}
	defer libc.Xfree(c.tls, csql)
	rc := sqlite3.Xsqlite3_prepare_v3(c.tls, c.db, csql, int32(len(sql)), sqlite3.SQLITE_PREPARE_PERSISTENT, c.out, 0)
	if rc != sqlite3.SQLITE_OK {
		return nil, c.error(rc)
	}
	return &rawStmt{c: c, p: c.outPtr()}, nil
}

func (s *rawStmt) close() {
	if s.p != 0 && s.c.db != 0 {
		sqlite3.Xsqlite3_finalize(s.c.tls, s.p)
	}
	s.p = 0
}

func (s *rawStmt) bindInt64(i int, v int64) error {
	if s.c.db == 0 {
		return errConnClosed
	}
	if rc := sqlite3.Xsqlite3_bind_int64(s.c.tls, s.p, int32(i), v); rc != sqlite3.SQLITE_OK {
		return s.c.error(rc)
	}
	return nil
}

func (s *rawStmt) bindNull(i int) error {
	if s.c.db == 0 {
		return errConnClosed
	}
	if rc := sqlite3.Xsqlite3_bind_null(s.c.tls, s.p, int32(i)); rc != sqlite3.SQLITE_OK {
		return s.c.error(rc)
	}
	return nil
}

// bindText binds text the caller put in s.c.text, at offset off and n bytes long. It
// stays valid until the text buffer is filled again.
func (s *rawStmt) bindText(i int, t textRef) error {
	if s.c.db == 0 {
		return errConnClosed
	}
	rc := sqlite3.Xsqlite3_bind_text(s.c.tls, s.p, int32(i), s.c.text.ptr+uintptr(t.off), int32(t.n), sqlite3.SQLITE_STATIC)
	if rc != sqlite3.SQLITE_OK {
		return s.c.error(rc)
	}
	return nil
}

// step runs the statement to its next row; it reports false when it is done.
func (s *rawStmt) step() (bool, error) {
	if s.c.db == 0 {
		return false, errConnClosed
	}
	switch rc := sqlite3.Xsqlite3_step(s.c.tls, s.p); rc {
	case sqlite3.SQLITE_ROW:
		return true, nil
	case sqlite3.SQLITE_DONE:
		return false, nil
	default:
		return false, s.c.error(rc)
	}
}

// exec runs a statement that returns no rows and resets it; it returns the number of
// rows changed.
func (s *rawStmt) exec() (int64, error) {
	_, err := s.step()
	s.reset()
	if err != nil {
		return 0, err
	}
	return sqlite3.Xsqlite3_changes64(s.c.tls, s.c.db), nil
}

func (s *rawStmt) reset() {
	if s.c.db != 0 {
		sqlite3.Xsqlite3_reset(s.c.tls, s.p)
	}
}

// query runs a statement and calls row for each row it returns.
func (c *rawConn) query(sql string, row func(s *rawStmt) error) error {
	s, err := c.prepare(sql)
	if err != nil {
		return err
	}
	defer s.close()
	for {
		ok, err := s.step()
		if err != nil || !ok {
			return err
		}
		if err := row(s); err != nil {
			return err
		}
	}
}

func (s *rawStmt) columnInt64(i int) int64 {
	return sqlite3.Xsqlite3_column_int64(s.c.tls, s.p, int32(i))
}

func (s *rawStmt) columnText(i int) string {
	p := sqlite3.Xsqlite3_column_text(s.c.tls, s.p, int32(i))
	n := sqlite3.Xsqlite3_column_bytes(s.c.tls, s.p, int32(i))
	if p == 0 || n == 0 {
		return ""
	}
	return string(libc.GoBytes(p, int(n)))
}

// textBuf is C memory holding the text values of one statement execution, so that
// binding them allocates nothing.
type textBuf struct {
	ptr  uintptr
	buf  []byte // the C memory at ptr, as a slice
	used int
}

// textRef is a text value in a textBuf.
type textRef struct{ off, n int }

// reset empties the buffer and makes room for n bytes. Refs taken before are invalid.
func (t *textBuf) reset(tls *libc.TLS, n int) error {
	t.used = 0
	return t.reserve(tls, n)
}

// reserve makes room for n more bytes, moving the buffer if needed: refs stay valid, but
// pointers bound before must be bound again.
func (t *textBuf) reserve(tls *libc.TLS, n int) error {
	if t.used+n <= len(t.buf) {
		return nil
	}
	size := max(t.used+n, 2*len(t.buf), 64<<10)
	p := sqlite3.Xsqlite3_malloc64(tls, uint64(size))
	if p == 0 {
		return fmt.Errorf("out of memory for %d bytes of text", size)
	}
	buf := libc.GoBytes(p, size)
	copy(buf, t.buf[:t.used])
	if t.ptr != 0 {
		sqlite3.Xsqlite3_free(tls, t.ptr)
	}
	t.ptr, t.buf = p, buf
	return nil
}

// add copies s into the buffer; reserve must have made room for it.
func (t *textBuf) add(s string) textRef {
	r := textRef{t.used, len(s)}
	t.used += copy(t.buf[t.used:], s)
	return r
}

func (t *textBuf) free(tls *libc.TLS) {
	if t.ptr != 0 {
		sqlite3.Xsqlite3_free(tls, t.ptr)
	}
	t.ptr, t.buf, t.used = 0, nil, 0
}
