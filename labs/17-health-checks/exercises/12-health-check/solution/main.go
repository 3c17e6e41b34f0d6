// Exercise 12 · Health checks and the observer (观察者模式), lab 17.
//
// The article's LoadBalanceCheckConf: a goroutine dials every upstream on
// a timer; one that fails twice in a row leaves the active list, one that
// answers again comes back; and each change is pushed to the balancer
// through the observer pattern (Attach / Update): the configuration is the
// subject, the balancer an observer that re-reads the active list.
//
// The contract with `lab verify` (any language can keep it):
//   - listen on $LISTEN (host:port; $PORT holds the port alone);
//   - the upstreams are the URLs in $UPSTREAMS, separated by spaces.
//
// Run it:    LISTEN=127.0.0.1:2002 UPSTREAMS="http://127.0.0.1:2003/base http://127.0.0.1:2004/base" go run .
// Verify it: lab verify 12
package main

import (
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// checkEvery is how often every upstream is dialled; failuresToLeave how
// many failures in a row take one out.
const (
	checkEvery      = 300 * time.Millisecond
	dialTimeout     = 200 * time.Millisecond
	failuresToLeave = 2
)

// Observer is told when the subject changes.
type Observer interface {
	Update()
}

// CheckConf is the subject: every upstream, and the ones that answer now.
type CheckConf struct {
	mu        sync.Mutex
	all       []string
	active    []string
	failures  map[string]int
	observers []Observer
}

// NewCheckConf starts with every upstream active.
func NewCheckConf(all []string) *CheckConf {
	return &CheckConf{all: all, active: append([]string(nil), all...), failures: map[string]int{}}
}

// Attach adds an observer.
func (c *CheckConf) Attach(o Observer) {
	c.mu.Lock()
	c.observers = append(c.observers, o)
	c.mu.Unlock()
}

// Active is the upstreams in service now.
func (c *CheckConf) Active() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.active...)
}

// checkOnce dials every upstream and updates the active list; observers
// hear of a change.
func (c *CheckConf) checkOnce() {
	up := map[string]bool{}
	for _, addr := range c.all {
		u, err := url.Parse(addr)
		if err != nil {
			continue
		}
		conn, err := net.DialTimeout("tcp", u.Host, dialTimeout)
		if err == nil {
			conn.Close()
		}
		up[addr] = err == nil
	}
	c.mu.Lock()
	var active []string
	for _, addr := range c.all {
		if up[addr] {
			c.failures[addr] = 0
		} else {
			c.failures[addr]++
		}
		if c.failures[addr] < failuresToLeave {
			active = append(active, addr)
		}
	}
	changed := strings.Join(active, " ") != strings.Join(c.active, " ")
	c.active = active
	observers := append([]Observer(nil), c.observers...)
	c.mu.Unlock()
	if changed {
		log.Printf("active upstreams: %v", active)
		for _, o := range observers {
			o.Update()
		}
	}
}

// Watch checks on a timer, forever.
func (c *CheckConf) Watch() {
	for range time.Tick(checkEvery) {
		c.checkOnce()
	}
}

// RoundRobinBalance serves the active upstreams in turn; it observes conf.
type RoundRobinBalance struct {
	mu       sync.Mutex
	curIndex int
	rss      []string
	conf     *CheckConf
}

// Update re-reads the active upstreams.
func (r *RoundRobinBalance) Update() {
	active := r.conf.Active()
	r.mu.Lock()
	r.rss = active
	r.mu.Unlock()
}

// Next returns the upstream whose turn it is ("" when none is active).
func (r *RoundRobinBalance) Next() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.rss) == 0 {
		return ""
	}
	r.curIndex = (r.curIndex + 1) % len(r.rss)
	return r.rss[r.curIndex]
}

func main() {
	conf := NewCheckConf(strings.Fields(os.Getenv("UPSTREAMS")))
	lb := &RoundRobinBalance{conf: conf}
	conf.Attach(lb)
	lb.Update()
	go conf.Watch()

	director := func(req *http.Request) {
		target, err := url.Parse(lb.Next())
		if err != nil {
			return
		}
		req.URL.Scheme = target.Scheme
		req.URL.Host = target.Host
		req.URL.Path = strings.TrimSuffix(target.Path, "/") + "/" + strings.TrimPrefix(req.URL.Path, "/")
	}
	proxy := &httputil.ReverseProxy{Director: director}
	log.Printf("health-checked round robin, listening on %s", os.Getenv("LISTEN"))
	log.Fatal(http.ListenAndServe(os.Getenv("LISTEN"), proxy))
}
