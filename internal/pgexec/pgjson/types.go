package pgjson

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// Kind says how values of a type are encoded to JSON and bound from JSON.
type Kind uint8

const (
	KindOther       Kind = iota // text form, as a JSON string
	KindBool                    // binary
	KindInt2                    // binary
	KindInt4                    // binary
	KindInt8                    // binary
	KindOID                     // binary
	KindFloat4                  // binary
	KindFloat8                  // binary
	KindNumeric                 // binary, printed as Postgres prints it
	KindText                    // text, varchar, bpchar, name, citext...: the bytes
	KindJSON                    // json: embedded
	KindJSONB                   // jsonb: binary, version byte then text, embedded
	KindBytea                   // binary, base64
	KindUUID                    // binary, canonical string
	KindDate                    // binary
	KindTimestamp               // binary
	KindTimestamptz             // binary
	KindVector                  // pgvector vector, binary
	KindHalfvec                 // pgvector halfvec, binary
	KindSparsevec               // pgvector sparsevec, binary
	KindArray                   // array: binary when its element is binary, else text parsed
)

// Type is what the encoder and the binder need to know of one type.
type Type struct {
	OID      uint32
	Name     string // pg_type.typname
	Category byte   // pg_type.typcategory
	Kind     Kind
	Elem     *Type // for arrays
	// base is, for a domain, the name of the type it is a domain of at
	// last (a domain of a domain of int8: int8).
	base string
}

// BaseName is the type's name, or a domain's base type's name.
func (t *Type) BaseName() string {
	if t.base != "" {
		return t.base
	}
	return t.Name
}

// Binary reports whether values of the type are requested in Binary format.
func (t *Type) Binary() bool {
	switch t.Kind {
	case KindOther:
		return false
	case KindArray:
		return t.Elem != nil && t.Elem.Kind != KindOther && t.Elem.Kind != KindArray
	case KindText, KindJSON:
		return true // binary and text forms are the same bytes
	}
	return true
}

// Format returns the wire Format code to request for the type's values.
func (t *Type) Format() int16 {
	if t.Binary() {
		return pgtype.BinaryFormatCode
	}
	return pgtype.TextFormatCode
}

// builtinKinds maps the built-in OIDs with a dedicated encoding.
var builtinKinds = map[uint32]struct {
	name     string
	category byte
	kind     Kind
}{
	pgtype.BoolOID:        {"bool", 'B', KindBool},
	pgtype.Int2OID:        {"int2", 'N', KindInt2},
	pgtype.Int4OID:        {"int4", 'N', KindInt4},
	pgtype.Int8OID:        {"int8", 'N', KindInt8},
	pgtype.OIDOID:         {"oid", 'N', KindOID},
	pgtype.Float4OID:      {"float4", 'N', KindFloat4},
	pgtype.Float8OID:      {"float8", 'N', KindFloat8},
	pgtype.NumericOID:     {"numeric", 'N', KindNumeric},
	pgtype.TextOID:        {"text", 'S', KindText},
	pgtype.VarcharOID:     {"varchar", 'S', KindText},
	pgtype.BPCharOID:      {"bpchar", 'S', KindText},
	pgtype.NameOID:        {"name", 'S', KindText},
	pgtype.QCharOID:       {"char", 'Z', KindText},
	pgtype.JSONOID:        {"json", 'U', KindJSON},
	pgtype.JSONBOID:       {"jsonb", 'U', KindJSONB},
	pgtype.ByteaOID:       {"bytea", 'U', KindBytea},
	pgtype.UUIDOID:        {"uuid", 'U', KindUUID},
	pgtype.DateOID:        {"date", 'D', KindDate},
	pgtype.TimestampOID:   {"timestamp", 'D', KindTimestamp},
	pgtype.TimestamptzOID: {"timestamptz", 'D', KindTimestamptz},
	pgtype.UnknownOID:     {"unknown", 'X', KindText},
}

// Catalog caches type information by OID for one database. Built-in types are
// known up front; any other OID is looked up in pg_type once.
type Catalog struct {
	mu    sync.RWMutex
	types map[uint32]*Type
}

func NewCatalog() *Catalog {
	c := &Catalog{types: make(map[uint32]*Type, 64)}
	for oid, b := range builtinKinds {
		c.types[oid] = &Type{OID: oid, Name: b.name, Category: b.category, Kind: b.kind}
	}
	return c
}

// Lookup returns the info of every OID, querying pg_type on conn for the ones
// not yet known.
func (c *Catalog) Lookup(ctx context.Context, conn *pgconn.PgConn, oids ...uint32) (map[uint32]*Type, error) {
	out := make(map[uint32]*Type, len(oids))
	var missing []uint32
	c.mu.RLock()
	for _, oid := range oids {
		if t, ok := c.types[oid]; ok {
			out[oid] = t
		} else {
			missing = append(missing, oid)
		}
	}
	c.mu.RUnlock()
	if len(missing) == 0 {
		return out, nil
	}
	if err := c.load(ctx, conn, missing); err != nil {
		return nil, err
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, oid := range missing {
		t, ok := c.types[oid]
		if !ok {
			t = &Type{OID: oid, Name: fmt.Sprintf("oid:%d", oid), Kind: KindOther}
		}
		out[oid] = t
	}
	return out, nil
}

// typeQuery looks types up by OID, with their extension: every name in it is
// qualified, because it may run inside a caller's transaction, whose
// search_path could otherwise put the caller's own operators and functions
// first.
const typeQuery = `SELECT t.oid, t.typname, t.typcategory, t.typelem, e.typname, e.typcategory,
       (SELECT x.extname FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_extension x ON x.oid OPERATOR(pg_catalog.=) d.refobjid
         WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass
           AND d.objid OPERATOR(pg_catalog.=) t.oid AND d.deptype OPERATOR(pg_catalog.=) 'e'),
       (SELECT x.extname FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_extension x ON x.oid OPERATOR(pg_catalog.=) d.refobjid
         WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass
           AND d.objid OPERATOR(pg_catalog.=) e.oid AND d.deptype OPERATOR(pg_catalog.=) 'e'),
       t.typbasetype, e.typbasetype
  FROM pg_catalog.pg_type t
  LEFT JOIN pg_catalog.pg_type e ON e.oid OPERATOR(pg_catalog.=) t.typelem AND t.typcategory OPERATOR(pg_catalog.=) 'A'
 WHERE t.oid OPERATOR(pg_catalog.=) ANY (pg_catalog.string_to_array($1, ',')::pg_catalog.oid[])`

// extensionKinds gives extension types, whose OIDs differ per database, their
// kind: by name, and only when the type belongs to that extension (a type of
// the same name elsewhere is not it).
var extensionKinds = map[[2]string]Kind{
	{"vector", "vector"}:    KindVector,
	{"vector", "halfvec"}:   KindHalfvec,
	{"vector", "sparsevec"}: KindSparsevec,
	{"citext", "citext"}:    KindText,
}

func (c *Catalog) load(ctx context.Context, conn *pgconn.PgConn, oids []uint32) error {
	list := make([]byte, 0, len(oids)*6)
	for i, oid := range oids {
		if i > 0 {
			list = append(list, ',')
		}
		list = fmt.Appendf(list, "%d", oid)
	}
	res := conn.ExecParams(ctx, typeQuery, [][]byte{list}, []uint32{pgtype.TextOID}, nil, nil).Read()
	if res.Err != nil {
		return fmt.Errorf("look up types %v: %w", oids, res.Err)
	}
	// A domain is written and bound as its base type (a domain over a
	// domain as the last base): the bases are looked up first, so that a
	// domain's Type is whole when other requests first see it.
	var bases []uint32
	for _, row := range res.Rows {
		for _, col := range [2]int{8, 9} {
			if base := parseOID(row[col]); base != 0 {
				bases = append(bases, base)
			}
		}
	}
	var baseTypes map[uint32]*Type
	if len(bases) > 0 {
		var err error
		if baseTypes, err = c.Lookup(ctx, conn, bases...); err != nil {
			return err
		}
	}
	// newType is the Type of a type: a domain takes its base's encoding
	// (its category is its base's already).
	newType := func(oid uint32, name, category, extension, base []byte) *Type {
		t := &Type{OID: oid, Name: string(name), Category: firstByte(category), Kind: extensionKinds[[2]string{string(extension), string(name)}]}
		if b := baseTypes[parseOID(base)]; b != nil {
			t.Kind, t.Elem, t.base = b.Kind, b.Elem, b.BaseName()
		}
		return t
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, row := range res.Rows {
		oid, elemOID := parseOID(row[0]), parseOID(row[3])
		if _, known := c.types[oid]; known {
			continue // built-in, or looked up already: never replaced
		}
		t := newType(oid, row[1], row[2], row[6], row[8])
		if t.Category == 'A' && elemOID != 0 {
			t.Kind = KindArray
			if e, ok := c.types[elemOID]; ok {
				t.Elem = e
			} else if row[4] != nil {
				e := newType(elemOID, row[4], row[5], row[7], row[9])
				c.types[elemOID] = e
				t.Elem = e
			}
			if t.Elem == nil {
				t.Elem = &Type{OID: elemOID, Name: fmt.Sprintf("oid:%d", elemOID)}
			}
			if t.Elem.base != "" {
				// An array of a domain is named as an array of its base,
				// as PostgreSQL describes a domain by its base.
				t.Name = "_" + t.Elem.base
			}
		}
		c.types[oid] = t
	}
	return nil
}

// parseOID reads an OID in text form; NULL and "0" are 0.
func parseOID(b []byte) uint32 {
	n, _ := strconv.ParseUint(string(b), 10, 32)
	return uint32(n)
}

func firstByte(b []byte) byte {
	if len(b) == 0 {
		return 0
	}
	return b[0]
}
