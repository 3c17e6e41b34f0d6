// Article: ReverseProxy 负载均衡 › 1.2 轮询负载均衡 (round-robin load
// balancing).
//
// RoundRobinBalance hands out the servers in turn: a, b, c, a, b, c, ...
// Every server gets the same share, whatever its capacity (that is what the
// weighted version is for).
package loadbalance

import (
	"errors"
	"log"
	"strings"
)

// RoundRobinBalance is the article's round-robin balancer. curIndex is the
// server the next call returns.
//
// ARTICLE BUG: no lock. Two requests at once can read the same curIndex and
// get the same server (the turn is lost), and Update replacing rss while
// Next reads it is a data race (Next reads len(r.rss) and then r.rss again:
// if Update empties the list in between, r.rss[r.curIndex] panics, and
// net/http drops that client's connection). Guard Next and Update with a
// sync.Mutex.
type RoundRobinBalance struct {
	curIndex int
	rss      []string
	// the observed subject (观察主体), set by SetConf
	conf LoadBalanceConf
}

// Add appends a server; a weight (params[1]) is accepted and ignored.
func (r *RoundRobinBalance) Add(params ...string) error {
	if len(params) == 0 {
		return errors.New("param len 1 at least")
	}
	addr := params[0]
	r.rss = append(r.rss, addr)
	return nil
}

// Next returns the server at curIndex and moves the index on, wrapping at
// the end of the list.
func (r *RoundRobinBalance) Next() string {
	if len(r.rss) == 0 {
		return ""
	}
	lens := len(r.rss)
	// The list may have shrunk since the last call (an Update removed a
	// server): start again from the first.
	if r.curIndex >= lens {
		r.curIndex = 0
	}
	curAddr := r.rss[r.curIndex]
	r.curIndex = (r.curIndex + 1) % lens
	return curAddr
}

// Get ignores the key.
func (r *RoundRobinBalance) Get(key string) (string, error) {
	return r.Next(), nil
}

// SetConf remembers the subject this balancer observes.
func (r *RoundRobinBalance) SetConf(conf LoadBalanceConf) {
	r.conf = conf
}

// Update rebuilds the list from the conf (one branch for every conf type:
// see RandomBalance.Update). curIndex is kept, so after a change the turn
// goes on from the same position in the new list.
func (r *RoundRobinBalance) Update() {
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
