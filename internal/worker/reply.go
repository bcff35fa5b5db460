package worker

import (
	"strings"

	"github.com/nats-io/nats.go/micro"

	"github.com/jeeves-avionics/dbworker/internal/subjects"
)

// TrustedReplyPrefixesDefault are the reply prefixes a worker answers when
// Config.TrustedReplyPrefixes is empty: nats.go's default inboxes (_INBOX.)
// and per-user ones such as _INBOX_orders. (a prefix that does not end in a
// dot stands for the inboxes <prefix><name>., see trustedBy).
var TrustedReplyPrefixesDefault = []string{"_INBOX.", "_INBOX_"}

// Reasons an answer is dropped, the label of the replies-dropped metric.
const (
	replyMalformed = "malformed"   // wildcards, spaces or empty tokens
	replySystem    = "system"      // a $ subject: $JS, $SYS, $SRV, $KV...
	replyOwn       = "own_subject" // one of the worker's own: endpoints, jobs, results, progress
	replyUntrusted = "untrusted"   // under no trusted prefix
	// replyRefused: the worker sent the answer and the broker refused it (a
	// permissions violation for publish on the serving connection).
	replyRefused = "broker_refused"
)

// replyDropReason says why the worker must not answer on reply, or "" when
// it may. A reply is answered only when it begins with one of trusted and
// has something after it; whatever trusted says, the worker never answers on
// a $ subject, one of its own (so an answer cannot become a job, a stored
// result or another request) or the subject the request came on.
func replyDropReason(reply, requestSubject string, trusted []string, subs subjects.Subjects) string {
	if !literalSubject(reply) {
		return replyMalformed
	}
	if reply[0] == '$' {
		return replySystem
	}
	if reply == requestSubject || subs.Owns(reply) {
		return replyOwn
	}
	for _, p := range trusted {
		if trustedBy(reply, p) {
			return ""
		}
	}
	return replyUntrusted
}

// trustedBy reports whether reply is under the trusted prefix p. A prefix
// ending in a dot ("_INBOX.", "_INBOX_orders.") takes any reply that begins
// with it and has more after it. One that ends mid-token ("_INBOX_") stands
// for a family of inboxes: reply must be p, then the rest of that token (the
// user's name), a dot and more ("_INBOX_orders.x", never "_INBOX_orders"),
// the shape every inbox has.
func trustedBy(reply, p string) bool {
	if len(reply) <= len(p) || !strings.HasPrefix(reply, p) {
		return false
	}
	if strings.HasSuffix(p, ".") {
		return true
	}
	rest := reply[len(p):]
	dot := strings.IndexByte(rest, '.')
	return dot >= 0 && dot < len(rest)-1
}

// literalSubject reports whether s is a subject one can publish to: tokens
// that are non-empty, without wildcards or white space.
func literalSubject(s string) bool {
	if s == "" {
		return false
	}
	start := 0 // of the current token
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '.' {
			switch s[i] {
			case ' ', '\t', '\r', '\n':
				return false
			}
			continue
		}
		if tok := s[start:i]; tok == "" || tok == "*" || tok == ">" {
			return false
		}
		start = i + 1
	}
	return true
}

// mayAnswer reports whether req's answer may be published: there is a reply
// subject and the reply policy allows it. A refused one is logged and
// counted; the request itself was still handled, as one sent without a
// reply subject would be.
func (w *Worker) mayAnswer(req micro.Request, requestID string) bool {
	reply := req.Reply()
	if reply == "" {
		return false
	}
	trusted := w.cfg.TrustedReplyPrefixes
	if len(trusted) == 0 {
		trusted = TrustedReplyPrefixesDefault
	}
	reason := replyDropReason(reply, req.Subject(), trusted, w.cfg.Subjects)
	if reason == "" {
		return true
	}
	w.cfg.Metrics.ReplyDropped(reason)
	w.log.Warn().Str("subject", w.cfg.Subjects.Redact(req.Subject())).Str("reply", reply).Str("reason", reason).
		Str("request_id", requestID).Msg("answer dropped: reply subject not trusted")
	return false
}
