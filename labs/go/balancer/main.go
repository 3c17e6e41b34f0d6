// Command balancer is the article's main.go: a ReverseProxy in front of
// several real servers, with a load balancer choosing one per request.
//
// Article: ReverseProxy 负载均衡 › 2. ReverseProxy 集成负载均衡 (ReverseProxy
// with a load balancer), main.go.
//
// It shows where a balancer plugs into ReverseProxy: in the Director. For
// every request the Director asks lb.Get for a server, then rewrites the
// request for it the way NewSingleHostReverseProxy would. The rest is the
// article's ModifyResponse (a non-200 answer gets "StatusCode error:" in
// front of its body) and ErrorHandler (500 "ErrorHandler error:" and the
// error), and the article's Transport.
//
// --plain takes the article's hooks away, for side-by-side comparisons:
// Go's ReverseProxy as it comes (no ModifyResponse; no ErrorHandler, so a
// failed upstream is Go's 502 and a "http: proxy error" log line), and the
// User-Agent handling of NewSingleHostReverseProxy. The balancer and the
// Transport stay the same.
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
	"strconv"
	"strings"
	"time"

	"labgo/internal/lab"
	"labgo/loadbalance"
)

// transport is the article's connection pool for the upstreams.
var transport = &http.Transport{
	DialContext: (&net.Dialer{
		Timeout:   30 * time.Second, // connecting to an upstream gives up after this
		KeepAlive: 30 * time.Second, // TCP keep-alive probes on idle connections
	}).DialContext,
	MaxIdleConns:          100,              // idle connections kept, all upstreams together
	IdleConnTimeout:       90 * time.Second, // an idle connection is closed after this
	TLSHandshakeTimeout:   10 * time.Second, // for https upstreams
	ExpectContinueTimeout: 1 * time.Second,  // wait this long for "100 Continue" before sending the body anyway
	// MaxIdleConnsPerHost is not set, so Go keeps its default,
	// http.DefaultMaxIdleConnsPerHost = 2 idle connections per upstream: with
	// more than two requests at once to one upstream, the extra connections
	// are closed after use and new ones dialed next time. (The 2.3 listing
	// sets it to 200: see the transport program.) Proxy is nil too:
	// HTTP_PROXY is not used for the upstreams.
}

// NewMultipleHostsReverseProxy returns a ReverseProxy that sends each request
// to the server lb chooses. plain drops the article's hooks (see --plain).
func NewMultipleHostsReverseProxy(lb loadbalance.LoadBalance, plain bool) *httputil.ReverseProxy {
	// The Director (请求协调者), called once per request, on the request's
	// own goroutine: many run at once.
	director := func(req *http.Request) {
		// ARTICLE BUG: the key is req.RemoteAddr, "ip:port". Only the
		// consistent hash uses the key, and the client's port changes with
		// every new connection: the same client lands on a different server
		// for each connection, and sticks only while its keep-alive
		// connection lasts. Key on the IP: host, _, _ :=
		// net.SplitHostPort(req.RemoteAddr).
		// (The random, round-robin and weighted balancers have no lock and
		// this runs concurrently: see the loadbalance package.)
		nextAddr, err := lb.Get(req.RemoteAddr)
		if err != nil {
			// ARTICLE BUG: log.Fatal in a Director stops the whole proxy, for
			// every client, because one Get failed (the consistent hash with
			// no server: "node is empty"). A Director cannot fail a request;
			// choose the server in a handler in front of the proxy and
			// answer 503 there.
			log.Fatal("get next addr fail")
		}
		target, err := url.Parse(nextAddr)
		if err != nil {
			// ARTICLE BUG: the same, for a server URL that does not parse.
			// Parse the URLs once, when they are added.
			log.Fatal(err)
		}
		// From here on, NewSingleHostReverseProxy's Director (2.1).
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
			if plain {
				// NewSingleHostReverseProxy: an empty value, so that Go's
				// transport sends no User-Agent at all.
				req.Header.Set("User-Agent", "")
			} else {
				// The article: a made-up value. The upstream sees
				// "User-Agent: user-agent" where the client sent none.
				req.Header.Set("User-Agent", "user-agent")
			}
		}
	}

	// ModifyResponse (更改内容): try curl 127.0.0.1:2002/error, which reaches
	// the real server's /base/error (500).
	modifyFunc := func(resp *http.Response) error {
		if resp.StatusCode != 200 {
			// read the body
			oldPayload, err := ioutil.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			// put a prefix in front of it; the status stays what it was
			// ARTICLE BUG: as in the director, a gzip-encoded body is broken
			// by the prefix; only change a body whose Content-Encoding is
			// empty.
			newPayload := []byte("StatusCode error:" + string(oldPayload))
			resp.Body = ioutil.NopCloser(bytes.NewBuffer(newPayload))
			// the length, in the field and in the header the client gets
			resp.ContentLength = int64(len(newPayload))
			resp.Header.Set("Content-Length", strconv.FormatInt(int64(len(newPayload)), 10))
		}
		return nil
	}

	// ErrorHandler (错误回调): try it with a real server stopped. It gets the
	// errors of transport.RoundTrip and of ModifyResponse.
	errFunc := func(w http.ResponseWriter, r *http.Request, err error) {
		// The article's todo: "如果是权重的负载则调整临时权重" (for the
		// weighted balancer, lower the failed server's weight here). It is
		// never done: see weight_round_robin.go.
		// (500 is the article's choice; 502 Bad Gateway is what Go's default
		// ErrorHandler and most proxies answer for a failed upstream.)
		http.Error(w, "ErrorHandler error:"+err.Error(), 500)
	}

	if plain {
		return &httputil.ReverseProxy{Director: director, Transport: transport}
	}
	return &httputil.ReverseProxy{Director: director, Transport: transport, ModifyResponse: modifyFunc, ErrorHandler: errFunc}
}

// singleJoiningSlash joins two paths with exactly one slash (copied from
// net/http/httputil, as the article does).
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
	lab.Usage("The article's main.go: ReverseProxy + a load balancer (NewMultipleHostsReverseProxy).",
		"ReverseProxy 负载均衡 › 2. ReverseProxy 集成负载均衡 (main.go)")
	addr := flag.String("listen", "127.0.0.1:2002", "address to listen on")
	upstreams := lab.NewUpstreamList(loadbalance.DefaultWeight,
		"http://127.0.0.1:2003/base,10", "http://127.0.0.1:2004/base,20")
	flag.Var(upstreams, "upstream", "real server URL[,WEIGHT]; repeat for each (weight: for weighted-round-robin; default "+loadbalance.DefaultWeight+")")
	lbName := flag.String("lb", "round-robin", "balancer: random, round-robin, weighted-round-robin or consistent-hash")
	plain := flag.Bool("plain", false, "Go's ReverseProxy as it comes: no ModifyResponse, no ErrorHandler, NewSingleHostReverseProxy's User-Agent")
	flag.Parse()

	lbType, err := loadbalance.ParseLbType(*lbName)
	if err != nil {
		lab.Fatalf("--lb: %v", err)
	}
	// The article: LoadBanlanceFactory(loadBalance.LbRoundRobin) and two Adds.
	rb := loadbalance.LoadBanlanceFactory(lbType)
	for _, up := range upstreams.Upstreams {
		if err := rb.Add(up.URL, up.Weight); err != nil {
			log.Println(err) // the article logs and goes on without that server
		}
	}
	proxy := NewMultipleHostsReverseProxy(rb, *plain)

	ln := lab.Listen(*addr, "listen")
	log.Println("Starting httpserver at " + ln.Addr().String())
	server := &http.Server{Handler: proxy}
	lab.Serve(server, ln)
	lab.Wait(server)
}
