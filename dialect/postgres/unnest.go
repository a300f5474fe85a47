package postgres

import (
	"context"
	"database/sql/driver"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/tallyorm/tally/dialect"
)

// This file sends Tally's multi-row INSERT ... VALUES as
//
//	INSERT INTO t (c1, c2) SELECT * FROM unnest($1::c1type[], $2::c2type[]) RETURNING ...
//
// one array parameter per column instead of one parameter per value. pgx
// costs a great deal per parameter (a format code, a value slice and a
// length each, in buffers it drops and grows again for every large
// statement), and the server binds a few arrays faster than hundreds of
// parameters: for 100 rows of 7 columns, measured against the VALUES
// statement, about a third less client CPU and memory, and less server
// CPU. The values stay bound, in the same binary encoding pgx gives them
// as parameters.
//
// Each column's type is the one the server infers for it in the one-row
// VALUES statement (so a varchar, a timestamp without time zone or a
// uuid column gets an array of exactly that), asked once per connection
// and table. The array form is used only where it binds every value
// exactly as the VALUES statement would: built-in types, and Go values of
// the kind pgx encodes in binary for that type in both statements (see
// sameBinding). Anything else — a user-defined type, a value pgx would
// send as text — goes as the VALUES statement.
//
// The statement is prepared once per connection (as pgx's statement
// cache would) and its arrays encoded by pgx's type map into a buffer the
// plan keeps, then sent with pgconn: pgx's own query path drops and
// regrows its buffers for every large statement. Only in pgx's default
// query mode, which prepares statements; the others (chosen for
// PgBouncer's transaction pooling) send the VALUES statement as pgx does.

// unnestPlan is a table's INSERT as arrays on one connection: its SQL, or
// "" when the VALUES statement must be used, and each column's element
// type.
type unnestPlan struct {
	sql   string
	elems []uint32
	arrs  []uint32 // each column's array type
	// name is the statement prepared for sql on the connection once
	// sd is set; the arguments are encoded into buf and vals, kept for
	// the next INSERT (pgx's own buffers are dropped after every large
	// statement and grown again).
	name    string
	sd      *pgconn.StatementDescription
	results []int16
	buf     []byte
	vals    [][]byte
}

// keepBuf is the largest encoding buffer a plan keeps between INSERTs.
const keepBuf = 64 << 10

// unnestKey prefixes the connection's CustomData keys of unnest plans;
// unnestSeqKey counts the statements they prepared, which it names.
const (
	unnestKey    = "tally/unnest\x00"
	unnestSeqKey = "tally/unnest-seq"
)

// firstUserOID is PostgreSQL's FirstNormalObjectId: the types below it
// are built in, named the same on every server.
const firstUserOID = 16384

// insertUnnest runs st, a multi-row INSERT (st.Cols > 0), as arrays when
// it can; done is false, with nothing sent, when st must go as it is.
func insertUnnest(ctx context.Context, c *pgx.Conn, st dialect.BatchStmt) (n int64, done bool, err error) {
	rows := len(st.Args) / st.Cols
	if rows < 2 || rows*st.Cols != len(st.Args) || c.Config().DefaultQueryExecMode != pgx.QueryExecModeCacheStatement {
		// One row gains nothing. The other query modes are chosen not to
		// prepare named statements (PgBouncer's transaction pooling),
		// which this does.
		return 0, false, nil
	}
	p, err := planUnnest(ctx, c, st)
	if err != nil || p.sql == "" {
		return 0, err != nil, err
	}
	for i, v := range st.Args {
		if !sameBinding(p.elems[i%st.Cols], v) {
			return 0, false, nil
		}
	}
	n, sent, err := p.exec(ctx, c, st, rows)
	pe, server := errors.AsType[*pgconn.PgError](err)
	switch {
	case err != nil && !sent:
		// Nothing went out: a value did not encode, or the server
		// refused to prepare the statement (its table changed since the
		// plan was made: ALTER TABLE). The VALUES statement reports a
		// value's error as usual.
		if server {
			delete(c.PgConn().CustomData(), unnestKey+st.Into+st.Returning)
		}
		return 0, false, nil
	case server && stale(pe.Code):
		// The statement did not run, for the same reason: forget the
		// plan and its statement, and send the VALUES statement now.
		delete(c.PgConn().CustomData(), unnestKey+st.Into+st.Returning)
		if err := c.PgConn().Deallocate(ctx, p.name); err != nil {
			return 0, true, errors.Join(driver.ErrBadConn, err)
		}
		return 0, false, nil
	}
	return n, true, err
}

// stale reports the SQLSTATEs of a prepared INSERT that did not run
// because its table or the statement changed: class 42 (a type or name
// that no longer fits), 26000 (no such prepared statement), 0A000 (a
// cached plan whose result type changed).
func stale(code string) bool {
	return strings.HasPrefix(code, "42") || code == "26000" || code == "0A000"
}

// exec prepares p's statement on c the first time, then sends st's rows
// as arrays and hands the returned rows to st.Row. sent is false when
// the error came before anything was sent; an error of a connection
// that failed before the statement went out matches driver.ErrBadConn.
func (p *unnestPlan) exec(ctx context.Context, c *pgx.Conn, st dialect.BatchStmt, rows int) (n int64, sent bool, err error) {
	pc := c.PgConn()
	m := c.TypeMap()
	if p.sd == nil {
		data := pc.CustomData()
		seq, _ := data[unnestSeqKey].(int)
		data[unnestSeqKey] = seq + 1
		p.name = "tally_unnest_" + strconv.Itoa(seq)
		sd, err := pc.Prepare(ctx, p.name, p.sql, nil)
		if err != nil {
			if _, ok := errors.AsType[*pgconn.PgError](err); ok {
				return 0, false, err
			}
			return 0, true, errors.Join(driver.ErrBadConn, err)
		}
		p.sd = sd
		p.results = make([]int16, len(sd.Fields))
		for j, f := range sd.Fields {
			p.results[j] = m.FormatCodeForOID(f.DataTypeOID)
		}
	}
	buf, vals := p.buf[:0], p.vals[:0]
	col := &column{vals: st.Args, cols: st.Cols, rows: rows}
	for j, oid := range p.arrs {
		col.col = j
		start := len(buf)
		if buf, err = m.Encode(oid, pgtype.BinaryFormatCode, col, buf); err != nil {
			return 0, false, err
		}
		vals = append(vals, buf[start:])
	}
	// Slices of an earlier, smaller buf stay valid: append copied them.
	rr := pc.ExecStatement(ctx, p.sd, vals, binary, p.results)
	var values [][]byte
	scan := func(dest ...any) error {
		for j, d := range dest {
			if err := m.Scan(p.sd.Fields[j].DataTypeOID, p.results[j], values[j], d); err != nil {
				return err
			}
		}
		return nil
	}
	for rr.NextRow() {
		values = rr.Values()
		if err = st.Row(scan); err != nil {
			break
		}
	}
	tag, cerr := rr.Close()
	if err == nil {
		err = cerr
	}
	if cap(buf) <= keepBuf {
		p.buf, p.vals = buf, vals
	}
	if err != nil && pgconn.SafeToRetry(err) {
		return 0, true, errors.Join(driver.ErrBadConn, err)
	}
	return tag.RowsAffected(), true, err
}

// binary is the parameter format of every array: binary.
var binary = []int16{pgtype.BinaryFormatCode}

// planUnnest returns st's plan on c, asking the server for the column
// types the first time. Its error, nothing having been inserted, matches
// driver.ErrBadConn when the server did not answer.
func planUnnest(ctx context.Context, c *pgx.Conn, st dialect.BatchStmt) (*unnestPlan, error) {
	data := c.PgConn().CustomData()
	key := unnestKey + st.Into + st.Returning
	if p, ok := data[key].(*unnestPlan); ok {
		return p, nil
	}
	var b strings.Builder
	b.WriteString(st.Into)
	b.WriteString(" VALUES (")
	for j := range st.Cols {
		if j > 0 {
			b.WriteString(", ")
		}
		b.WriteString("$" + strconv.Itoa(j+1))
	}
	b.WriteString(")")
	// An unnamed statement, parsed and described, never run.
	sd, err := c.PgConn().Prepare(ctx, "", b.String(), nil)
	if err != nil {
		if _, ok := errors.AsType[*pgconn.PgError](err); ok {
			// The server refused it: the VALUES statement will say why.
			return &unnestPlan{}, nil
		}
		return nil, errors.Join(driver.ErrBadConn, err)
	}
	p := &unnestPlan{elems: sd.ParamOIDs, arrs: make([]uint32, len(sd.ParamOIDs))}
	b.Reset()
	b.WriteString(st.Into)
	b.WriteString(" SELECT * FROM unnest(")
	m := c.TypeMap()
	for j, oid := range sd.ParamOIDs {
		t, ok := m.TypeForOID(oid)
		var arr *pgtype.Type
		if ok {
			arr, ok = m.TypeForName("_" + t.Name)
		}
		if !ok || oid >= firstUserOID || arr.OID >= firstUserOID || !knownElem(oid) {
			data[key] = &unnestPlan{}
			return data[key].(*unnestPlan), nil
		}
		p.arrs[j] = arr.OID
		if j > 0 {
			b.WriteString(", ")
		}
		b.WriteString("$" + strconv.Itoa(j+1) + `::pg_catalog."` + arr.Name + `"`)
	}
	b.WriteString(")")
	b.WriteString(st.Returning)
	p.sql = b.String()
	data[key] = p
	return p, nil
}

// knownElem reports the element types sameBinding knows.
func knownElem(oid uint32) bool {
	switch oid {
	case pgtype.TextOID, pgtype.VarcharOID, pgtype.BPCharOID,
		pgtype.Int8OID, pgtype.Int4OID, pgtype.Int2OID, pgtype.Float8OID, pgtype.Float4OID, pgtype.BoolOID,
		pgtype.TimestamptzOID, pgtype.TimestampOID, pgtype.DateOID, pgtype.ByteaOID:
		return true
	}
	return false
}

// sameBinding reports whether v, bound as an element of an array of oid,
// reaches the server as it would as a parameter of type oid: NULL, or a
// Go value pgx encodes in binary with the same codec either way (a
// string as text: pgx sends a string parameter as text, whose binary form
// is the same bytes).
func sameBinding(oid uint32, v any) bool {
	switch v.(type) {
	case nil:
		return true
	case string:
		return oid == pgtype.TextOID || oid == pgtype.VarcharOID || oid == pgtype.BPCharOID
	case int64, int32, int16, int8, int:
		return oid == pgtype.Int8OID || oid == pgtype.Int4OID || oid == pgtype.Int2OID
	case float64, float32:
		return oid == pgtype.Float8OID || oid == pgtype.Float4OID
	case bool:
		return oid == pgtype.BoolOID
	case time.Time:
		return oid == pgtype.TimestamptzOID || oid == pgtype.TimestampOID || oid == pgtype.DateOID
	case []byte:
		return oid == pgtype.ByteaOID
	}
	// A named type of a basic kind: pgx encodes it through its underlying
	// type, in binary in both statements (only an unnamed string goes as
	// text).
	switch reflect.TypeOf(v).Kind() {
	case reflect.String:
		return oid == pgtype.TextOID || oid == pgtype.VarcharOID || oid == pgtype.BPCharOID
	case reflect.Int64, reflect.Int32, reflect.Int16, reflect.Int8, reflect.Int:
		return oid == pgtype.Int8OID || oid == pgtype.Int4OID || oid == pgtype.Int2OID
	case reflect.Float64, reflect.Float32:
		return oid == pgtype.Float8OID || oid == pgtype.Float4OID
	case reflect.Bool:
		return oid == pgtype.BoolOID
	}
	return false
}

// column is one column of a multi-row INSERT's arguments as a
// one-dimensional array (pgtype.ArrayGetter), read in place.
type column struct {
	vals            []any
	col, cols, rows int
}

// Dimensions is one dimension of the rows.
func (c *column) Dimensions() []pgtype.ArrayDimension {
	return []pgtype.ArrayDimension{{Length: int32(c.rows), LowerBound: 1}}
}

// Index is row i's value of the column.
func (c *column) Index(i int) any { return c.vals[i*c.cols+c.col] }

// IndexType is nil: the elements' types vary (NULL among them), and pgx
// plans each element's encoding by its own type.
func (c *column) IndexType() any { return nil }
