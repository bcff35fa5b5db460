package client_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/pkg/client"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// newClient is a client over the package's stack.
func newClient(t *testing.T, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(nc, opts...)
	require.NoError(t, err)
	return c
}

// TestNewRefusesBadOptions: an option given a value it cannot take fails
// New, rather than making every call fail later (WithTimeout(0) used to
// make each one fail with "deadline exceeded").
func TestNewRefusesBadOptions(t *testing.T) {
	for name, opt := range map[string]client.Option{
		"zero timeout":          client.WithTimeout(0),
		"negative timeout":      client.WithTimeout(-time.Second),
		"prefix with a space":   client.WithPrefix("my prefix"),
		"prefix with wildcard":  client.WithPrefix("prod.*"),
		"prefix with full wild": client.WithPrefix("prod.>"),
		"prefix with empty tok": client.WithPrefix("a..b"),
	} {
		t.Run(name, func(t *testing.T) {
			c, err := client.New(nc, opt)
			require.Error(t, err)
			require.Nil(t, c)
		})
	}
	_, err := client.New(nil)
	require.Error(t, err, "a nil connection")
	// The values next to the refused ones are taken.
	newClient(t, client.WithTimeout(time.Millisecond), client.WithPrefix("prod"), client.WithPrefix(""))
}

// TestCallOptionsRefuseBadValues: a call option given a value it cannot
// take fails the call before anything is sent. The client's prefix has no
// worker behind it, so a request that went out would fail ErrNoWorker.
func TestCallOptionsRefuseBadValues(t *testing.T) {
	ctx := context.Background()
	c := newClient(t, client.WithPrefix("nobody"))
	calls := map[string]func() error{
		"WithMaxRows(-1)": func() error { _, err := c.Query(ctx, "SELECT 1", nil, client.WithMaxRows(-1)); return err },
		"WithStatementTimeout(0)": func() error {
			_, err := c.Query(ctx, "SELECT 1", nil, client.WithStatementTimeout(0))
			return err
		},
		"WithStatementTimeout(500µs) on a vector search": func() error {
			_, err := c.Vectors().Search(ctx, "docs", []float32{1}, client.WithStatementTimeout(500*time.Microsecond))
			return err
		},
		"WithTTL(-1s)": func() error { return c.KV().Set(ctx, "k", 1, client.WithTTL(-time.Second)) },
		"WithTTL(1µs)": func() error { return c.KV().Set(ctx, "k", 1, client.WithTTL(time.Microsecond)) },
		"embedding WithTTL": func() error {
			_, err := c.Embeddings().Set(ctx, client.ByHash("h"), []float32{1}, client.WithTTL(-1))
			return err
		},
		"WithCost(-1)": func() error {
			_, err := c.RateLimits().Allow(ctx, "k", 5, time.Minute, client.WithCost(-1))
			return err
		},
		"rate limit window 0": func() error { _, err := c.RateLimits().Allow(ctx, "k", 5, 0); return err },
		"WithWait(-1s)": func() error {
			_, err := c.Locks().Acquire(ctx, "k", time.Second, client.WithWait(-time.Second))
			return err
		},
		"lock ttl -1s": func() error { _, err := c.Locks().Acquire(ctx, "k", -time.Second); return err },
		"Locker ttl 0": func() error { _, err := c.Locks().Lock(ctx, "k", 0); return err },
		"WithK(0)":     func() error { _, err := c.Vectors().Search(ctx, "docs", []float32{1}, client.WithK(0)); return err },
		"WithEFSearch(0)": func() error {
			_, err := c.Vectors().Search(ctx, "docs", []float32{1}, client.WithEFSearch(0))
			return err
		},
		"WithLimit(0)":    func() error { _, err := c.Graph().Neighbors(ctx, "x", client.WithLimit(0)); return err },
		"WithDepth(0)":    func() error { _, err := c.Graph().FindPath(ctx, "x", "y", client.WithDepth(0)); return err },
		"unencodable arg": func() error { _, err := c.Query(ctx, "SELECT $1", client.Args{make(chan int)}); return err },
		"unencodable metadata": func() error {
			_, err := c.Vectors().Upsert(ctx, "d", []client.VectorItem{{ID: "x", Metadata: map[string]any{"f": func() {}}}})
			return err
		},
		"unencodable filter": func() error {
			_, err := c.Vectors().Search(ctx, "d", nil, client.WithFilter(map[string]any{"f": func() {}}))
			return err
		},
	}
	for name, call := range calls {
		err := call()
		require.Error(t, err, name)
		require.NotErrorIs(t, err, client.ErrNoWorker, "%s: refused before sending", name)
	}
}

func TestSQL(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)

	type user struct {
		ID     int64  `json:"id"`
		Email  string `json:"email"`
		Active bool   `json:"active"`
	}
	u, err := client.CollectOneRow[user](c.Insert(ctx, "users", map[string]any{"email": "sql@x"}))
	require.NoError(t, err)
	require.Positive(t, u.ID)
	require.True(t, u.Active)
	res, err := c.Insert(ctx, "users", map[string]any{"email": "sql2@x"}, client.WithReturning("email"))
	require.NoError(t, err)
	require.JSONEq(t, `{"email":"sql2@x"}`, string(res.Row))

	tag, err := c.Update(ctx, "users", map[string]any{"active": false}, "email = :e", client.NamedArgs{"e": "sql@x"})
	require.NoError(t, err)
	require.EqualValues(t, 1, tag.RowsAffected())
	require.Equal(t, "UPDATE 1", tag.String())
	_, err = c.Update(ctx, "users", map[string]any{"active": true}, "", nil)
	var e *client.Error
	require.ErrorAs(t, err, &e, "an update of every row needs WithAllRows")
	require.Equal(t, messages.CodeBadRequest, e.Code)

	// Rows into structs, maps, and a lone column into plain values.
	users, err := client.CollectRows[user](c.Query(ctx, "SELECT id, email, active FROM users WHERE email LIKE ? ORDER BY id", client.Args{"sql%"}))
	require.NoError(t, err)
	require.Len(t, users, 2)
	require.Equal(t, "sql@x", users[0].Email)
	require.False(t, users[0].Active)
	emails, err := client.CollectRows[string](c.Query(ctx, "SELECT email FROM users WHERE email LIKE 'sql%' ORDER BY id", nil))
	require.NoError(t, err)
	require.Equal(t, []string{"sql@x", "sql2@x"}, emails)
	maps, err := client.CollectRows[map[string]any](c.Query(ctx, "SELECT email FROM users WHERE email = :e", client.NamedArgs{"e": "sql@x"}))
	require.NoError(t, err)
	require.Equal(t, []map[string]any{{"email": "sql@x"}}, maps)
	arrays, err := client.CollectRows[[]any](c.Query(ctx, "SELECT 1 AS a, 'b' AS b", nil, client.WithArrayRows()))
	require.NoError(t, err)
	require.Equal(t, [][]any{{1.0, "b"}}, arrays)
	tags, err := client.CollectRows[[]int](c.Query(ctx, "SELECT ARRAY[1,2] AS a", nil))
	require.NoError(t, err)
	require.Equal(t, [][]int{{1, 2}}, tags)
	none, err := client.CollectRows[user](c.Query(ctx, "SELECT id FROM users WHERE false", nil))
	require.NoError(t, err)
	require.Empty(t, none)
	_, err = client.CollectOneRow[user](c.Query(ctx, "SELECT id FROM users WHERE false", nil))
	require.ErrorIs(t, err, client.ErrNoRows)
	_, err = client.CollectRows[int](c.Query(ctx, "SELECT 1 AS a, 2 AS b", nil))
	require.ErrorContains(t, err, "2 columns", "a plain value takes one column")

	var n int64
	require.NoError(t, c.QueryRow(ctx, "SELECT count(*) FROM users WHERE email LIKE $1", client.Args{"sql%"}).Scan(&n))
	require.EqualValues(t, 2, n)
	var at time.Time
	require.NoError(t, c.QueryRow(ctx, "SELECT '2024-05-06T07:08:09Z'::timestamptz AS at", nil).Scan(&at))
	require.Equal(t, time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC), at.UTC())
	var one user
	require.ErrorIs(t, c.QueryRow(ctx, "SELECT * FROM users WHERE email = 'nobody'", nil).Scan(&one), client.ErrNoRows)
	require.ErrorAs(t, c.QueryRow(ctx, "SELECT 1/0", nil).Scan(&n), &e, "the request's error comes out of Scan")
	require.Equal(t, "22012", e.SQLState)

	// Exec: a command tag, never rows.
	tag, err = c.Exec(ctx, "UPDATE users SET active = true WHERE email LIKE $1 RETURNING id", client.Args{"sql%"})
	require.NoError(t, err)
	require.EqualValues(t, 2, tag.RowsAffected())

	// Options: the rows cap, read-only.
	res, err = c.Query(ctx, "SELECT generate_series(1, 5) AS n", nil, client.WithMaxRows(2))
	require.NoError(t, err)
	require.True(t, res.Truncated)
	_, err = c.Exec(ctx, "DELETE FROM users", nil, client.WithReadOnly())
	require.ErrorAs(t, err, &e)
	require.Equal(t, "25006", e.SQLState, "a READ ONLY transaction refuses the write")
	_, err = c.Query(ctx, "SELECT pg_sleep(1)", nil, client.WithStatementTimeout(50*time.Millisecond))
	require.ErrorAs(t, err, &e)
	require.Equal(t, messages.CodeTimeout, e.Code)

	// Many, Script, Tx.
	res, err = c.Many(ctx, "INSERT INTO users (email) VALUES (:e)", []client.Params{client.NamedArgs{"e": "m1@x"}, client.NamedArgs{"e": "m2@x"}})
	require.NoError(t, err)
	require.EqualValues(t, 2, res.RowsAffected)
	require.Len(t, res.Results, 2)
	res, err = c.Script(ctx, "UPDATE users SET active = false WHERE email = 'm1@x'; DELETE FROM users WHERE email = 'm2@x'")
	require.NoError(t, err)
	require.Equal(t, []string{"UPDATE 1", "DELETE 1"}, res.Commands)
	res, err = c.Tx(ctx, []client.Statement{
		{SQL: "INSERT INTO users (email) VALUES ($1)", Args: client.Args{"tx@x"}},
		{SQL: "SELECT email FROM users WHERE email = :e", Args: client.NamedArgs{"e": "tx@x"}, QueryRow: true},
	})
	require.NoError(t, err)
	require.JSONEq(t, `{"email":"tx@x"}`, string(res.Results[1].Row))
	_, err = c.Tx(ctx, []client.Statement{{SQL: "INSERT INTO users (email) VALUES ('tx2@x')"}, {SQL: "SELECT 1/0"}})
	require.ErrorAs(t, err, &e)
	require.Equal(t, "22012", e.SQLState)
	require.EqualValues(t, 1, *e.FailedIndex)
	require.ErrorIs(t, c.QueryRow(ctx, "SELECT 1 FROM users WHERE email = 'tx2@x'", nil).Scan(&n), client.ErrNoRows, "rolled back")
}

func TestDeadlineIsTheTimeout(t *testing.T) {
	c := newClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Query(ctx, "SELECT pg_sleep(3)", nil)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 2*time.Second)
}

func TestNoWorker(t *testing.T) {
	_, err := newClient(t, client.WithPrefix("nobody")).Health(context.Background())
	require.ErrorIs(t, err, client.ErrNoWorker)
}

func TestOptions(t *testing.T) {
	// WithTimeout applies when the context has no deadline.
	c := newClient(t, client.WithTimeout(150*time.Millisecond))
	_, err := c.Query(context.Background(), "SELECT pg_sleep(3)", nil)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	// WithRequestID sends the id in the Request-Id header; WithPrefix picks
	// the subjects. A spy stands in for a worker under the prefix "spy.".
	got := make(chan string, 1)
	sub, err := nc.Subscribe("spy.db.health", func(m *nats.Msg) {
		got <- m.Header.Get("Request-Id")
		_ = m.Respond([]byte(`{"status":"healthy"}`))
	})
	require.NoError(t, err)
	defer sub.Unsubscribe()
	h, err := newClient(t, client.WithPrefix("spy")).Health(client.WithRequestID(context.Background(), "req-42"))
	require.NoError(t, err)
	require.Equal(t, "healthy", h.Status)
	require.Equal(t, "req-42", <-got)
}

// TestInboxPrefix: requests are answered on the connection's inbox prefix.
func TestInboxPrefix(t *testing.T) {
	for prefix, want := range map[string]string{"_INBOX_orders": "_INBOX_orders.", "_INBOX_orders.": "_INBOX_orders.", "": "_INBOX."} {
		pnc, err := nats.Connect(nc.ConnectedUrl(), client.InboxPrefix(prefix))
		require.NoError(t, err)
		defer pnc.Close()
		require.True(t, strings.HasPrefix(pnc.NewRespInbox(), want), pnc.NewRespInbox())
		c, err := client.New(pnc)
		require.NoError(t, err)
		h, err := c.Health(context.Background())
		require.NoError(t, err, prefix)
		require.NotEmpty(t, h.Status)
	}
	_, err := nats.Connect(nc.ConnectedUrl(), client.InboxPrefix("_INBOX.>"))
	require.Error(t, err)
}

func TestErrorsKeepTheirKind(t *testing.T) {
	_, err := newClient(t).Query(context.Background(), "SELECT * FROM no_such_table", nil)
	var e *client.Error
	require.True(t, errors.As(err, &e))
	require.Equal(t, "42P01", e.SQLState)
}
