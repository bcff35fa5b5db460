package main

import (
	"cmp"
	"context"
	"fmt"
	"os"

	"github.com/jeeves-avionics/dbworker/internal/config"
	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/migrate"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pooler"
)

// connectPostgres opens the pool (and the read pool of POSTGRES_READ_URL),
// checks a read-only worker's role, and applies the schema files unless
// start-up DDL is skipped. It returns the execute mode to run with, and
// whether to run the rest of the start-up DDL (graph and vector catalogs).
//
// Start-up DDL is skipped for a read-only worker (its login must not be able
// to run it), with POSTGRES_MIGRATE=false, and against a database that
// refuses writes (a hot standby, default_transaction_read_only): such a
// worker serves reads, and db.execute runs read-only.
func (m *Main) connectPostgres(ctx context.Context) (pgexec.Mode, bool, error) {
	cfg := m.Config
	mode := cfg.ExecuteMode
	readOnly := mode == pgexec.ModeReadOnly
	pcfg := pgexec.Config{
		DSN:                     cfg.PostgresDSN(),
		MaxConns:                int32(cfg.PoolMax()),
		MinConns:                int32(cfg.MinConns),
		MaxConnIdleTime:         cfg.MaxConnIdleTime.D(),
		AcquireTimeout:          cfg.PoolTimeout.D(),
		MaxConnLifetime:         cfg.PoolRecycle.D(),
		SessionStatementTimeout: cfg.MaxStatementTimeout.D(),
		Pooler:                  pooler.Mode(cfg.Pooler),
		SessionDSN:              cfg.SessionURL,
		// A row larger than an answer can carry is refused before it is read.
		MaxMessageBytes: cmp.Or(cfg.MaxMessageBytes, int(m.nc.MaxPayload())+64<<10),
		CreateExtension: cfg.CreateExtension && !readOnly && cfg.Migrate,
		ApplicationName: "dbworker/" + cfg.WorkerID,
		Logger:          &m.Log,
	}
	var err error
	if m.pg, err = pgexec.Connect(ctx, pcfg); err != nil {
		return "", false, fmt.Errorf("postgres %s: %w", cfg.RedactedPostgresDSN(), err)
	}
	m.Log.Info().Str("server_version", m.pg.ServerVersion()).Str("pgvector", m.pg.PGVectorVersion()).
		Str("pooler", cfg.Pooler).Bool("writes_refused", m.pg.WritesRefused()).Msg("postgres connected")
	if cfg.ReadURL != "" {
		rcfg := pcfg
		rcfg.DSN, rcfg.SessionDSN, rcfg.CreateExtension = cfg.ReadURL, "", false
		rcfg.ApplicationName += "/read"
		if m.read, err = pgexec.Connect(ctx, rcfg); err != nil {
			return "", false, fmt.Errorf("POSTGRES_READ_URL %s: %w", config.RedactURL(cfg.ReadURL), err)
		}
		m.Log.Info().Str("server_version", m.read.ServerVersion()).Bool("writes_refused", m.read.WritesRefused()).
			Msg("postgres read pool connected: read_only requests, read-only transactions and db.vector searches go there")
	}
	if readOnly {
		if err := m.pg.CheckReadOnlyRole(ctx); err != nil {
			if !cfg.ReadOnlyPrivileged {
				return "", false, fmt.Errorf("DB_EXECUTE_MODE=read_only: %w (DB_READ_ONLY_ALLOW_PRIVILEGED=true overrides, for development only)", err)
			}
			m.Log.Warn().Err(err).Msg("read-only worker with a privileged login (DB_READ_ONLY_ALLOW_PRIVILEGED): the role does not back read-only up")
		}
	}
	ddl := true
	switch {
	case readOnly:
		ddl = false
		m.Log.Info().Msg("read-only: start-up DDL (schema files, graph and vector catalogs) skipped")
	case m.pg.WritesRefused():
		ddl = false
		if mode == pgexec.ModeReadWrite {
			mode = pgexec.ModeReadOnly
		}
		m.Log.Warn().Msg("the database refuses writes (a hot standby, or default_transaction_read_only): start-up DDL skipped, db.execute runs read-only, writes are FORBIDDEN")
	case !cfg.Migrate:
		ddl = false
		m.Log.Info().Msg("POSTGRES_MIGRATE=false: start-up DDL (extension, schema files, graph and vector catalogs) skipped")
	}
	if mode == pgexec.ModeReadWrite {
		m.warnReadOnlyRequests(ctx)
	}
	if cfg.SchemaDir != "" && ddl {
		ms, err := migrate.FromFS(os.DirFS(cfg.SchemaDir))
		if err != nil {
			return "", false, err
		}
		applied, err := migrate.Apply(ctx, m.pg, ms, m.Log)
		if err != nil {
			return "", false, err
		}
		m.Log.Info().Strs("applied", applied).Str("dir", cfg.SchemaDir).Msg("schema up to date")
	}
	return mode, ddl, nil
}

// warnReadOnlyRequests says, once at start, when the "read_only" requests of
// a read-write worker run under a login that may write. READ ONLY and the
// rollback hold for tables, but PostgreSQL lets a statement RESET
// transaction_read_only after its snapshot, and nextval and setval are not
// rolled back: only a login that cannot write closes that
// (docs/operations.md, "PostgreSQL roles and read-only", layer 4).
func (m *Main) warnReadOnlyRequests(ctx context.Context) {
	backing, via := m.pg, "POSTGRES_URL"
	if m.read != nil {
		backing, via = m.read, "POSTGRES_READ_URL"
	}
	if err := backing.CheckReadOnlyRole(ctx); err != nil {
		m.Log.Warn().Str("login_of", via).Str("why", err.Error()).
			Msg(`"read_only" requests run under a login that can write, so a statement that resets transaction_read_only may advance sequences; set POSTGRES_READ_URL to this database under a read-only login (deploy/postgres/roles.sql: dbworker_ro) to close it`)
	}
}
