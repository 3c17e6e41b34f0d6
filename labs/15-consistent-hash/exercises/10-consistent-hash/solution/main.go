// Exercise 10 · Consistent hash with replicas (一致性hash负载), lab 15.
//
// The article's ConsistentHashBanlance: every upstream is put on a ring of
// 2^32 points replicas times (虚拟节点, virtual nodes: the crc32 of
// strconv.Itoa(i) + addr); a request's key is hashed onto the same ring and
// goes to the first virtual node at or after it, wrapping round to the
// first. The same key always lands on the same upstream, and when an
// upstream leaves only the keys it held move.
//
// Here the key is the request's path: `lab verify` sends paths chosen to
// land in every arc of your ring, and knows where each should go. It asks
// again with $UPSTREAMS listed the other way round: the ring is made from a
// set of URLs, so the order they are listed in must not move a key.
//
// The contract with `lab verify` (any language can keep it):
//   - listen on $LISTEN (host:port; $PORT holds the port alone);
//   - the upstreams are the URLs in $UPSTREAMS, separated by spaces, each
//     put on the ring as written (the crc32 of "0"+URL, "1"+URL, …).
//
// Run it:    LISTEN=127.0.0.1:2002 UPSTREAMS="http://127.0.0.1:2003/base http://127.0.0.1:2004/base" go run .
// Verify it: lab verify 10
package main

import (
	"errors"
	"hash/crc32"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// replicas is how many virtual nodes each upstream has on the ring.
const replicas = 10

// UInt32Slice sorts the ring's points.
type UInt32Slice []uint32

func (s UInt32Slice) Len() int           { return len(s) }
func (s UInt32Slice) Less(i, j int) bool { return s[i] < s[j] }
func (s UInt32Slice) Swap(i, j int)      { s[i], s[j] = s[j], s[i] }

// ConsistentHashBalance is the ring.
type ConsistentHashBalance struct {
	mu       sync.RWMutex
	hash     func(data []byte) uint32
	replicas int
	keys     UInt32Slice       // the virtual nodes' points, sorted
	hashMap  map[uint32]string // a point → its upstream
}

// NewConsistentHashBalance is an empty ring with crc32 (IEEE) as its hash.
func NewConsistentHashBalance(replicas int) *ConsistentHashBalance {
	return &ConsistentHashBalance{hash: crc32.ChecksumIEEE, replicas: replicas, hashMap: map[uint32]string{}}
}

// Add puts addr on the ring, replicas times.
func (c *ConsistentHashBalance) Add(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := 0; i < c.replicas; i++ {
		point := c.hash([]byte(strconv.Itoa(i) + addr))
		c.keys = append(c.keys, point)
		c.hashMap[point] = addr
	}
	sort.Sort(c.keys)
}

// Get is the upstream of key: the first point at or after its hash.
func (c *ConsistentHashBalance) Get(key string) (string, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if len(c.keys) == 0 {
		return "", errors.New("no upstream on the ring")
	}
	hash := c.hash([]byte(key))
	idx := sort.Search(len(c.keys), func(i int) bool { return c.keys[i] >= hash })
	if idx == len(c.keys) {
		idx = 0
	}
	return c.hashMap[c.keys[idx]], nil
}

func main() {
	lb := NewConsistentHashBalance(replicas)
	for _, upstream := range strings.Fields(os.Getenv("UPSTREAMS")) {
		lb.Add(upstream)
	}
	director := func(req *http.Request) {
		next, err := lb.Get(req.URL.Path)
		if err != nil {
			log.Print(err)
			return
		}
		target, err := url.Parse(next)
		if err != nil {
			log.Printf("bad upstream: %v", err)
			return
		}
		req.URL.Scheme = target.Scheme
		req.URL.Host = target.Host
		req.URL.Path = strings.TrimSuffix(target.Path, "/") + "/" + strings.TrimPrefix(req.URL.Path, "/")
	}
	proxy := &httputil.ReverseProxy{Director: director}
	log.Printf("consistent hash over %d virtual nodes, listening on %s", len(lb.keys), os.Getenv("LISTEN"))
	log.Fatal(http.ListenAndServe(os.Getenv("LISTEN"), proxy))
}
