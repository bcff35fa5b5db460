package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgjson"
	"github.com/jeeves-avionics/dbworker/internal/pgexec/txn"
	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// Interactive transactions. db.tx is an endpoint of the micro service, in
// the queue group: any worker may open a transaction. The transaction then
// lives on that worker's connection, and its requests go to a subject only
// that worker subscribes to, db.tx.<instance>.<id> (<instance> is the micro
// instance id of the process, as `nats micro info` shows it). That subscription is the
// worker's own, outside micro: at Stop, db.tx stops taking begins with the
// other endpoints, while the open transactions keep their subject until
// their callers end them or the drain timeout rolls them back.
//
// A transaction belongs to the first token of the reply subject that began
// it: "_INBOX" for callers on the default inbox prefix, "_INBOX_orders" for a
// user given its own (docs/operations.md). A request from another owner is
// answered as if the transaction did not exist. Its id, 128 random bits,
// is the secret that reaches it.

// txBeginEndpoint returns db.tx, served by micro; txEndpoint the endpoint
// behind the transactions' subjects, served by subscribeTx.
func (w *Worker) txBeginEndpoint() endpoint {
	return endpoint{name: "tx", lane: laneTx, subject: subjects.DBTx,
		description: "interactive transactions: begin here, then send db.execute bodies, commit and rollback to the subject answered",
		handle:      w.handleTxBegin}
}

func (w *Worker) txEndpoint() endpoint {
	return endpoint{name: "tx_request", lane: laneTx, subject: subjects.DBTx + "." + w.txToken() + ".*", handle: w.handleTx}
}

// txToken is this process's token in its transactions' subjects: micro's
// instance id, not WORKER_ID, which two workers may share.
func (w *Worker) txToken() string { return w.txInstance }

// txOwner is who a request comes from: its reply subject's first token.
func txOwner(reply string) string {
	owner, _, _ := strings.Cut(reply, ".")
	return owner
}

func (w *Worker) handleTxBegin(ctx context.Context, r *request) ([]byte, error) {
	var req messages.TxBeginRequest
	if err := r.decode(&req); err != nil {
		return nil, err
	}
	r.op = string(messages.OpBegin)
	if req.Op != "" && req.Op != messages.OpBegin {
		return nil, messages.BadRequest("op", "db.tx takes op \"begin\"; send %q to the subject a begin answers", req.Op)
	}
	if r.reply == "" {
		return nil, messages.BadRequest("reply", "a begin needs a reply subject: send it as a request")
	}
	b := txn.Begin{TxOptions: pgexec.TxOptions{Isolation: req.Isolation, ReadOnly: req.ReadOnly, Deferrable: req.Deferrable}, Owner: txOwner(r.reply)}
	for _, f := range []struct {
		name string
		ms   *int64
		d    *time.Duration
	}{{"idle_timeout_ms", req.IdleTimeoutMS, &b.IdleTimeout}, {"max_lifetime_ms", req.MaxLifetimeMS, &b.Lifetime}} {
		if f.ms == nil {
			continue
		}
		if *f.ms <= 0 {
			return nil, messages.BadRequest(f.name, "%s must be positive", f.name)
		}
		*f.d = time.Duration(min(*f.ms, int64(time.Duration(1<<62)/time.Millisecond))) * time.Millisecond
	}
	opened, err := w.txs.Begin(ctx, b)
	if err != nil {
		return nil, err
	}
	w.log.Debug().Str("tx", opened.ID[:8]).Str("owner", b.Owner).Msg("transaction begun")
	return json.Marshal(messages.TxBeginResult{
		Tx: opened.ID, Subject: w.cfg.Subjects.Tx(w.txToken(), opened.ID), ReadOnly: opened.ReadOnly,
		IdleTimeoutMS: opened.IdleTimeout.Milliseconds(), MaxLifetimeMS: opened.Lifetime.Milliseconds(),
	})
}

// handleTx serves a transaction's subject: a db.execute body, a commit or a
// rollback.
func (w *Worker) handleTx(ctx context.Context, r *request) ([]byte, error) {
	id := r.subject[strings.LastIndexByte(r.subject, '.')+1:]
	var req messages.ExecuteRequest
	if err := r.decode(&req); err != nil {
		return nil, err
	}
	r.op = string(req.Op)
	owner := txOwner(r.reply)
	switch req.Op {
	case messages.OpCommit, messages.OpRollback:
		if req.SQL != "" || req.Query != "" || req.Table != "" || len(req.Statements) > 0 || len(req.Params) > 0 {
			return nil, messages.BadRequest("op", "op %s takes no statement", req.Op)
		}
		commit := req.Op == messages.OpCommit
		if err := w.txs.End(ctx, id, owner, commit); err != nil {
			return nil, err
		}
		return json.Marshal(messages.TxEndResult{Committed: commit, RolledBack: !commit})
	case messages.OpBegin:
		return nil, messages.BadRequest("op", "the transaction is open already; begin another on %s", w.cfg.Subjects.Of(subjects.DBTx))
	}
	return w.execute(ctx, r, func(ctx context.Context, out pgjson.Output) ([]byte, error) {
		return w.txs.Execute(ctx, id, owner, &req, out)
	})
}

// subscribeTx subscribes to the subjects of this worker's transactions.
func (w *Worker) subscribeTx() error {
	ep := w.txEndpoint()
	handle := w.dispatch(ep)
	sub, err := w.deps.NATS.Subscribe(w.cfg.Subjects.Of(ep.subject), func(m *nats.Msg) {
		handle(msgRequest{m})
	})
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", ep.subject, err)
	}
	w.txSub = sub
	return nil
}

// drainTx gives the open transactions until ctx ends to be ended by their
// callers, rolls back the rest, then stops their subscription. It runs once
// db.tx no longer takes begins.
func (w *Worker) drainTx(ctx context.Context) {
	if n := w.txs.Open(); n > 0 {
		w.log.Info().Int("open", n).Msg("waiting for open transactions to end")
	}
	if err := w.txs.Close(ctx); err != nil {
		w.log.Warn().Err(err).Msg("drain timed out with transactions open")
	}
	// Requests that reached the subscription before it closed are still
	// handed to the lanes (and answered TX_GONE), so that the wait for
	// requests in flight counts them.
	if err := w.txSub.Drain(); err != nil {
		if !w.deps.NATS.IsClosed() {
			w.log.Warn().Err(err).Msg("drain the transactions' subscription")
		}
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for w.txSub.IsValid() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// msgRequest serves a message of a plain subscription as a micro request.
type msgRequest struct{ m *nats.Msg }

func (r msgRequest) Respond(data []byte, opts ...micro.RespondOpt) error { return r.m.Respond(data) }
func (r msgRequest) RespondJSON(v any, opts ...micro.RespondOpt) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return r.m.Respond(data)
}
func (r msgRequest) Error(code, description string, data []byte, opts ...micro.RespondOpt) error {
	return r.m.RespondMsg(&nats.Msg{Header: nats.Header{micro.ErrorCodeHeader: {code}, micro.ErrorHeader: {description}}, Data: data})
}
func (r msgRequest) Data() []byte           { return r.m.Data }
func (r msgRequest) Headers() micro.Headers { return micro.Headers(r.m.Header) }
func (r msgRequest) Subject() string        { return r.m.Subject }
func (r msgRequest) Reply() string          { return r.m.Reply }
