package worker

import (
	"errors"
	"regexp"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// refusedLogEvery spaces the log lines about answers the broker refused: a
// caller can send requests with such reply subjects as fast as it likes.
const refusedLogEvery = 10 * time.Second

// publishRefusedRe finds the subject in a publish permissions violation
// ("nats: permissions violation: Permissions Violation for Publish to "x"").
var publishRefusedRe = regexp.MustCompile(`(?i)for publish to "([^"]+)"`)

// refusedPublish returns the subject of a publish the broker refused, when
// err reports one.
func refusedPublish(err error) (string, bool) {
	if !errors.Is(err, nats.ErrPermissionViolation) {
		return "", false
	}
	m := publishRefusedRe.FindStringSubmatch(err.Error())
	if m == nil {
		return "", false
	}
	return m[1], true
}

// sampler lets one event through per interval and counts the rest.
type sampler struct {
	mu         sync.Mutex
	every      time.Duration
	last       time.Time
	suppressed int
}

// allow reports whether an event at now may be logged, and how many were
// suppressed since the last one that was.
func (s *sampler) allow(now time.Time) (bool, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.last.IsZero() && now.Sub(s.last) < s.every {
		s.suppressed++
		return false, 0
	}
	n := s.suppressed
	s.last, s.suppressed = now, 0
	return true, n
}

// watchRefusals counts the answers the broker refuses: a reply subject that
// passed the worker's check (TrustedReplyPrefixes) but that the worker's NATS
// user may not publish to. Each is counted in the replies-dropped metric as
// broker_refused and logged at most once per refusedLogEvery; any other
// asynchronous error goes to the handler the connection had. It returns a
// function that puts that handler back.
func (w *Worker) watchRefusals() (restore func()) {
	nc := w.deps.NATS
	prev := nc.ErrorHandler()
	log := &sampler{every: refusedLogEvery}
	shared := w.deps.JetStream == nc
	nc.SetErrorHandler(func(c *nats.Conn, sub *nats.Subscription, err error) {
		subject, ok := refusedPublish(err)
		if !ok || shared && (subject[0] == '$' || w.cfg.Subjects.Owns(subject)) {
			// Not an answer: the worker's own publishes (results, progress,
			// JetStream) when it serves and stores on one connection. On a
			// serving connection of its own, every publish is an answer.
			if prev != nil {
				prev(c, sub, err)
			}
			return
		}
		w.cfg.Metrics.ReplyDropped(replyRefused)
		if ok, suppressed := log.allow(time.Now()); ok {
			w.log.Warn().Str("reply", subject).Str("reason", replyRefused).Int("suppressed", suppressed).
				Msg("answer refused by the broker: the reply subject passed the trusted prefixes, but this NATS user may not publish there")
		}
	})
	return func() { nc.SetErrorHandler(prev) }
}
