// Exercise 11 · The article's main.go: a balancer inside a ReverseProxy
// (ReverseProxy 集成负载均衡), lab 16.
//
// Three pieces join here: a balancer chooses the upstream of each request
// (round robin, given below), a Director points the request at it (path
// joined, query merged), and the article's two hooks shape the answer:
// modifyFunc (ModifyResponse) prefixes every non-200 body with
// "StatusCode error:" and fixes its length, and errFunc (ErrorHandler)
// answers when the upstream cannot: the article's answers 500
// "ErrorHandler error:…" (Go's own default, and lab proxy, answer 502: see
// exercise 6).
//
// The contract with `lab verify` (any language can keep it):
//   - listen on $LISTEN (host:port; $PORT holds the port alone);
//   - the upstreams are the URLs in $UPSTREAMS, separated by spaces.
//
// Run it:    LISTEN=127.0.0.1:2002 UPSTREAMS="http://127.0.0.1:2003/base http://127.0.0.1:2004/base" go run .
// Verify it: lab verify 11
package main

import (
	_ "bytes" // for TODO 2, with io and strconv: drop the _ when you use them
	_ "io"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	_ "strconv"
	"strings"
	"sync"
)

// RoundRobin hands out the upstreams in turn.
type RoundRobin struct {
	mu   sync.Mutex
	next int
	rss  []string
}

// Get returns the upstream whose turn it is.
func (r *RoundRobin) Get() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	addr := r.rss[r.next%len(r.rss)]
	r.next++
	return addr
}

// NewMultipleHostsReverseProxy is a ReverseProxy over lb's upstreams.
func NewMultipleHostsReverseProxy(lb *RoundRobin) *httputil.ReverseProxy {
	director := func(req *http.Request) {
		// TODO 1: ask lb for the next upstream (url.Parse it) and point req
		// at it: Scheme, Host, the upstream's path joined before the
		// request's, the queries merged (as NewSingleHostReverseProxy does).
		_ = url.Parse
	}
	modifyFunc := func(resp *http.Response) error {
		// TODO 2: when resp.StatusCode is not 200, replace the body with
		// "StatusCode error:" + the old body, and make the length match it
		// (resp.ContentLength and the Content-Length header).
		return nil
	}
	errFunc := func(w http.ResponseWriter, r *http.Request, err error) {
		// TODO 3: answer 500 with the body "ErrorHandler error:" + err.Error().
	}
	return &httputil.ReverseProxy{Director: director, ModifyResponse: modifyFunc, ErrorHandler: errFunc}
}

func main() {
	lb := &RoundRobin{rss: strings.Fields(os.Getenv("UPSTREAMS"))}
	if len(lb.rss) == 0 {
		log.Fatal("set UPSTREAMS to the upstreams' URLs")
	}
	proxy := NewMultipleHostsReverseProxy(lb)
	log.Printf("balanced proxy over %d upstreams, listening on %s", len(lb.rss), os.Getenv("LISTEN"))
	log.Fatal(http.ListenAndServe(os.Getenv("LISTEN"), proxy))
}
