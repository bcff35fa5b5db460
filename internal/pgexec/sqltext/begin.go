package sqltext

import "github.com/jeeves-avionics/dbworker/pkg/messages"

// Begin is the BEGIN of a transaction with an isolation level
// (messages.Isolation*, or "" for the database's default), READ ONLY or
// READ WRITE, and DEFERRABLE or not.
func Begin(isolation string, readOnly, deferrable bool) (string, error) {
	sql := "BEGIN"
	switch isolation {
	case "":
	case messages.IsolationReadCommitted:
		sql += " ISOLATION LEVEL READ COMMITTED"
	case messages.IsolationRepeatableRead:
		sql += " ISOLATION LEVEL REPEATABLE READ"
	case messages.IsolationSerializable:
		sql += " ISOLATION LEVEL SERIALIZABLE"
	default:
		return "", messages.BadRequest("isolation", "isolation must be read_committed, repeatable_read or serializable, got %q", isolation)
	}
	if readOnly {
		sql += " READ ONLY"
	} else {
		sql += " READ WRITE"
	}
	if deferrable {
		sql += " DEFERRABLE"
	}
	return sql, nil
}
