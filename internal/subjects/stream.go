package subjects

// DBStream is the root of the subjects on which callers grant credit to
// streamed db.execute answers: <prefix>db.stream.<stream id>, one per stream,
// subscribed by the worker that sends it (docs/protocol.md, "Streamed
// results").
const DBStream = "db.stream"

// StreamCredit is the credit subject of stream id.
func (s Subjects) StreamCredit(id string) string { return s.prefix + DBStream + "." + id }
