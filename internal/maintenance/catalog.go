package maintenance

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jeeves-avionics/dbworker/internal/pgexec"
)

// SQLConnectionsDefault is the default of Config.SQLConnections.
const SQLConnectionsDefault = 1

// DB is what maintenance needs of the worker's pool: queries before Start,
// and the connection settings of the connections it opens for itself: its
// SQL pool's, and a VACUUM run's, which needs a session of its own (an
// advisory lock, lock_timeout) that a transaction pooler cannot give.
// *pgexec.Client is one.
type DB interface {
	pgexec.Querier
	ConnConfig() *pgx.ConnConfig
	SessionConnConfig() (*pgx.ConnConfig, error)
}

// openCatalog opens the maintenance SQL pool: the connections on which
// db.stats, the table lookups, a VACUUM's progress and the advisory lock's
// holder are read. It is not the shared pool, so a pool full of slow
// db.execute queries does not hold them up (red-team finding 9), and it is
// small: Config.SQLConnections connections, opened when first needed.
func (s *Service) openCatalog() error {
	pc, err := pgxpool.ParseConfig("")
	if err != nil {
		return fmt.Errorf("maintenance SQL pool: %w", err)
	}
	pc.ConnConfig = s.pg.ConnConfig()
	pc.ConnConfig.RuntimeParams["application_name"] = "dbworker/" + s.cfg.WorkerID + "/maint"
	pc.MaxConns = int32(s.cfg.SQLConnections)
	pc.MinConns = 0
	p, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return fmt.Errorf("maintenance SQL pool: %w", err)
	}
	s.mu.Lock()
	s.catalogPool = p
	s.mu.Unlock()
	return nil
}

// catalog is the pool maintenance SQL runs on: its own once Start has run,
// the shared pool before.
func (s *Service) catalog() pgexec.Querier {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.catalogPool != nil {
		return s.catalogPool
	}
	return s.pg
}

// closeCatalog closes the maintenance SQL pool.
func (s *Service) closeCatalog() {
	s.mu.Lock()
	p := s.catalogPool
	s.catalogPool = nil
	s.mu.Unlock()
	if p != nil {
		p.Close()
	}
}
