// Exercise 13 · Rate limiting (限流) as middleware (中间件), lab 19.
//
// ReverseProxy has no rate limit of its own. It is an http.Handler, so a
// limit is another http.Handler wrapped around it: it answers the request
// itself when the client is over the limit, and hands the request on to the
// proxy otherwise.
//
// The limit is a token bucket: it holds at most 5 tokens and gains 5 per
// second; a request takes one; with none left it gets 429 Too Many Requests
// and a Retry-After header saying how many seconds to wait. One bucket for
// all clients.
//
// The contract with `lab verify` (any language can keep it):
//   - listen on $LISTEN (host:port; $PORT holds the port alone);
//   - the real server is the URL in $UPSTREAM.
//
// Run it:    LISTEN=127.0.0.1:2002 UPSTREAM=http://127.0.0.1:2003 go run .
// Verify it: lab verify 13
package main

import (
	"log"
	"math"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"
)

// PerSecond is the limit: requests per second, and the most let through at once.
const PerSecond = 5

// TokenBucket holds up to burst tokens and gains rate tokens per second.
type TokenBucket struct {
	mu     sync.Mutex // requests arrive on many goroutines at once
	rate   float64    // tokens gained per second
	burst  float64    // the most the bucket holds
	tokens float64    // tokens in the bucket at time last
	last   time.Time
}

// NewTokenBucket starts full: a quiet client may send a burst at once.
func NewTokenBucket(perSecond int) *TokenBucket {
	return &TokenBucket{
		rate:   float64(perSecond),
		burst:  float64(perSecond),
		tokens: float64(perSecond),
		last:   time.Now(),
	}
}

// Take takes a token if there is one; if not, it says how long until there
// will be one.
func (b *TokenBucket) Take() (ok bool, wait time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	// Refill: the tokens earned since the last call, never more than burst.
	// Counting them when asked needs no timer and no goroutine.
	b.tokens = math.Min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
}

// RateLimit wraps next: over the limit the wrapper answers 429 itself, and
// next never sees the request.
func RateLimit(next http.Handler, bucket *TokenBucket) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok, wait := bucket.Take()
		if !ok {
			// Retry-After counts whole seconds: round up, so the client does
			// not come back before a token is there.
			seconds := int(math.Ceil(wait.Seconds()))
			if seconds < 1 {
				seconds = 1
			}
			w.Header().Set("Retry-After", strconv.Itoa(seconds))
			http.Error(w, "429 too many requests: try again later", http.StatusTooManyRequests)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func main() {
	target, err := url.Parse(os.Getenv("UPSTREAM"))
	if err != nil || target.Host == "" {
		log.Fatalf("$UPSTREAM must be a URL like http://127.0.0.1:2003, not %q", os.Getenv("UPSTREAM"))
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	// The chain, from the inside out: the proxy, then the limit around it.
	handler := RateLimit(proxy, NewTokenBucket(PerSecond))
	log.Printf("proxying to %s at most %d requests a second, listening on %s", target, PerSecond, os.Getenv("LISTEN"))
	log.Fatal(http.ListenAndServe(os.Getenv("LISTEN"), handler))
}
