-- Least-privilege logins for dbworker. Run once per database as a superuser,
-- naming the schema the workers serve (tables, the vector catalog, the graph):
--
--   psql -v schema=public -f deploy/postgres/roles.sql
--
-- Then set passwords (ALTER ROLE dbworker_rw PASSWORD '...') or map them in
-- pg_hba.conf. It is safe to run again.
--
-- dbworker_rw: a read-write worker. It owns nothing outside its schema, is no
--   superuser and holds none of the pg_* server roles, so COPY ... TO PROGRAM,
--   server files (COPY TO/FROM a file, lo_import, lo_export) and signalling
--   other backends are out of its reach.
-- dbworker_ro: a read-only worker (DB_EXECUTE_MODE=read_only). SELECT only, and
--   default_transaction_read_only, so even a session it opens by hand cannot
--   write. A read-only worker refuses to start with a login that can write.
--
-- Both must also stay away from other sessions: pg_terminate_backend and
-- pg_cancel_backend let any role signal backends of the same role, i.e. other
-- workers' connections, so they are revoked from PUBLIC in this database.

\set ON_ERROR_STOP on

DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'dbworker_rw') THEN
		CREATE ROLE dbworker_rw LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
	END IF;
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'dbworker_ro') THEN
		CREATE ROLE dbworker_ro LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
	END IF;
END
$$;

ALTER ROLE dbworker_ro SET default_transaction_read_only = on;

REVOKE EXECUTE ON FUNCTION pg_catalog.pg_terminate_backend(integer, bigint) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION pg_catalog.pg_cancel_backend(integer) FROM PUBLIC;

-- The read-write worker creates its own tables at start (graph, vector
-- catalog, schema files) and so owns them; the read-only one reads them.
GRANT USAGE, CREATE ON SCHEMA :"schema" TO dbworker_rw;
GRANT USAGE ON SCHEMA :"schema" TO dbworker_ro;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA :"schema" TO dbworker_rw;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA :"schema" TO dbworker_rw;
GRANT SELECT ON ALL TABLES IN SCHEMA :"schema" TO dbworker_ro;
ALTER DEFAULT PRIVILEGES IN SCHEMA :"schema" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO dbworker_rw;
ALTER DEFAULT PRIVILEGES IN SCHEMA :"schema" GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO dbworker_rw;
ALTER DEFAULT PRIVILEGES IN SCHEMA :"schema" GRANT SELECT ON TABLES TO dbworker_ro;
ALTER DEFAULT PRIVILEGES FOR ROLE dbworker_rw IN SCHEMA :"schema" GRANT SELECT ON TABLES TO dbworker_ro;
