package state_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jeeves-avionics/dbworker/internal/state"
	"github.com/jeeves-avionics/dbworker/internal/state/memory"
	"github.com/jeeves-avionics/dbworker/internal/testenv"
	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

func TestMain(m *testing.M) { testenv.VerifyNoLeaks(m) }

func TestRegistry(t *testing.T) {
	r := state.NewRegistry()
	require.Empty(t, r.Names())
	r.Register("memory", memory.Factory)
	r.Register("custom", func(context.Context, state.Options) (state.Backend, error) { return nil, errors.New("boom") })
	require.Equal(t, []string{"custom", "memory"}, r.Names())

	b, err := r.Open(context.Background(), "memory", state.Options{})
	require.NoError(t, err)
	require.Equal(t, "memory", b.Name())
	require.NoError(t, b.Close())

	_, err = r.Open(context.Background(), "custom", state.Options{})
	require.ErrorContains(t, err, "boom")
	_, err = r.Open(context.Background(), "nope", state.Options{})
	require.ErrorContains(t, err, "not registered")
}

func TestChoose(t *testing.T) {
	for _, tc := range []struct{ mode, backend, want string }{
		{"single_node", "", "memory"},
		{"distributed", "", "redis"},
		{"single_node", "redis", "redis"},
		{"distributed", "redis", "redis"},
	} {
		got, err := state.Choose(tc.mode, tc.backend)
		require.NoError(t, err)
		require.Equal(t, tc.want, got)
	}
	_, err := state.Choose("distributed", "memory")
	require.ErrorContains(t, err, "distributed")
	_, err = state.Choose("cluster", "")
	require.Error(t, err)
}

func TestPackVector(t *testing.T) {
	in := []float64{0, 1.5, -2.25, math.SmallestNonzeroFloat32, math.MaxFloat32}
	b, err := state.PackVector(in)
	require.NoError(t, err)
	require.Len(t, b, 4*len(in), "4 bytes a dimension")
	out, err := state.UnpackVector(b)
	require.NoError(t, err)
	for i := range in {
		require.Equal(t, float32(in[i]), out[i])
	}
	for _, bad := range [][]float64{nil, {math.NaN()}, {math.Inf(1)}, {1e39}, make([]float64, state.MaxVectorDims+1)} {
		_, err := state.PackVector(bad)
		var me *messages.Error
		require.ErrorAs(t, err, &me)
		require.Equal(t, messages.CodeBadRequest, me.Code)
	}
	_, err = state.UnpackVector([]byte{1, 2, 3})
	require.Error(t, err)
}

func TestEmbeddingKey(t *testing.T) {
	// SHA-256 of "m" NUL "hello".
	require.Equal(t, "ceeefc2ffbf7e824321da8464fe34abee4df8ad14b6349190542d95d327911da", state.EmbeddingKey("m", "hello"))
	require.NotEqual(t, state.EmbeddingKey("ab", "c"), state.EmbeddingKey("a", "bc"), "the NUL keeps model and text apart")
}

func TestAsError(t *testing.T) {
	for err, code := range map[error]messages.Code{
		state.ErrUnavailable:     messages.CodeUnavailable,
		state.ErrNotInteger:      messages.CodeBadRequest,
		context.DeadlineExceeded: messages.CodeTimeout,
		errors.New("weird"):      messages.CodeInternal,
	} {
		me := state.AsError(err)
		require.Equal(t, code, me.Code)
		require.ErrorIs(t, me, err, "the backend's error is the answer's cause")
	}
	require.Nil(t, state.AsError(nil))
}

// TestAsErrorKeepsCause: an internal failure answers a generic message and
// keeps the backend's error, with what was being done, as its cause; the
// cause is never marshalled.
func TestAsErrorKeepsCause(t *testing.T) {
	cause := fmt.Errorf("kv get %q: %w", "k", errors.New("CROSSSLOT Keys in request don't hash to the same slot"))
	me := state.AsError(cause)
	require.Equal(t, messages.CodeInternal, me.Code)
	require.Equal(t, "state backend error", me.Message)
	require.Equal(t, cause, errors.Unwrap(me))
	body, err := json.Marshal(messages.ErrorBody{Error: me})
	require.NoError(t, err)
	require.JSONEq(t, `{"error":{"code":"INTERNAL","status":500,"message":"state backend error"}}`, string(body))

	down := state.AsError(fmt.Errorf("kv get: %w: %w", state.ErrUnavailable, errors.New("dial tcp 127.0.0.1:1: connect: connection refused")))
	require.Equal(t, messages.CodeUnavailable, down.Code)
	require.ErrorContains(t, errors.Unwrap(down), "connection refused")

	validation := messages.BadRequest("key", "key is required")
	require.Same(t, validation, state.AsError(fmt.Errorf("kv: %w", validation)), "a protocol error passes as it is")
}

// TestEmbeddingAnswerEncoding: the answer built from cached bytes is what
// encoding/json makes of the same vectors, and the bound is kept.
func TestEmbeddingAnswerEncoding(t *testing.T) {
	mem := memory.New(memory.Options{})
	t.Cleanup(func() { mem.Close() })
	s, err := state.NewService(mem, state.ServiceConfig{})
	require.NoError(t, err)
	ctx := context.Background()
	vec := []float64{0, 1, -1, 0.5, 3e-8, -1.25e-7, 1e21, 3.4e38, -2.5e25, 1.0 / 3, 123456.789, 1e-6, 9.99e-7}
	for i := 0; i < 200; i++ {
		vec = append(vec, math.Sin(float64(i))*math.Pow(10, float64(i%40-20)))
	}
	_, err = s.Embedding(ctx, &messages.EmbeddingRequest{Op: messages.OpMSet, Items: []messages.EmbeddingItem{{Hash: "a", Vector: vec}, {Hash: "b", Vector: vec[:3]}}})
	require.NoError(t, err)
	for _, req := range []*messages.EmbeddingRequest{
		{Op: messages.OpGet, Hash: "a"},
		{Op: messages.OpGet, Hash: "nope"},
		{Op: messages.OpMGet, Hashes: []string{"b", "nope", "a"}},
		{Op: messages.OpGet, Hash: "a", Encoding: messages.EncodingF32LE},
		{Op: messages.OpGet, Hash: "nope", Encoding: messages.EncodingF32LE},
		{Op: messages.OpMGet, Hashes: []string{"b", "nope", "a"}, Encoding: messages.EncodingF32LE},
		{Op: messages.OpMGet, Hashes: []string{"nope"}, Encoding: messages.EncodingF32LE},
	} {
		res, err := s.Embedding(ctx, req)
		require.NoError(t, err)
		want, err := json.Marshal(res)
		require.NoError(t, err)
		got, err := s.EmbeddingAnswer(ctx, req, 1<<20)
		require.NoError(t, err)
		require.Equal(t, string(want), string(got))
		_, err = s.EmbeddingAnswer(ctx, req, len(want)-1)
		if req.Hash != "nope" {
			var me *messages.Error
			require.ErrorAs(t, err, &me, "one byte under the answer")
			require.Equal(t, messages.CodeTooLarge, me.Code)
		}
	}
}

// TestNewServiceRefusesNegativeValues: a bad value is an error, not a
// silent default.
func TestNewServiceRefusesNegativeValues(t *testing.T) {
	mem := memory.New(memory.Options{})
	t.Cleanup(func() { mem.Close() })
	neg := -time.Second
	for _, cfg := range []state.ServiceConfig{{LockTTL: -1}, {MaxWait: -1}, {MaxWaiters: -1}, {EmbeddingTTL: &neg}} {
		_, err := state.NewService(mem, cfg)
		require.Error(t, err, "%+v", cfg)
	}
	_, err := state.NewService(nil, state.ServiceConfig{})
	require.Error(t, err)
}
