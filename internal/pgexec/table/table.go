// Package table finds the table a request names in the catalog, checks its
// columns, and builds the INSERT and UPDATE of op insert and op update with
// every identifier quoted. Nothing a caller sends is pasted into SQL
// unchecked.
package table

import (
	"context"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// Table is a table found in the catalog, with its columns.
type Table struct {
	schema, name string
	columns      map[string]bool
}

// quoted returns "schema"."name".
func (t *Table) quoted() string { return pgx.Identifier{t.schema, t.name}.Sanitize() }

const tableQuery = `SELECT n.nspname, c.relname, a.attname
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE c.relkind IN ('r', 'p', 'v', 'f')
   AND c.relname = $2
   AND CASE WHEN $1 = '' THEN pg_catalog.pg_table_is_visible(c.oid) ELSE n.nspname = $1 END`

// Split splits "name" or "schema.name" (names as stored in the
// catalog, no quoting) into its parts; schema is "" for a bare name.
func Split(ref string) (schema, name string, err error) {
	if ref == "" {
		return "", "", messages.BadRequest("table", "table is required")
	}
	if strings.IndexByte(ref, 0) >= 0 {
		return "", "", messages.BadRequest("table", "table name contains a NUL byte")
	}
	schema, name = "", ref
	if i := strings.IndexByte(ref, '.'); i >= 0 {
		schema, name = ref[:i], ref[i+1:]
		if schema == "" || name == "" || strings.IndexByte(name, '.') >= 0 {
			return "", "", messages.BadRequest("table", "table must be name or schema.name, got %q (pass schema separately for a name holding a dot)", ref)
		}
	}
	return schema, name, nil
}

// Resolve finds a table by "name" (through the search_path) or
// "schema.name".
func Resolve(ctx context.Context, conn *pgconn.PgConn, ref string) (*Table, error) {
	schema, name, err := Split(ref)
	if err != nil {
		return nil, err
	}
	return lookup(ctx, conn, schema, name)
}

func lookup(ctx context.Context, conn *pgconn.PgConn, schema, name string) (*Table, error) {
	if strings.IndexByte(schema, 0) >= 0 || strings.IndexByte(name, 0) >= 0 || name == "" {
		return nil, messages.BadRequest("table", "table name is empty or contains a NUL byte")
	}
	res := conn.ExecParams(ctx, tableQuery, [][]byte{[]byte(schema), []byte(name)},
		[]uint32{pgtype.TextOID, pgtype.TextOID}, nil, nil).Read()
	if res.Err != nil {
		return nil, res.Err
	}
	if len(res.Rows) == 0 {
		ref := name
		if schema != "" {
			ref = schema + "." + name
		}
		return nil, messages.Errorf(messages.CodeNotFound, "table %q does not exist", ref)
	}
	t := &Table{schema: string(res.Rows[0][0]), name: string(res.Rows[0][1]), columns: make(map[string]bool, len(res.Rows))}
	for _, row := range res.Rows {
		if row[2] != nil {
			t.columns[string(row[2])] = true
		}
	}
	return t, nil
}

func (t *Table) CheckColumns(field string, cols []string) error {
	for _, col := range cols {
		if !t.columns[col] {
			return messages.BadRequest(field, "column %q does not exist in %s.%s", col, t.schema, t.name)
		}
	}
	return nil
}

// InsertSQL builds INSERT INTO "s"."t" ("a","b") VALUES ($1,$2) RETURNING ...
// with every identifier checked and quoted.
func (t *Table) InsertSQL(cols, returning []string) (string, error) {
	if err := t.CheckColumns("data", cols); err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("INSERT INTO ")
	b.WriteString(t.quoted())
	if len(cols) == 0 {
		b.WriteString(" DEFAULT VALUES")
	} else {
		b.WriteString(" (")
		for i, col := range cols {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(pgx.Identifier{col}.Sanitize())
		}
		b.WriteString(") VALUES (")
		for i := range cols {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("$" + strconv.Itoa(i+1))
		}
		b.WriteString(")")
	}
	if err := t.appendReturning(&b, returning); err != nil {
		return "", err
	}
	return b.String(), nil
}

// UpdateSQL builds UPDATE "s"."t" SET "a" = $1, ... WHERE <where>. The where
// clause must already use numbers past the data columns.
func (t *Table) UpdateSQL(cols []string, where string) (string, error) {
	if len(cols) == 0 {
		return "", messages.BadRequest("data", "data must set at least one column")
	}
	if err := t.CheckColumns("data", cols); err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("UPDATE ")
	b.WriteString(t.quoted())
	b.WriteString(" SET ")
	for i, col := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(pgx.Identifier{col}.Sanitize())
		b.WriteString(" = $" + strconv.Itoa(i+1))
	}
	if where != "" {
		b.WriteString(" WHERE ")
		b.WriteString(where)
	}
	return b.String(), nil
}

func (t *Table) appendReturning(b *strings.Builder, returning []string) error {
	if returning == nil {
		returning = []string{"*"}
	}
	if len(returning) == 0 {
		return nil
	}
	b.WriteString(" RETURNING ")
	for i, col := range returning {
		if i > 0 {
			b.WriteString(", ")
		}
		if col == "*" {
			b.WriteString("*")
			continue
		}
		if !t.columns[col] {
			return messages.BadRequest("returning", "column %q does not exist in %s.%s", col, t.schema, t.name)
		}
		b.WriteString(pgx.Identifier{col}.Sanitize())
	}
	return nil
}
