package maintenance

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Readers of DB_VACUUM and DB_STATS (the publisher, ops) get single messages
// only ($JS.API.STREAM.MSG.GET, $JS.API.DIRECT.GET), never a consumer: a
// consumer's creator chooses where its messages are delivered, and the
// server delivers as the account, past the creator's own publish rights.
// These read stored results with single-message gets, which nats-server 2.9
// and later answer alike.

// ResultsAfter returns the bodies of the messages on filter in stream from
// sequence from on, oldest first, and the sequence to read from next time.
// It reads at most limit messages (all when limit is 0).
func ResultsAfter(ctx context.Context, js jetstream.JetStream, stream, filter string, from uint64, limit int) ([][]byte, uint64, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, from, fmt.Errorf("stream %s: %w", stream, err)
	}
	return resultsAfter(ctx, s, filter, max(from, 1), 0, limit)
}

// resultsAfter reads the messages on filter from sequence from on, up to
// sequence until (0: no bound), at most limit of them (0: no bound).
func resultsAfter(ctx context.Context, s jetstream.Stream, filter string, from, until uint64, limit int) ([][]byte, uint64, error) {
	var out [][]byte
	for limit == 0 || len(out) < limit {
		m, err := s.GetMsg(ctx, from, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return out, from, fmt.Errorf("read %s from #%d: %w", filter, from, err)
		}
		if until != 0 && m.Sequence > until {
			break
		}
		out = append(out, m.Data)
		from = m.Sequence + 1
	}
	return out, from, nil
}

// LastResults returns the bodies of the last n messages on filter in stream,
// oldest first. It reads backwards in windows that double, so its cost is
// about the matching messages near the end, not the stream's length.
func LastResults(ctx context.Context, js jetstream.JetStream, stream, filter string, n int) ([][]byte, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	st := s.CachedInfo().State
	if st.Msgs == 0 || n < 1 {
		return nil, nil
	}
	var out [][]byte
	end, window := st.LastSeq, uint64(max(4*n, 64))
	for len(out) < n {
		start := st.FirstSeq
		if end >= st.FirstSeq+window {
			start = end - window + 1
		}
		got, _, err := resultsAfter(ctx, s, filter, start, end, 0)
		if err != nil {
			return nil, err
		}
		out = append(got, out...)
		if start <= st.FirstSeq {
			break
		}
		end, window = start-1, 2*window
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out, nil
}
