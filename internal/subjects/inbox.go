package subjects

import (
	"errors"
	"fmt"
	"strings"
)

// InboxPrefixDefault is nats.go's own inbox prefix: replies come back on
// "_INBOX.<id>". On a broker where each user has an inbox of its own, set a
// connection's prefix to that user's, such as "_INBOX_orders".
const InboxPrefixDefault = "_INBOX"

// ValidateInboxPrefix checks p as a connection's inbox prefix
// (nats.CustomInboxPrefix): one or more subject tokens, without wildcards,
// spaces or a trailing dot, and not a "$" subject, which the server reserves.
func ValidateInboxPrefix(p string) error {
	if p == "" {
		return errors.New("must not be empty")
	}
	if strings.HasPrefix(p, "$") {
		return fmt.Errorf("%q: $ subjects are the server's", p)
	}
	for _, tok := range strings.Split(p, ".") {
		if tok == "" || strings.ContainsAny(tok, " \t\r\n*>") {
			return fmt.Errorf("%q: tokens must be non-empty and free of spaces, '*' and '>', with no trailing dot", p)
		}
	}
	return nil
}

// namespaces are the first tokens of every subject dbworker serves or
// publishes: endpoints, jobs, results and progress.
var namespaces = []string{"db.", "state.", "cache."}

// Owns reports whether subject is one of dbworker's own: under db., state. or
// cache., with or without the prefix. Requests, jobs, results and progress
// all are; no caller's inbox is.
func (s Subjects) Owns(subject string) bool {
	for _, ns := range namespaces {
		if strings.HasPrefix(subject, ns) || s.prefix != "" && strings.HasPrefix(subject, s.prefix) && strings.HasPrefix(subject[len(s.prefix):], ns) {
			return true
		}
	}
	return false
}

// ValidateReplyPrefix checks p as a trusted reply prefix: a string that
// every reply subject the worker answers on must begin with ("_INBOX." or
// "_INBOX_orders."). It must not be able to match a "$" subject or one of
// dbworker's own.
func (s Subjects) ValidateReplyPrefix(p string) error {
	if p == "" {
		return errors.New("must not be empty")
	}
	if strings.ContainsAny(p, " \t\r\n*>") {
		return fmt.Errorf("%q: must be free of spaces, '*' and '>'", p)
	}
	if strings.HasPrefix(p, "$") || strings.HasPrefix(p, ".") {
		return fmt.Errorf("%q: would match $ subjects or invalid ones", p)
	}
	for _, ns := range namespaces {
		for _, own := range []string{ns, s.prefix + ns} {
			if strings.HasPrefix(own, p) || strings.HasPrefix(p, own) {
				return fmt.Errorf("%q: would match dbworker's own subjects (%s>)", p, own)
			}
		}
	}
	return nil
}
