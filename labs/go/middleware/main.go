// Command middleware wraps a ReverseProxy in middleware, the Go way: each
// policy is an http.Handler that takes the next handler and decides whether,
// and how, to call it.
//
// Article: ReverseProxy实现原理 › ReverseProxy 功能, item 2: "通过中间件提供了:
// 限流, 熔断, 降级, 权限, 数据统计等功能" (through middleware: rate limiting,
// circuit breaking, fallback, authorisation, statistics). The article lists
// them and shows no code; this program is our own, in the article's spirit.
//
// The chain, outermost first:
//
//	stats(auth(rateLimit(proxy)))
//
//	stats      数据统计 (--stats): one log line per request with its status,
//	           and running counts per status; sees every answer, the
//	           middleware's own 401s and 429s included
//	auth       权限 (--auth-token): no "Authorization: Bearer TOKEN", 401
//	rateLimit  限流 (--rate-limit N): a token bucket of N per second, burst N;
//	           over the limit, 429 with Retry-After
//	proxy      httputil.NewSingleHostReverseProxy(--upstream)
//
// auth runs before rateLimit (our choice): a request that is refused anyway
// does not spend a token that an authorised client could use.
//
// 熔断 (circuit breaker: stop calling an upstream that keeps failing, try
// again later) and 降级 (fallback: answer something useful when the upstream
// cannot) are left out; they have the same shape, a handler around the next.
package main

import (
	"bufio"
	"crypto/subtle"
	"errors"
	"flag"
	"fmt"
	"log"
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"time"

	"labgo/internal/lab"
)

// Middleware is a handler that wraps the next one.
type Middleware func(next http.Handler) http.Handler

// auth lets a request through only with "Authorization: Bearer TOKEN".
func auth(token string) Middleware {
	want := []byte("Bearer " + token)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got := []byte(r.Header.Get("Authorization"))
			// ConstantTimeCompare takes as long for a near miss as for a far
			// one, so the time of the answer does not leak the token.
			if subtle.ConstantTimeCompare(got, want) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="lab"`)
				http.Error(w, "401 unauthorized: send Authorization: Bearer TOKEN", http.StatusUnauthorized)
				return
			}
			// The upstream does not need the proxy's credential (our
			// choice: don't pass it on; compare the forward proxy's leak).
			r.Header.Del("Authorization")
			next.ServeHTTP(w, r)
		})
	}
}

// tokenBucket holds up to burst tokens and gains rate tokens per second. A
// request takes one token; with none left it is refused. One bucket for all
// clients (our choice; per-client limits keep one bucket per client IP).
type tokenBucket struct {
	mu     sync.Mutex
	rate   float64 // tokens added per second
	burst  float64 // the most the bucket holds
	tokens float64 // tokens now (as of last)
	last   time.Time
}

func newTokenBucket(perSecond int) *tokenBucket {
	return &tokenBucket{
		rate:   float64(perSecond),
		burst:  float64(perSecond),
		tokens: float64(perSecond), // start full: a burst is allowed at once
		last:   time.Now(),
	}
}

// take takes a token if there is one. If not, it says how long until there
// will be.
func (b *tokenBucket) take(now time.Time) (ok bool, wait time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	// Refill lazily: the tokens earned since the last call, up to burst.
	// No timer or goroutine is needed.
	elapsed := now.Sub(b.last).Seconds()
	if elapsed > 0 {
		b.tokens = math.Min(b.burst, b.tokens+elapsed*b.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	missing := 1 - b.tokens
	return false, time.Duration(missing / b.rate * float64(time.Second))
}

// rateLimit refuses requests over perSecond per second with 429.
func rateLimit(perSecond int) Middleware {
	bucket := newTokenBucket(perSecond)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ok, wait := bucket.take(time.Now())
			if !ok {
				// Retry-After is in whole seconds (RFC 9110 §10.2.3): round
				// up, and never 0, which would invite an immediate retry.
				secs := int(math.Ceil(wait.Seconds()))
				if secs < 1 {
					secs = 1
				}
				w.Header().Set("Retry-After", strconv.Itoa(secs))
				http.Error(w, "429 too many requests", http.StatusTooManyRequests)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// stats logs each request and keeps counts per status.
func stats() Middleware {
	var mu sync.Mutex
	counts := map[int]int{}
	total := 0
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
			next.ServeHTTP(rec, r)
			mu.Lock()
			counts[rec.status]++
			total++
			// formatted under the lock: the map is shared by all requests
			summary := fmt.Sprintf("total %d, by status %v", total, counts)
			mu.Unlock()
			log.Printf("stats: %s %s %d %v (%s)",
				r.Method, r.URL.RequestURI(), rec.status, time.Since(start).Round(time.Microsecond), summary)
		})
	}
}

// statusRecorder remembers the status the handler wrote. It passes Flush and
// Hijack on: ReverseProxy looks for them (to stream, and to switch protocols
// for WebSocket), and a wrapper that hid them would break both.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if h, ok := s.ResponseWriter.(http.Hijacker); ok {
		return h.Hijack()
	}
	return nil, nil, errors.New("hijack not supported")
}

func main() {
	lab.Usage("A ReverseProxy wrapped in middleware (http.Handler wrappers): auth, rate limit, stats.",
		"ReverseProxy实现原理 › ReverseProxy 功能: 中间件 (限流 熔断 降级 权限 数据统计)")
	listen := flag.String("listen", "127.0.0.1:2002", "address to listen on")
	upstream := flag.String("upstream", "http://127.0.0.1:2003/base", "the real server (NewSingleHostReverseProxy's target)")
	token := flag.String("auth-token", "", "require Authorization: Bearer TOKEN (empty: no auth)")
	perSecond := flag.Int("rate-limit", 0, "requests per second, burst the same; over it 429 + Retry-After (0: no limit)")
	withStats := flag.Bool("stats", false, "log each request and the counts per status")
	flag.Parse()

	target, err := url.Parse(*upstream)
	if err != nil || target.Scheme == "" || target.Host == "" {
		lab.Fatalf("--upstream %q: want a URL like http://127.0.0.1:2003/base", *upstream)
	}
	if *perSecond < 0 {
		lab.Fatalf("--rate-limit must be 0 (off) or more")
	}

	// Build the chain from the inside out.
	var handler http.Handler = httputil.NewSingleHostReverseProxy(target)
	if *perSecond > 0 {
		handler = rateLimit(*perSecond)(handler)
	}
	if *token != "" {
		handler = auth(*token)(handler)
	}
	if *withStats {
		handler = stats()(handler)
	}

	ln := lab.Listen(*listen, "listen")
	server := &http.Server{Handler: handler}
	lab.Serve(server, ln)
	lab.Wait(server)
}
