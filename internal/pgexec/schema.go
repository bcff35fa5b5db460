package pgexec

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

// MigrationsTable records the schema files applied by ApplySchema.
const MigrationsTable = "dbworker_schema_migrations"

// schemaLockKey is the advisory lock that serialises ApplySchema across
// workers starting together.
const schemaLockKey = 0x64627773 // "dbws"

// ApplySchema applies the .sql files of fsys (in name order) that are not yet
// recorded in dbworker_schema_migrations, each in its own transaction together
// with its record. A session advisory lock makes concurrent callers (several
// workers starting at once) apply each file exactly once. A recorded file whose
// content changed since is an error: schema files are append-only.
//
// It returns the names of the files it applied.
func (c *Client) ApplySchema(ctx context.Context, fsys fs.FS) ([]string, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("list schema files: %w", err)
	}
	sort.Strings(names)
	conn, err := c.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", schemaLockKey); err != nil {
		return nil, fmt.Errorf("take schema lock: %w", err)
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", schemaLockKey); err != nil {
			_ = conn.Conn().Close(context.WithoutCancel(ctx)) // never return a conn that may hold the lock
		}
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+MigrationsTable+` (
		name       text PRIMARY KEY,
		checksum   text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return nil, fmt.Errorf("create %s: %w", MigrationsTable, err)
	}
	applied := map[string]string{}
	rows, err := conn.Query(ctx, "SELECT name, checksum FROM "+MigrationsTable)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", MigrationsTable, err)
	}
	for rows.Next() {
		var name, sum string
		if err := rows.Scan(&name, &sum); err != nil {
			return nil, err
		}
		applied[name] = sum
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", MigrationsTable, err)
	}
	var done []string
	for _, name := range names {
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return done, fmt.Errorf("read schema file %s: %w", name, err)
		}
		digest := sha256.Sum256(body)
		sum := hex.EncodeToString(digest[:])
		base := path.Base(name)
		if prev, ok := applied[base]; ok {
			if prev != sum {
				return done, fmt.Errorf("schema file %s changed after it was applied (checksum %s, recorded %s); add a new file instead", base, sum[:12], prev[:min(12, len(prev))])
			}
			continue
		}
		if strings.TrimSpace(string(body)) == "" {
			continue
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Conn().PgConn().Exec(ctx, string(body)).ReadAll(); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO "+MigrationsTable+" (name, checksum) VALUES ($1, $2)", base, sum)
			return err
		})
		if err != nil {
			return done, fmt.Errorf("apply schema file %s: %w", base, err)
		}
		c.log.Info().Str("file", base).Msg("applied schema file")
		done = append(done, base)
	}
	return done, nil
}
