package config

import (
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jeeves-avionics/dbworker/internal/maintenance"
	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pooler"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/txn"
	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/state/redis"
	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/internal/vector"
	"github.com/jeeves-avionics/dbworker/internal/worker"
)

// Defaults of the variables that no other package has a default for. Every
// other default is the constant of the package the variable configures
// (worker.MaxConcurrentDefault, maintenance.LockTTLDefault, ...): the
// environment takes its defaults from those constants, not from struct tags,
// so there is one source for each.
const (
	PostgresHostDefault     = "127.0.0.1"
	PostgresPortDefault     = 5432
	PostgresDatabaseDefault = "postgres"
	PostgresUserDefault     = "postgres"
	PoolSizeDefault         = 20
	// MaxOverflowDefault makes the pool's default maximum pgexec's.
	MaxOverflowDefault     = pgexec.MaxConnsDefault - PoolSizeDefault
	CreateExtensionDefault = true
	MigrateDefault         = true
	LogLevelDefault        = "info"
	LogFormatDefault       = "json"
	RedisURLDefault        = "redis://127.0.0.1:6379/0"
	ExecuteModeDefault     = pgexec.ModeReadWrite
	AllowAdHocSQLDefault   = true
	MaxRowsDefault         = pgexec.MaxRowsDefault
	SchedulesFileDefault   = "schedules.yaml"
)

// clientDefaults returns the defaults of Client.
func clientDefaults() Client {
	return Client{
		NATSURL:         nats.DefaultURL,
		LogLevel:        LogLevelDefault,
		LogFormat:       LogFormatDefault,
		NATSInboxPrefix: subjects.InboxPrefixDefault,
	}
}

// streamsDefaults returns the defaults of Streams.
func streamsDefaults() Streams {
	return Streams{
		JSReplicas:           Replicas(maintenance.ReplicasDefault),
		ResultsMaxAge:        Seconds(maintenance.ResultsMaxAgeDefault),
		ResultsMaxPerSubject: maintenance.ResultsMaxPerSubjectDefault,
		JobsDuplicateWindow:  Seconds(maintenance.DuplicateWindowDefault),
	}
}

// Defaults returns the worker's configuration with every variable unset.
func Defaults() Config {
	return Config{
		Client:  clientDefaults(),
		Streams: streamsDefaults(),

		PostgresHost:     PostgresHostDefault,
		PostgresPort:     PostgresPortDefault,
		PostgresDatabase: PostgresDatabaseDefault,
		PostgresUser:     PostgresUserDefault,
		PoolSize:         PoolSizeDefault,
		MaxOverflow:      MaxOverflowDefault,
		PoolTimeout:      Seconds(pgexec.AcquireTimeoutDefault),
		PoolRecycle:      Seconds(pgexec.MaxConnLifetimeDefault),
		MinConns:         pgexec.MinConnsDefault,
		MaxConnIdleTime:  Seconds(pgexec.MaxConnIdleTimeDefault),
		Pooler:           string(pooler.None),
		Migrate:          MigrateDefault,
		CreateExtension:  CreateExtensionDefault,

		ServiceName:          worker.ServiceNameDefault,
		QueueGroup:           worker.QueueGroupDefault,
		MaxConcurrent:        worker.MaxConcurrentDefault,
		StateConcurrent:      worker.StateConcurrentDefault,
		MaintConcurrent:      worker.MaintConcurrentDefault,
		HealthConcurrent:     worker.HealthConcurrentDefault,
		MaxQueued:            worker.MaxQueuedDefault,
		MaxQueuedBytes:       worker.MaxQueuedBytesDefault,
		MaxRequestBytes:      worker.MaxRequestBytesDefault,
		TxIdleTimeout:        Seconds(txn.IdleTimeoutDefault),
		TxLifetime:           Seconds(txn.LifetimeDefault),
		TxMaxLifetime:        Seconds(txn.MaxLifetimeDefault),
		ShutdownTimeout:      Seconds(worker.DrainTimeoutDefault),
		TrustedReplyPrefixes: append([]string(nil), worker.TrustedReplyPrefixesDefault...),
		StreamCreditTimeout:  Seconds(worker.StreamCreditTimeoutDefault),

		DeploymentMode: state.ModeSingleNode,
		RedisURL:       RedisURLDefault,
		StateKeyPrefix: redis.KeyPrefixDefault,
		LockTTL:        Seconds(state.LockTTLDefault),
		LockMaxWait:    Seconds(state.MaxWaitDefault),
		LockMaxWaiters: state.MaxWaitersDefault,
		RedisPipelines: redis.PipelinesDefault,
		EmbeddingTTL:   Seconds(state.EmbeddingTTLDefault),

		VectorDimension: vector.DimensionDefault,
		VectorSchema:    vector.SchemaDefault,

		MaintSchemas:        []string{maintenance.SchemaDefault},
		MaintConcurrency:    maintenance.ConcurrencyDefault,
		MaintMaxConnections: maintenance.MaxConnectionsDefault,
		MaintLockTTL:        Seconds(maintenance.LockTTLDefault),
		MaintAckWait:        Seconds(maintenance.AckWaitDefault),
		MaintMaxDeliver:     maintenance.MaxDeliverDefault,
		MaintLockTimeout:    Seconds(maintenance.LockTimeoutDefault),
		MaintVacuumTimeout:  Seconds(maintenance.VacuumTimeoutDefault),

		ExecuteMode: ExecuteModeDefault,
		// The worker's request deadlines and the executor's statement
		// timeouts are one setting.
		StatementTimeout:    Seconds(worker.DefaultTimeoutDefault),
		MaxStatementTimeout: Seconds(worker.MaxTimeoutDefault),
		AllowAdHocSQL:       AllowAdHocSQLDefault,
		MaxRows:             MaxRowsDefault,
	}
}

// PublisherDefaults returns the publisher's configuration with every
// variable unset.
func PublisherDefaults() Publisher {
	return Publisher{Client: clientDefaults(), Streams: streamsDefaults(), SchedulesFile: SchedulesFileDefault}
}

// usage writes every variable of spec (a *Config or *Publisher holding its
// defaults) with its default and description.
func usage(w io.Writer, spec any) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tDEFAULT\tDESCRIPTION")
	for _, v := range describe(reflect.ValueOf(spec).Elem()) {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", v.name, v.def, v.desc)
	}
	return tw.Flush()
}

// variable is one variable of a configuration: its name, its default as
// text, and its description.
type variable struct{ name, def, desc string }

// describe lists the variables of a configuration struct holding its
// defaults, in field order, embedded structs first where they are.
func describe(v reflect.Value) []variable {
	var out []variable
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			out = append(out, describe(v.Field(i))...)
			continue
		}
		if name := f.Tag.Get("envconfig"); name != "" {
			out = append(out, variable{name: name, def: formatValue(v.Field(i)), desc: f.Tag.Get("desc")})
		}
	}
	return out
}

var (
	secondsType  = reflect.TypeOf(Seconds(0))
	replicasType = reflect.TypeOf(Replicas(0))
)

// formatValue writes a default as a variable would hold it: durations as
// Go durations without zero units (1h, not 1h0m0s), lists comma separated.
func formatValue(v reflect.Value) string {
	switch v.Type() {
	case secondsType:
		return formatDuration(time.Duration(v.Int()))
	case replicasType:
		return Replicas(v.Int()).String()
	}
	switch v.Kind() {
	case reflect.String:
		return v.String()
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Int, reflect.Int64, reflect.Int32:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Slice:
		items := make([]string, v.Len())
		for i := range items {
			items[i] = formatValue(v.Index(i))
		}
		return strings.Join(items, ",")
	}
	return fmt.Sprint(v.Interface())
}

func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
