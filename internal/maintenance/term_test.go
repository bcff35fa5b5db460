package maintenance_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/maintenance"
	"github.com/jeeves-avionics/dbworker/internal/natsversion"
	"github.com/jeeves-avionics/dbworker/internal/pgexec"
	"github.com/jeeves-avionics/dbworker/internal/state/memory"
	"github.com/jeeves-avionics/dbworker/internal/subjects"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
)

// TestTerminationFitsTheServer: a job that can never run is terminated, not
// redelivered every AckWait, on the embedded server (the module's, which
// takes the termination's reason) and on the external one `make services`
// runs: Debian's 2.9.10, which ignores a termination with a reason, so it
// must get a plain one.
func TestTerminationFitsTheServer(t *testing.T) {
	t.Parallel()
	for name, connect := range map[string]func(t *testing.T) *nats.Conn{
		"embedded": func(t *testing.T) *nats.Conn { return testenv.Connect(t, testenv.NewNATS(t)) },
		"external": func(t *testing.T) *nats.Conn { return testenv.ConnectExternalNATS(t) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			nc := connect(t)
			sub, err := subjects.New("t" + strings.ToLower(nuid.Next()[:10]) + ".")
			require.NoError(t, err)
			jobs := maintenance.StreamName(sub, maintenance.StreamJobs)
			testenv.DeleteStreamsOnCleanup(t, nc, jobs, maintenance.StreamName(sub, maintenance.StreamStats),
				maintenance.StreamName(sub, maintenance.StreamVacuum))

			pg := testenv.NewPostgres(t)
			ctx := context.Background()
			cl, err := pgexec.Connect(ctx, pgexec.Config{DSN: pg.URL, MaxConns: 2})
			require.NoError(t, err)
			t.Cleanup(cl.Close)
			mem := memory.New(memory.Options{})
			t.Cleanup(func() { mem.Close() })
			s, err := maintenance.New(maintenance.Config{WorkerID: "term", Subjects: sub, Schemas: []string{pg.Schema}, AckWait: time.Second}, nc, cl, mem)
			require.NoError(t, err)
			require.NoError(t, s.Start(ctx))
			t.Cleanup(func() { require.NoError(t, s.Stop(context.Background())) })

			advisories, err := nc.SubscribeSync("$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED." + jobs + "." + maintenance.ConsumerJobs)
			require.NoError(t, err)
			js, err := jetstream.New(nc)
			require.NoError(t, err)
			// A table that does not exist: the run fails for good.
			_, err = js.Publish(ctx, sub.Of(subjects.DBVacuumJobs), []byte(`{"table":"no_such_table"}`))
			require.NoError(t, err)

			msg, err := advisories.NextMsg(10 * time.Second) // ten AckWaits: a redelivered job is never terminated
			require.NoError(t, err, "no MSG_TERMINATED advisory: the job was not terminated")
			var adv struct {
				Reason string `json:"reason"`
			}
			require.NoError(t, json.Unmarshal(msg.Data, &adv))
			if natsversion.Supports(nc, natsversion.TermReason) {
				require.Contains(t, adv.Reason, "does not exist", "the reason reaches the advisory")
			} else {
				require.Empty(t, adv.Reason, "nats-server %s takes no reason", nc.ConnectedServerVersion())
			}
			cons, err := js.Consumer(ctx, jobs, maintenance.ConsumerJobs)
			require.NoError(t, err)
			info, err := cons.Info(ctx)
			require.NoError(t, err)
			require.Zero(t, info.NumRedelivered, "terminated on its first delivery")
			require.Zero(t, info.NumAckPending)
		})
	}
}
