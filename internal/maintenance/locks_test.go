package maintenance_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/maintenance"
	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/state/redis"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// vacuumAsync starts a VACUUM of table and returns its outcome when done.
func vacuumAsync(s *maintenance.Service, table string) <-chan error {
	done := make(chan error, 1)
	go func() {
		res, err := s.Vacuum(context.Background(), &messages.VacuumRequest{Table: table})
		if err == nil && res.(*messages.VacuumResult).Status != messages.StatusOK {
			err = res.(*messages.VacuumResult).Error
		}
		done <- err
	}()
	return done
}

// waitHeld waits until key is held and returns its status.
func waitHeld(t *testing.T, b state.Backend, key state.LockKey) messages.LockStatusResult {
	t.Helper()
	var st messages.LockStatusResult
	require.Eventually(t, func() bool {
		var err error
		st, err = b.LockStatus(context.Background(), key)
		return err == nil && st.Held
	}, 10*time.Second, 10*time.Millisecond)
	return st
}

// TestThirdPartyCannotReleaseRunningVacuum: the theft. status shows
// the running VACUUM's owner; with it a third party could release the lock
// and start a second VACUUM. Now neither the owner nor the token releases or
// refreshes it, through the backend or state.lock, and a second run of the
// target is still LOCKED.
func TestThirdPartyCannotReleaseRunningVacuum(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.worker(t, "w1", nil, maintenance.TestSignals{BeforeVacuumSQL: "SELECT pg_sleep(1)"})
	e.pg.Exec(t, "CREATE TABLE stolen (x int)")
	ctx := context.Background()
	first := vacuumAsync(s, "stolen")
	key := maintenance.VacuumLockKey(e.pg.Schema, "stolen")
	held := waitHeld(t, e.state, key)
	require.NotEmpty(t, held.Owner)

	for _, guess := range []string{held.Owner, "w1", ""} {
		rel, err := e.state.ReleaseLock(ctx, key, guess)
		require.NoError(t, err)
		require.False(t, rel.Released, "release with %q", guess)
		ref, err := e.state.RefreshLock(ctx, key, guess, 30*24*time.Hour)
		require.NoError(t, err)
		require.False(t, ref.Refreshed, "refresh with %q", guess)
	}
	svc, err := state.NewService(e.state, state.ServiceConfig{})
	require.NoError(t, err)
	for _, name := range []string{key.Name(), "maint:" + key.Name()} {
		res, err := svc.Lock(ctx, &messages.LockRequest{Op: messages.OpRelease, Key: name, Lease: held.Owner})
		require.NoError(t, err)
		require.Equal(t, messages.ReasonNotHeld, res.(messages.LockReleaseResult).Reason, "state.lock %q is another lock", name)
	}
	after, err := e.state.LockStatus(ctx, key)
	require.NoError(t, err)
	require.True(t, after.Held, "the VACUUM's lock stays held")
	require.Equal(t, held.Token, after.Token)
	require.Equal(t, held.Owner, after.Owner)

	_, err = s.Vacuum(ctx, &messages.VacuumRequest{Table: "stolen"})
	requireCode(t, err, messages.CodeLocked)
	require.NoError(t, <-first)
}

// TestCallersCannotSquatMaintenanceLocks: a caller holding state.lock keys
// named like maintenance locks, for 30 days, does not stop db.vacuum.
func TestCallersCannotSquatMaintenanceLocks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.worker(t, "w1", nil)
	e.pg.Exec(t, "CREATE TABLE users (x int)")
	ctx := context.Background()
	svc, err := state.NewService(e.state, state.ServiceConfig{})
	require.NoError(t, err)
	month := int64(30 * 24 * time.Hour / time.Millisecond)
	key := maintenance.VacuumLockKey(e.pg.Schema, "users")
	for _, name := range []string{"maint:vacuum:" + e.pg.Schema + ".users", key.Name(), key.String(), "maint:vacuum:_database", "vacuum:_database"} {
		res, err := svc.Lock(ctx, &messages.LockRequest{Op: messages.OpAcquire, Key: name, Owner: "squatter", TTLMS: &month})
		require.NoError(t, err)
		require.True(t, res.(messages.LockAcquireResult).Acquired, name)
	}
	res, err := s.Vacuum(ctx, &messages.VacuumRequest{Table: "users"})
	require.NoError(t, err)
	require.Equal(t, messages.StatusOK, res.(*messages.VacuumResult).Status)
	res, err = s.Vacuum(ctx, &messages.VacuumRequest{})
	require.NoError(t, err, "the database-wide VACUUM neither")
	require.Equal(t, messages.StatusOK, res.(*messages.VacuumResult).Status)
}

// withRedis puts the env's state in Redis under a prefix of the test's own
// and returns the prefix and client, so a test can make Redis forget.
func (e *env) withRedis(t *testing.T) (string, goredis.UniversalClient) {
	t.Helper()
	prefix := testenv.NewRedisPrefix(t)
	b, err := redis.Factory(context.Background(), state.Options{RedisURL: testenv.RedisURL(), KeyPrefix: prefix})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	e.state = b
	return prefix, b.(*redis.Backend).Client()
}

// TestAdvisoryLockWhenRedisForgets: the running VACUUM's lock vanishes from
// Redis (a restart without persistence, FLUSHALL); a second worker then takes
// the Redis lock, but not the target's PostgreSQL advisory lock, held by the
// first run's connection: it answers LOCKED and never runs.
func TestAdvisoryLockWhenRedisForgets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	prefix, rc := e.withRedis(t)
	w1id, w2id := e.pg.Schema+"-w1", e.pg.Schema+"-w2"
	tune := func(c *maintenance.Config) {
		c.LockTTL = time.Minute // no refresh during the test: the first run does not notice
	}
	slow := maintenance.TestSignals{BeforeVacuumSQL: "SELECT pg_sleep(1.5)"}
	w1, w2 := e.worker(t, w1id, tune, slow), e.worker(t, w2id, tune, slow)
	e.pg.Exec(t, "CREATE TABLE forgotten (x int)")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.pg.URL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	vacuums := func(app string) (n int) {
		require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", "dbworker/"+app+"/vacuum").Scan(&n))
		return n
	}

	first := vacuumAsync(w1, "forgotten")
	waitHeld(t, e.state, maintenance.VacuumLockKey(e.pg.Schema, "forgotten"))
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		var advisory int
		require.NoError(c, conn.QueryRow(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
			WHERE l.locktype = 'advisory' AND l.granted AND l.objid = $1::regclass::oid AND a.application_name = $2`,
			e.pg.Schema+".forgotten", "dbworker/"+w1id+"/vacuum").Scan(&advisory))
		assert.Equal(c, 1, advisory)
	}, 10*time.Second, 10*time.Millisecond, "the run holds the target's advisory lock")
	require.Equal(t, 1, vacuums(w1id))

	require.NoError(t, redis.DeletePrefix(ctx, rc, prefix), "Redis forgets")
	st, err := e.state.LockStatus(ctx, maintenance.VacuumLockKey(e.pg.Schema, "forgotten"))
	require.NoError(t, err)
	require.False(t, st.Held)

	_, err = w2.Vacuum(ctx, &messages.VacuumRequest{Table: "forgotten"})
	requireCode(t, err, messages.CodeLocked)
	require.ErrorContains(t, err, "advisory lock held by dbworker/"+w1id+"/vacuum")
	require.Zero(t, vacuums(w2id), "the second run's connection is closed")
	require.Equal(t, 1, vacuums(w1id), "the first run goes on")
	require.NoError(t, <-first)
	st, err = e.state.LockStatus(ctx, maintenance.VacuumLockKey(e.pg.Schema, "forgotten"))
	require.NoError(t, err)
	require.False(t, st.Held, "the second run released the Redis lock it took")
}
