package worker

import (
	"sync"
	"time"

	"github.com/jeeves-avionics/dbworker/pkg/messages"
)

// stats counts answers per endpoint for `nats micro stats`. micro's own
// counters see a request only until it is handed to the pool, so its
// processing time is the hand-off and it never sees an error; these are the
// real figures, in each endpoint's "data".
type stats struct {
	mu        sync.Mutex
	endpoints map[string]*endpointStats
}

type endpointStats struct {
	Answered     int64            `json:"answered"`
	Errors       int64            `json:"errors"`
	ErrorsByCode map[string]int64 `json:"errors_by_code,omitempty"`
	TotalMS      float64          `json:"total_ms"`
	AverageMS    float64          `json:"average_ms"`
	LastError    string           `json:"last_error,omitempty"`
}

func (s *stats) record(endpoint string, e *messages.Error, took time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.endpoints == nil {
		s.endpoints = make(map[string]*endpointStats)
	}
	st, ok := s.endpoints[endpoint]
	if !ok {
		st = &endpointStats{}
		s.endpoints[endpoint] = st
	}
	st.Answered++
	st.TotalMS += float64(took.Microseconds()) / 1000
	st.AverageMS = st.TotalMS / float64(st.Answered)
	if e != nil {
		st.Errors++
		if st.ErrorsByCode == nil {
			st.ErrorsByCode = make(map[string]int64)
		}
		st.ErrorsByCode[string(e.Code)]++
		st.LastError = e.Error()
	}
}

func (s *stats) of(endpoint string) endpointStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.endpoints[endpoint]
	if !ok {
		return endpointStats{}
	}
	cp := *st
	cp.ErrorsByCode = make(map[string]int64, len(st.ErrorsByCode))
	for k, v := range st.ErrorsByCode {
		cp.ErrorsByCode[k] = v
	}
	return cp
}
