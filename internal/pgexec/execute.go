package pgexec

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

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
	// transaction that is rolled back, op script refused) or disabled.
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

// CheckWrite refuses a write on another subject (db.vector, db.graph) when
// db.execute would refuse it: in read-only mode, when the request asked to be
// read-only, and when only named queries are allowed.
func (e *Executor) CheckWrite(subject string, requestReadOnly bool) error {
	switch {
	case e.cfg.Mode == ModeReadOnly:
		return messages.Errorf(messages.CodeForbidden, "%s writes are refused: the worker is read-only", subject)
	case requestReadOnly:
		return messages.Errorf(messages.CodeForbidden, "%s writes are refused: the request is read_only", subject)
	case e.cfg.NamedOnly:
		return messages.Errorf(messages.CodeForbidden, "%s writes are refused: only named queries are allowed (DB_ALLOW_ADHOC=false)", subject)
	}
	return nil
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
	// The caller's context may end sooner (the worker counts a request's
	// timeout from its receipt): the server-side cap is what is left.
	left := timeout
	if dl, ok := ctx.Deadline(); ok {
		left = min(left, time.Until(dl))
	}
	conn, err := e.c.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	pg := conn.Conn().PgConn()
	s := &session{e: e, conn: conn, pg: pg, cache: e.c.stmtCacheFor(pg), readOnly: readOnly, timeout: left, maxBytes: maxBytes}
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
				return nil, messages.Errorf(messages.CodeTimeout, "the request's %s deadline passed (counted from its receipt by the worker)", timeout)
			}
		}
		return nil, err
	}
	return buf, nil
}

// validate checks the fields an op needs before any connection is taken.
func (e *Executor) validate(op messages.Op, req *messages.ExecuteRequest, readOnly bool) error {
	// PostgreSQL's protocol ends strings at NUL: refuse one rather than send
	// a truncated statement, or a message the server calls malformed.
	if strings.IndexByte(req.SQL, 0) >= 0 {
		return messages.BadRequest("sql", "sql holds a NUL byte")
	}
	if strings.IndexByte(req.Where, 0) >= 0 {
		return messages.BadRequest("where", "where holds a NUL byte")
	}
	for i, st := range req.Statements {
		if strings.IndexByte(st.SQL, 0) >= 0 {
			return messages.BadRequest("statements["+strconv.Itoa(i)+"].sql", "statement %d holds a NUL byte", i)
		}
	}
	switch op {
	case messages.OpQuery, messages.OpOne, messages.OpScript:
		if req.SQL == "" {
			return messages.BadRequest("sql", "sql is required for op %q", op)
		}
		if op == messages.OpScript && readOnly {
			// A script is several statements; read-only requests run one
			// statement per Parse in a READ ONLY transaction instead.
			return messages.Errorf(messages.CodeForbidden, "op script is refused: db.execute is read-only (send the statements as op tx)")
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
