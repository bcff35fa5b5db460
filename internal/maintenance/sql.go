package maintenance

// Every SQL string of the maintenance paths. Identifiers are never pasted in:
// tables are found by name through the catalog and addressed by OID, and the
// one statement that must name a table (VACUUM) quotes it with
// pgx.Identifier after the catalog lookup.

// tableStatsColumns is the select list of one table's figures, from
// pg_class c, pg_namespace n and pg_stat_user_tables s.
const tableStatsColumns = `n.nspname, c.relname,
       pg_total_relation_size(c.oid),
       pg_table_size(c.oid) - COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0),
       pg_indexes_size(c.oid),
       COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0),
       pg_size_pretty(pg_total_relation_size(c.oid)),
       COALESCE(s.n_live_tup, 0), COALESCE(s.n_dead_tup, 0),
       COALESCE(s.n_mod_since_analyze, 0), COALESCE(s.n_ins_since_vacuum, 0),
       s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze,
       COALESCE(s.vacuum_count, 0), COALESCE(s.autovacuum_count, 0),
       COALESCE(s.analyze_count, 0), COALESCE(s.autoanalyze_count, 0),
       age(c.relfrozenxid), COALESCE(s.seq_scan, 0), s.idx_scan`

// statsByOIDQuery returns one table's figures.
const statsByOIDQuery = `SELECT ` + tableStatsColumns + `
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_catalog.pg_stat_user_tables s ON s.relid = c.oid
 WHERE c.oid = $1`

// statsBySchemasQuery returns the figures of every ordinary and partitioned
// table in the schemas $1, largest first.
const statsBySchemasQuery = `SELECT ` + tableStatsColumns + `
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_catalog.pg_stat_user_tables s ON s.relid = c.oid
 WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname = ANY($1)
 ORDER BY pg_total_relation_size(c.oid) DESC, n.nspname, c.relname`

// tableOIDQuery finds a table in schema $1 (or through the search_path when
// $1 is empty) named $2.
const tableOIDQuery = `SELECT c.oid, n.nspname, c.relname
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'm', 't')
   AND c.relname = $2
   AND CASE WHEN $1 = '' THEN pg_catalog.pg_table_is_visible(c.oid) ELSE n.nspname = $1 END`

// databaseQuery describes the current database.
const databaseQuery = `SELECT current_database(), pg_database_size(current_database()),
       pg_size_pretty(pg_database_size(current_database()))`

// snapshotQuery is a table's dead rows and heap size, before and after a VACUUM.
const snapshotQuery = `SELECT COALESCE(s.n_dead_tup, 0),
       pg_table_size(c.oid) - COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0)
  FROM pg_catalog.pg_class c
  LEFT JOIN pg_catalog.pg_stat_user_tables s ON s.relid = c.oid
 WHERE c.oid = $1`

// databaseSnapshotQuery sums the same over every user table.
const databaseSnapshotQuery = `SELECT COALESCE(sum(n_dead_tup), 0)::int8,
       COALESCE(sum(pg_table_size(relid)), 0)::int8
  FROM pg_catalog.pg_stat_user_tables`

// progressQuery reads a VACUUM's progress by the backend running it.
const progressQuery = `SELECT phase, heap_blks_total, heap_blks_scanned, heap_blks_vacuumed, index_vacuum_count
  FROM pg_catalog.pg_stat_progress_vacuum WHERE pid = $1`

// clearStatsSnapshot makes the next statistics read fresh in this session.
const clearStatsSnapshot = `SELECT pg_catalog.pg_stat_clear_snapshot()`

// advisoryLockQuery takes a maintenance run's advisory lock, (class $1,
// target OID $2), for the session: it lasts until the run's connection closes.
const advisoryLockQuery = `SELECT pg_catalog.pg_try_advisory_lock($1::int4, $2::int4)`

// advisoryHolderQuery names the session holding a maintenance advisory lock.
const advisoryHolderQuery = `SELECT COALESCE(a.application_name, ''), a.pid
  FROM pg_catalog.pg_locks l
  JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
 WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
   AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
   AND l.classid = $1::int4::oid AND l.objid = $2::int4::oid
 LIMIT 1`
