package maintenance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jeeves-avionics/dbworker/internal/subjects"
)

// streamConfigs returns the three streams as cfg wants them, with replicas
// replicas.
func streamConfigs(cfg Config, replicas int) []jetstream.StreamConfig {
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
			Replicas:          replicas,
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
			Replicas:    replicas,
			Duplicates:  cfg.DuplicateWindow,
		},
	}
}

// SetupStreams makes sure the three streams exist, and is safe to run from
// any number of workers and publishers at once, on one server or a cluster
// that is still electing its leaders. Fields of cfg left zero take their
// defaults.
//
// A missing stream is created with cfg's settings; Replicas 0 (auto) is
// min(3, the cluster's size). An existing stream is left as it is, whoever
// created it: a setting of cfg that differs from the live one (replicas when
// cfg names them, limits, subjects) is logged as a warning and exported in
// cfg.Metrics (dbworker_stream_config_drift), and applied only when
// cfg.UpdateStreams is set. Requests that time out, find JetStream not
// ready, or lose a race with another creator are retried with backoff until
// ctx ends (SetupTimeoutDefault when it has no deadline).
func SetupStreams(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	cfg.withDefaults()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, SetupTimeoutDefault)
		defer cancel()
	}
	replicas := cfg.Replicas
	if replicas == ReplicasAuto {
		replicas = autoReplicas(js.Conn())
	}
	for _, want := range streamConfigs(cfg, replicas) {
		if err := setupStream(ctx, js, cfg, want); err != nil {
			return err
		}
	}
	return nil
}

// setupStream creates one stream when it is missing, or reconciles it with
// want when it exists.
func setupStream(ctx context.Context, js jetstream.JetStream, cfg Config, want jetstream.StreamConfig) error {
	log := cfg.Logger.With().Str("stream", want.Name).Logger()
	warned := false
	return retry(ctx, log, "stream "+want.Name, func(actx context.Context) error {
		s, err := js.Stream(actx, want.Name)
		if err == nil {
			return reconcile(actx, js, cfg, log, want, s.CachedInfo().Config)
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("stream info: %w", err)
		}
		_, err = js.CreateStream(actx, want)
		switch {
		case err == nil:
			log.Info().Int("replicas", want.Replicas).Msg("stream created")
			cfg.Metrics.StreamDrift(want.Name, nil)
			return nil
		case errors.Is(err, jetstream.ErrStreamNameAlreadyInUse):
			return errAgain // another process created it meanwhile: read what it made
		case want.Replicas > 1 && cfg.Replicas == ReplicasAuto && isAPIError(err, jsErrReplicasNotSupported):
			// A server that advertises peers but runs JetStream alone.
			log.Warn().Int("replicas", want.Replicas).Msg("JS_REPLICAS=auto: JetStream is not clustered on this server; creating the stream with 1 replica")
			want.Replicas = 1
			return errAgain
		case want.Replicas > 1 && isAPIError(err, jsErrReplicasNotSupported):
			return fmt.Errorf("create stream with %d replicas: %w (JS_REPLICAS=%d needs a JetStream cluster)", want.Replicas, err, want.Replicas)
		case isAPIError(err, jsErrInsufficientResources) && !warned:
			warned = true
			log.Warn().Err(err).Int("replicas", want.Replicas).
				Msg("too few JetStream servers up for the stream's replicas; retrying (set JS_REPLICAS if the cluster is smaller than that)")
		}
		return fmt.Errorf("create stream: %w", err)
	})
}

// reconcile compares a live stream's configuration with want: differences
// are logged and exported, and applied when cfg.UpdateStreams is set.
func reconcile(ctx context.Context, js jetstream.JetStream, cfg Config, log zerolog.Logger, want, live jetstream.StreamConfig) error {
	fields := streamDiff(want, live, cfg.Replicas != ReplicasAuto)
	if len(fields) == 0 {
		cfg.Metrics.StreamDrift(want.Name, nil)
		return nil
	}
	ev := log.Warn().Strs("differs", fields).
		Int("live_replicas", live.Replicas).Dur("live_max_age", live.MaxAge).Int64("live_max_msgs_per_subject", live.MaxMsgsPerSubject).
		Dur("live_duplicate_window", live.Duplicates).Strs("live_subjects", live.Subjects).
		Int("replicas", want.Replicas).Dur("max_age", want.MaxAge).Int64("max_msgs_per_subject", want.MaxMsgsPerSubject).
		Dur("duplicate_window", want.Duplicates).Strs("subjects", want.Subjects)
	if !cfg.UpdateStreams {
		cfg.Metrics.StreamDrift(want.Name, fields)
		ev.Msg("stream's live configuration differs from this process's; left as it is (JS_UPDATE_STREAMS=true applies this one)")
		return nil
	}
	ev.Msg("stream's live configuration differs from this process's; updating it (JS_UPDATE_STREAMS=true)")
	upd := live
	upd.Subjects, upd.MaxAge, upd.MaxMsgsPerSubject, upd.Duplicates = want.Subjects, want.MaxAge, want.MaxMsgsPerSubject, want.Duplicates
	if cfg.Replicas != ReplicasAuto {
		upd.Replicas = want.Replicas
	}
	if _, err := js.UpdateStream(ctx, upd); err != nil {
		return fmt.Errorf("update stream: %w", err)
	}
	cfg.Metrics.StreamDrift(want.Name, nil)
	return nil
}

// streamDiff names the settings of want that live does not have: replicas
// (when this process names them), max_age, max_msgs_per_subject,
// duplicate_window, subjects, retention, storage.
func streamDiff(want, live jetstream.StreamConfig, replicas bool) []string {
	var out []string
	if replicas && max(want.Replicas, 1) != max(live.Replicas, 1) {
		out = append(out, "replicas")
	}
	if want.MaxAge != live.MaxAge {
		out = append(out, "max_age")
	}
	// The server stores "no limit" as -1.
	if max(want.MaxMsgsPerSubject, 0) != max(live.MaxMsgsPerSubject, 0) {
		out = append(out, "max_msgs_per_subject")
	}
	if want.Duplicates != live.Duplicates {
		out = append(out, "duplicate_window")
	}
	if !slices.Equal(slices.Sorted(slices.Values(want.Subjects)), slices.Sorted(slices.Values(live.Subjects))) {
		out = append(out, "subjects")
	}
	if want.Retention != live.Retention {
		out = append(out, "retention")
	}
	if want.Storage != live.Storage {
		out = append(out, "storage")
	}
	return out
}

// setupConsumer creates the durable jobs consumer when it is missing. Like
// the streams, an existing consumer is only changed when told to
// (JS_UPDATE_STREAMS): otherwise a worker started with other MAINT_*
// settings warns and exports the drift, and the pool keeps one consumer
// configuration instead of the last starter's. Retried as SetupStreams is.
func (s *Service) setupConsumer(ctx context.Context) (jetstream.Consumer, error) {
	want := jetstream.ConsumerConfig{
		Durable:       ConsumerJobs,
		Description:   "maintenance jobs, shared by every worker",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.cfg.AckWait,
		MaxDeliver:    s.cfg.MaxDeliver,
		BackOff:       s.cfg.BackOff,
		MaxAckPending: 1000,
	}
	stream := s.stream(StreamJobs)
	log := s.log.With().Str("stream", stream).Str("consumer", ConsumerJobs).Logger()
	var cons jetstream.Consumer
	err := retry(ctx, log, "consumer "+ConsumerJobs+" on "+stream, func(actx context.Context) error {
		var err error
		cons, err = s.js.Consumer(actx, stream, ConsumerJobs)
		switch {
		case err == nil:
			live := cons.CachedInfo().Config
			fields := consumerDiff(want, live)
			s.cfg.Metrics.ConsumerDrift(stream, ConsumerJobs, fields)
			if len(fields) == 0 {
				return nil
			}
			ev := log.Warn().Strs("differs", fields).
				Dur("live_ack_wait", live.AckWait).Int("live_max_deliver", live.MaxDeliver).Any("live_backoff", live.BackOff).
				Dur("ack_wait", want.AckWait).Int("max_deliver", want.MaxDeliver).Any("backoff", want.BackOff)
			if !s.cfg.UpdateStreams {
				ev.Msg("jobs consumer's live configuration differs from this worker's MAINT_* settings; left as it is (JS_UPDATE_STREAMS=true applies this one)")
				return nil
			}
			ev.Msg("jobs consumer's live configuration differs from this worker's MAINT_* settings; updating it (JS_UPDATE_STREAMS=true)")
			if cons, err = s.js.UpdateConsumer(actx, stream, want); err != nil {
				return fmt.Errorf("update consumer: %w", err)
			}
			s.cfg.Metrics.ConsumerDrift(stream, ConsumerJobs, nil)
			return nil
		case !errors.Is(err, jetstream.ErrConsumerNotFound):
			return fmt.Errorf("consumer info: %w", err)
		}
		cons, err = s.js.CreateConsumer(actx, stream, want)
		switch {
		case err == nil:
			log.Info().Msg("jobs consumer created")
			s.cfg.Metrics.ConsumerDrift(stream, ConsumerJobs, nil)
			return nil
		case errors.Is(err, jetstream.ErrConsumerExists), isAPIError(err, jsErrConsumerNameInUse):
			return errAgain // another worker created it meanwhile: read what it made
		}
		return fmt.Errorf("create consumer: %w", err)
	})
	return cons, err
}

// consumerDiff names the settings of want that the live consumer does not
// have. The server sets a consumer's ack_wait to its first backoff step
// when it has a backoff, so ack_wait is compared only without one.
func consumerDiff(want, live jetstream.ConsumerConfig) []string {
	var out []string
	if len(want.BackOff) == 0 && want.AckWait != live.AckWait {
		out = append(out, "ack_wait")
	}
	if want.MaxDeliver != live.MaxDeliver {
		out = append(out, "max_deliver")
	}
	if !slices.Equal(want.BackOff, live.BackOff) {
		out = append(out, "backoff")
	}
	if want.MaxAckPending != live.MaxAckPending {
		out = append(out, "max_ack_pending")
	}
	if want.AckPolicy != live.AckPolicy {
		out = append(out, "ack_policy")
	}
	return out
}

// setupStreams sets up the streams and the durable jobs consumer, and
// returns the consumer. ctx bounds it (SetupTimeoutDefault when it has no
// deadline).
func (s *Service) setupStreams(ctx context.Context) (jetstream.Consumer, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, SetupTimeoutDefault)
		defer cancel()
	}
	if err := SetupStreams(ctx, s.js, s.cfg); err != nil {
		return nil, err
	}
	return s.setupConsumer(ctx)
}

// SetupTimeoutDefault bounds SetupStreams and a Service's Start when their
// ctx has no deadline.
const SetupTimeoutDefault = time.Minute
