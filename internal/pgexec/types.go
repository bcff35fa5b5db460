package pgexec

import (
	"context"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// kind says how values of a type are encoded to JSON and bound from JSON.
type kind uint8

const (
	kOther       kind = iota // text form, as a JSON string
	kBool                    // binary
	kInt2                    // binary
	kInt4                    // binary
	kInt8                    // binary
	kOID                     // binary
	kFloat4                  // binary
	kFloat8                  // binary
	kNumeric                 // binary, printed as Postgres prints it
	kText                    // text, varchar, bpchar, name, citext...: the bytes
	kJSON                    // json: embedded
	kJSONB                   // jsonb: binary, version byte then text, embedded
	kBytea                   // binary, base64
	kUUID                    // binary, canonical string
	kDate                    // binary
	kTimestamp               // binary
	kTimestamptz             // binary
	kVector                  // pgvector vector, binary
	kHalfvec                 // pgvector halfvec, binary
	kSparsevec               // pgvector sparsevec, binary
	kArray                   // array: binary when its element is binary, else text parsed
)

// typeInfo is what the encoder and the binder need to know of one type.
type typeInfo struct {
	oid      uint32
	name     string // pg_type.typname
	category byte   // pg_type.typcategory
	kind     kind
	elem     *typeInfo // for arrays
}

// binary reports whether values of the type are requested in binary format.
func (t *typeInfo) binary() bool {
	switch t.kind {
	case kOther:
		return false
	case kArray:
		return t.elem != nil && t.elem.kind != kOther && t.elem.kind != kArray
	case kText, kJSON:
		return true // binary and text forms are the same bytes
	}
	return true
}

// format returns the wire format code to request for the type's values.
func (t *typeInfo) format() int16 {
	if t.binary() {
		return pgtype.BinaryFormatCode
	}
	return pgtype.TextFormatCode
}

// builtinKinds maps the built-in OIDs with a dedicated encoding.
var builtinKinds = map[uint32]struct {
	name     string
	category byte
	kind     kind
}{
	pgtype.BoolOID:        {"bool", 'B', kBool},
	pgtype.Int2OID:        {"int2", 'N', kInt2},
	pgtype.Int4OID:        {"int4", 'N', kInt4},
	pgtype.Int8OID:        {"int8", 'N', kInt8},
	pgtype.OIDOID:         {"oid", 'N', kOID},
	pgtype.Float4OID:      {"float4", 'N', kFloat4},
	pgtype.Float8OID:      {"float8", 'N', kFloat8},
	pgtype.NumericOID:     {"numeric", 'N', kNumeric},
	pgtype.TextOID:        {"text", 'S', kText},
	pgtype.VarcharOID:     {"varchar", 'S', kText},
	pgtype.BPCharOID:      {"bpchar", 'S', kText},
	pgtype.NameOID:        {"name", 'S', kText},
	pgtype.QCharOID:       {"char", 'Z', kText},
	pgtype.JSONOID:        {"json", 'U', kJSON},
	pgtype.JSONBOID:       {"jsonb", 'U', kJSONB},
	pgtype.ByteaOID:       {"bytea", 'U', kBytea},
	pgtype.UUIDOID:        {"uuid", 'U', kUUID},
	pgtype.DateOID:        {"date", 'D', kDate},
	pgtype.TimestampOID:   {"timestamp", 'D', kTimestamp},
	pgtype.TimestamptzOID: {"timestamptz", 'D', kTimestamptz},
	pgtype.UnknownOID:     {"unknown", 'X', kText},
}

// catalog caches type information by OID for one database. Built-in types are
// known up front; any other OID is looked up in pg_type once.
type catalog struct {
	mu    sync.RWMutex
	types map[uint32]*typeInfo
}

func newCatalog() *catalog {
	c := &catalog{types: make(map[uint32]*typeInfo, 64)}
	for oid, b := range builtinKinds {
		c.types[oid] = &typeInfo{oid: oid, name: b.name, category: b.category, kind: b.kind}
	}
	return c
}

// lookup returns the info of every OID, querying pg_type on conn for the ones
// not yet known.
func (c *catalog) lookup(ctx context.Context, conn *pgconn.PgConn, oids ...uint32) (map[uint32]*typeInfo, error) {
	out := make(map[uint32]*typeInfo, len(oids))
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
			t = &typeInfo{oid: oid, name: fmt.Sprintf("oid:%d", oid), kind: kOther}
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
           AND d.objid OPERATOR(pg_catalog.=) e.oid AND d.deptype OPERATOR(pg_catalog.=) 'e')
  FROM pg_catalog.pg_type t
  LEFT JOIN pg_catalog.pg_type e ON e.oid OPERATOR(pg_catalog.=) t.typelem AND t.typcategory OPERATOR(pg_catalog.=) 'A'
 WHERE t.oid OPERATOR(pg_catalog.=) ANY (pg_catalog.string_to_array($1, ',')::pg_catalog.oid[])`

// extensionKinds gives extension types, whose OIDs differ per database, their
// kind: by name, and only when the type belongs to that extension (a type of
// the same name elsewhere is not it).
var extensionKinds = map[[2]string]kind{
	{"vector", "vector"}:    kVector,
	{"vector", "halfvec"}:   kHalfvec,
	{"vector", "sparsevec"}: kSparsevec,
	{"citext", "citext"}:    kText,
}

func (c *catalog) load(ctx context.Context, conn *pgconn.PgConn, oids []uint32) error {
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
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, row := range res.Rows {
		var oid, elemOID uint32
		fmt.Sscan(string(row[0]), &oid)
		fmt.Sscan(string(row[3]), &elemOID)
		if _, known := c.types[oid]; known {
			continue // built-in, or looked up already: never replaced
		}
		t := &typeInfo{oid: oid, name: string(row[1]), category: firstByte(row[2]), kind: extensionKinds[[2]string{string(row[6]), string(row[1])}]}
		if t.category == 'A' && elemOID != 0 {
			t.kind = kArray
			if e, ok := c.types[elemOID]; ok {
				t.elem = e
			} else if row[4] != nil {
				e := &typeInfo{oid: elemOID, name: string(row[4]), category: firstByte(row[5]), kind: extensionKinds[[2]string{string(row[7]), string(row[4])}]}
				c.types[elemOID] = e
				t.elem = e
			}
			if t.elem == nil {
				t.elem = &typeInfo{oid: elemOID, name: fmt.Sprintf("oid:%d", elemOID)}
			}
		}
		c.types[oid] = t
	}
	return nil
}

func firstByte(b []byte) byte {
	if len(b) == 0 {
		return 0
	}
	return b[0]
}
