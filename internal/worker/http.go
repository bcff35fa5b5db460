package worker

import (
	"context"
	"errors"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Ready reports whether the worker can serve: NATS connected, its endpoints
// subscribed, and the database answering.
func (w *Worker) Ready(ctx context.Context) error {
	switch {
	case w.svc == nil || w.svc.Stopped():
		return errors.New("endpoints not subscribed")
	case !w.deps.NATS.IsConnected():
		return errors.New("nats not connected")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	// The health check's own connection: a pool busy with slow queries does
	// not make the worker unready.
	if err := w.pgCheck.ping(ctx); err != nil {
		return errors.New("database unreachable")
	}
	return nil
}

// Handler serves /healthz (the process is alive), /readyz (Ready) and, when
// the worker has metrics, /metrics for Prometheus.
func (w *Worker) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = rw.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := w.Ready(r.Context()); err != nil {
			rw.WriteHeader(http.StatusServiceUnavailable)
			_, _ = rw.Write([]byte(err.Error() + "\n"))
			return
		}
		_, _ = rw.Write([]byte("ready\n"))
	})
	if m := w.cfg.Metrics; m != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry}))
	}
	if w.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}
