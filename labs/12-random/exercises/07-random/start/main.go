// Exercise 7 · Random (随机负载均衡), lab 12.
//
// The article's RandomBalance: each request goes to an upstream drawn at
// random, every upstream with the same chance. Over many requests each
// serves about its share, but in no order a client could predict.
//
// The contract with `lab verify` (any language can keep it):
//   - listen on $LISTEN (host:port; $PORT holds the port alone);
//   - the upstreams are the URLs in $UPSTREAMS, separated by spaces.
//
// Run it:    LISTEN=127.0.0.1:2002 UPSTREAMS="http://127.0.0.1:2003/base http://127.0.0.1:2004/base" go run .
// Verify it: lab verify 7
package main

import (
	"errors"
	"log"
	"math/rand" // for TODO 1 too
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"time"
)

// RandomBalance draws an upstream for each request.
type RandomBalance struct {
	rss []string
}

// Add appends an upstream address.
func (r *RandomBalance) Add(params ...string) error {
	if len(params) == 0 {
		return errors.New("param len 1 at least")
	}
	r.rss = append(r.rss, params[0])
	return nil
}

// Next draws the upstream of this request. (rand's top-level functions are
// safe on many goroutines at once.)
func (r *RandomBalance) Next() string {
	if len(r.rss) == 0 {
		return ""
	}
	// TODO 1: draw an index from 0 to len(r.rss)-1, each as likely as the
	// others (math/rand's Intn), and return that upstream.
	return r.rss[0]
}

func main() {
	// Before Go 1.20 the top-level source starts from the same seed in
	// every run: seed it, or every run draws the same sequence.
	rand.Seed(time.Now().UnixNano())
	lb := &RandomBalance{}
	for _, upstream := range strings.Fields(os.Getenv("UPSTREAMS")) {
		lb.Add(upstream)
	}
	director := func(req *http.Request) {
		target, err := url.Parse(lb.Next())
		if err != nil {
			log.Printf("bad upstream: %v", err)
			return
		}
		req.URL.Scheme = target.Scheme
		req.URL.Host = target.Host
		req.URL.Path = strings.TrimSuffix(target.Path, "/") + "/" + strings.TrimPrefix(req.URL.Path, "/")
	}
	proxy := &httputil.ReverseProxy{Director: director}
	log.Printf("random over %d upstreams, listening on %s", len(lb.rss), os.Getenv("LISTEN"))
	log.Fatal(http.ListenAndServe(os.Getenv("LISTEN"), proxy))
}
