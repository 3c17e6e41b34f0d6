// Command naive is the article's hand-written reverse proxy: a handler that
// points the request at the real server and calls
// http.DefaultTransport.RoundTrip itself.
//
// Article: go实现HTTP代理 › 2. 反向代理 (reverse proxy), the listing under
// "代理服务器代码实现" (the proxy's code), and the five problems the article
// lists after it (no error handling, no way to change the answer, no load
// balancing, no URL rewrite, no rate limiting...), which ReverseProxy solves.
//
// It shows the four steps of a reverse proxy in a dozen lines: the client
// talks to 127.0.0.1:2002 and never learns about 127.0.0.1:2003. The flaws
// are kept and marked ARTICLE BUG.
package main

import (
	"bufio"
	"flag"
	"log"
	"net/http"
	"net/url"

	"labgo/internal/lab"
)

// proxyAddr is the real server. The article has it as a package variable
// (proxyAddr = "http://127.0.0.1:2003"); here --target sets it.
var proxyAddr = "http://127.0.0.1:2003"

func handler(rw http.ResponseWriter, req *http.Request) {
	// 1. Parse the target and point the request at it.
	// ARTICLE BUG: proxy is used before err is checked. If the parse failed,
	// proxy is nil and proxy.Scheme panics before the check runs. Check err
	// first (and parse once, at start-up, not on every request).
	proxy, err := url.Parse(proxyAddr)
	// ARTICLE BUG: the handler changes the request the server gave it (and
	// sends that same request upstream). Handlers must not modify the
	// request; work on req.Clone(req.Context()). Note that req.Host is left
	// as it is: the upstream sees Host: 127.0.0.1:2002, the proxy's address.
	req.URL.Scheme = proxy.Scheme
	req.URL.Host = proxy.Host
	if err != nil {
		panic(err)
	}

	// ARTICLE BUG: nothing is added for the upstream: no X-Forwarded-For, so
	// the real server sees only RemoteAddr, which is the proxy's socket; and
	// no hop-by-hop header is removed (Connection, Keep-Alive, TE, Upgrade,
	// Proxy-*), in either direction.

	// 2. Send it to the real server.
	transport := http.DefaultTransport
	resp, err := transport.RoundTrip(req)
	if err != nil {
		// ARTICLE BUG: panic on an upstream error (real server down, or it
		// closed the connection, as RealServer's timeout handler does).
		// net/http's server recovers a handler's panic, logs "http: panic
		// serving ...", and closes the connection without an answer: the
		// client sees no response at all (curl: "Empty reply from server").
		// Answer 502 Bad Gateway and log the error instead.
		panic(err)
	}

	// 3. Copy the answer back to the client.
	for k, vv := range resp.Header {
		for _, v := range vv {
			rw.Header().Add(k, v)
		}
	}
	defer resp.Body.Close()
	// ARTICLE BUG: rw.WriteHeader(resp.StatusCode) is missing. The first
	// Write sends an implicit 200, so the upstream's 500 for /base/error
	// reaches the client as 200 OK with the body "error handler". Call
	// rw.WriteHeader(resp.StatusCode) after copying the headers.
	bufio.NewReader(resp.Body).WriteTo(rw)
}

func main() {
	lab.Usage("The article's hand-written reverse proxy (handler + DefaultTransport.RoundTrip), flaws kept.",
		"go实现HTTP代理 › 2. 反向代理 (代理服务器 naive proxy)")
	// The article listens on ":2002", every interface; the lab stays on loopback.
	listen := flag.String("listen", "127.0.0.1:2002", "address to listen on")
	flag.StringVar(&proxyAddr, "target", proxyAddr, "the real server (scheme and host are used; any path is ignored)")
	flag.Parse()

	// The article uses http.HandleFunc("/", handler), the DefaultServeMux; a
	// ServeMux of our own does the same without the global. Before handler
	// runs, the mux cleans the path: /a/../b or //b gets a 301 redirect to
	// /b from the proxy itself, not from the real server.
	mux := http.NewServeMux()
	mux.HandleFunc("/", handler)

	ln := lab.Listen(*listen, "listen")
	log.Println("server on " + ln.Addr().String())
	server := &http.Server{Handler: mux}
	lab.Serve(server, ln)
	lab.Wait(server)
}
