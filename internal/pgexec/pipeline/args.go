package pipeline

import (
	"context"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgerr"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgjson"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/sqltext"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// Args is a statement's arguments in wire form, the result formats to ask
// for, the types of both, and the columns the description promised.
type Args struct {
	Values  [][]byte
	OIDs    []uint32 // parameter types sent with the statement (0: the server's to infer)
	Formats []int16
	Types   map[uint32]*pgjson.Type
	Fields  []pgconn.FieldDescription
}

// Encode converts b's JSON arguments by the parameter types of sd and picks
// the result format of each column. field names the request field for a
// count mismatch. Types the catalog does not know yet are looked up on pg.
func Encode(ctx context.Context, types *pgjson.Catalog, pg *pgconn.PgConn, sd *pgconn.StatementDescription, b sqltext.Bound, field string) (Args, error) {
	if len(sd.ParamOIDs) != len(b.Args) {
		return Args{}, messages.BadRequest(field, "the statement takes %d parameters, %d given", len(sd.ParamOIDs), len(b.Args))
	}
	oids := make([]uint32, 0, len(sd.ParamOIDs)+len(sd.Fields))
	oids = append(oids, sd.ParamOIDs...)
	for _, f := range sd.Fields {
		oids = append(oids, f.DataTypeOID)
	}
	ts, err := types.Lookup(ctx, pg, oids...)
	if err != nil {
		return Args{}, err
	}
	a := Args{Values: make([][]byte, len(b.Args)), OIDs: make([]uint32, len(b.Args)), Formats: make([]int16, len(sd.Fields)), Types: ts, Fields: sd.Fields}
	for i, raw := range b.Args {
		t := ts[sd.ParamOIDs[i]]
		if a.Values[i], err = pgjson.EncodeParam(t, b.Names[i], raw); err != nil {
			return Args{}, err
		}
		a.OIDs[i] = pgjson.DeclaredType(t)
	}
	for i, f := range sd.Fields {
		a.Formats[i] = ts[f.DataTypeOID].Format()
	}
	return a, nil
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

// ReadResult writes one result object: columns and rows (or row), then
// rows_affected, command and truncated. A result whose columns are not the
// ones a was encoded for (the table changed since the description was
// cached) is read to its end and answered pgerr.ErrStale: its values may be
// in formats asked for other types.
func ReadResult(rr *pgconn.ResultReader, a Args, sh pgjson.Shape, buf []byte) ([]byte, pgconn.CommandTag, error) {
	fields := rr.FieldDescriptions()
	if !sameColumns(fields, a.Fields) {
		tag, err := rr.Close()
		if err == nil {
			err = pgerr.ErrStale
		}
		return buf, tag, err
	}
	colTypes := make([]*pgjson.Type, len(fields))
	for i, f := range fields {
		colTypes[i] = a.Types[f.DataTypeOID]
	}
	return pgjson.WriteResult(rr, colTypes, sh, buf)
}
