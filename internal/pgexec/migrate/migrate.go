// Package migrate applies schema migrations once each, tracked in a table,
// for every part of dbworker that owns tables: the operator's schema files
// (SCHEMA_DIR), the graph tables and the vector catalog.
//
// Each migration runs in its own transaction, together with its record and
// under a transaction-scoped advisory lock, so workers starting together
// apply each migration exactly once and never race on DDL: the second one
// waits for the lock, then finds the record. A recorded migration whose SQL
// changed since is an error: migrations are append-only.
package migrate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
)

// Table records the migrations applied.
const Table = "dbworker_schema_migrations"

// lockKey is the advisory lock that serialises migrations, and all other
// start-up DDL (Locked), across workers.
const lockKey = 0x64627773 // "dbws"

// Migration is one named piece of DDL.
type Migration struct {
	// Name identifies the migration in Table. Names are global: prefix them
	// with their owner ("vector/<schema>/...") when they are not files.
	Name string
	SQL  string
}

// FromFS reads the .sql files of fsys, in name order, as migrations named
// by their base names. Empty files are left out.
func FromFS(fsys fs.FS) ([]Migration, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("list schema files: %w", err)
	}
	sort.Strings(names)
	ms := make([]Migration, 0, len(names))
	for _, name := range names {
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("read schema file %s: %w", name, err)
		}
		if strings.TrimSpace(string(body)) == "" {
			continue
		}
		ms = append(ms, Migration{Name: path.Base(name), SQL: string(body)})
	}
	return ms, nil
}

// Beginner starts transactions: a pool, a connection or a transaction.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Apply applies the migrations not yet recorded, in order, and returns the
// names of those it applied. It stops at the first failure, which leaves
// that migration and the ones after it unapplied.
func Apply(ctx context.Context, db Beginner, ms []Migration, log zerolog.Logger) ([]string, error) {
	var done []string
	for i, m := range ms {
		applied, err := apply(ctx, db, m, i == 0)
		if err != nil {
			return done, err
		}
		if applied {
			log.Info().Str("migration", m.Name).Msg("applied migration")
			done = append(done, m.Name)
		}
	}
	return done, nil
}

// apply runs one migration in a transaction that holds the advisory lock,
// unless its record exists. The first also creates the table.
func apply(ctx context.Context, db Beginner, m Migration, first bool) (applied bool, err error) {
	digest := sha256.Sum256([]byte(m.SQL))
	sum := hex.EncodeToString(digest[:])
	err = Locked(ctx, db, func(tx pgx.Tx) error {
		table, err := tableIn(ctx, tx)
		if err != nil {
			return err
		}
		if first {
			if err := createTable(ctx, tx, table); err != nil {
				return err
			}
		}
		var prev string
		err = tx.QueryRow(ctx, "SELECT checksum FROM "+table+" WHERE name = $1", m.Name).Scan(&prev)
		switch {
		case err == nil:
			if prev != sum {
				return fmt.Errorf("migration %s changed after it was applied (checksum %s, recorded %s); add a new one instead", m.Name, sum[:12], prev[:min(12, len(prev))])
			}
			return nil
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("read %s: %w", Table, err)
		}
		// The simple protocol: a migration may hold several statements.
		if _, err := tx.Conn().PgConn().Exec(ctx, m.SQL).ReadAll(); err != nil {
			return fmt.Errorf("apply migration %s: %w", m.Name, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+table+" (name, checksum) VALUES ($1, $2)", m.Name, sum); err != nil {
			return fmt.Errorf("record migration %s: %w", m.Name, err)
		}
		applied = true
		return nil
	})
	return applied, err
}

// tableIn returns Table qualified by the schema migrations are made in: the
// first schema of the search_path, where unqualified DDL creates its
// objects. A table of the same name further down the search_path (another
// tenant's, in public) is not this one.
func tableIn(ctx context.Context, tx pgx.Tx) (string, error) {
	var schema *string
	if err := tx.QueryRow(ctx, "SELECT pg_catalog.current_schema()").Scan(&schema); err != nil {
		return "", fmt.Errorf("find the schema for %s: %w", Table, err)
	}
	if schema == nil {
		return "", fmt.Errorf("no schema of the search_path exists to hold %s", Table)
	}
	return pgx.Identifier{*schema, Table}.Sanitize(), nil
}

// createTable creates the migrations table when it does not exist. It looks
// first, so that a login without CREATE on the schema starts once the table
// is there.
func createTable(ctx context.Context, tx pgx.Tx, table string) error {
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT pg_catalog.to_regclass($1) IS NOT NULL", table).Scan(&exists); err != nil {
		return fmt.Errorf("look up %s: %w", Table, err)
	}
	if exists {
		return nil
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+table+` (
		name       text PRIMARY KEY,
		checksum   text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("create %s: %w", Table, err)
	}
	return nil
}
