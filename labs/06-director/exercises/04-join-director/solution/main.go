// Exercise 4 · The director of NewSingleHostReverseProxy (简单实现反向代理), lab 06.
//
// httputil.NewSingleHostReverseProxy(target) is a ReverseProxy whose
// Director points every request at target: the target's scheme and host,
// the target's path joined in front of the request's with exactly one slash
// between them, and the target's query before the request's. Here you write
// that Director yourself.
//
// The contract with `lab verify` (any language can keep it):
//   - listen on $LISTEN (host:port; $PORT holds the port alone);
//   - the target is the URL in $UPSTREAM (lab verify gives one with a path
//     and a query: http://127.0.0.1:PORT/base/?a=1).
//
// Run it:    LISTEN=127.0.0.1:2002 UPSTREAM='http://127.0.0.1:2003/base/?a=1' go run .
// Verify it: lab verify 4
package main

import (
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
)

// joinPaths puts b after a with exactly one slash between them.
func joinPaths(a, b string) string {
	aSlash := strings.HasSuffix(a, "/")
	bSlash := strings.HasPrefix(b, "/")
	switch {
	case aSlash && bSlash:
		return a + b[1:]
	case !aSlash && !bSlash:
		return a + "/" + b
	}
	return a + b
}

// newDirector points each request at target.
func newDirector(target *url.URL) func(*http.Request) {
	targetQuery := target.RawQuery
	return func(req *http.Request) {
		req.URL.Scheme = target.Scheme
		req.URL.Host = target.Host
		req.URL.Path = joinPaths(target.Path, req.URL.Path)
		if targetQuery == "" || req.URL.RawQuery == "" {
			req.URL.RawQuery = targetQuery + req.URL.RawQuery
		} else {
			req.URL.RawQuery = targetQuery + "&" + req.URL.RawQuery
		}
	}
}

func main() {
	target, err := url.Parse(os.Getenv("UPSTREAM"))
	if err != nil || target.Host == "" {
		log.Fatalf("set UPSTREAM to the target URL (got %q)", os.Getenv("UPSTREAM"))
	}
	proxy := &httputil.ReverseProxy{Director: newDirector(target)}
	log.Printf("proxy to %s, listening on %s", target, os.Getenv("LISTEN"))
	log.Fatal(http.ListenAndServe(os.Getenv("LISTEN"), proxy))
}
