// Article: ReverseProxy 负载均衡 › 1.4 一致性hash负载 (consistent-hash load
// balancing).
//
// ConsistentHashBanlance sends the same key to the same server, and when a
// server leaves, only the keys that were on it move. Each server is placed on
// a ring of 2^32 positions at `replicas` points (virtual nodes): the crc32 of
// "0"+addr, "1"+addr, ... The ring is the sorted slice keys. A key goes to
// the first point at or after crc32(key), wrapping round to the first point.
//
// Removing a server takes away only its own points: the keys that landed on
// them go on to the next point, everyone else's key lands where it did. With
// plain hash(key) % n, changing n moves almost every key.
//
// Ten points per server are few, and the ring is lopsided. For the
// article's two servers, http://127.0.0.1:2003/base owns 28.9% of the ring
// and http://127.0.0.1:2004/base 71.1%; with 100 replicas 36.9% / 63.1%,
// with 1000 50.1% / 49.9% (measured by summing the ring's arcs, crc32 as
// here). So "consistent" is not "even": count the points you need.
package loadbalance

import (
	"errors"
	"hash/crc32"
	"log"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Hash maps bytes to a position on the ring.
type Hash func(data []byte) uint32

// UInt32Slice is the ring, sortable with sort.Sort (the article predates
// sort.Slice being the usual way).
type UInt32Slice []uint32

func (s UInt32Slice) Len() int           { return len(s) }
func (s UInt32Slice) Less(i, j int) bool { return s[i] < s[j] }
func (s UInt32Slice) Swap(i, j int)      { s[i], s[j] = s[j], s[i] }

// ConsistentHashBanlance is the article's consistent hash (sic: "Banlance").
type ConsistentHashBanlance struct {
	mux      sync.RWMutex
	hash     Hash
	replicas int               // virtual nodes per server (复制因子)
	keys     UInt32Slice       // the ring: every virtual node's hash, sorted
	hashMap  map[uint32]string // virtual node hash → server address

	// the observed subject (观察主体), set by SetConf
	conf LoadBalanceConf
}

// NewConsistentHashBanlance makes an empty ring; fn nil means crc32 (IEEE),
// whose 32 bits are the ring's 2^32 positions.
func NewConsistentHashBanlance(replicas int, fn Hash) *ConsistentHashBanlance {
	m := &ConsistentHashBanlance{
		replicas: replicas,
		hash:     fn,
		hashMap:  make(map[uint32]string),
	}
	if m.hash == nil {
		m.hash = crc32.ChecksumIEEE
	}
	return m
}

// IsEmpty reports whether the ring has no server.
func (c *ConsistentHashBanlance) IsEmpty() bool {
	return len(c.keys) == 0
}

// Add puts a server (params[0]; a weight is ignored) on the ring at
// `replicas` points and sorts the ring again for the binary search in Get.
// It takes the write lock.
//
// (Adding the same address twice puts it on the ring twice; two addresses
// whose points collide share one hashMap entry, the later one winning. The
// article checks for neither.)
func (c *ConsistentHashBanlance) Add(params ...string) error {
	if len(params) == 0 {
		return errors.New("param len 1 at least")
	}
	addr := params[0]
	c.mux.Lock()
	defer c.mux.Unlock()
	for i := 0; i < c.replicas; i++ {
		hash := c.hash([]byte(strconv.Itoa(i) + addr))
		c.keys = append(c.keys, hash)
		c.hashMap[hash] = addr
	}
	sort.Sort(c.keys)
	return nil
}

// Get returns the server for key: the first ring point >= crc32(key), found
// by binary search (sort.Search), or the first point if the key hashes past
// the last one.
//
// ARTICLE BUG: IsEmpty, the hash and the search read c.keys before the read
// lock is taken; only the final hashMap lookup is under RLock. A concurrent
// Add or Update changes keys under the search: a data race, and idx can
// point past a shrunk slice. Take c.mux.RLock() at the top of Get.
func (c *ConsistentHashBanlance) Get(key string) (string, error) {
	if c.IsEmpty() {
		return "", errors.New("node is empty")
	}
	hash := c.hash([]byte(key))

	// the first server point at or after the key's point
	idx := sort.Search(len(c.keys), func(i int) bool { return c.keys[i] >= hash })

	// past the last point: wrap round to the first
	if idx == len(c.keys) {
		idx = 0
	}
	c.mux.RLock()
	defer c.mux.RUnlock()
	return c.hashMap[c.keys[idx]], nil
}

// SetConf remembers the subject this balancer observes.
func (c *ConsistentHashBanlance) SetConf(conf LoadBalanceConf) {
	c.conf = conf
}

// Update rebuilds the ring from the conf (one branch for every conf type:
// see RandomBalance.Update).
//
// ARTICLE BUG: deadlock. Update takes c.mux.Lock() and, still holding it,
// calls c.Add, which calls c.mux.Lock() again. Go's mutexes are not
// reentrant: Add waits for a lock its own caller holds, forever. So the
// first Update with a non-empty list never returns: in
// LoadBanlanceFactorWithConf (the start-up Update) the program hangs before
// it serves anything, and every later Get blocks on RLock too. Build the new
// ring without the lock (or with an add that expects the lock held) and swap
// it in under the lock.
//
// ARTICLE BUG: it also sets c.hashMap = nil. Were Add to get past the lock,
// its c.hashMap[hash] = addr would panic ("assignment to entry in nil map").
// Reset it with make(map[uint32]string). With an empty list no Add runs, so
// Update returns, and the nil map waits for the next Add.
func (c *ConsistentHashBanlance) Update() {
	if c.conf == nil {
		return
	}
	list := c.conf.GetConf()
	log.Println("Update get conf:", list)
	c.mux.Lock()
	defer c.mux.Unlock()
	c.keys = nil
	c.hashMap = nil
	for _, ip := range list {
		c.Add(strings.Split(ip, ",")...)
	}
}
