package deploytest

import (
	"context"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"
)

func loadCompose(t *testing.T, env map[string]string) (*types.Project, error) {
	t.Helper()
	var pairs []string
	for k, v := range env {
		pairs = append(pairs, k+"="+v)
	}
	opts, err := cli.NewProjectOptions([]string{"../../docker-compose.yml"},
		cli.WithWorkingDirectory("../.."), cli.WithEnv(pairs), cli.WithResolvedPaths(true))
	require.NoError(t, err)
	return opts.LoadProject(context.Background())
}

var composeEnv = map[string]string{
	"POSTGRES_PASSWORD": "pg", "NATS_WORKER_PASSWORD": "w", "NATS_WORKER_JS_PASSWORD": "wj", "NATS_ORDERS_PASSWORD": "or",
	"NATS_BILLING_PASSWORD": "b", "NATS_PUBLISHER_PASSWORD": "p", "NATS_OPS_PASSWORD": "o",
}

// TestComposeFile loads docker-compose.yml with the Compose specification's
// own loader (what docker compose uses) and checks the deployment it describes.
func TestComposeFile(t *testing.T) {
	p, err := loadCompose(t, composeEnv)
	require.NoError(t, err)
	svc := func(name string) types.ServiceConfig {
		s, err := p.GetService(name)
		require.NoError(t, err, name)
		return s
	}
	require.Equal(t, "pgvector/pgvector:pg16", svc("postgres").Image)
	for _, name := range []string{"postgres", "redis", "nats", "worker"} {
		require.NotNil(t, svc(name).HealthCheck, "%s has a health check", name)
	}
	nats := svc("nats")
	require.Contains(t, strings.Join(nats.Command, " "), "nats-server.conf")
	require.Equal(t, "w", *nats.Environment["NATS_WORKER_PASSWORD"])

	w := svc("worker")
	require.NotNil(t, w.Build, "the worker is built from the Dockerfile")
	require.Empty(t, w.ContainerName, "a fixed container name would stop --scale")
	require.Empty(t, w.Ports, "host ports would stop --scale")
	for _, dep := range []string{"postgres", "redis", "nats"} {
		require.Equal(t, types.ServiceConditionHealthy, w.DependsOn[dep].Condition, "worker waits for %s", dep)
	}
	require.Equal(t, "distributed", *w.Environment["DEPLOYMENT_MODE"], "a pool shares state in Redis")
	require.Equal(t, "worker", *w.Environment["NATS_USER"])
	require.Equal(t, "w", *w.Environment["NATS_PASSWORD"])
	require.Equal(t, "_INBOX_worker", *w.Environment["NATS_INBOX_PREFIX"], "the worker reads its answers in its own inbox")
	require.Equal(t, "worker_js", *w.Environment["NATS_JS_USER"], "JetStream work on a second connection")
	require.Equal(t, "wj", *w.Environment["NATS_JS_PASSWORD"])
	require.Equal(t, "_INBOX_worker_js", *w.Environment["NATS_JS_INBOX_PREFIX"])
	require.Equal(t, "wj", *nats.Environment["NATS_WORKER_JS_PASSWORD"])
	require.Equal(t, "_INBOX_orders.,_INBOX_billing.,_INBOX_publisher.", *w.Environment["WORKER_TRUSTED_REPLY_PREFIXES"])
	require.Equal(t, []string{"CMD", "/usr/local/bin/worker", "-ready"}, []string(w.HealthCheck.Test))

	pub := svc("publisher")
	require.Equal(t, "publisher", *pub.Environment["NATS_USER"])
	require.Equal(t, "_INBOX_publisher", *pub.Environment["NATS_INBOX_PREFIX"])
	require.Equal(t, types.ServiceConditionHealthy, pub.DependsOn["worker"].Condition)
}

// TestComposeNeedsPasswords: without the variables the file does not load.
func TestComposeNeedsPasswords(t *testing.T) {
	env := map[string]string{}
	for k, v := range composeEnv {
		env[k] = v
	}
	delete(env, "NATS_WORKER_PASSWORD")
	t.Setenv("NATS_WORKER_PASSWORD", "")
	_, err := loadCompose(t, env)
	require.ErrorContains(t, err, "NATS_WORKER_PASSWORD")
}
