package maintenance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	pgtable "github.com/jeeves-avionics/dbworker/internal/pgexec/table"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// target is a table found in the catalog, or the whole database (oid 0).
type target struct {
	oid           uint32
	schema, table string
}

func (t target) database() bool { return t.oid == 0 }

// lockKey is the maintenance lock of the target, in the state backend's
// internal space: no state.lock request can reach it.
func (t target) lockKey() state.LockKey {
	if t.database() {
		return VacuumLockKey("", "")
	}
	return VacuumLockKey(t.schema, t.table)
}

// VacuumLockKey is the maintenance lock of a table (of the database when
// table is empty): vacuum:<schema>.<table> or vacuum:_database, an internal
// lock of the state backend.
func VacuumLockKey(schema, table string) state.LockKey {
	if table == "" {
		return state.InternalLock(lockKeyPrefix + subjects.DatabaseToken)
	}
	return state.InternalLock(lockKeyPrefix + schema + "." + table)
}

// resolve finds the table a request names: table "name" or "schema.name", or
// schema and table given apart (then the table name is taken whole).
func (s *Service) resolve(ctx context.Context, schema, table string) (target, error) {
	if table == "" {
		if schema != "" {
			return target{}, messages.BadRequest("schema", "schema without table: name the table too")
		}
		return target{}, nil
	}
	if schema == "" {
		var err error
		if schema, table, err = pgtable.Split(table); err != nil {
			return target{}, err
		}
	}
	var t target
	err := s.catalog().QueryRow(ctx, tableOIDQuery, schema, table).Scan(&t.oid, &t.schema, &t.table)
	if errors.Is(err, pgx.ErrNoRows) {
		ref := table
		if schema != "" {
			ref = schema + "." + table
		}
		return target{}, messages.Errorf(messages.CodeNotFound, "table %q does not exist", ref)
	}
	return t, err
}

// Stats collects the figures of one table, of a schema's tables or of the
// configured schemas' tables, and stores each table's in DB_STATS unless
// Publish is false.
func (s *Service) Stats(ctx context.Context, req *messages.StatsRequest) (*messages.StatsResult, error) {
	start := time.Now()
	res := &messages.StatsResult{RunID: nuid.Next(), JobID: req.JobID, WorkerID: s.cfg.WorkerID, At: time.Now().UTC().Truncate(time.Microsecond), Tables: []messages.TableStats{}}
	var rows pgx.Rows
	var err error
	switch {
	case req.Table != "":
		var t target
		if t, err = s.resolve(ctx, req.Schema, req.Table); err != nil {
			return nil, err
		}
		rows, err = s.catalog().Query(ctx, statsByOIDQuery, t.oid)
	case req.Schema != "":
		var exists bool
		if err = s.catalog().QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = $1)", req.Schema).Scan(&exists); err != nil {
			return nil, err
		}
		if !exists {
			return nil, messages.Errorf(messages.CodeNotFound, "schema %q does not exist", req.Schema)
		}
		rows, err = s.catalog().Query(ctx, statsBySchemasQuery, []string{req.Schema})
	default:
		rows, err = s.catalog().Query(ctx, statsBySchemasQuery, s.cfg.Schemas)
	}
	if err != nil {
		return nil, err
	}
	res.Tables, err = pgx.CollectRows(rows, scanTableStats)
	if err != nil {
		return nil, err
	}
	if err := s.catalog().QueryRow(ctx, databaseQuery).Scan(&res.Database.Name, &res.Database.SizeBytes, &res.Database.Size); err != nil {
		return nil, err
	}
	if req.Publish == nil || *req.Publish {
		if err := s.storeStats(ctx, res); err != nil {
			s.cfg.Metrics.MaintenanceRun("stats", sourceOf(req.JobID), messages.StatusFailed)
			s.cfg.Metrics.MaintenanceDuration("stats", sourceOf(req.JobID), messages.StatusFailed, time.Since(start))
			return nil, err
		}
	}
	s.cfg.Metrics.MaintenanceRun("stats", sourceOf(req.JobID), messages.StatusOK)
	s.cfg.Metrics.MaintenanceDuration("stats", sourceOf(req.JobID), messages.StatusOK, time.Since(start))
	return res, nil
}

func scanTableStats(row pgx.CollectableRow) (messages.TableStats, error) {
	var t messages.TableStats
	var xidAge int32
	err := row.Scan(&t.Schema, &t.Table, &t.TotalBytes, &t.TableBytes, &t.IndexesBytes, &t.ToastBytes, &t.TotalSize,
		&t.RowCount, &t.DeadRows, &t.ModsSinceAnalyze, &t.InsertsSinceVacuum,
		&t.LastVacuum, &t.LastAutovacuum, &t.LastAnalyze, &t.LastAutoanalyze,
		&t.VacuumCount, &t.AutovacuumCount, &t.AnalyzeCount, &t.AutoanalyzeCount,
		&xidAge, &t.SeqScan, &t.IdxScan)
	t.XIDAge = int64(xidAge)
	if live := t.RowCount + t.DeadRows; live > 0 {
		t.DeadRatio = float64(t.DeadRows) / float64(live)
	}
	return t, err
}

// storeStats writes one record per table to DB_STATS and waits for every ack.
func (s *Service) storeStats(ctx context.Context, res *messages.StatsResult) error {
	futures := make([]jetstream.PubAckFuture, 0, len(res.Tables))
	for _, t := range res.Tables {
		body, err := json.Marshal(messages.StatsRecord{RunID: res.RunID, JobID: res.JobID, WorkerID: res.WorkerID, At: res.At, TableStats: t})
		if err != nil {
			return err
		}
		f, err := s.js.PublishAsync(s.cfg.Subjects.StatsResults(t.Schema, t.Table), body, jetstream.WithMsgID(res.RunID+":"+t.Schema+"."+t.Table))
		if err != nil {
			return fmt.Errorf("store stats of %s.%s: %w", t.Schema, t.Table, err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("store stats: %w", err)
		case <-ctx.Done():
			return fmt.Errorf("store stats: %w", ctx.Err())
		}
	}
	return nil
}
