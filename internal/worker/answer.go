package worker

import (
	"regexp"

	"github.com/jeeves-avionics/dbworker/internal/pgexec/pgerr"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// The answer path (serve) is the one place a request's error becomes the
// protocol's: the endpoint's asError maps it, the caller gets the mapped
// error's fields, and the log line of a 5xx answer gets its cause too.

// protocolError maps err, a handler's error, to the protocol with the
// endpoint's asError (pgerr.AsError when it has none). The answer keeps err
// as its cause.
func (ep endpoint) protocolError(err error) *messages.Error {
	if ep.asError != nil {
		return ep.asError(err)
	}
	return pgerr.AsError(err)
}

// logCause is what the log line of a failed answer says went wrong: the
// cause of an INTERNAL or UNAVAILABLE answer (which tells the caller only
// that something failed), with passwords replaced; nil for other answers,
// whose message already says it.
func logCause(me *messages.Error) error {
	cause := me.Unwrap()
	if cause == nil || me.Status < 500 {
		return nil
	}
	return redactedError{cause}
}

// redactedError is an error as the log shows it, passwords replaced. pgx
// and go-redis keep passwords out of their errors (pgconn names only the user
// and database, go-redis the address); this keeps one a cause picked up
// elsewhere out of the log.
type redactedError struct{ err error }

func (e redactedError) Error() string { return redact(e.err.Error()) }
func (e redactedError) Unwrap() error { return e.err }

var (
	// urlPassword is the password of a URL: scheme://user:password@host.
	urlPassword = regexp.MustCompile(`(\w://[^:/?#@\s]*:)[^@\s]*@`)
	// kvPassword is a password setting: password=x, password='x y' (libpq
	// key=value strings), ?password=x (URL parameters).
	kvPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('[^']*'|[^\s&]+)`)
)

// redact replaces the passwords in s with xxxxx.
func redact(s string) string {
	s = urlPassword.ReplaceAllString(s, "${1}xxxxx@")
	return kvPassword.ReplaceAllString(s, "${1}xxxxx")
}
