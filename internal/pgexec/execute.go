package pgexec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// Execute modes.
const (
	ModeReadWrite = "read_write"
	ModeReadOnly  = "read_only"
	ModeDisabled  = "disabled"
)

// Limits of a single request.
const (
	maxParamsListItems = 10000
	maxTxStatements    = 1000
)

// ExecutorConfig configures an Executor.
type ExecutorConfig struct {
	// Mode is read_write (default), read_only (every statement in a READ ONLY
	// transaction) or disabled.
	Mode string
	// MaxRows caps a request's max_rows and is its default. Defaults to 10000.
	MaxRows int
	// DefaultTimeout applies when a request has no timeout_ms. Defaults to 30s.
	DefaultTimeout time.Duration
	// MaxTimeout caps timeout_ms. Defaults to 5m.
	MaxTimeout time.Duration
	// NamedQueries are run by name ({"query":"<name>"}).
	NamedQueries map[string]NamedQuery
	// NamedOnly refuses everything but named queries (an allowlist).
	NamedOnly bool
}

// Executor carries out db.execute requests: it binds JSON parameters by the
// types the server describes and encodes results straight to JSON.
type Executor struct {
	c   *Client
	cfg ExecutorConfig
}

// NewExecutor returns an Executor over c.
func NewExecutor(c *Client, cfg ExecutorConfig) *Executor {
	if cfg.Mode == "" {
		cfg.Mode = ModeReadWrite
	}
	if cfg.MaxRows <= 0 {
		cfg.MaxRows = 10000
	}
	if cfg.MaxTimeout <= 0 {
		cfg.MaxTimeout = 5 * time.Minute
	}
	if cfg.DefaultTimeout <= 0 || cfg.DefaultTimeout > cfg.MaxTimeout {
		cfg.DefaultTimeout = min(30*time.Second, cfg.MaxTimeout)
	}
	return &Executor{c: c, cfg: cfg}
}

// shape says how one statement's result is written.
type shape struct {
	one     bool // write "row" (first row or null) instead of "rows"
	arrays  bool // rows as arrays in column order
	maxRows int
	tagOnly bool // write only rows_affected and command
}

// Execute runs req and returns the JSON answer. maxBytes bounds the answer:
// past it the error is TOO_LARGE (0 means no bound).
func (e *Executor) Execute(ctx context.Context, req *messages.ExecuteRequest, maxBytes int) ([]byte, error) {
	if e.cfg.Mode == ModeDisabled {
		return nil, messages.Errorf(messages.CodeForbidden, "db.execute is disabled by configuration")
	}
	req, namedReadOnly, err := e.resolveNamed(req)
	if err != nil {
		return nil, err
	}
	op := req.Op
	if op == "" {
		op = messages.OpQuery
	}
	sh := shape{maxRows: e.cfg.MaxRows}
	switch req.RowFormat {
	case "", messages.RowFormatObject:
	case messages.RowFormatArray:
		sh.arrays = true
	default:
		return nil, messages.BadRequest("row_format", "row_format must be \"object\" or \"array\", got %q", req.RowFormat)
	}
	if req.MaxRows != nil {
		if *req.MaxRows < 0 {
			return nil, messages.BadRequest("max_rows", "max_rows must not be negative")
		}
		sh.maxRows = min(*req.MaxRows, e.cfg.MaxRows)
	}
	timeout := e.cfg.DefaultTimeout
	if req.TimeoutMS != nil {
		if *req.TimeoutMS <= 0 {
			return nil, messages.BadRequest("timeout_ms", "timeout_ms must be positive")
		}
		timeout = e.cfg.MaxTimeout
		if int64(*req.TimeoutMS) < e.cfg.MaxTimeout.Milliseconds() { // compare before multiplying: no overflow
			timeout = time.Duration(*req.TimeoutMS) * time.Millisecond
		}
	}
	readOnly := e.cfg.Mode == ModeReadOnly || req.ReadOnly || namedReadOnly
	if err := e.validate(op, req, readOnly); err != nil {
		return nil, err
	}

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := e.c.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	s := &session{e: e, conn: conn, pg: conn.Conn().PgConn(), readOnly: readOnly, timeout: timeout, maxBytes: maxBytes}
	defer s.release()

	buf := make([]byte, 0, 512)
	switch op {
	case messages.OpQuery, messages.OpOne:
		sh.one = op == messages.OpOne
		buf, err = s.single(ctx, req, sh, buf)
	case messages.OpMany:
		buf, err = s.many(ctx, req, sh, buf)
	case messages.OpScript:
		buf, err = s.script(ctx, req.SQL, buf)
	case messages.OpTx:
		buf, err = s.tx(ctx, req, sh, buf)
	case messages.OpInsert:
		buf, err = s.insert(ctx, req, sh, buf)
	case messages.OpUpdate:
		buf, err = s.update(ctx, req, sh, buf)
	}
	if err != nil {
		if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code == "57014" {
				return nil, messages.Errorf(messages.CodeTimeout, "statement timed out after %s", timeout)
			}
		}
		return nil, err
	}
	return buf, nil
}

// validate checks the fields an op needs before any connection is taken.
func (e *Executor) validate(op string, req *messages.ExecuteRequest, readOnly bool) error {
	switch op {
	case messages.OpQuery, messages.OpOne, messages.OpScript:
		if req.SQL == "" {
			return messages.BadRequest("sql", "sql is required for op %q", op)
		}
		if op == messages.OpScript && len(bytes.TrimSpace(req.Params)) > 0 && string(bytes.TrimSpace(req.Params)) != "null" {
			return messages.BadRequest("params", "op script takes no params; use op tx for bound statements")
		}
	case messages.OpMany:
		if req.SQL == "" {
			return messages.BadRequest("sql", "sql is required for op many")
		}
		if len(req.ParamsList) == 0 {
			return messages.BadRequest("params_list", "params_list is required for op many")
		}
		if len(req.ParamsList) > maxParamsListItems {
			return messages.BadRequest("params_list", "params_list has %d items; the limit is %d", len(req.ParamsList), maxParamsListItems)
		}
	case messages.OpTx:
		if len(req.Statements) == 0 {
			return messages.BadRequest("statements", "statements is required for op tx")
		}
		if len(req.Statements) > maxTxStatements {
			return messages.BadRequest("statements", "statements has %d items; the limit is %d", len(req.Statements), maxTxStatements)
		}
		for i, st := range req.Statements {
			if st.SQL == "" {
				return messages.BadRequest("statements["+strconv.Itoa(i)+"].sql", "statement %d has no sql", i)
			}
			if st.Op != "" && st.Op != messages.OpQuery && st.Op != messages.OpOne {
				return messages.BadRequest("statements["+strconv.Itoa(i)+"].op", "statement %d: op must be \"query\" or \"one\", got %q", i, st.Op)
			}
		}
	case messages.OpInsert, messages.OpUpdate:
		if readOnly {
			return messages.Errorf(messages.CodeForbidden, "op %s is refused: db.execute is read-only", op)
		}
		if req.Table == "" {
			return messages.BadRequest("table", "table is required for op %s", op)
		}
		if op == messages.OpUpdate {
			if len(req.Data) == 0 {
				return messages.BadRequest("data", "data is required for op update")
			}
			if req.Where == "" && !req.AllRows {
				return messages.BadRequest("where", "update without where is refused; set \"all_rows\":true to update every row")
			}
		}
	default:
		return messages.BadRequest("op", "unknown op %q: use query, one, many, script, tx, insert or update", op)
	}
	return nil
}

// session is one request's hold on a connection.
type session struct {
	e        *Executor
	conn     *pgxpool.Conn
	pg       *pgconn.PgConn
	readOnly bool
	timeout  time.Duration
	maxBytes int
	dirty    bool // the session state was changed: close rather than reuse
}

// release returns the connection to the pool, or closes it when the request
// left session state behind (SET, LISTEN, PREPARE...) or an open transaction.
func (s *session) release() {
	if s.dirty || s.pg.TxStatus() != 'I' {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.conn.Conn().Close(ctx)
		cancel()
	}
	s.conn.Release()
}

// sessionTags are command tags after which a connection keeps state a later
// request must not inherit.
var sessionTags = []string{"SET", "RESET", "DISCARD", "LISTEN", "UNLISTEN", "PREPARE", "DEALLOCATE", "LOAD", "DECLARE", "CREATE TEMP"}

func (s *session) noteTag(tag pgconn.CommandTag) {
	cmd := tag.String()
	for _, t := range sessionTags {
		if strings.HasPrefix(cmd, t) {
			s.dirty = true
			return
		}
	}
}

// inTx runs fn inside BEGIN ... COMMIT when explicit is true (read-only mode or
// a read-only request), otherwise directly.
func (s *session) inTx(ctx context.Context, explicit bool, fn func() error) error {
	if !explicit {
		return fn()
	}
	if err := s.begin(ctx); err != nil {
		return err
	}
	if err := fn(); err != nil {
		s.rollback()
		return err
	}
	return s.commit(ctx)
}

// begin opens a transaction (READ ONLY when the session is) and sets its
// statement timeout. The set_config SELECT also takes the snapshot, so a
// later SET TRANSACTION READ WRITE is refused by the server.
func (s *session) begin(ctx context.Context) error {
	q := "BEGIN"
	if s.readOnly {
		q = "BEGIN READ ONLY"
	}
	q += "; SELECT pg_catalog.set_config('statement_timeout', '" + strconv.FormatInt(max(s.timeout.Milliseconds(), 1), 10) + "', true)"
	_, err := s.pg.Exec(ctx, q).ReadAll()
	return err
}

func (s *session) commit(ctx context.Context) error {
	res, err := s.pg.Exec(ctx, "COMMIT").ReadAll()
	if err != nil {
		return err
	}
	if len(res) == 1 && res[0].CommandTag.String() == "ROLLBACK" {
		return messages.Errorf(messages.CodeSQL, "the transaction was rolled back by a statement in it")
	}
	return nil
}

// rollback ends a failed transaction on a fresh context (the request's may
// have expired). When even that fails the connection is dropped.
func (s *session) rollback() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.pg.Exec(ctx, "ROLLBACK").ReadAll(); err != nil {
		s.dirty = true
	}
}

// describe returns the prepared statement for sql, preparing it (and first
// deallocating statements evicted from the cache) when the connection has not
// seen it.
func (s *session) describe(ctx context.Context, sql string) (sd *pgconn.StatementDescription, cached bool, err error) {
	cache := s.e.c.stmtCacheFor(s.pg)
	if sd := cache.get(sql); sd != nil {
		return sd, true, nil
	}
	if len(cache.evicted) > 0 && s.pg.TxStatus() != 'E' {
		q := ""
		for _, name := range cache.evicted {
			q += "DEALLOCATE " + name + ";"
		}
		if _, err := s.pg.Exec(ctx, q).ReadAll(); err != nil {
			return nil, false, err
		}
		cache.evicted = cache.evicted[:0]
	}
	sd, err = s.pg.Prepare(ctx, cache.nextName(), sql, nil)
	if err != nil {
		return nil, false, err
	}
	cache.put(sd)
	return sd, false, nil
}

// readKeywords start statements that return rows without writing.
var readKeywords = map[string]bool{"SELECT": true, "VALUES": true, "TABLE": true, "SHOW": true}

// needsTx reports whether a single bound statement must run in an explicit
// transaction: always in read-only mode, and when it writes and returns rows
// (INSERT ... RETURNING, a data-modifying WITH, EXPLAIN ANALYZE), so an answer
// that turns out TOO_LARGE rolls the write back instead of leaving it applied
// behind an error.
func (s *session) needsTx(ctx context.Context, keyword string, b boundSQL) (bool, error) {
	if s.readOnly {
		return true, nil
	}
	if readKeywords[keyword] {
		return false, nil
	}
	sd, _, err := s.describe(ctx, b.sql)
	if err != nil {
		return false, err
	}
	return len(sd.Fields) > 0, nil
}

// forbiddenReadOnly are statements refused in read-only mode before they reach
// the server: they would end our READ ONLY transaction or change the session.
var forbiddenReadOnly = map[string]bool{
	"BEGIN": true, "START": true, "COMMIT": true, "END": true, "ROLLBACK": true, "ABORT": true,
	"SAVEPOINT": true, "RELEASE": true, "PREPARE": true, "SET": true, "RESET": true, "DISCARD": true,
	"CALL": true, "DO": true, "COPY": true, "LISTEN": true, "NOTIFY": true, "VACUUM": true,
}

func (s *session) checkStatements(sc scanned, multi bool) error {
	if len(sc.statements) == 0 {
		return messages.BadRequest("sql", "sql holds no statement")
	}
	if !multi && len(sc.statements) > 1 {
		return messages.BadRequest("sql", "sql holds %d statements; op query takes one (use op script or tx)", len(sc.statements))
	}
	if s.readOnly {
		for _, st := range sc.statements {
			if forbiddenReadOnly[st.keyword] {
				return messages.Errorf(messages.CodeForbidden, "%s is refused: db.execute is read-only", st.keyword)
			}
		}
	}
	return nil
}

// bindOne checks that sql is one statement (allowed in the session's mode)
// and binds its params.
func (s *session) bindOne(sql string, params json.RawMessage) (boundSQL, string, error) {
	sc := scanSQL(sql)
	if err := s.checkStatements(sc, false); err != nil {
		return boundSQL{}, "", err
	}
	b, err := bindScanned(sql, sc, params, 0)
	return b, sc.statements[0].keyword, err
}

// single runs op query or one, in an explicit transaction when needsTx says so.
func (s *session) single(ctx context.Context, req *messages.ExecuteRequest, sh shape, buf []byte) ([]byte, error) {
	b, keyword, err := s.bindOne(req.SQL, req.Params)
	if err != nil {
		return buf, err
	}
	explicit, err := s.needsTx(ctx, keyword, b)
	if err != nil {
		return buf, err
	}
	err = s.inTx(ctx, explicit, func() error {
		var err error
		buf, _, err = s.exec(ctx, b, sh, buf)
		return err
	})
	return buf, err
}

// run binds and executes one statement of a transaction and appends its
// result object.
func (s *session) run(ctx context.Context, sql string, params json.RawMessage, sh shape, buf []byte) ([]byte, pgconn.CommandTag, error) {
	b, _, err := s.bindOne(sql, params)
	if err != nil {
		return buf, pgconn.CommandTag{}, err
	}
	return s.exec(ctx, b, sh, buf)
}

// exec runs a bound statement. A cached statement whose table changed under
// it is refused by the server before it runs; it is prepared again, once.
func (s *session) exec(ctx context.Context, b boundSQL, sh shape, buf []byte) ([]byte, pgconn.CommandTag, error) {
	for attempt := 0; ; attempt++ {
		sd, cached, err := s.describe(ctx, b.sql)
		if err != nil {
			return buf, pgconn.CommandTag{}, err
		}
		out, tag, err := s.execDescribed(ctx, sd, b, sh, buf)
		if err == nil || !cached || !planChanged(err) {
			return out, tag, err
		}
		s.e.c.stmtCacheFor(s.pg).remove(b.sql)
		if attempt > 0 || s.pg.TxStatus() == 'E' { // a failed transaction cannot retry
			return out, tag, err
		}
	}
}

// planChanged reports the server's refusal to run a prepared statement whose
// result types changed, or one that is gone.
func planChanged(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "0A000" && strings.Contains(pe.Message, "cached plan") || pe.Code == "26000")
}

func (s *session) execDescribed(ctx context.Context, sd *pgconn.StatementDescription, b boundSQL, sh shape, buf []byte) ([]byte, pgconn.CommandTag, error) {
	args, err := s.encodeArgs(ctx, sd, b, "params")
	if err != nil {
		return buf, pgconn.CommandTag{}, err
	}
	rr := s.pg.ExecPrepared(ctx, sd.Name, args.values, nil, args.formats)
	return s.readResult(rr, args.types, sh, buf)
}

// encodedArgs is a statement's arguments in wire form, the result formats to
// ask for, and the types of both.
type encodedArgs struct {
	values  [][]byte
	formats []int16
	types   map[uint32]*typeInfo
}

// encodeArgs converts b's JSON arguments by the parameter types of sd and
// picks the result format of each column. field names the request field for
// a count mismatch.
func (s *session) encodeArgs(ctx context.Context, sd *pgconn.StatementDescription, b boundSQL, field string) (encodedArgs, error) {
	if len(sd.ParamOIDs) != len(b.args) {
		return encodedArgs{}, messages.BadRequest(field, "the statement takes %d parameters, %d given", len(sd.ParamOIDs), len(b.args))
	}
	oids := make([]uint32, 0, len(sd.ParamOIDs)+len(sd.Fields))
	oids = append(oids, sd.ParamOIDs...)
	for _, f := range sd.Fields {
		oids = append(oids, f.DataTypeOID)
	}
	types, err := s.e.c.types.lookup(ctx, s.pg, oids...)
	if err != nil {
		return encodedArgs{}, err
	}
	a := encodedArgs{values: make([][]byte, len(b.args)), formats: make([]int16, len(sd.Fields)), types: types}
	for i, raw := range b.args {
		if a.values[i], err = encodeParam(types[sd.ParamOIDs[i]], b.names[i], raw); err != nil {
			return encodedArgs{}, err
		}
	}
	for i, f := range sd.Fields {
		a.formats[i] = types[f.DataTypeOID].format()
	}
	return a, nil
}

// readResult writes one result object: columns and rows (or row), then
// rows_affected, command and truncated.
func (s *session) readResult(rr *pgconn.ResultReader, types map[uint32]*typeInfo, sh shape, buf []byte) ([]byte, pgconn.CommandTag, error) {
	start := len(buf)
	fields := rr.FieldDescriptions()
	colTypes := make([]*typeInfo, len(fields))
	for i, f := range fields {
		t, ok := types[f.DataTypeOID]
		if !ok || t.format() != f.Format {
			// Defensive: named statements make the server refuse a changed
			// result type, so this is not expected; never misread a value.
			t = &typeInfo{oid: f.DataTypeOID, name: "oid:" + strconv.FormatUint(uint64(f.DataTypeOID), 10)}
			if f.Format == 1 {
				t.kind = kBytea
			}
		}
		colTypes[i] = t
	}
	if sh.tagOnly {
		tag, err := rr.Close()
		if err != nil {
			return buf, tag, err
		}
		s.noteTag(tag)
		buf = append(buf, `{"rows_affected":`...)
		buf = strconv.AppendInt(buf, tag.RowsAffected(), 10)
		buf = append(buf, `,"command":`...)
		buf = appendJSONString(buf, tag.String())
		return append(buf, '}'), tag, nil
	}
	// Column names as JSON strings, encoded once for every row.
	names := make([][]byte, len(fields))
	for i, f := range fields {
		names[i] = appendJSONString(nil, f.Name)
	}
	buf = append(buf, `{"columns":[`...)
	for i := range fields {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"name":`...)
		buf = append(buf, names[i]...)
		buf = append(buf, `,"type":`...)
		buf = appendJSONString(buf, colTypes[i].name)
		buf = append(buf, '}')
	}
	buf = append(buf, ']')
	if sh.one {
		buf = append(buf, `,"row":`...)
	} else {
		buf = append(buf, `,"rows":[`...)
	}
	count, truncated, tooLarge := 0, false, false
	var encErr error
	for rr.NextRow() {
		if tooLarge || encErr != nil {
			continue // drain
		}
		if (sh.one && count >= 1) || (!sh.one && count >= sh.maxRows) {
			truncated = !sh.one
			continue
		}
		if count > 0 {
			buf = append(buf, ',')
		}
		buf, encErr = appendRow(buf, rr.Values(), colTypes, names, sh.arrays)
		count++
		if s.maxBytes > 0 && len(buf) > s.maxBytes {
			tooLarge = true
		}
	}
	tag, err := rr.Close()
	if err != nil {
		return buf[:start], tag, err
	}
	s.noteTag(tag)
	if encErr != nil {
		return buf[:start], tag, messages.Errorf(messages.CodeInternal, "encode result: %v", encErr)
	}
	if tooLarge {
		return buf[:start], tag, messages.Errorf(messages.CodeTooLarge, "the answer would exceed %d bytes; lower max_rows or select fewer columns", s.maxBytes)
	}
	if sh.one {
		if count == 0 {
			buf = append(buf, "null"...)
		}
	} else {
		buf = append(buf, ']')
	}
	buf = append(buf, `,"rows_affected":`...)
	buf = strconv.AppendInt(buf, tag.RowsAffected(), 10)
	buf = append(buf, `,"command":`...)
	buf = appendJSONString(buf, tag.String())
	if !sh.one {
		buf = append(buf, `,"truncated":`...)
		buf = strconv.AppendBool(buf, truncated)
	}
	buf = append(buf, '}')
	return buf, tag, nil
}

func appendRow(buf []byte, values [][]byte, types []*typeInfo, names [][]byte, arrays bool) ([]byte, error) {
	var err error
	if arrays {
		buf = append(buf, '[')
	} else {
		buf = append(buf, '{')
	}
	for i, v := range values {
		if i > 0 {
			buf = append(buf, ',')
		}
		if !arrays {
			buf = append(buf, names[i]...)
			buf = append(buf, ':')
		}
		if buf, err = appendValue(buf, types[i], v); err != nil {
			return buf, err
		}
	}
	if arrays {
		return append(buf, ']'), nil
	}
	return append(buf, '}'), nil
}
