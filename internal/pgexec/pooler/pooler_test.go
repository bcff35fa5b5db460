package pooler_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/pgexec/pooler"
)

// TestModes: through a transaction pooler only application_name goes in the
// startup packet and each transaction sets the rest; a direct connection
// sends everything and sets only the timeout.
func TestModes(t *testing.T) {
	for s, want := range map[string]pooler.Mode{"": pooler.None, "none": pooler.None, "transaction": pooler.Transaction} {
		m, err := pooler.ParseMode(s)
		require.NoError(t, err)
		require.Equal(t, want, m)
	}
	for _, s := range []string{"session", "Transaction", "statement"} {
		_, err := pooler.ParseMode(s)
		require.Error(t, err, s)
	}
	require.Equal(t, map[string]string{"application_name": "w"}, pooler.StartupParams(pooler.Transaction, "w", time.Minute))
	direct := pooler.StartupParams(pooler.None, "w", time.Minute)
	require.Equal(t, "60000", direct["statement_timeout"])
	require.Equal(t, "postgres", direct["IntervalStyle"])
	require.NotContains(t, pooler.LocalSettingsSQL(pooler.None), "IntervalStyle")
	for _, name := range []string{"statement_timeout", "TimeZone", "DateStyle", "IntervalStyle"} {
		require.Contains(t, pooler.LocalSettingsSQL(pooler.Transaction), "'"+name+"'")
	}
	// One statement on a direct connection: SET LOCAL, the timeout in the
	// text, at least 1 ms (0 would be no timeout). Anything else: the
	// SELECT, which takes the snapshot, with the timeout as $1.
	sql, args := pooler.LocalSettings(pooler.None, 1500*time.Millisecond, true)
	require.Equal(t, "SET LOCAL statement_timeout = 1500", sql)
	require.Nil(t, args)
	sql, _ = pooler.LocalSettings(pooler.None, 0, true)
	require.Equal(t, "SET LOCAL statement_timeout = 1", sql)
	for _, c := range []struct {
		m   pooler.Mode
		one bool
	}{{pooler.None, false}, {pooler.Transaction, true}, {pooler.Transaction, false}} {
		sql, args = pooler.LocalSettings(c.m, 1500*time.Millisecond, c.one)
		require.Equal(t, pooler.LocalSettingsSQL(c.m), sql)
		require.Equal(t, [][]byte{[]byte("1500")}, args)
	}
}

// TestSessionConfig: a session URL gets every startup parameter of a direct
// connection and the pool's protocol settings; behind a transaction pooler
// without one there is no session to have.
func TestSessionConfig(t *testing.T) {
	pool, err := pgx.ParseConfig("postgres://u@pooler:6432/db")
	require.NoError(t, err)
	pool.DefaultQueryExecMode = pgx.QueryExecModeCacheDescribe
	cc, err := pooler.SessionConfig(pool, "", pooler.Transaction, "w", time.Minute)
	require.NoError(t, err)
	require.Nil(t, cc)
	cc, err = pooler.SessionConfig(pool, "", pooler.None, "w", time.Minute)
	require.NoError(t, err)
	require.Equal(t, "pooler", cc.Host)
	cc, err = pooler.SessionConfig(pool, "postgres://u@db:5432/db", pooler.Transaction, "w", time.Minute)
	require.NoError(t, err)
	require.Equal(t, "db", cc.Host)
	require.Equal(t, "60000", cc.RuntimeParams["statement_timeout"])
	require.Equal(t, pgx.QueryExecModeCacheDescribe, cc.DefaultQueryExecMode)
	_, err = pooler.SessionConfig(pool, "postgres://u:secret@db:5432/db?sslmode=bogus", pooler.Transaction, "w", time.Minute)
	require.Error(t, err)
	require.NotContains(t, err.Error(), "secret")
}
