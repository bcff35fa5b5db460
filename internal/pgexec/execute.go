package pgexec

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/jeeves-avionics/dbworker/internal/pgexec/named"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgjson"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// Mode is what db.execute may do.
type Mode string

// Execute modes.
const (
	ModeReadWrite Mode = "read_write"
	ModeReadOnly  Mode = "read_only"
	ModeDisabled  Mode = "disabled"
)

// ParseMode returns the mode s names, refusing anything else.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeReadWrite, ModeReadOnly, ModeDisabled:
		return m, nil
	}
	return "", fmt.Errorf("execute mode must be %s, %s or %s, got %q", ModeReadWrite, ModeReadOnly, ModeDisabled, s)
}

// Defaults of ExecutorConfig.
const (
	MaxRowsDefault        = 10000
	DefaultTimeoutDefault = 30 * time.Second
	MaxTimeoutDefault     = 5 * time.Minute
)

// Limits of a single request.
const (
	maxParamsListItems = 10000
	maxTxStatements    = 1000
)

// ExecutorConfig configures an Executor.
type ExecutorConfig struct {
	// Mode is read_write (the default), read_only (every statement in a
	// READ ONLY transaction that is rolled back, op script refused) or
	// disabled. Any other value is refused.
	Mode Mode
	// MaxRows caps a request's max_rows and is its default. Defaults to
	// MaxRowsDefault.
	MaxRows int
	// DefaultTimeout applies when a request has no timeout_ms. Defaults to
	// DefaultTimeoutDefault, or MaxTimeout when that is lower.
	DefaultTimeout time.Duration
	// MaxTimeout caps timeout_ms. Defaults to MaxTimeoutDefault.
	MaxTimeout time.Duration
	// NamedQueries are run by name ({"query":"<name>"}).
	NamedQueries map[string]named.Query
	// NamedOnly refuses everything but named queries (an allowlist).
	NamedOnly bool
	// Read, when set, serves what only reads: read-only requests and
	// read-only transactions, on a replica's pool (POSTGRES_READ_URL).
	Read *Client
}

// Executor carries out db.execute requests: it binds JSON parameters by the
// types the server describes and encodes results straight to JSON.
type Executor struct {
	c   *Client
	cfg ExecutorConfig
}

// NewExecutor returns an Executor over c. Zero values take their defaults;
// a value that makes no sense (an unknown mode, a negative limit, a default
// timeout above the maximum) is an error, never a silent replacement.
func NewExecutor(c *Client, cfg ExecutorConfig) (*Executor, error) {
	if c == nil {
		return nil, errors.New("pgexec: NewExecutor needs a Client")
	}
	mode, err := ParseMode(string(cmp.Or(cfg.Mode, ModeReadWrite)))
	if err != nil {
		return nil, fmt.Errorf("pgexec: %w", err)
	}
	cfg.Mode = mode
	switch {
	case cfg.MaxRows < 0:
		return nil, fmt.Errorf("pgexec: MaxRows must not be negative, got %d", cfg.MaxRows)
	case cfg.MaxTimeout < 0, cfg.DefaultTimeout < 0:
		return nil, errors.New("pgexec: timeouts must not be negative")
	case cfg.MaxTimeout > 0 && cfg.DefaultTimeout > cfg.MaxTimeout:
		return nil, fmt.Errorf("pgexec: DefaultTimeout %s is above MaxTimeout %s", cfg.DefaultTimeout, cfg.MaxTimeout)
	}
	cfg.MaxRows = cmp.Or(cfg.MaxRows, MaxRowsDefault)
	cfg.MaxTimeout = cmp.Or(cfg.MaxTimeout, MaxTimeoutDefault)
	cfg.DefaultTimeout = cmp.Or(cfg.DefaultTimeout, min(DefaultTimeoutDefault, cfg.MaxTimeout))
	for name, q := range cfg.NamedQueries {
		if q.SQL == "" || (q.Op != "" && q.Op != messages.OpQuery && q.Op != messages.OpOne) {
			return nil, fmt.Errorf("pgexec: named query %q needs sql and an op of query or one", name)
		}
	}
	return &Executor{c: c, cfg: cfg}, nil
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
type shape = pgjson.Shape

// plan is a request checked and resolved: what runs, how its result is
// written, under which deadline, and whether it must not write.
type plan struct {
	req      *messages.ExecuteRequest
	op       messages.Op
	sh       shape
	timeout  time.Duration
	readOnly bool
}

// Execute runs req and returns the JSON answer, bounded by out.MaxBytes (past
// it the error is TOO_LARGE) or streamed through out.Emit (pgjson.Output).
func (e *Executor) Execute(ctx context.Context, req *messages.ExecuteRequest, out pgjson.Output) ([]byte, error) {
	pl, err := e.prepare(req, out)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, pl.timeout)
	defer cancel()
	// The caller's context may end sooner (the worker counts a request's
	// timeout from its receipt): the server-side cap is what is left.
	left := pl.timeout
	if dl, ok := ctx.Deadline(); ok {
		left = min(left, time.Until(dl))
	}
	s, err := e.openSession(ctx, pl.readOnly)
	if err != nil {
		return nil, err
	}
	s.timeout, s.out = left, out
	defer s.release()
	return s.run(ctx, pl)
}

// openSession takes a connection for a request: from the read pool when the
// request only reads and the executor has one.
func (e *Executor) openSession(ctx context.Context, readOnly bool) (*session, error) {
	c := e.c
	if readOnly && e.cfg.Read != nil {
		c = e.cfg.Read
	}
	conn, err := c.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	pg := conn.Conn().PgConn()
	return &session{e: e, c: c, conn: conn, pg: pg, cache: c.stmtCacheFor(pg), readOnly: readOnly}, nil
}

// prepare checks req against the executor's mode and limits and resolves a
// named query, before any connection is taken.
func (e *Executor) prepare(req *messages.ExecuteRequest, out pgjson.Output) (plan, error) {
	if e.cfg.Mode == ModeDisabled {
		return plan{}, messages.Errorf(messages.CodeForbidden, "db.execute is disabled by configuration")
	}
	req, namedReadOnly, err := named.Resolve(e.cfg.NamedQueries, e.cfg.NamedOnly, req)
	if err != nil {
		return plan{}, err
	}
	pl := plan{req: req, op: cmp.Or(req.Op, messages.OpQuery), sh: shape{MaxRows: out.RowCap(e.cfg.MaxRows)}, timeout: e.cfg.DefaultTimeout}
	switch req.RowFormat {
	case "", messages.RowFormatObject:
	case messages.RowFormatArray:
		pl.sh.Arrays = true
	default:
		return plan{}, messages.BadRequest("row_format", "row_format must be \"object\" or \"array\", got %q", req.RowFormat)
	}
	if req.MaxRows != nil {
		if *req.MaxRows < 0 {
			return plan{}, messages.BadRequest("max_rows", "max_rows must not be negative")
		}
		pl.sh.MaxRows = min(*req.MaxRows, pl.sh.MaxRows)
	}
	if req.TimeoutMS != nil {
		if *req.TimeoutMS <= 0 {
			return plan{}, messages.BadRequest("timeout_ms", "timeout_ms must be positive")
		}
		pl.timeout = e.cfg.MaxTimeout
		if int64(*req.TimeoutMS) < e.cfg.MaxTimeout.Milliseconds() { // compare before multiplying: no overflow
			pl.timeout = time.Duration(*req.TimeoutMS) * time.Millisecond
		}
	}
	pl.readOnly = e.cfg.Mode == ModeReadOnly || req.ReadOnly || namedReadOnly
	return pl, e.validate(pl.op, req, pl.readOnly)
}

// run carries out a planned request on the session's connection.
func (s *session) run(ctx context.Context, pl plan) ([]byte, error) {
	buf := make([]byte, 0, 512)
	var err error
	switch sh := pl.sh; pl.op {
	case messages.OpQuery, messages.OpOne:
		sh.One, sh.Emit = pl.op == messages.OpOne, s.out.Emit
		buf, err = s.single(ctx, pl.req, sh, buf)
	case messages.OpMany:
		buf, err = s.many(ctx, pl.req, sh, buf)
	case messages.OpScript:
		buf, err = s.script(ctx, pl.req.SQL, buf)
	case messages.OpTx:
		buf, err = s.tx(ctx, pl.req, sh, buf)
	case messages.OpInsert:
		buf, err = s.insert(ctx, pl.req, sh, buf)
	case messages.OpUpdate:
		buf, err = s.update(ctx, pl.req, sh, buf)
	}
	if err != nil {
		if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code == "57014" {
				return nil, messages.Errorf(messages.CodeTimeout, "the request's %s deadline passed (counted from its receipt by the worker)", pl.timeout)
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
	if op != messages.OpTx && (req.Isolation != "" || req.Deferrable) {
		return messages.BadRequest("isolation", "isolation and deferrable open a transaction: they apply to op tx, and to a begin on db.tx")
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
			if st.ExpectRows != nil && *st.ExpectRows < 0 {
				return messages.BadRequest("statements["+strconv.Itoa(i)+"].expect_rows", "statement %d: expect_rows must not be negative", i)
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
