package sqltext

import (
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
// one that slipped through (pgexec's session).

// txControlKeywords begin or end a transaction, or a subtransaction.
var txControlKeywords = map[string]bool{
	"BEGIN": true, "START": true, "COMMIT": true, "END": true, "ROLLBACK": true, "ABORT": true,
	"SAVEPOINT": true, "RELEASE": true,
}

// TxControl reports whether st begins or ends a transaction.
func (st Statement) TxControl() bool {
	return txControlKeywords[st.Keyword] || st.Keyword == "PREPARE" && st.Keyword2 == "TRANSACTION"
}

// CheckTxControl refuses a transaction-control statement, and COPY, whose
// rows would travel outside the answer (to or from the client) or to server
// files; field names the request field that holds it.
func CheckTxControl(field string, st Statement) error {
	if st.Keyword == "COPY" {
		return messages.BadRequest(field, "COPY is not supported over db.execute: select the rows, or insert them with op many")
	}
	if !st.TxControl() {
		return nil
	}
	kw := st.Keyword
	if kw == "PREPARE" {
		kw = "PREPARE TRANSACTION"
	}
	return messages.BadRequest(field, "%s is not allowed: the worker runs each request in a transaction of its own (use op tx for several statements in one transaction)", kw)
}

// Check checks that sc holds statements (one unless multi) and
// none that begins or ends a transaction.
func Check(field string, sc Scanned, multi bool) error {
	if len(sc.Statements) == 0 {
		return messages.BadRequest(field, "sql holds no statement")
	}
	if !multi && len(sc.Statements) > 1 {
		return messages.BadRequest(field, "sql holds %d statements; op query takes one (use op script or tx)", len(sc.Statements))
	}
	for _, st := range sc.Statements {
		if err := CheckTxControl(field, st); err != nil {
			return err
		}
	}
	return nil
}
