package loadbalance

import (
	"fmt"
	"net"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// staticConf is a LoadBalanceConf whose list the test sets by hand.
type staticConf struct {
	observers []Observer
	list      []string
}

func (s *staticConf) Attach(o Observer) { s.observers = append(s.observers, o) }
func (s *staticConf) GetConf() []string { return s.list }
func (s *staticConf) WatchConf()        {}
func (s *staticConf) UpdateConf(l []string) {
	s.list = l
	for _, o := range s.observers {
		o.Update()
	}
}

// picks calls Get n times.
func picks(t *testing.T, lb LoadBalance, n int) []string {
	t.Helper()
	var got []string
	for i := 0; i < n; i++ {
		addr, err := lb.Get("key")
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, addr)
	}
	return got
}

func split(s string) []string { return strings.Fields(s) }

func TestRoundRobin(t *testing.T) {
	// index: 0 → a, 1 → b, 2 → c, then back to 0.
	//
	//	call   1 2 3 4 5 6 7
	//	pick   a b c a b c a
	tests := []struct {
		servers string
		want    string
	}{
		{"a b c", "a b c a b c a"},
		{"a", "a a a"},
		{"a b", "a b a b"},
	}
	for _, tt := range tests {
		lb := LoadBanlanceFactory(LbRoundRobin)
		for _, s := range split(tt.servers) {
			if err := lb.Add(s, "1"); err != nil {
				t.Fatal(err)
			}
		}
		want := split(tt.want)
		if got := picks(t, lb, len(want)); !reflect.DeepEqual(got, want) {
			t.Errorf("servers %s: got %v, want %v", tt.servers, got, want)
		}
	}
}

func TestRoundRobinEmptyAndShrink(t *testing.T) {
	rr := &RoundRobinBalance{}
	if got := rr.Next(); got != "" {
		t.Errorf("empty: got %q, want \"\"", got)
	}
	conf := &staticConf{list: []string{"a,1", "b,1", "c,1"}}
	lb := LoadBanlanceFactorWithConf(LbRoundRobin, conf)
	if got := picks(t, lb, 2); !reflect.DeepEqual(got, split("a b")) {
		t.Fatalf("got %v", got)
	}
	// curIndex is 2 now; the list shrinks to two: index 2 is past the end,
	// so the turn starts again from the first.
	conf.UpdateConf([]string{"a,1", "b,1"})
	if got := picks(t, lb, 3); !reflect.DeepEqual(got, split("a b a")) {
		t.Errorf("after shrink: got %v, want [a b a]", got)
	}
}

func TestSmoothWeightedRoundRobin(t *testing.T) {
	// weights a=5 b=1 c=1, total 7. currentWeight after step a (add the
	// weights), the pick (largest, first on a tie), then after step c (the
	// winner pays 7):
	//
	//	pick  after +weights  chosen  after -total
	//	 1     5  1  1         a      -2  1  1
	//	 2     3  2  2         a      -4  2  2
	//	 3     1  3  3         b       1 -4  3
	//	 4     6 -3  4         a      -1 -3  4
	//	 5     4 -2  5         c       4 -2 -2
	//	 6     9 -1 -1         a       2 -1 -1
	//	 7     7  0  0         a       0  0  0   back to the start
	//
	// weights a=4 b=3 c=2 (the article's figure, total 9):
	//
	//	a b c a b a c b a
	tests := []struct {
		weights string
		want    string
	}{
		{"a:5 b:1 c:1", "a a b a c a a  a a b a c a a"},
		{"a:4 b:3 c:2", "a b c a b a c b a"},
		{"a:1 b:1", "a b a b"},
		{"a:10 b:20", "b a b  b a b"},
		{"a:0 b:1", "b b b"},
	}
	for _, tt := range tests {
		lb := LoadBanlanceFactory(LbWeightRoundRobin)
		for _, w := range split(tt.weights) {
			kv := strings.Split(w, ":")
			if err := lb.Add(kv[0], kv[1]); err != nil {
				t.Fatal(err)
			}
		}
		want := split(tt.want)
		if got := picks(t, lb, len(want)); !reflect.DeepEqual(got, want) {
			t.Errorf("weights %s: got %v, want %v", tt.weights, got, want)
		}
	}
}

func TestWeightedAddNeedsAWeight(t *testing.T) {
	lb := LoadBanlanceFactory(LbWeightRoundRobin)
	if err := lb.Add("a"); err == nil {
		t.Error("Add without a weight: want an error")
	}
	if err := lb.Add("a", "ten"); err == nil {
		t.Error("Add with weight \"ten\": want an error")
	}
}

// The article's text says a failure lowers effectiveWeight; the code has no
// way to lower it, so it always equals weight.
func TestWeightedEffectiveWeightNeverChanges(t *testing.T) {
	lb := &WeightRoundRobinBalance{}
	lb.Add("a", "3")
	lb.Add("b", "1")
	for i := 0; i < 100; i++ {
		lb.Next()
		for _, n := range lb.rss {
			if n.effectiveWeight != n.weight {
				t.Fatalf("effectiveWeight %d != weight %d", n.effectiveWeight, n.weight)
			}
		}
	}
}

func TestRandomPicksOnlyMembers(t *testing.T) {
	lb := LoadBanlanceFactory(LbRandom)
	if got, _ := lb.Get("k"); got != "" {
		t.Errorf("empty: got %q, want \"\"", got)
	}
	for _, s := range split("a b c") {
		lb.Add(s, "1")
	}
	count := map[string]int{}
	for _, p := range picks(t, lb, 3000) {
		count[p]++
	}
	for _, s := range split("a b c") {
		// about 1000 each; far below would mean the draw is not uniform
		if count[s] < 800 {
			t.Errorf("%s picked %d times of 3000", s, count[s])
		}
	}
	if len(count) != 3 {
		t.Errorf("picked %v, want only a, b, c", count)
	}
}

func newHash(servers ...string) LoadBalance {
	lb := LoadBanlanceFactory(LbConsistentHash)
	for _, s := range servers {
		lb.Add(s)
	}
	return lb
}

func TestConsistentHashSticky(t *testing.T) {
	lb := newHash("http://127.0.0.1:2003/base", "http://127.0.0.1:2004/base")
	other := newHash("http://127.0.0.1:2003/base", "http://127.0.0.1:2004/base")
	for _, key := range []string{"127.0.0.1", "10.0.0.7", "127.0.0.1:53412", "user-42"} {
		first, err := lb.Get(key)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 50; i++ {
			if got, _ := lb.Get(key); got != first {
				t.Fatalf("key %s: %s then %s", key, first, got)
			}
		}
		// crc32 is fixed: another balancer with the same servers agrees
		if got, _ := other.Get(key); got != first {
			t.Errorf("key %s: two balancers disagree: %s, %s", key, first, got)
		}
	}
}

func TestConsistentHashEmpty(t *testing.T) {
	lb := NewConsistentHashBanlance(10, nil)
	if _, err := lb.Get("k"); err == nil || err.Error() != "node is empty" {
		t.Errorf("empty ring: got %v, want \"node is empty\"", err)
	}
}

func TestConsistentHashWrapsAround(t *testing.T) {
	// A hash we can read: the ring points are the numbers themselves.
	fixed := func(data []byte) uint32 {
		n, _ := strconv.ParseUint(string(data), 10, 32)
		return uint32(n)
	}
	lb := NewConsistentHashBanlance(1, fixed)
	lb.Add("100") // replica 0: hash("0100") = 100
	lb.Add("200") // hash("0200") = 200
	tests := []struct{ key, want string }{
		{"50", "100"},  // before the first point: the first
		{"100", "100"}, // on a point: that point (>=)
		{"150", "200"}, // between: the next
		{"250", "100"}, // past the last: wraps to the first
	}
	for _, tt := range tests {
		if got, _ := lb.Get(tt.key); got != tt.want {
			t.Errorf("key %s: got %s, want %s", tt.key, got, tt.want)
		}
	}
}

func TestConsistentHashFewKeysMove(t *testing.T) {
	abc := newHash("a", "b", "c")
	ab := newHash("a", "b") // c has left
	moved, onC := 0, 0
	const n = 3000
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("10.0.%d.%d", i/256, i%256)
		before, _ := abc.Get(key)
		after, _ := ab.Get(key)
		if before == "c" {
			onC++
		}
		if before != after {
			moved++
			// only the keys that were on c move
			if before != "c" {
				t.Fatalf("key %s moved from %s to %s, though %s is still there", key, before, after, before)
			}
		}
	}
	if moved != onC {
		t.Errorf("moved %d keys, %d were on c", moved, onC)
	}
	// about a third were on c (10 virtual nodes each: roughly, not exactly)
	if moved == 0 || moved > n/2 {
		t.Errorf("moved %d of %d keys", moved, n)
	}
	t.Logf("c leaving moved %d of %d keys (a %% 3 → %% 2 hash would move about 2/3)", moved, n)
}

// ARTICLE BUG, pinned: ConsistentHashBanlance.Update holds the lock and
// calls Add, which takes it again. It never returns.
func TestConsistentHashUpdateDeadlocks(t *testing.T) {
	lb := NewConsistentHashBanlance(10, nil)
	lb.SetConf(&staticConf{list: []string{"a,1"}})
	done := make(chan struct{})
	go func() {
		lb.Update() // blocks forever: this goroutine is left behind
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("Update returned: the article's deadlock is gone; update the comments")
	case <-time.After(300 * time.Millisecond):
	}
}

// With an empty list Update returns, and leaves hashMap nil.
func TestConsistentHashUpdateEmptyLeavesNilMap(t *testing.T) {
	lb := NewConsistentHashBanlance(10, nil)
	lb.SetConf(&staticConf{})
	lb.Update()
	if lb.hashMap != nil {
		t.Fatal("hashMap not nil")
	}
	defer func() {
		if recover() == nil {
			t.Error("Add after an empty Update: want a panic (nil map)")
		}
	}()
	lb.Add("a")
}

func TestFactoryTypes(t *testing.T) {
	tests := []struct {
		lb   LbType
		want string
	}{
		{LbRandom, "*loadbalance.RandomBalance"},
		{LbRoundRobin, "*loadbalance.RoundRobinBalance"},
		{LbWeightRoundRobin, "*loadbalance.WeightRoundRobinBalance"},
		{LbConsistentHash, "*loadbalance.ConsistentHashBanlance"},
		{LbType(99), "*loadbalance.RandomBalance"},
	}
	for _, tt := range tests {
		if got := fmt.Sprintf("%T", LoadBanlanceFactory(tt.lb)); got != tt.want {
			t.Errorf("%v: got %s, want %s", tt.lb, got, tt.want)
		}
	}
}

func TestParseLbType(t *testing.T) {
	for in, want := range map[string]LbType{
		"random": LbRandom, "round-robin": LbRoundRobin, "rr": LbRoundRobin,
		"weighted-round-robin": LbWeightRoundRobin, "wrr": LbWeightRoundRobin, "weighted": LbWeightRoundRobin,
		"consistent-hash": LbConsistentHash, "hash": LbConsistentHash,
	} {
		if got, err := ParseLbType(in); err != nil || got != want {
			t.Errorf("%s: got %v, %v", in, got, err)
		}
	}
	if _, err := ParseLbType("fastest"); err == nil {
		t.Error("fastest: want an error")
	}
}

// The observer: UpdateConf reaches every balancer built WithConf.
func TestWithConfFollowsTheSubject(t *testing.T) {
	conf := &staticConf{list: []string{"a,5", "b,1", "c,1"}}
	rr := LoadBanlanceFactorWithConf(LbRoundRobin, conf)
	wrr := LoadBanlanceFactorWithConf(LbWeightRoundRobin, conf)
	rnd := LoadBanlanceFactorWithConf(LbRandom, conf)
	if len(conf.observers) != 3 {
		t.Fatalf("%d observers attached, want 3", len(conf.observers))
	}
	if got := picks(t, wrr, 7); !reflect.DeepEqual(got, split("a a b a c a a")) {
		t.Errorf("wrr from conf: got %v", got)
	}
	conf.UpdateConf([]string{"b,1"})
	for _, lb := range []LoadBalance{rr, wrr, rnd} {
		if got := picks(t, lb, 3); !reflect.DeepEqual(got, split("b b b")) {
			t.Errorf("%T after UpdateConf: got %v", lb, got)
		}
	}
}

// recorder is an Observer that remembers each list it was shown.
type recorder struct {
	mu    sync.Mutex
	conf  LoadBalanceConf
	lists [][]string
}

func (r *recorder) Update() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lists = append(r.lists, r.conf.GetConf())
}

func (r *recorder) waitFor(t *testing.T, want []string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		n := len(r.lists)
		var last []string
		if n > 0 {
			last = r.lists[n-1]
		}
		r.mu.Unlock()
		if reflect.DeepEqual(last, want) || (len(want) == 0 && n > 0 && len(last) == 0) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("observer never saw %v (saw %v)", want, r.lists)
}

func TestCheckConfTakesOutAndBringsBack(t *testing.T) {
	lnA, _ := net.Listen("tcp", "127.0.0.1:0")
	defer lnA.Close()
	lnB, _ := net.Listen("tcp", "127.0.0.1:0")
	a := "http://" + lnA.Addr().String() + "/base"
	b := "http://" + lnB.Addr().String() + "/base"

	var logs []string
	var logMu sync.Mutex
	conf, err := NewLoadBalanceCheckConf([]string{a + ",10", b}, CheckConfig{
		Interval:  20 * time.Millisecond,
		Timeout:   100 * time.Millisecond,
		MaxErrNum: 2,
		Logf: func(f string, args ...interface{}) {
			logMu.Lock()
			logs = append(logs, fmt.Sprintf(f, args...))
			logMu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// every server starts in the list; no weight means DefaultWeight
	if got, want := conf.GetConf(), []string{a + ",10", b + ",50"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("start: got %v, want %v", got, want)
	}
	rec := &recorder{conf: conf}
	conf.Attach(rec)
	conf.WatchConf()
	defer conf.Stop()

	lnB.Close() // b stops accepting: out after two failed probes
	rec.waitFor(t, []string{a + ",10"})

	lnB2, err := net.Listen("tcp", lnB.Addr().String()) // b is back
	if err != nil {
		t.Skip("cannot bind b's port again:", err)
	}
	defer lnB2.Close()
	rec.waitFor(t, []string{a + ",10", b + ",50"})

	logMu.Lock()
	defer logMu.Unlock()
	if len(logs) != 2 || !strings.Contains(logs[0], "down (2 failures), active: ["+a+"]") ||
		!strings.Contains(logs[1], "up again, active: ["+a+" "+b+"]") {
		t.Errorf("logs: %q", logs)
	}
}

func TestCheckConfRejectsBadURL(t *testing.T) {
	if _, err := NewLoadBalanceCheckConf([]string{"127.0.0.1:2003"}, CheckConfig{}); err == nil {
		t.Error("a server without scheme: want an error")
	}
}

// ringShare sums, per server, the arcs of the ring that end at its points
// (the keys in an arc go to the point that ends it).
func ringShare(c *ConsistentHashBanlance) map[string]float64 {
	share := map[string]float64{}
	for i, k := range c.keys {
		prev := c.keys[len(c.keys)-1] // the arc before the first point wraps round
		if i > 0 {
			prev = c.keys[i-1]
		}
		arc := uint32(k - prev) // mod 2^32
		share[c.hashMap[k]] += float64(arc) / (1 << 32)
	}
	return share
}

// With the factory's 10 replicas the article's two servers split the ring
// 28.9% / 71.1%, not half and half.
func TestConsistentHashRingIsLopsided(t *testing.T) {
	tests := []struct {
		replicas int
		want2003 float64
	}{
		{10, 0.2887},
		{100, 0.3690},
		{1000, 0.5013},
	}
	for _, tt := range tests {
		c := NewConsistentHashBanlance(tt.replicas, nil)
		c.Add("http://127.0.0.1:2003/base")
		c.Add("http://127.0.0.1:2004/base")
		got := ringShare(c)["http://127.0.0.1:2003/base"]
		if got < tt.want2003-0.0005 || got > tt.want2003+0.0005 {
			t.Errorf("%d replicas: 2003 owns %.4f of the ring, want %.4f", tt.replicas, got, tt.want2003)
		}
	}
}
