package messages

import "encoding/json"

// Headers of a streamed answer (docs/protocol.md, "Streamed results").
const (
	// HeaderStreamWindow, on a request, says that the caller reads streamed
	// answers, and how many data messages it takes ahead of its credit: a
	// whole number from 1 (the worker lowers a larger one to its maximum).
	// On the first message of a stream it is the window in force.
	HeaderStreamWindow = "Stream-Window"
	// HeaderStreamID names the stream on each of its messages.
	HeaderStreamID = "Stream-Id"
	// HeaderStreamSeq numbers the messages of a stream from 1, the last
	// included: a gap is a lost message.
	HeaderStreamSeq = "Stream-Seq"
	// HeaderStreamCredit, on the first message, is the subject the caller
	// sends StreamCredit to.
	HeaderStreamCredit = "Stream-Credit"
	// HeaderStreamEnd marks the last message ("true"): the totals
	// (StreamEnd), or the error that ended the stream.
	HeaderStreamEnd = "Stream-End"
)

// StreamWindowMax is the largest window a worker grants.
const StreamWindowMax = 16

// StreamChunk is the body of a data message of a stream: rows, and the
// columns in the first message only.
type StreamChunk struct {
	Columns []Column        `json:"columns,omitempty"`
	Rows    json.RawMessage `json:"rows"`
}

// StreamEnd is the body of the last message of a stream that succeeded.
type StreamEnd struct {
	// RowCount is the number of rows the stream carried.
	RowCount     int64  `json:"row_count"`
	RowsAffected int64  `json:"rows_affected"`
	Command      string `json:"command"`
	// Truncated says that rows past the request's max_rows were cut.
	Truncated bool `json:"truncated"`
}

// StreamCredit is what a caller sends to a stream's credit subject: Ack says
// that it has read every data message up to that sequence number, so the
// worker may send up to Ack + window; Cancel stops the stream (the worker
// sends nothing more).
type StreamCredit struct {
	Ack    int64 `json:"ack,omitempty"`
	Cancel bool  `json:"cancel,omitempty"`
}
