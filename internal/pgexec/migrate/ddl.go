package migrate

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Locked runs fn in a transaction that holds the start-up DDL lock, the
// advisory lock every migration takes too: the DDL of workers that start
// together (extension, schemas, catalogs, migrations) runs one at a time.
// The lock is transaction-scoped, so it holds through a transaction pooler
// and is never left behind.
func Locked(ctx context.Context, db Beginner, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_catalog.pg_advisory_xact_lock($1)", lockKey); err != nil {
			return fmt.Errorf("take the start-up DDL lock: %w", err)
		}
		return fn(tx)
	})
}

// AlreadyExists reports the error of DDL that lost a race with another
// session creating the same object, which counts as success: duplicate
// object, schema or table (42710, 42P06, 42P07), or the unique index of the
// catalog the object's row went into (23505 on pg_extension_name_index,
// pg_type_typname_nsp_index, pg_namespace_nspname_index or
// pg_class_relname_nsp_index), which is what CREATE ... IF NOT EXISTS
// raises when both sessions found the object missing.
func AlreadyExists(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "42710", "42P06", "42P07":
		return true
	case "23505":
		switch pe.ConstraintName {
		case "pg_extension_name_index", "pg_type_typname_nsp_index", "pg_namespace_nspname_index", "pg_class_relname_nsp_index":
			return true
		}
	}
	return false
}

// CreateExtension creates the extension name when it is missing, under the
// start-up DDL lock; one that another session created meanwhile is success.
func CreateExtension(ctx context.Context, db Beginner, name string) error {
	err := Locked(ctx, db, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS "+pgx.Identifier{name}.Sanitize())
		return err
	})
	if err != nil && !AlreadyExists(err) {
		return fmt.Errorf("create extension %s: %w", name, err)
	}
	return nil
}
