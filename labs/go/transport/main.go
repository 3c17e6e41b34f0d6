// Command transport is the article's "highly customised" ReverseProxy,
// NewMyMultiProxy: a ReverseProxy with its own http.Transport, the
// connection pool (连接池) that ReverseProxy sends every request through.
//
// Article: ReverseProxy实现原理 › 2.3 高度定制ReverseProxy (a highly
// customised ReverseProxy).
//
// It shows the pool's knobs. A Transport keeps finished keep-alive
// connections to the upstream idle and hands them to the next request, so
// sequential requests through this proxy reach the real server from the same
// port (RealServer prints it in RemoteAddr):
//
//	MaxIdleConns         idle connections kept in all (0 = no limit)
//	MaxIdleConnsPerHost  idle connections kept per upstream host; 0 means
//	                     Go's default, http.DefaultMaxIdleConnsPerHost = 2
//	IdleConnTimeout      how long an idle connection is kept
//	DialContext          how a new connection is opened (here: 10 s timeout)
//
// The article has two Transports. This program is the 2.3 listing:
// MaxIdleConns 200, MaxIdleConnsPerHost 200, IdleConnTimeout 90 s, a 10 s
// dial timeout. The one in "ReverseProxy 集成负载均衡" (main.go, see the
// balancer program) sets MaxIdleConns 100 and leaves MaxIdleConnsPerHost
// unset, so Go keeps only 2 idle connections per host there: under more than
// two concurrent requests to one upstream, the extra connections are closed
// after use instead of being pooled. --max-idle-per-host 0 gives that.
package main

import (
	"flag"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"labgo/internal/lab"
)

// NewMyMultiProxy returns the 2.3 ReverseProxy aimed at target.
//
// The article's Director uses placeholders: r.URL.Host = "${targetHost}",
// r.URL.Path = "${targetPath}". We fill them from --target (our reading):
// the host and the path of the target. Taken literally the Director
// replaces the whole path, so every request, whatever its path, reaches the
// target's path (/abc and /xyz both reach /base); the query is kept. It also
// hard-codes the scheme "http" and, unlike NewSingleHostReverseProxy, does
// not blank a missing User-Agent, so Go's transport sends its own
// "Go-http-client/1.1" when the client sent none.
func NewMyMultiProxy(target *url.URL, maxIdlePerHost int) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Transport: &http.Transport{
			MaxIdleConns: 200, // idle connections kept, all hosts together
			// Idle connections kept per host: the article's 200 by default.
			// 0 means Go's default, 2; a negative value keeps none (every
			// request dials a new connection).
			MaxIdleConnsPerHost: maxIdlePerHost,
			IdleConnTimeout:     90 * time.Second, // an idle connection is closed after this
			// Opening a connection: give up after 10 s.
			DialContext: (&net.Dialer{
				Timeout: 10 * time.Second,
			}).DialContext,
			// Everything else is zero, not http.DefaultTransport's value: in
			// particular Proxy is nil (HTTP_PROXY is ignored), there is no
			// TLSHandshakeTimeout and no ExpectContinueTimeout, and HTTP/2 is
			// not tried (ForceAttemptHTTP2 is false).
		},
		Director: func(r *http.Request) {
			r.URL.Host = target.Host // "${targetHost}"
			r.URL.Path = target.Path // "${targetPath}"
			r.URL.Scheme = "http"
		},
	}
}

func main() {
	lab.Usage("The article's 2.3 ReverseProxy with its own http.Transport (the connection pool).",
		"ReverseProxy实现原理 › 2.3 高度定制ReverseProxy (custom Transport)")
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on")
	targetFlag := flag.String("target", "http://127.0.0.1:2003/base", "the real server; every request goes to its path")
	// Not in the article (our addition, to compare pools): the listing's 200
	// is the default.
	maxIdlePerHost := flag.Int("max-idle-per-host", 200,
		"Transport.MaxIdleConnsPerHost (0: Go's default 2, as in the article's main.go; -1: no idle pool)")
	flag.Parse()

	target, err := url.Parse(*targetFlag)
	if err != nil || target.Host == "" {
		lab.Fatalf("--target %q: want a URL like http://127.0.0.1:2003/base", *targetFlag)
	}
	proxy := NewMyMultiProxy(target, *maxIdlePerHost)
	ln := lab.Listen(*listen, "listen")
	server := &http.Server{Handler: proxy}
	lab.Serve(server, ln)
	lab.Wait(server)
}
