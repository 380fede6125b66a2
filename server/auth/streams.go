package auth

import (
	"sync"

	"github.com/gitstate/gitstate/api"
)

// StreamLimiter bounds the streams (watches) each token holds open at
// once. It implements api.StreamLimiter and is safe for concurrent use.
type StreamLimiter struct {
	max int

	mu   sync.Mutex
	open map[string]int // token id -> streams open; guarded by mu
}

var _ api.StreamLimiter = (*StreamLimiter)(nil)

// NewStreamLimiter returns a limiter of max streams per token; max <= 0
// means no limit.
func NewStreamLimiter(max int) *StreamLimiter {
	return &StreamLimiter{max: max, open: map[string]int{}}
}

// Acquire implements api.StreamLimiter.
func (l *StreamLimiter) Acquire(tokenID string) (release func(), ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max > 0 && l.open[tokenID] >= l.max {
		return nil, false
	}
	l.open[tokenID]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.open[tokenID]--; l.open[tokenID] <= 0 {
				delete(l.open, tokenID)
			}
		})
	}, true
}

// Open returns the number of streams tokenID holds open.
func (l *StreamLimiter) Open(tokenID string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open[tokenID]
}
