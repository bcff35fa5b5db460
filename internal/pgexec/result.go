package pgexec

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgerr"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgjson"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/sqltext"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
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

// encodedArgs is a statement's arguments in wire form, the result formats to
// ask for, the types of both, and the columns the description promised.
type encodedArgs struct {
	values  [][]byte
	oids    []uint32 // parameter types sent with the statement (0: the server's to infer)
	formats []int16
	types   map[uint32]*pgjson.Type
	fields  []pgconn.FieldDescription
}

// sameColumns reports whether a result has the columns its description
// promised: their number and types.
func sameColumns(got, want []pgconn.FieldDescription) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i].DataTypeOID != want[i].DataTypeOID {
			return false
		}
	}
	return true
}

// encodeArgs converts b's JSON arguments by the parameter types of sd and
// picks the result format of each column. field names the request field for
// a count mismatch.
func (s *session) encodeArgs(ctx context.Context, sd *pgconn.StatementDescription, b sqltext.Bound, field string) (encodedArgs, error) {
	if len(sd.ParamOIDs) != len(b.Args) {
		return encodedArgs{}, messages.BadRequest(field, "the statement takes %d parameters, %d given", len(sd.ParamOIDs), len(b.Args))
	}
	oids := make([]uint32, 0, len(sd.ParamOIDs)+len(sd.Fields))
	oids = append(oids, sd.ParamOIDs...)
	for _, f := range sd.Fields {
		oids = append(oids, f.DataTypeOID)
	}
	types, err := s.c.types.Lookup(ctx, s.pg, oids...)
	if err != nil {
		return encodedArgs{}, err
	}
	a := encodedArgs{values: make([][]byte, len(b.Args)), oids: make([]uint32, len(b.Args)), formats: make([]int16, len(sd.Fields)), types: types, fields: sd.Fields}
	for i, raw := range b.Args {
		t := types[sd.ParamOIDs[i]]
		if a.values[i], err = pgjson.EncodeParam(t, b.Names[i], raw); err != nil {
			return encodedArgs{}, err
		}
		a.oids[i] = pgjson.DeclaredType(t)
	}
	for i, f := range sd.Fields {
		a.formats[i] = types[f.DataTypeOID].Format()
	}
	return a, nil
}

// readResult writes one result object: columns and rows (or row), then
// rows_affected, command and truncated.
func (s *session) readResult(rr *pgconn.ResultReader, a encodedArgs, sh shape, buf []byte) ([]byte, pgconn.CommandTag, error) {
	fields := rr.FieldDescriptions()
	if !sameColumns(fields, a.fields) {
		// The table changed since the description was cached: the values
		// may be in formats asked for other types. Read none of them.
		tag, err := rr.Close()
		if err == nil {
			err = errStale
		}
		return buf, tag, err
	}
	colTypes := make([]*pgjson.Type, len(fields))
	for i, f := range fields {
		colTypes[i] = a.types[f.DataTypeOID]
	}
	sh.MaxBytes = s.out.MaxBytes
	return pgjson.WriteResult(rr, colTypes, sh, buf)
}
