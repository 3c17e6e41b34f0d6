// Exercise 8 · Round robin (轮询负载均衡), lab 13.
//
// The article's RoundRobinBalance: a list of upstreams and the index of the
// next one. Each request takes the upstream at curIndex and moves the index
// on, wrapping round at the end, so N upstreams share the requests 1, 2, …,
// N, 1, 2, …
//
// The contract with `lab verify` (any language can keep it):
//   - listen on $LISTEN (host:port; $PORT holds the port alone);
//   - the upstreams are the URLs in $UPSTREAMS, separated by spaces.
//
// Run it:    LISTEN=127.0.0.1:2002 UPSTREAMS="http://127.0.0.1:2003/base http://127.0.0.1:2004/base" go run .
// Verify it: lab verify 8
package main

import (
	"errors"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
)

// RoundRobinBalance hands out its upstreams in turn.
type RoundRobinBalance struct {
	mu       sync.Mutex // requests arrive on many goroutines at once
	curIndex int
	rss      []string
}

// Add appends an upstream address.
func (r *RoundRobinBalance) Add(params ...string) error {
	if len(params) == 0 {
		return errors.New("param len 1 at least")
	}
	r.rss = append(r.rss, params[0])
	return nil
}

// Next returns the upstream whose turn it is.
func (r *RoundRobinBalance) Next() string {
	if len(r.rss) == 0 {
		return ""
	}
	// TODO 1: return the upstream at r.curIndex and move r.curIndex on to
	// the next one, back to the first after the last.
	// TODO 2: many requests call Next at once: guard curIndex with r.mu.
	return r.rss[0]
}

func main() {
	lb := &RoundRobinBalance{}
	for _, upstream := range strings.Fields(os.Getenv("UPSTREAMS")) {
		lb.Add(upstream)
	}
	// The director of NewSingleHostReverseProxy, with the target chosen per
	// request: the upstream's path is joined in front of the client's.
	director := func(req *http.Request) {
		target, err := url.Parse(lb.Next())
		if err != nil {
			log.Printf("bad upstream: %v", err)
			return
		}
		req.URL.Scheme = target.Scheme
		req.URL.Host = target.Host
		req.URL.Path = strings.TrimSuffix(target.Path, "/") + "/" + strings.TrimPrefix(req.URL.Path, "/")
		if target.RawQuery == "" || req.URL.RawQuery == "" {
			req.URL.RawQuery = target.RawQuery + req.URL.RawQuery
		} else {
			req.URL.RawQuery = target.RawQuery + "&" + req.URL.RawQuery
		}
	}
	proxy := &httputil.ReverseProxy{Director: director}
	log.Printf("round robin over %d upstreams, listening on %s", len(lb.rss), os.Getenv("LISTEN"))
	log.Fatal(http.ListenAndServe(os.Getenv("LISTEN"), proxy))
}
