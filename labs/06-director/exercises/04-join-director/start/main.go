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
	_ "strings" // for TODO 2: drop the _ when you use it
)

// joinPaths puts b after a with exactly one slash between them.
func joinPaths(a, b string) string {
	// TODO 2: a ends with "/" or not, b starts with "/" or not: four cases,
	// and one slash between them in each (strings.HasSuffix, HasPrefix).
	return b
}

// newDirector points each request at target.
func newDirector(target *url.URL) func(*http.Request) {
	targetQuery := target.RawQuery
	return func(req *http.Request) {
		// TODO 1: point req.URL at the target: its Scheme and its Host.
		req.URL.Path = joinPaths(target.Path, req.URL.Path)
		// TODO 3: the target's query comes first, then the request's, joined
		// with "&" when both are there (targetQuery, req.URL.RawQuery).
		_ = targetQuery
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
