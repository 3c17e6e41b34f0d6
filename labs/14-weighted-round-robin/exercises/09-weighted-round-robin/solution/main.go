// Exercise 9 · Smooth weighted round robin (加权负载均衡), lab 14.
//
// The article's WeightRoundRobinBalance, nginx's smooth weighted round
// robin: every upstream has a weight (权重值), an effectiveWeight (有效权重,
// how far it is trusted now) and a currentWeight (节点当前权重, a running
// score). Each pick:
//  1. adds each effectiveWeight to its currentWeight, and sums them (totalWeight);
//  2. chooses the largest currentWeight;
//  3. takes totalWeight off the chosen one's currentWeight.
//
// Weights 5, 1, 1 give a a b a c a a, again and again. The article leaves
// failures as a TODO (如果是权重的负载则调整临时权重); here a failure drops
// the upstream's effectiveWeight by its weight (nginx with max_fails=1),
// and each pick gives one back, so it returns gradually.
//
// The contract with `lab verify` (any language can keep it):
//   - listen on $LISTEN (host:port; $PORT holds the port alone);
//   - the upstreams are the URLs in $UPSTREAMS, separated by spaces, with
//     their weights in $WEIGHTS (space-separated, in the same order).
//
// Run it:    LISTEN=127.0.0.1:2002 UPSTREAMS="http://127.0.0.1:2003/base http://127.0.0.1:2004/base" WEIGHTS="5 1" go run .
// Verify it: lab verify 9
package main

import (
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
)

// WeightNode is one upstream and its three numbers.
type WeightNode struct {
	addr            string
	host            string // host:port of addr, as a failed request names it
	weight          int
	effectiveWeight int
	currentWeight   int
}

// WeightRoundRobinBalance picks by smooth weighted round robin.
type WeightRoundRobinBalance struct {
	mu  sync.Mutex // a pick reads and writes every node: one at a time
	rss []*WeightNode
}

// Add appends an upstream with its weight, trusted fully at first.
func (r *WeightRoundRobinBalance) Add(addr string, weight int) {
	node := &WeightNode{addr: addr, weight: weight, effectiveWeight: weight}
	if u, err := url.Parse(addr); err == nil {
		node.host = u.Host
	}
	r.rss = append(r.rss, node)
}

// Next picks the upstream of this request.
func (r *WeightRoundRobinBalance) Next() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	total := 0
	var best *WeightNode
	for _, w := range r.rss {
		// step 1
		w.currentWeight += w.effectiveWeight
		total += w.effectiveWeight
		// a node lowered by a failure earns one back per pick
		if w.effectiveWeight < w.weight {
			w.effectiveWeight++
		}
		// step 2 (">" keeps the first on a tie)
		if best == nil || w.currentWeight > best.currentWeight {
			best = w
		}
	}
	if best == nil {
		return ""
	}
	// step 3
	best.currentWeight -= total
	return best.addr
}

// Failed lowers the effectiveWeight of the upstream at host by its
// weight, not below 0.
func (r *WeightRoundRobinBalance) Failed(host string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range r.rss {
		if w.host == host {
			w.effectiveWeight -= w.weight
			if w.effectiveWeight < 0 {
				w.effectiveWeight = 0
			}
		}
	}
}

func main() {
	lb := &WeightRoundRobinBalance{}
	weights := strings.Fields(os.Getenv("WEIGHTS"))
	for i, upstream := range strings.Fields(os.Getenv("UPSTREAMS")) {
		weight := 1
		if i < len(weights) {
			weight, _ = strconv.Atoi(weights[i])
		}
		lb.Add(upstream, weight)
	}
	director := func(req *http.Request) {
		next := lb.Next()
		target, err := url.Parse(next)
		if err != nil {
			log.Printf("bad upstream: %v", err)
			return
		}
		req.URL.Scheme = target.Scheme
		req.URL.Host = target.Host
		req.URL.Path = strings.TrimSuffix(target.Path, "/") + "/" + strings.TrimPrefix(req.URL.Path, "/")
	}
	proxy := &httputil.ReverseProxy{
		Director: director,
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			// The upstream failed this request (req is the request the
			// Director pointed at it): trust it less.
			lb.Failed(req.URL.Host)
			log.Printf("upstream failed: %v", err)
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	log.Printf("smooth WRR over %d upstreams, listening on %s", len(lb.rss), os.Getenv("LISTEN"))
	log.Fatal(http.ListenAndServe(os.Getenv("LISTEN"), proxy))
}
