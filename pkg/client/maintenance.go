package client

import (
	"context"

	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// Maintenance is the handle of db.stats and db.vacuum. Get it from
// Client.Maintenance.
type Maintenance struct{ c *Client }

// Stats returns table statistics: of req's table, of its schema's tables,
// or of every table of the workers' schemas. Unless req.Publish is false
// they are stored in DB_STATS too.
func (m Maintenance) Stats(ctx context.Context, req messages.StatsRequest) (*messages.StatsResult, error) {
	var res messages.StatsResult
	if err := m.c.do(ctx, subjects.DBStats, req, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Vacuum runs VACUUM now and returns its stored result, whose Status says
// how it went. A target being vacuumed elsewhere is an *Error with code
// LOCKED.
func (m Maintenance) Vacuum(ctx context.Context, req messages.VacuumRequest) (*messages.VacuumResult, error) {
	req.Async = false
	var res messages.VacuumResult
	if err := m.c.do(ctx, subjects.DBVacuum, req, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// VacuumAsync queues a VACUUM job on DB_JOBS and returns where it is; its
// result lands in DB_VACUUM.
func (m Maintenance) VacuumAsync(ctx context.Context, req messages.VacuumRequest) (*messages.JobAccepted, error) {
	req.Async = true
	var res messages.JobAccepted
	if err := m.c.do(ctx, subjects.DBVacuum, req, &res); err != nil {
		return nil, err
	}
	return &res, nil
}
