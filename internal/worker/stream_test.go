package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// reader reads a streamed answer by hand, as docs/protocol.md describes it:
// an inbox of its own, the Stream-Window header on the request, credit on
// the subject the first message names.
type reader struct {
	t      *testing.T
	nc     *nats.Conn
	sub    *nats.Subscription
	id     string
	credit string
	seq    int64
}

// openStream sends body to db.execute with Stream-Window: window.
func (b *bundle) openStream(body string, window int) *reader {
	b.t.Helper()
	t := b.t.(*testing.T)
	inbox := nats.NewInbox()
	sub, err := b.nc.SubscribeSync(inbox)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	require.NoError(t, sub.SetPendingLimits(-1, -1))
	msg := nats.NewMsg(b.sub.Of(subjects.DBExecute))
	msg.Reply = inbox
	msg.Data = []byte(body)
	msg.Header.Set(messages.HeaderStreamWindow, strconv.Itoa(window))
	require.NoError(t, b.nc.PublishMsg(msg))
	return &reader{t: t, nc: b.nc, sub: sub}
}

// next returns the next message, checking that it belongs to the stream and
// follows the one before.
func (r *reader) next() *nats.Msg {
	r.t.Helper()
	m, err := r.sub.NextMsg(15 * time.Second)
	require.NoError(r.t, err)
	r.seq++
	if r.seq == 1 {
		r.id = m.Header.Get(messages.HeaderStreamID)
		r.credit = m.Header.Get(messages.HeaderStreamCredit)
	}
	if r.id != "" {
		require.Equal(r.t, r.id, m.Header.Get(messages.HeaderStreamID))
		require.Equal(r.t, strconv.FormatInt(r.seq, 10), m.Header.Get(messages.HeaderStreamSeq))
	}
	return m
}

// ack grants credit for every message read so far.
func (r *reader) ack() {
	r.t.Helper()
	require.NoError(r.t, r.nc.Publish(r.credit, fmt.Appendf(nil, `{"ack":%d}`, r.seq)))
}

// readAll reads the stream to its end, granting credit after each data
// message, and returns the rows and the last message.
func (r *reader) readAll() ([]json.RawMessage, *nats.Msg) {
	r.t.Helper()
	var rows []json.RawMessage
	for {
		m := r.next()
		if m.Header.Get(messages.HeaderStreamEnd) == "true" {
			return rows, m
		}
		var chunk messages.StreamChunk
		require.NoError(r.t, json.Unmarshal(m.Data, &chunk))
		require.Equal(r.t, r.seq == 1, chunk.Columns != nil, "columns in the first message only")
		var part []json.RawMessage
		require.NoError(r.t, json.Unmarshal(chunk.Rows, &part))
		require.NotEmpty(r.t, part)
		rows = append(rows, part...)
		r.ack()
	}
}

// TestStreamedAnswer: a caller that reads streams gets a result larger than
// one message as data messages, every row once and in order, then the
// totals; the worker never sends more than the window ahead of the credit.
func TestStreamedAnswer(t *testing.T) {
	b := setup(t, func(o *options) { o.maxPayload = 64 << 10 })
	const n = 50000
	r := b.openStream(fmt.Sprintf(`{"sql":"SELECT g AS id, md5(g::text) AS h FROM generate_series(1, %d) g"}`, n), 2)
	rows, last := r.readAll()
	require.Greater(t, r.seq, int64(20), "many messages")
	require.Len(t, rows, n)
	for i, raw := range rows {
		var row struct{ ID int }
		require.NoError(t, json.Unmarshal(raw, &row))
		require.Equal(t, i+1, row.ID)
	}
	require.Empty(t, last.Header.Get("Nats-Service-Error-Code"))
	require.JSONEq(t, fmt.Sprintf(`{"row_count":%d,"rows_affected":%d,"command":"SELECT %d","truncated":false}`, n, n, n), string(last.Data))
	require.NotEmpty(t, last.Header.Get(RequestIDHeader))

	// max_rows is the caller's cap, and DB_MAX_ROWS (10000 here) is not.
	r = b.openStream(`{"sql":"SELECT g FROM generate_series(1, 30000) g","max_rows":20000}`, 4)
	rows, last = r.readAll()
	require.Len(t, rows, 20000)
	require.JSONEq(t, `{"row_count":20000,"rows_affected":30000,"command":"SELECT 30000","truncated":true}`, string(last.Data))
}

// TestStreamOnlyWhenAsked: without the header a large answer is TOO_LARGE
// and a small one a plain reply, as before; with it a small answer is the same
// plain reply, and a bad header is BAD_REQUEST.
func TestStreamOnlyWhenAsked(t *testing.T) {
	b := setup(t, func(o *options) { o.maxPayload = 64 << 10 })
	large := `{"sql":"SELECT g, md5(g::text) FROM generate_series(1, 9000) g"}`
	e := b.exec(large).errorOf(t)
	require.Equal(t, "TOO_LARGE", e["code"])

	small := `{"sql":"SELECT g FROM generate_series(1, 10) g"}`
	plain := b.exec(small)
	require.Empty(t, plain.status)
	r := b.openStream(small, 2)
	m := r.next()
	require.Empty(t, m.Header.Get(messages.HeaderStreamID), "one plain reply")
	require.Equal(t, string(plain.body), string(m.Data))
	_, err := r.sub.NextMsg(100 * time.Millisecond)
	require.ErrorIs(t, err, nats.ErrTimeout, "nothing follows a plain reply")

	for _, bad := range []string{"0", "-1", "many"} {
		msg := nats.NewMsg(b.sub.Of(subjects.DBExecute))
		msg.Data = []byte(small)
		msg.Header.Set(messages.HeaderStreamWindow, bad)
		got, err := b.nc.RequestMsg(msg, 5*time.Second)
		require.NoError(t, err)
		require.Equal(t, "400", got.Header.Get("Nats-Service-Error-Code"), bad)
		require.Contains(t, string(got.Data), messages.HeaderStreamWindow)
	}
}

// TestStreamEndsWithAnError: an error after rows left ends the stream with
// the error, in the numbered sequence, marked as the end.
func TestStreamEndsWithAnError(t *testing.T) {
	b := setup(t, func(o *options) { o.maxPayload = 64 << 10 })
	r := b.openStream(`{"sql":"SELECT g, 1 / (20000 - g) AS x FROM generate_series(1, 30000) g"}`, 4)
	rows, last := r.readAll()
	require.NotEmpty(t, rows)
	require.Less(t, len(rows), 20000)
	require.Equal(t, "400", last.Header.Get("Nats-Service-Error-Code"))
	var eb messages.ErrorBody
	require.NoError(t, json.Unmarshal(last.Data, &eb))
	require.Equal(t, "22012", eb.Error.SQLState)
	b.ok(`{"sql":"SELECT 1"}`)
}

// TestSlowReaderIsAbandoned: a caller that grants no credit gets the window
// and nothing more: the worker stops reading rows, so PostgreSQL waits on
// the worker (ClientWrite) rather than the worker buffering the result. After
// the credit timeout the statement is cancelled, the last message is TIMEOUT,
// and the connection serves the next request.
func TestSlowReaderIsAbandoned(t *testing.T) {
	b := setup(t, func(o *options) { o.maxPayload = 64 << 10; o.maxConns = 1; o.streamCredit = 2 * time.Second })
	marker := nuid.Next()
	r := b.openStream(`{"sql":"SELECT g, md5(g::text), '`+marker+`' AS marker FROM (SELECT generate_series(1, 50000000) AS g) s"}`, 2)
	r.next()
	r.next()

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, b.pg.URL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var pid int
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		var wait string
		require.NoError(c, conn.QueryRow(ctx, `SELECT pid, coalesce(wait_event, '') FROM pg_stat_activity
			WHERE state = 'active' AND query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()`, marker).Scan(&pid, &wait))
		assert.Equal(c, "ClientWrite", wait, "PostgreSQL waits for the worker to read")
	}, 10*time.Second, 20*time.Millisecond)

	last := r.next()
	require.Equal(t, "true", last.Header.Get(messages.HeaderStreamEnd), "nothing but the window, then the end")
	require.Equal(t, int64(3), r.seq)
	require.Equal(t, "408", last.Header.Get("Nats-Service-Error-Code"))
	require.Contains(t, string(last.Data), "no credit from the caller within 2s")

	requireStatementEnded(t, conn, marker)
	got := b.ok(`{"op":"one","sql":"SELECT pg_backend_pid() AS pid"}`)
	require.Equal(t, json.Number(strconv.Itoa(pid)), got["row"].(map[string]any)["pid"], "the one connection is kept, reset")
}

// TestStreamCancelledByTheCaller: a cancel stops the stream at once; nothing
// more is sent and the connection serves the next request.
func TestStreamCancelledByTheCaller(t *testing.T) {
	b := setup(t, func(o *options) { o.maxPayload = 64 << 10; o.maxConns = 1 })
	marker := nuid.Next()
	r := b.openStream(`{"sql":"SELECT g, md5(g::text), '`+marker+`' AS marker FROM (SELECT generate_series(1, 50000000) AS g) s"}`, 1)
	r.next()
	require.NoError(t, b.nc.Publish(r.credit, []byte(`{"cancel":true}`)))
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, b.pg.URL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	requireStatementEnded(t, conn, marker)
	b.ok(`{"sql":"SELECT 1"}`)
	_, err = r.sub.NextMsg(100 * time.Millisecond)
	require.ErrorIs(t, err, nats.ErrTimeout, "nothing after a cancel")
}

// TestPlainRequestOfAStreamableAnswer: nats.go's Request (one answer per
// request, the nats CLI's way) with the header gets the first message only;
// without credit the worker gives the stream up, and serves on.
func TestPlainRequestOfAStreamableAnswer(t *testing.T) {
	b := setup(t, func(o *options) { o.maxPayload = 64 << 10; o.maxConns = 1; o.streamCredit = 500 * time.Millisecond })
	msg := nats.NewMsg(b.sub.Of(subjects.DBExecute))
	msg.Data = []byte(`{"sql":"SELECT g, md5(g::text) FROM generate_series(1, 100000) g"}`)
	msg.Header.Set(messages.HeaderStreamWindow, "1")
	got, err := b.nc.RequestMsg(msg, 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, "1", got.Header.Get(messages.HeaderStreamSeq))
	require.Contains(t, string(got.Data), `{"columns":[`)
	b.ok(`{"sql":"SELECT 1"}`)
}

// requireStatementEnded waits until no statement whose text holds marker is
// active on the server: the stream's statement was cancelled, not read to
// its end.
func requireStatementEnded(t *testing.T, conn *pgx.Conn, marker string) {
	t.Helper()
	ctx := context.Background()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		var active int
		require.NoError(c, conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()`,
			marker).Scan(&active))
		assert.Zero(c, active, "the statement is cancelled, not read to its end")
	}, 10*time.Second, 20*time.Millisecond)
}
