// Command singlehost is the article's simplest ReverseProxy:
// httputil.NewSingleHostReverseProxy(target) used directly as the handler.
//
// Article: ReverseProxy实现原理 › 2. 简单实现反向代理 (a simple reverse
// proxy) and 2.1 NewSingleHostReverseProxy() 源码.
//
// It shows that ReverseProxy is an http.Handler, and the Director that
// NewSingleHostReverseProxy builds: scheme and host of the target, the
// target's path joined in front of the request's ("/xxx" through a proxy to
// ".../base" reaches "/base/xxx"), the target's query first, then "&", then
// the request's, and an empty User-Agent when the client sent none (so Go's
// transport does not add "Go-http-client/1.1").
//
// Compared with the naive proxy, ServeHTTP also removes hop-by-hop headers,
// appends the client to X-Forwarded-For, copies the status code, and answers
// 502 (and logs "http: proxy error: ...") when the upstream fails.
//
// Note what the Director does not change: req.Host. The real server sees
// the Host the client sent to the proxy (127.0.0.1:8080), not its own.
package main

import (
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"

	"labgo/internal/lab"
)

func main() {
	lab.Usage("httputil.NewSingleHostReverseProxy(target) as the whole server.",
		"ReverseProxy实现原理 › 2. 简单实现反向代理 (simple ReverseProxy)")
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on")
	// ARTICLE BUG: a slip in the listing: it proxies to
	// http://127.0.0.1:9999/base while the comment under it says the request
	// reaches 127.0.0.1:2003/base/xxx, where RealServer is. We default to
	// 2003, the article's real server.
	rs1 := flag.String("target", "http://127.0.0.1:2003/base", "the real server, with the base path to join")
	flag.Parse()

	// 1. The address to proxy to, parsed with url.Parse.
	url1, err1 := url.Parse(*rs1)
	if err1 != nil {
		// ARTICLE BUG: the error is logged and the program goes on with a
		// nil *url.URL; NewSingleHostReverseProxy then reads target.RawQuery
		// and panics. Stop here instead (log.Fatal).
		log.Println(err1)
	}
	// 2. The ReverseProxy, with the Director shown in 2.1.
	proxy := httputil.NewSingleHostReverseProxy(url1)

	// 3. ReverseProxy implements http.Handler: it is the whole server.
	// (The article: log.Fatal(http.ListenAndServe(":8080", proxy)).)
	ln := lab.Listen(*listen, "listen")
	server := &http.Server{Handler: proxy}
	lab.Serve(server, ln)
	lab.Wait(server)
}
