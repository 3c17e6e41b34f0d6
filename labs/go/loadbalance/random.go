// Article: ReverseProxy 负载均衡 › 1.1 随机负载均衡 (random load balancing).
//
// RandomBalance picks a server uniformly at random for each request. It keeps
// no state between picks, so it needs no lock for its choice; over many
// requests each server gets about the same share, but nothing stops the same
// server from being picked several times in a row.
package loadbalance

import (
	"errors"
	"log"
	"math/rand"
	"strings"
)

// RandomBalance is the article's random balancer.
//
// ARTICLE BUG: no lock. Get (from the proxy's request goroutines) writes
// curIndex and reads rss while Update (from the conf's goroutine) replaces
// rss: a data race (go run -race reports it). Guard rss with a
// sync.RWMutex, or build a new balancer and swap it in atomically.
type RandomBalance struct {
	curIndex int
	rss      []string
	// the observed subject (观察主体), set by SetConf
	conf LoadBalanceConf
}

// Add appends a server. Only params[0], the address, is used: a weight is
// accepted and ignored.
func (r *RandomBalance) Add(params ...string) error {
	if len(params) == 0 {
		return errors.New("param len 1 at least")
	}
	addr := params[0]
	r.rss = append(r.rss, addr)
	return nil
}

// Next draws an index with math/rand's global source.
//
// Go 1.19's global source is seeded with 1 unless the program calls
// rand.Seed (Go 1.20 started seeding it randomly): every run of a program
// built with Go 1.19 draws the same sequence. The article does not seed it.
func (r *RandomBalance) Next() string {
	if len(r.rss) == 0 {
		return ""
	}
	r.curIndex = rand.Intn(len(r.rss))
	return r.rss[r.curIndex]
}

// Get ignores the key: any request may go anywhere.
func (r *RandomBalance) Get(key string) (string, error) {
	return r.Next(), nil
}

// SetConf remembers the subject this balancer observes.
func (r *RandomBalance) SetConf(conf LoadBalanceConf) {
	r.conf = conf
}

// Update rebuilds the list from the conf: "addr,weight" strings, split on
// the comma and passed to Add.
//
// The article writes one branch per concrete conf type
// (if conf, ok := r.conf.(*LoadBalanceZkConf); ok {...} and the same for
// *LoadBalanceCheckConf), with the same code in each. GetConf is a method of
// the LoadBalanceConf interface, so one branch serves every subject (our
// choice). The article also calls GetConf twice, once to print and once to
// loop; we call it once so both see the same list.
func (r *RandomBalance) Update() {
	if r.conf == nil {
		return
	}
	list := r.conf.GetConf()
	log.Println("Update get conf:", list)
	r.rss = nil
	for _, ip := range list {
		r.Add(strings.Split(ip, ",")...)
	}
}
