// Article: ReverseProxy 负载均衡 › 2. ReverseProxy 集成负载均衡, Config.go:
// the observer pattern (观察者模式) that keeps a balancer's server list up to
// date.
//
// A LoadBalanceConf is the subject: it holds the list of servers that are
// usable now and tells every attached Observer when the list changes. Each
// balancer is an Observer: its Update reads GetConf() and rebuilds itself.
// The balancer never asks where the list comes from.
//
// The article has two subjects and shows one:
//
//   - LoadBalanceZkConf (shown) watches a ZooKeeper node: servers register
//     themselves, and the list is the node's children. It needs a ZooKeeper
//     client, which is not in Go's standard library, so it is left out here
//     (this module builds offline with the standard library only). Its
//     printing observer, LoadBalanceObserver, is tied to it and left out too.
//   - LoadBalanceCheckConf (named by the balancers' Update, never shown):
//     a fixed list of servers, probed in the background; the ones that fail
//     are taken out and put back when they answer again. Written here in the
//     article's style (Attach, GetConf, WatchConf, UpdateConf); the details
//     (what a probe is, how many failures, how often) are our choices,
//     documented below.
package loadbalance

import (
	"fmt"
	"log"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"
)

// LoadBalanceConf is the subject (配置主题) a balancer observes.
type LoadBalanceConf interface {
	// Attach registers an observer; UpdateConf calls its Update.
	Attach(o Observer)
	// GetConf returns the servers usable now, "addr,weight" each.
	GetConf() []string
	// WatchConf starts watching the source in the background.
	WatchConf()
	// UpdateConf replaces the list and notifies every observer.
	UpdateConf(conf []string)
}

// Observer is told when the subject changes. Every balancer is one.
type Observer interface {
	Update()
}

// The health check's defaults (our choices; the article gives none).
const (
	DefaultCheckInterval  = time.Second            // time between two rounds of probes
	DefaultCheckTimeout   = 500 * time.Millisecond // a TCP connect slower than this fails
	DefaultCheckMaxErrNum = 2                      // consecutive failures before a server is taken out
	// DefaultWeight is the weight of a server given without one: "50", the
	// default weight of the article's LoadBalanceZkConf.GetConf.
	DefaultWeight = "50"
)

// CheckConfig says how LoadBalanceCheckConf probes. Zero fields take the
// defaults above; Logf nil means log.Printf.
type CheckConfig struct {
	Interval  time.Duration
	Timeout   time.Duration
	MaxErrNum int
	Logf      func(format string, args ...interface{})
}

// LoadBalanceCheckConf is a fixed list of servers whose usable part is kept
// current by TCP probes (the "Check" subject the article's balancers expect).
//
// A probe is a TCP connect to the server's host:port, closed at once: it
// shows that something accepts connections there, not that it answers HTTP
// well (a probe with an HTTP request would, at more cost). Every Interval
// each server is probed in turn; after MaxErrNum failures in a row it is
// taken out of the list; one success puts it back. Each change is logged and
// passed to the observers with UpdateConf.
type LoadBalanceCheckConf struct {
	mu         sync.RWMutex
	observers  []Observer
	servers    []checkedServer // as configured, in order
	activeList []string        // addrs of the servers in use, in configured order

	check    CheckConfig
	stop     chan struct{}
	stopOnce sync.Once
}

type checkedServer struct {
	addr   string // as configured: the URL the balancer returns
	weight string
	dial   string // host:port the probe connects to
}

// NewLoadBalanceCheckConf makes the subject from "URL[,weight]" entries (no
// weight: DefaultWeight). Every server starts in the list, as in the
// article's constructors; call WatchConf to start probing.
func NewLoadBalanceCheckConf(conf []string, check CheckConfig) (*LoadBalanceCheckConf, error) {
	if check.Interval <= 0 {
		check.Interval = DefaultCheckInterval
	}
	if check.Timeout <= 0 {
		check.Timeout = DefaultCheckTimeout
	}
	if check.MaxErrNum <= 0 {
		check.MaxErrNum = DefaultCheckMaxErrNum
	}
	if check.Logf == nil {
		check.Logf = log.Printf
	}
	s := &LoadBalanceCheckConf{check: check, stop: make(chan struct{})}
	for _, item := range conf {
		parts := strings.Split(item, ",")
		addr, weight := parts[0], DefaultWeight
		if len(parts) > 1 {
			weight = parts[1]
		}
		dial, err := dialAddr(addr)
		if err != nil {
			return nil, err
		}
		s.servers = append(s.servers, checkedServer{addr: addr, weight: weight, dial: dial})
		s.activeList = append(s.activeList, addr)
	}
	return s, nil
}

// dialAddr is the host:port to probe for a server URL (port from the scheme
// when the URL has none).
func dialAddr(addr string) (string, error) {
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("server %q: want a URL like http://127.0.0.1:2003/base", addr)
	}
	if u.Port() != "" {
		return u.Host, nil
	}
	port := "80"
	if u.Scheme == "https" {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}

// Attach registers an observer.
func (s *LoadBalanceCheckConf) Attach(o Observer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.observers = append(s.observers, o)
}

// GetConf returns the servers in use as "addr,weight".
func (s *LoadBalanceCheckConf) GetConf() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var confList []string
	for _, addr := range s.activeList {
		for _, srv := range s.servers {
			if srv.addr == addr {
				confList = append(confList, addr+","+srv.weight)
				break
			}
		}
	}
	return confList
}

// UpdateConf replaces the list of servers in use (addrs as configured) and
// calls every observer's Update.
//
// The observers are called after the lock is released: their Update calls
// GetConf, which takes the lock again. (Calling them with the lock held would
// be the deadlock of ConsistentHashBanlance.Update.)
func (s *LoadBalanceCheckConf) UpdateConf(conf []string) {
	s.mu.Lock()
	s.activeList = conf
	observers := append([]Observer(nil), s.observers...)
	s.mu.Unlock()
	for _, obs := range observers {
		obs.Update()
	}
}

// WatchConf starts the probes in a goroutine: a round now, then one every
// Interval, until Stop.
func (s *LoadBalanceCheckConf) WatchConf() {
	go func() {
		errNum := make([]int, len(s.servers)) // consecutive failures, per server
		up := make([]bool, len(s.servers))
		for i := range up {
			up[i] = true
		}
		ticker := time.NewTicker(s.check.Interval)
		defer ticker.Stop()
		for {
			changed := false
			for i, srv := range s.servers {
				conn, err := net.DialTimeout("tcp", srv.dial, s.check.Timeout)
				if err == nil {
					conn.Close()
					errNum[i] = 0
					if !up[i] {
						up[i] = true
						changed = true
						s.check.Logf("health: %s up again, active: %v", srv.dial, s.activeFrom(up))
					}
					continue
				}
				errNum[i]++
				if up[i] && errNum[i] >= s.check.MaxErrNum {
					up[i] = false
					changed = true
					s.check.Logf("health: %s down (%d failures), active: %v (last error: %v)",
						srv.dial, errNum[i], s.activeFrom(up), err)
				}
			}
			if changed {
				s.UpdateConf(s.activeFrom(up))
			}
			select {
			case <-s.stop:
				return
			case <-ticker.C:
			}
		}
	}()
}

// Stop ends the probes (not in the article; tests use it).
func (s *LoadBalanceCheckConf) Stop() {
	s.stopOnce.Do(func() { close(s.stop) })
}

// activeFrom lists the addrs of the servers marked up, in configured order.
func (s *LoadBalanceCheckConf) activeFrom(up []bool) []string {
	var active []string
	for i, srv := range s.servers {
		if up[i] {
			active = append(active, srv.addr)
		}
	}
	return active
}
