package maintenance

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jeeves-avionics/dbworker/internal/subjects"
)

// StreamConfigs returns the three streams as this configuration wants them.
func (s *Service) StreamConfigs() []jetstream.StreamConfig {
	p := s.cfg.Subjects.Prefix()
	results := func(name, subject, desc string) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:              name,
			Description:       desc,
			Subjects:          []string{p + subject},
			Retention:         jetstream.LimitsPolicy,
			Storage:           jetstream.FileStorage,
			MaxAge:            s.cfg.ResultsMaxAge,
			MaxMsgsPerSubject: s.cfg.ResultsMaxPerSubject,
			Replicas:          s.cfg.Replicas,
			Duplicates:        s.cfg.DuplicateWindow,
			Discard:           jetstream.DiscardOld,
		}
	}
	return []jetstream.StreamConfig{
		results(StreamStats, "db.stats.results.>", "db.stats results, one message per table and run"),
		results(StreamVacuum, "db.vacuum.results.>", "db.vacuum results, one message per run"),
		{
			Name:        StreamJobs,
			Description: "maintenance jobs, each taken by one worker",
			Subjects:    []string{s.cfg.Subjects.Of(subjects.DBVacuumJobs), s.cfg.Subjects.Of(subjects.DBStatsJobs)},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    s.cfg.Replicas,
			Duplicates:  s.cfg.DuplicateWindow,
		},
	}
}

// setupStreams creates or updates the streams and the durable jobs consumer,
// idempotently, and returns the consumer.
func (s *Service) setupStreams(ctx context.Context) (jetstream.Consumer, error) {
	for _, sc := range s.StreamConfigs() {
		if _, err := s.js.CreateOrUpdateStream(ctx, sc); err != nil {
			return nil, fmt.Errorf("create or update stream %s: %w", sc.Name, err)
		}
	}
	cc := jetstream.ConsumerConfig{
		Durable:       ConsumerJobs,
		Description:   "maintenance jobs, shared by every worker",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.cfg.AckWait,
		MaxDeliver:    s.cfg.MaxDeliver,
		BackOff:       s.cfg.BackOff,
		MaxAckPending: 1000,
	}
	cons, err := s.js.CreateOrUpdateConsumer(ctx, StreamJobs, cc)
	if err != nil {
		return nil, fmt.Errorf("create or update consumer %s on %s: %w", ConsumerJobs, StreamJobs, err)
	}
	return cons, nil
}
