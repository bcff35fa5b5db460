package pgexec

import (
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/jeeves-avionics/dbworker/internal/pgexec/sqltext"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// Every request runs in a transaction the worker opens and ends (or in one
// autocommitted statement), so a statement that begins or ends a transaction
// would break the request's promise: a tx that half-commits, a read-only
// transaction ended early. Such statements are refused before anything runs.
//
// The refusal reads only a statement's first word (and the second, for
// PREPARE TRANSACTION). That is all the lexer decides here: the extended
// protocol makes the server refuse a text holding more than one statement,
// and the transaction status the server reports after each statement catches
// one that slipped through (session.go).

// txControlKeywords begin or end a transaction, or a subtransaction.
var txControlKeywords = map[string]bool{
	"BEGIN": true, "START": true, "COMMIT": true, "END": true, "ROLLBACK": true, "ABORT": true,
	"SAVEPOINT": true, "RELEASE": true,
}

// isTxControl reports whether st begins or ends a transaction.
func isTxControl(st sqltext.Statement) bool {
	return txControlKeywords[st.Keyword] || st.Keyword == "PREPARE" && st.Keyword2 == "TRANSACTION"
}

// checkTxControl refuses a transaction-control statement, and COPY, whose
// rows would travel outside the answer (to or from the client) or to server
// files; field names the request field that holds it.
func checkTxControl(field string, st sqltext.Statement) error {
	if st.Keyword == "COPY" {
		return messages.BadRequest(field, "COPY is not supported over db.execute: select the rows, or insert them with op many")
	}
	if !isTxControl(st) {
		return nil
	}
	kw := st.Keyword
	if kw == "PREPARE" {
		kw = "PREPARE TRANSACTION"
	}
	return messages.BadRequest(field, "%s is not allowed: the worker runs each request in a transaction of its own (use op tx for several statements in one transaction)", kw)
}

// writtenRows is the number of rows a statement wrote: the count of INSERT,
// UPDATE, DELETE and MERGE, and 0 for anything else (a SELECT's count is rows
// read, even with FOR UPDATE).
func writtenRows(tag pgconn.CommandTag) int64 {
	if tag.Insert() || tag.Update() || tag.Delete() || strings.HasPrefix(tag.String(), "MERGE ") {
		return tag.RowsAffected()
	}
	return 0
}
