package pgexec

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgerr"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pipeline"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/sqltext"
)

// describe returns the description of sql (its parameter and result
// types), asking the server once per connection: a Parse and Describe of the
// unnamed statement, which keeps nothing on the server. Only a description
// made in the connection's own state is cached (clean): one made inside a
// caller's transaction could reflect its search_path or temporary tables.
//
// The parameter types in a description choose how JSON values are written
// as text, and are sent with the statement only where the value was
// rewritten for its type (pgjson.DeclaredType): a stale description can make a
// request fail, but the server never takes a value as another type.
func (s *session) describe(ctx context.Context, sql string, clean bool) (sd *pgconn.StatementDescription, cached bool, err error) {
	// A held transaction (tx.go) describes every statement afresh: a stale
	// description is found only after the statement ran, and in a held
	// transaction it cannot be undone and sent again.
	if s.held {
		sd, err = s.pg.Prepare(ctx, "", sql, nil)
		return sd, false, err
	}
	if sd := s.cache.Get(sql); sd != nil {
		return sd, true, nil
	}
	sd, err = s.pg.Prepare(ctx, "", sql, nil)
	if err != nil {
		return nil, false, err
	}
	if clean {
		s.cache.Put(sd)
	}
	return sd, false, nil
}

// errStale is a cached description gone stale (see pgerr.ErrStale).
var errStale = pgerr.ErrStale

// planChanged reports a statement whose cached description went stale: its
// columns changed (errStale), or their count did, so that the server refused
// the result formats sent with it (08P01, before running it).
func planChanged(err error) bool {
	var pe *pgconn.PgError
	return errors.Is(err, errStale) || errors.As(err, &pe) && pe.Code == "08P01"
}

// encodedArgs is a statement's arguments in wire form (pipeline.Args).
type encodedArgs = pipeline.Args

// encodeArgs converts b's JSON arguments by the parameter types of sd.
func (s *session) encodeArgs(ctx context.Context, sd *pgconn.StatementDescription, b sqltext.Bound, field string) (encodedArgs, error) {
	return pipeline.Encode(ctx, s.c.types, s.pg, sd, b, field)
}

// readResult writes one result object (pipeline.ReadResult).
func (s *session) readResult(rr *pgconn.ResultReader, a encodedArgs, sh shape, buf []byte) ([]byte, pgconn.CommandTag, error) {
	sh.MaxBytes = s.out.MaxBytes
	return pipeline.ReadResult(rr, a, sh, buf)
}
