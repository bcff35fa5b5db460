package config

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/natsserver"
	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
)

func TestMain(m *testing.M) { testenv.VerifyNoLeaks(m) }

// cleanEnv unsets every variable of Config for the test, so the caller's
// environment (the Makefile exports POSTGRES_URL) does not leak in.
func cleanEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		for _, p := range []string{"POSTGRES_", "NATS_", "DB_", "LOG_", "WORKER_", "SUBJECT_", "SERVICE_", "QUEUE_", "MAX_REQUEST", "SHUTDOWN_", "DEPLOYMENT_", "STATE_", "REDIS_", "CACHE_", "MAINT_", "JS_", "RESULTS_", "JOBS_", "PPROF", "HTTP_", "PGVECTOR_", "VECTOR_"} {
			if strings.HasPrefix(k, p) {
				t.Setenv(k, "")
				os.Unsetenv(k)
			}
		}
	}
}

func TestDefaults(t *testing.T) {
	cleanEnv(t)
	c, err := Load()
	require.NoError(t, err)
	require.Equal(t, 30, c.PoolMax())
	require.Equal(t, 30*time.Second, c.PoolTimeout.D())
	require.Equal(t, time.Hour, c.PoolRecycle.D())
	require.Equal(t, pgexec.ModeReadWrite, c.ExecuteMode)
	require.Equal(t, 2, c.MaintMaxConnections)
	require.Equal(t, []int{64, 64, 4, 2, 256, 32 << 20}, []int{c.MaxConcurrent, c.StateConcurrent, c.MaintConcurrent, c.HealthConcurrent, c.MaxQueued, c.MaxQueuedBytes},
		"the lanes' defaults, as docs/operations.md gives them")
	require.NotEmpty(t, c.WorkerID)
	require.Equal(t, "postgres://postgres@127.0.0.1:5432/postgres", c.PostgresDSN())
}

func TestPartsAndSecrets(t *testing.T) {
	cleanEnv(t)
	t.Setenv("POSTGRES_HOST", "db")
	t.Setenv("POSTGRES_USER", "app")
	t.Setenv("POSTGRES_PASSWORD", "p@ss/w:rd?")
	t.Setenv("POSTGRES_POOL_SIZE", "5")
	t.Setenv("POSTGRES_MAX_OVERFLOW", "0")
	t.Setenv("POSTGRES_POOL_TIMEOUT", "2.5")
	c, err := Load()
	require.NoError(t, err)
	require.Equal(t, "postgres://app:p%40ss%2Fw%3Ard%3F@db:5432/postgres", c.PostgresDSN())
	require.Equal(t, 5, c.PoolMax())
	require.Equal(t, 2500*time.Millisecond, c.PoolTimeout.D())
	require.NotContains(t, c.RedactedPostgresDSN(), "p@ss")
	require.NotContains(t, RedactURL("postgres://u@h/db?password=secret"), "secret")
	require.NotContains(t, RedactURL("nats://u:secret@h:4222"), "secret")
}

func TestInvalidValuesNameTheVariable(t *testing.T) {
	cases := map[string][2]string{
		"POSTGRES_POOL_SIZE":            {"0", "POSTGRES_POOL_SIZE"},
		"POSTGRES_PORT":                 {"abc", "POSTGRES_PORT"},
		"DB_EXECUTE_MODE":               {"rw", "DB_EXECUTE_MODE"},
		"LOG_LEVEL":                     {"loud", "LOG_LEVEL"},
		"LOG_FORMAT":                    {"xml", "LOG_FORMAT"},
		"POSTGRES_POOL_TIMEOUT":         {"soon", "POSTGRES_POOL_TIMEOUT"},
		"SUBJECT_PREFIX":                {"a b", "SUBJECT_PREFIX"},
		"POSTGRES_URL":                  {"mysql://x", "POSTGRES_URL"},
		"DB_STATEMENT_TIMEOUT":          {"10m", "DB_STATEMENT_TIMEOUT"},
		"WORKER_MAX_CONCURRENT":         {"-1", "WORKER_MAX_CONCURRENT"},
		"WORKER_STATE_CONCURRENT":       {"0", "WORKER_STATE_CONCURRENT"},
		"WORKER_HEALTH_CONCURRENT":      {"0", "WORKER_HEALTH_CONCURRENT"},
		"WORKER_MAX_QUEUED":             {"0", "WORKER_MAX_QUEUED"},
		"DB_MAX_STATEMENT_TIMEOUT":      {"0", "DB_MAX_STATEMENT_TIMEOUT"},
		"DEPLOYMENT_MODE":               {"cloud", "DEPLOYMENT_MODE"},
		"STATE_BACKEND":                 {"etcd", "STATE_BACKEND"},
		"STATE_LOCK_TTL":                {"0", "STATE_LOCK_TTL"},
		"MAINT_ACK_WAIT":                {"-1s", "MAINT_ACK_WAIT"},
		"MAINT_MAX_CONNECTIONS":         {"0", "MAINT_MAX_CONNECTIONS"},
		"MAINT_BACKOFF":                 {"1s,2s,3s,4s,5s,6s,7s,8s,9s,10s", "MAINT_MAX_DELIVER"},
		"JS_REPLICAS":                   {"7", "JS_REPLICAS"},
		"DB_ALLOW_ADHOC":                {"false", "DB_NAMED_QUERIES"},
		"NATS_INBOX_PREFIX":             {"_INBOX.>", "NATS_INBOX_PREFIX"},
		"WORKER_TRUSTED_REPLY_PREFIXES": {"_INBOX.,db.vacuum.", "WORKER_TRUSTED_REPLY_PREFIXES"},
		"POSTGRES_MAX_MESSAGE_BYTES":    {"1000", "POSTGRES_MAX_MESSAGE_BYTES"},
		"NATS_URL":                      {"htp://x", "NATS_URL: scheme must be nats://, tls://, ws:// or wss://"},
		"NATS_EMBEDDED":                 {"yes", `NATS_EMBEDDED: must be true or false, got "yes"`},
		"SERVICE_NAME":                  {"bad name", `SERVICE_NAME: "bad name": a micro service name is letters, digits, '-' and '_' only`},
		"QUEUE_GROUP":                   {"bad group", `QUEUE_GROUP: "bad group"`},
	}
	for key, v := range cases {
		t.Run(key, func(t *testing.T) {
			cleanEnv(t)
			t.Setenv(key, v[0])
			_, err := Load()
			require.Error(t, err)
			require.Contains(t, err.Error(), v[1])
			require.NotContains(t, err.Error(), "\n", "one clear line")
		})
	}
}

func TestURLErrorDoesNotLeakPassword(t *testing.T) {
	cleanEnv(t)
	t.Setenv("POSTGRES_URL", "postgres://u:hunter2@host:badport/db")
	_, err := Load()
	require.Error(t, err)
	require.NotContains(t, err.Error(), "hunter2")
}

func TestUsageListsEveryVariable(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, Usage(&buf))
	for _, v := range []string{"POSTGRES_URL", "POSTGRES_POOL_SIZE", "POSTGRES_MAX_OVERFLOW", "POSTGRES_POOL_TIMEOUT",
		"POSTGRES_POOL_RECYCLE", "NATS_URL", "SUBJECT_PREFIX", "WORKER_ID", "WORKER_MAX_CONCURRENT", "LOG_LEVEL",
		"LOG_FORMAT", "DB_EXECUTE_MODE", "DB_MAX_ROWS", "DB_MAX_STATEMENT_TIMEOUT"} {
		require.Contains(t, buf.String(), v)
	}
	require.True(t, strings.Contains(buf.String(), "read_write"))
}

func TestStateBackendChoice(t *testing.T) {
	cleanEnv(t)
	c, err := Load()
	require.NoError(t, err)
	require.Equal(t, "memory", c.StateBackendName())

	t.Setenv("DEPLOYMENT_MODE", "distributed")
	c, err = Load()
	require.NoError(t, err)
	require.Equal(t, "redis", c.StateBackendName())

	t.Setenv("STATE_BACKEND", "memory")
	_, err = Load()
	require.ErrorContains(t, err, "STATE_BACKEND")
	require.ErrorContains(t, err, "distributed")

	t.Setenv("DEPLOYMENT_MODE", "single_node")
	t.Setenv("STATE_BACKEND", "redis")
	c, err = Load()
	require.NoError(t, err)
	require.Equal(t, "redis", c.StateBackendName())
}

// TestInboxPrefixes: by default a plain local nats-server works as before
// (_INBOX), the worker answers any caller's inbox, and a configured prefix
// is what the connection uses.
func TestInboxPrefixes(t *testing.T) {
	cleanEnv(t)
	c, err := Load()
	require.NoError(t, err)
	require.Equal(t, "_INBOX", c.NATSInboxPrefix)
	require.Equal(t, []string{"_INBOX.", "_INBOX_"}, c.TrustedReplyPrefixes)

	for _, bad := range []string{"$JS.", "state.", "_INBOX.*", "d"} {
		t.Setenv("WORKER_TRUSTED_REPLY_PREFIXES", bad)
		_, err = Load()
		require.ErrorContains(t, err, "WORKER_TRUSTED_REPLY_PREFIXES", bad)
	}
	t.Setenv("WORKER_TRUSTED_REPLY_PREFIXES", "_INBOX_orders.,_INBOX_billing.")
	t.Setenv("NATS_INBOX_PREFIX", "_INBOX_worker")
	c, err = Load()
	require.NoError(t, err)
	require.Equal(t, []string{"_INBOX_orders.", "_INBOX_billing."}, c.TrustedReplyPrefixes)

	ns, err := natsserver.Start(natsserver.Options{Port: -1, StoreDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, err := c.ConnectNATS("test", ns.ClientURL(), zerolog.Nop())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	require.True(t, strings.HasPrefix(nc.NewRespInbox(), "_INBOX_worker."), nc.NewRespInbox())
	require.True(t, strings.HasPrefix(nc.NewInbox(), "_INBOX_worker."))

	p, err := LoadPublisher()
	require.NoError(t, err)
	require.Equal(t, "_INBOX_worker", p.NATSInboxPrefix, "the publisher reads it too")
}

// TestWrongTypeNamesWhatIsAccepted: a value of the wrong type is one line
// with the variable and what it takes, not strconv's text.
func TestWrongTypeNamesWhatIsAccepted(t *testing.T) {
	for key, c := range map[string][2]string{
		"POSTGRES_POOL_SIZE":    {"ten", `POSTGRES_POOL_SIZE: must be a whole number, such as 10, got "ten"`},
		"NATS_EMBEDDED":         {"yes", `NATS_EMBEDDED: must be true or false, got "yes"`},
		"POSTGRES_POOL_TIMEOUT": {"soon", `POSTGRES_POOL_TIMEOUT: must be seconds (30) or a duration (30s, 5m), got "soon"`},
		"NATS_URL":              {"nats://ok:4222,htp://x", `NATS_URL: scheme must be nats://, tls://, ws:// or wss://, got "htp://"`},
	} {
		t.Run(key, func(t *testing.T) {
			cleanEnv(t)
			t.Setenv(key, c[0])
			_, err := Load()
			require.EqualError(t, err, c[1])
			require.NotContains(t, err.Error(), "strconv")
			if key == "NATS_URL" {
				_, err = LoadPublisher()
				require.EqualError(t, err, c[1], "the publisher checks it too")
			}
		})
	}
	for _, good := range []string{"nats://a:4222,nats://b:4222", "tls://a:4222", "127.0.0.1:4222", "ws://a:8080"} {
		cleanEnv(t)
		t.Setenv("NATS_URL", good)
		_, err := Load()
		require.NoError(t, err, good)
	}
}

// TestMisspeltVariables: a variable close to one of ours is reported with
// the right name; unrelated variables are left alone.
func TestMisspeltVariables(t *testing.T) {
	env := []string{"DEPLOYMNT_MODE=distributed", "nats_url=nats://x", "POSTGRES_POOL_SIZ=5", "REDIS_URI=redis://x",
		"DEPLOYMENT_MODE=single_node", "PATH=/bin", "HOME=/root", "POSTGRES_DB=app", "HOSTNAME=h", "NATS_ORDERS_PASSWORD=x", "SCHEDULES_FILES=x"}
	got := Misspelt(&Config{}, env)
	require.Equal(t, []Suggestion{
		{"DEPLOYMNT_MODE", "DEPLOYMENT_MODE"},
		{"POSTGRES_POOL_SIZ", "POSTGRES_POOL_SIZE"},
		{"REDIS_URI", "REDIS_URL"},
		{"nats_url", "NATS_URL"},
	}, got)
	require.Equal(t, "DEPLOYMNT_MODE is not a dbworker variable and is ignored; did you mean DEPLOYMENT_MODE?", got[0].String())
	require.Contains(t, Misspelt(&Publisher{}, env), Suggestion{"SCHEDULES_FILES", "SCHEDULES_FILE"})
}

// TestJetStreamConnection: NATS_JS_USER gives the worker a second connection
// with its own user and inbox prefix; unset, there is one connection.
func TestJetStreamConnection(t *testing.T) {
	cleanEnv(t)
	t.Setenv("NATS_USER", "worker")
	t.Setenv("NATS_PASSWORD", "w")
	t.Setenv("NATS_INBOX_PREFIX", "_INBOX_worker")
	c, err := Load()
	require.NoError(t, err)
	_, ok := c.JetStreamClient()
	require.False(t, ok)

	t.Setenv("NATS_JS_USER", "worker_js")
	t.Setenv("NATS_JS_PASSWORD", "j")
	c, err = Load()
	require.NoError(t, err)
	js, ok := c.JetStreamClient()
	require.True(t, ok)
	require.Equal(t, []string{"worker_js", "j", "_INBOX_worker"}, []string{js.NATSUser, js.NATSPassword, js.NATSInboxPrefix})
	t.Setenv("NATS_JS_INBOX_PREFIX", "_INBOX_worker_js")
	c, err = Load()
	require.NoError(t, err)
	js, _ = c.JetStreamClient()
	require.Equal(t, "_INBOX_worker_js", js.NATSInboxPrefix)
	require.Equal(t, "w", c.NATSPassword, "the serving connection keeps its own user")
	var log bytes.Buffer
	l := zerolog.New(&log)
	l.Info().Object("config", c).Send()
	require.NotContains(t, log.String(), `"j"`)

	t.Setenv("NATS_JS_USER", "")
	t.Setenv("NATS_JS_INBOX_PREFIX", "bad prefix")
	_, err = Load()
	require.ErrorContains(t, err, "NATS_JS_PASSWORD")
	require.ErrorContains(t, err, "NATS_JS_INBOX_PREFIX")
}

// TestSafeNumbersDefault: DB_SAFE_NUMBERS is off unless set, and read as a
// boolean (a value that is not one is refused).
func TestSafeNumbersDefault(t *testing.T) {
	cleanEnv(t)
	c, err := Load()
	require.NoError(t, err)
	require.False(t, c.SafeNumbers)
	t.Setenv("DB_SAFE_NUMBERS", "true")
	c, err = Load()
	require.NoError(t, err)
	require.True(t, c.SafeNumbers)
	t.Setenv("DB_SAFE_NUMBERS", "sometimes")
	_, err = Load()
	require.ErrorContains(t, err, "DB_SAFE_NUMBERS")
}
