package maintenance

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jeeves-avionics/dbworker/internal/subjects"
)

// StreamConfigs returns the three streams as cfg wants them.
func StreamConfigs(cfg Config) []jetstream.StreamConfig {
	cfg.withDefaults()
	p := cfg.Subjects.Prefix()
	results := func(name, subject, desc string) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:              StreamName(cfg.Subjects, name),
			Description:       desc,
			Subjects:          []string{p + subject},
			Retention:         jetstream.LimitsPolicy,
			Storage:           jetstream.FileStorage,
			MaxAge:            cfg.ResultsMaxAge,
			MaxMsgsPerSubject: cfg.ResultsMaxPerSubject,
			Replicas:          cfg.Replicas,
			Duplicates:        cfg.DuplicateWindow,
			Discard:           jetstream.DiscardOld,
		}
	}
	return []jetstream.StreamConfig{
		results(StreamStats, "db.stats.results.>", "db.stats results, one message per table and run"),
		results(StreamVacuum, "db.vacuum.results.>", "db.vacuum results, one message per run"),
		{
			Name:        StreamName(cfg.Subjects, StreamJobs),
			Description: "maintenance jobs, each taken by one worker",
			Subjects:    []string{cfg.Subjects.Of(subjects.DBVacuumJobs), cfg.Subjects.Of(subjects.DBStatsJobs)},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
			Duplicates:  cfg.DuplicateWindow,
		},
	}
}

// EnsureStreams creates or updates the three streams, idempotently. Workers
// and publishers both call it, so either may start first.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	for _, sc := range StreamConfigs(cfg) {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("create or update stream %s: %w", sc.Name, err)
		}
	}
	return nil
}

// CreateMissingStreams creates the streams that do not exist yet and leaves
// existing ones as the workers configured them.
func CreateMissingStreams(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	for _, sc := range StreamConfigs(cfg) {
		_, err := js.Stream(ctx, sc.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			_, err = js.CreateStream(ctx, sc)
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				err = nil // created meanwhile by someone else
			}
		}
		if err != nil {
			return fmt.Errorf("stream %s: %w", sc.Name, err)
		}
	}
	return nil
}

// setupStreams creates or updates the streams and the durable jobs consumer,
// idempotently, and returns the consumer.
func (s *Service) setupStreams(ctx context.Context) (jetstream.Consumer, error) {
	if err := EnsureStreams(ctx, s.js, s.cfg); err != nil {
		return nil, err
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
	cons, err := s.js.CreateOrUpdateConsumer(ctx, s.stream(StreamJobs), cc)
	if err != nil {
		return nil, fmt.Errorf("create or update consumer %s on %s: %w", ConsumerJobs, s.stream(StreamJobs), err)
	}
	return cons, nil
}
