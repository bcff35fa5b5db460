package messages

// Interactive transactions (db.tx). A caller sends TxBeginRequest to db.tx
// and gets TxBeginResult; to its Subject it then sends ExecuteRequest bodies
// (query, one, many, insert, update), run inside the transaction, and ends
// it with {"op":"commit"} or {"op":"rollback"}, answered by TxEndResult.

// Ops of db.tx and of a transaction's subject.
const (
	OpBegin    Op = "begin"
	OpCommit   Op = "commit"
	OpRollback Op = "rollback"
)

// Isolation levels of TxBeginRequest.Isolation and ExecuteRequest.Isolation
// ("" is the database's default, normally read committed).
const (
	IsolationReadCommitted  = "read_committed"
	IsolationRepeatableRead = "repeatable_read"
	IsolationSerializable   = "serializable"
)

// TxBeginRequest opens an interactive transaction.
type TxBeginRequest struct {
	// Op is "begin" (the default).
	Op         Op     `json:"op,omitempty"`
	Isolation  string `json:"isolation,omitempty"`
	ReadOnly   bool   `json:"read_only,omitempty"`
	Deferrable bool   `json:"deferrable,omitempty"`
	// IdleTimeoutMS rolls the transaction back after this long without a
	// request (default and cap are the worker's).
	IdleTimeoutMS *int64 `json:"idle_timeout_ms,omitempty"`
	// MaxLifetimeMS rolls it back this long after begin, a request running
	// or not (default and cap are the worker's).
	MaxLifetimeMS *int64 `json:"max_lifetime_ms,omitempty"`
	// TimeoutMS bounds the begin itself, as on every subject.
	TimeoutMS *int `json:"timeout_ms,omitempty"`
}

// TxBeginResult answers a begin.
type TxBeginResult struct {
	// Tx is the transaction's id: a secret, like a lock's lease.
	Tx string `json:"tx"`
	// Subject reaches the worker that holds the transaction.
	Subject       string `json:"subject"`
	ReadOnly      bool   `json:"read_only"`
	IdleTimeoutMS int64  `json:"idle_timeout_ms"`
	MaxLifetimeMS int64  `json:"max_lifetime_ms"`
}

// TxEndResult answers a commit ({"committed":true}) or a rollback
// ({"rolled_back":true}).
type TxEndResult struct {
	Committed  bool `json:"committed,omitempty"`
	RolledBack bool `json:"rolled_back,omitempty"`
}

// TxEndRequest ends a transaction: {"op":"commit"} or {"op":"rollback"},
// sent to its subject.
type TxEndRequest struct {
	Op Op `json:"op"`
}
