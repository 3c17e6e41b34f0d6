// Article: ReverseProxy 负载均衡 › 1.3 加权负载均衡 (weighted load balancing).
//
// WeightRoundRobinBalance is smooth weighted round robin, the algorithm
// nginx uses: a server of weight 5 gets 5 turns in 7 beside two servers of
// weight 1, and its turns are spread out (a a b a c a a), not bunched
// (a a a a a b c).
//
// Each node carries three numbers (the article's 参数详解):
//
//	weight           the weight it was configured with
//	currentWeight    a running score, changed on every pick
//	effectiveWeight  the weight actually used; starts at weight
//
// and each pick (the article's 算法流程) does:
//
//	a. every node: currentWeight += effectiveWeight
//	b. the node with the largest currentWeight is chosen (the first on a tie)
//	c. the chosen node: currentWeight -= total, the sum of effectiveWeights
//
// The currentWeights always sum to 0 after a pick, and over one cycle of
// total picks every node is chosen exactly weight times.
package loadbalance

import (
	"errors"
	"log"
	"strconv"
	"strings"
)

// WeightRoundRobinBalance is the article's weighted balancer. curIndex and
// rsw are declared by the article and never used.
//
// ARTICLE BUG: no lock. Next changes every node's currentWeight, so two
// requests at once race on them (and on rss while Update replaces it); the
// sequence stops being smooth and can repeat a node. Guard Next and Update
// with a sync.Mutex.
type WeightRoundRobinBalance struct {
	curIndex int
	rss      []*WeightNode
	rsw      []int
	// the observed subject (观察主体), set by SetConf
	conf LoadBalanceConf
}

// WeightNode is one server and its three weights.
type WeightNode struct {
	addr            string
	weight          int // 权重值: the configured weight
	currentWeight   int // 节点当前权重: the running score
	effectiveWeight int // 有效权重: the weight used, starts at weight
}

// Add takes exactly two params: the address and its weight, a decimal
// integer. (The article does not reject a weight of 0, which is never
// picked, or a negative one, which breaks the algorithm.)
func (r *WeightRoundRobinBalance) Add(params ...string) error {
	if len(params) != 2 {
		return errors.New("param len need 2")
	}
	parInt, err := strconv.ParseInt(params[1], 10, 64)
	if err != nil {
		return err
	}
	node := &WeightNode{addr: params[0], weight: int(parInt)}
	node.effectiveWeight = node.weight
	r.rss = append(r.rss, node)
	return nil
}

// Next makes one pick: steps a, b and c above in one pass.
func (r *WeightRoundRobinBalance) Next() string {
	total := 0
	var best *WeightNode
	for i := 0; i < len(r.rss); i++ {
		w := r.rss[i]
		// step 1: the sum of the effective weights
		total += w.effectiveWeight

		// step 2 (a): raise the running score by the effective weight
		w.currentWeight += w.effectiveWeight

		// step 3: the article's comment says effectiveWeight is lowered by 1
		// when talking to the server fails, raised by 1 on success, back up
		// to weight; and its text (参数详解) says a failure sets it to
		// weight-1.
		// ARTICLE BUG: the text and the code disagree. Nothing ever lowers
		// effectiveWeight: there is no failure callback (main.go's
		// ErrorHandler only has a todo: "如果是权重的负载则调整临时权重"). So
		// effectiveWeight always equals weight, this increment never runs,
		// and a failing server keeps its full share. To do what the text
		// says, give the balancer a way to hear of failures (e.g. a
		// Fail(addr) method the ErrorHandler calls) that lowers
		// effectiveWeight, and let this line restore it.
		if w.effectiveWeight < w.weight {
			w.effectiveWeight++
		}
		// step 4 (b): the largest running score wins; strict >, so the first
		// node wins a tie
		if best == nil || w.currentWeight > best.currentWeight {
			best = w
		}
	}
	if best == nil {
		return ""
	}
	// step 5 (c): the winner pays the total back
	best.currentWeight -= total
	return best.addr
}

// Get ignores the key.
func (r *WeightRoundRobinBalance) Get(key string) (string, error) {
	return r.Next(), nil
}

// SetConf remembers the subject this balancer observes.
func (r *WeightRoundRobinBalance) SetConf(conf LoadBalanceConf) {
	r.conf = conf
}

// Update rebuilds the nodes from the conf's "addr,weight" strings (one
// branch for every conf type: see RandomBalance.Update). The nodes are new,
// so every currentWeight starts again from 0: the smooth sequence restarts
// on each change of the server list. An entry without a weight fails Add and
// is silently left out, as in the article.
func (r *WeightRoundRobinBalance) Update() {
	if r.conf == nil {
		return
	}
	list := r.conf.GetConf()
	log.Println("WeightRoundRobinBalance get conf:", list)
	r.rss = nil
	for _, ip := range list {
		r.Add(strings.Split(ip, ",")...)
	}
}
