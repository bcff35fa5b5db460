// Package pgrole checks what a login role may do beyond reading: a
// read-only worker refuses to start with a role that could write, since
// READ ONLY transactions stop table writes and only the role stops what they
// let through.
package pgrole

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Querier runs the check's one query: a pool, a connection or a transaction.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// privilegeSQL lists what the login role can do beyond reading, through
// itself or any role it is a member of (inherited or reachable with SET
// ROLE): each column is one power a read-only worker's login must not have.
// Table privileges are checked with has_table_privilege, so ownership counts.
const privilegeSQL = `WITH m AS (SELECT r.* FROM pg_catalog.pg_roles r WHERE pg_catalog.pg_has_role(r.oid, 'MEMBER'))
SELECT
	EXISTS (SELECT FROM m WHERE m.rolsuper),
	EXISTS (SELECT FROM m WHERE m.rolcreaterole OR m.rolcreatedb OR m.rolbypassrls OR m.rolreplication),
	EXISTS (SELECT FROM m, pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	        WHERE c.relkind IN ('r', 'p', 'v', 'f', 'm')
	          AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
	          AND pg_catalog.has_table_privilege(m.oid, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')),
	EXISTS (SELECT FROM m, pg_catalog.pg_namespace n
	        WHERE n.nspname NOT LIKE 'pg\_%' AND pg_catalog.has_schema_privilege(m.oid, n.oid, 'CREATE')),
	EXISTS (SELECT FROM m WHERE pg_catalog.has_database_privilege(m.oid, pg_catalog.current_database(), 'CREATE')),
	ARRAY(SELECT m.rolname::text FROM m
	      WHERE m.rolname IN ('pg_write_server_files', 'pg_execute_server_program', 'pg_read_server_files',
	                          'pg_signal_backend', 'pg_write_all_data', 'pg_checkpoint')
	      ORDER BY 1)`

// CheckReadOnly returns an error naming every power beyond reading that
// the login role has, itself or through a role it may SET ROLE to:
// superuser, role or database creation, replication, a table it may write, a
// schema or the database it may create in, and the pg_* roles that reach
// server files, programs or other backends. A read-only worker checks
// this at start: READ ONLY transactions stop table writes, and only the role
// stops what they let through.
func CheckReadOnly(ctx context.Context, q Querier) error {
	var super, admin, writes, createSchema, createDB bool
	var roles []string
	if err := q.QueryRow(ctx, privilegeSQL).Scan(&super, &admin, &writes, &createSchema, &createDB, &roles); err != nil {
		return fmt.Errorf("check the login role's privileges: %w", err)
	}
	var found []string
	if super {
		found = append(found, "is a superuser")
	}
	if admin {
		found = append(found, "may create roles or databases, replicate, or bypass row security")
	}
	if writes {
		found = append(found, "may write a table")
	}
	if createSchema || createDB {
		found = append(found, "may create objects")
	}
	if len(roles) > 0 {
		found = append(found, "is a member of "+strings.Join(roles, ", "))
	}
	if len(found) > 0 {
		return fmt.Errorf("the login role %s; a read-only worker needs a role that can only read (docs/operations.md, deploy/postgres/roles.sql)", strings.Join(found, ", "))
	}
	return nil
}
