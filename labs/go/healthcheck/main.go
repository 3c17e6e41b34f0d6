// Command healthcheck is the article's load-balanced ReverseProxy fed by a
// health-checked server list through the observer pattern: the balancer is
// made by LoadBanlanceFactorWithConf from a LoadBalanceCheckConf, which
// probes every server and takes out the ones that stop answering.
//
// Article: ReverseProxy 负载均衡 › 2. ReverseProxy 集成负载均衡 (factory.go
// LoadBanlanceFactorWithConf, Config.go, and the LoadBalanceCheckConf that
// the balancers' Update expects). The article shows no main for it; this is
// its main.go with the conf in place of the two Adds.
//
// It shows the subject and its observers at work: stop one real server and,
// within --fail-threshold probes, the log says
//
//	health: 127.0.0.1:2004 down (2 failures), active: [http://127.0.0.1:2003/base] (last error: ...)
//
// and every request goes to the servers left; start it again and one probe
// later it is back. Until the probes notice, requests sent to the stopped
// server fail with the ErrorHandler's 500.
package main

import (
	"bytes"
	"flag"
	"io/ioutil"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"labgo/internal/lab"
	"labgo/loadbalance"
)

// transport is the article's, as in balancer/main.go (MaxIdleConnsPerHost
// unset: Go's default of 2 idle connections per upstream).
var transport = &http.Transport{
	DialContext: (&net.Dialer{
		Timeout:   30 * time.Second,
		KeepAlive: 30 * time.Second,
	}).DialContext,
	MaxIdleConns:          100,
	IdleConnTimeout:       90 * time.Second,
	TLSHandshakeTimeout:   10 * time.Second,
	ExpectContinueTimeout: 1 * time.Second,
}

// NewMultipleHostsReverseProxy is the article's, as in balancer/main.go (see
// the comments and ARTICLE BUG marks there); only where lb comes from
// differs.
func NewMultipleHostsReverseProxy(lb loadbalance.LoadBalance) *httputil.ReverseProxy {
	director := func(req *http.Request) {
		// ARTICLE BUG: as in balancer, keyed on ip:port, and log.Fatal ends
		// the proxy if Get fails. When every server is down, the random,
		// round-robin and weighted balancers return "" without an error:
		// url.Parse("") gives an empty URL, and the round trip fails with
		// "http: no Host in request URL" (500 from errFunc).
		nextAddr, err := lb.Get(req.RemoteAddr)
		if err != nil {
			log.Fatal("get next addr fail")
		}
		target, err := url.Parse(nextAddr)
		if err != nil {
			log.Fatal(err)
		}
		targetQuery := target.RawQuery
		req.URL.Scheme = target.Scheme
		req.URL.Host = target.Host
		req.URL.Path = singleJoiningSlash(target.Path, req.URL.Path)
		if targetQuery == "" || req.URL.RawQuery == "" {
			req.URL.RawQuery = targetQuery + req.URL.RawQuery
		} else {
			req.URL.RawQuery = targetQuery + "&" + req.URL.RawQuery
		}
		if _, ok := req.Header["User-Agent"]; !ok {
			req.Header.Set("User-Agent", "user-agent")
		}
	}
	modifyFunc := func(resp *http.Response) error {
		if resp.StatusCode != 200 {
			oldPayload, err := ioutil.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			newPayload := []byte("StatusCode error:" + string(oldPayload))
			resp.Body = ioutil.NopCloser(bytes.NewBuffer(newPayload))
			resp.ContentLength = int64(len(newPayload))
			resp.Header.Set("Content-Length", strconv.FormatInt(int64(len(newPayload)), 10))
		}
		return nil
	}
	errFunc := func(w http.ResponseWriter, r *http.Request, err error) {
		http.Error(w, "ErrorHandler error:"+err.Error(), 500)
	}
	return &httputil.ReverseProxy{Director: director, Transport: transport, ModifyResponse: modifyFunc, ErrorHandler: errFunc}
}

func singleJoiningSlash(a, b string) string {
	aslash := strings.HasSuffix(a, "/")
	bslash := strings.HasPrefix(b, "/")
	switch {
	case aslash && bslash:
		return a + b[1:]
	case !aslash && !bslash:
		return a + "/" + b
	}
	return a + b
}

func main() {
	lab.Usage("ReverseProxy + a balancer that observes a health-checked server list (LoadBalanceCheckConf).",
		"ReverseProxy 负载均衡 › 2. ReverseProxy 集成负载均衡 (LoadBalanceCheckConf)")
	addr := flag.String("listen", "127.0.0.1:2002", "address to listen on")
	upstreams := lab.NewUpstreamList(loadbalance.DefaultWeight,
		"http://127.0.0.1:2003/base,10", "http://127.0.0.1:2004/base,20")
	flag.Var(upstreams, "upstream", "real server URL[,WEIGHT]; repeat for each (weight: for weighted-round-robin; default "+loadbalance.DefaultWeight+")")
	lbName := flag.String("lb", "round-robin", "balancer: random, round-robin, weighted-round-robin or consistent-hash")
	interval := flag.Duration("check-interval", loadbalance.DefaultCheckInterval, "time between two rounds of probes")
	timeout := flag.Duration("check-timeout", loadbalance.DefaultCheckTimeout, "a TCP connect slower than this is a failed probe")
	threshold := flag.Int("fail-threshold", loadbalance.DefaultCheckMaxErrNum, "consecutive failed probes before a server is taken out")
	flag.Parse()

	lbType, err := loadbalance.ParseLbType(*lbName)
	if err != nil {
		lab.Fatalf("--lb: %v", err)
	}
	if *interval <= 0 || *timeout <= 0 || *threshold <= 0 {
		lab.Fatalf("--check-interval, --check-timeout and --fail-threshold must be positive")
	}
	var servers []string
	for _, up := range upstreams.Upstreams {
		servers = append(servers, up.URL+","+up.Weight)
	}

	// The subject: every server starts in the list; the probes start now.
	mConf, err := loadbalance.NewLoadBalanceCheckConf(servers, loadbalance.CheckConfig{
		Interval:  *interval,
		Timeout:   *timeout,
		MaxErrNum: *threshold,
	})
	if err != nil {
		lab.Fatalf("%v", err)
	}
	mConf.WatchConf()

	if lbType == loadbalance.LbConsistentHash {
		// Said before the hang, so a learner knows why nothing happens.
		log.Println("note: the article's ConsistentHashBanlance.Update takes its own lock twice (ARTICLE BUG): " +
			"LoadBanlanceFactorWithConf will never return and the proxy will not start")
		// lab.Wait is never reached: stop on SIGINT/SIGTERM from here.
		go func() {
			quit := make(chan os.Signal, 1)
			signal.Notify(quit, syscall.SIGINT, syscall.SIGTERM)
			<-quit
			os.Exit(0)
		}()
	}
	// The observer: the balancer attaches itself to mConf and fills itself
	// from mConf.GetConf(); each change the probes find calls its Update.
	rb := loadbalance.LoadBanlanceFactorWithConf(lbType, mConf)
	proxy := NewMultipleHostsReverseProxy(rb)

	ln := lab.Listen(*addr, "listen")
	log.Println("Starting httpserver at " + ln.Addr().String())
	server := &http.Server{Handler: proxy}
	lab.Serve(server, ln)
	lab.Wait(server)
}
