// Exercise 5 · A custom Director (自定义SingleHostReverseProxy), lab 06.
//
// The article's NewMySingleHostReverseProxy hands ReverseProxy a Director
// (控制器) that does more than point the request at the real server:
//  1. a URL rewrite (URL重写): ^/dir(.*) → $1, so /dir/abc reaches the
//     upstream http://…/base as /base/abc;
//  2. a header for the upstream: token: ssss;
//  3. the request body replaced by {"apple":2,"banana":3,"cherry":4}, with
//     its length told right (the article's warning: 否则会报错, or else an
//     error), also when the client sent its body chunked;
//  4. and, unlike the article's, no panic on a GET, which has no body.
//
// The contract with `lab verify` (any language can keep it):
//   - listen on $LISTEN (host:port; $PORT holds the port alone);
//   - the real server is the URL in $UPSTREAM, with a base path
//     (http://127.0.0.1:2003/base).
//
// Run it:    LISTEN=127.0.0.1:2002 UPSTREAM=http://127.0.0.1:2003/base go run .
// Try it:    curl -s 127.0.0.1:2002/dir/post -d 'hello world' -H 'Accept: application/json'
// Verify it: lab verify 5
package main

import (
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"regexp"
	"strings"
)

// (You will need "bytes", "io" and "strconv" too: add them here.)

// dirPrefix matches the paths the rewrite applies to; $1 is what follows
// /dir. Compiled once, when the program starts, not on every request.
var dirPrefix = regexp.MustCompile("^/dir(.*)")

// replacementBody is the document every request body is replaced with:
// what encoding/json makes of the article's map (it sorts the keys), 33
// bytes.
var replacementBody = []byte(`{"apple":2,"banana":3,"cherry":4}`)

// newDirector returns the Director for target: the rewrite, then what
// NewSingleHostReverseProxy's Director does, then the header and the body.
func newDirector(target *url.URL) func(*http.Request) {
	targetQuery := target.RawQuery
	return func(req *http.Request) {
		// TODO 1: the rewrite runs first, on the client's path: with
		// dirPrefix, /dir/abc → /abc ($1 is what follows /dir).

		// Where the request goes: the target's scheme and host, its base
		// path joined before the client's, its query before the client's.
		req.URL.Scheme = target.Scheme
		req.URL.Host = target.Host
		req.URL.Path = singleJoiningSlash(target.Path, req.URL.Path)
		if targetQuery == "" || req.URL.RawQuery == "" {
			req.URL.RawQuery = targetQuery + req.URL.RawQuery
		} else {
			req.URL.RawQuery = targetQuery + "&" + req.URL.RawQuery
		}

		// TODO 2: a header for the upstream, token: ssss.

		// TODO 3: the body. Read what the client sent (the article logs it),
		// then put replacementBody in its place, and tell its length to
		// req.ContentLength (the transport's source for Content-Length),
		// the Content-Length header line, and Content-Type. What does a
		// GET, which has no body, hand you here?

		// TODO 4: a client may send its body chunked (no length at all);
		// make sure the new body goes to the upstream with its length.
	}
}

// singleJoiningSlash joins a and b with exactly one slash between them,
// as net/http/httputil does: "/base" + "/abc" → "/base/abc".
func singleJoiningSlash(a, b string) string {
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

func main() {
	target, err := url.Parse(os.Getenv("UPSTREAM"))
	if err != nil || target.Host == "" {
		log.Fatalf("set UPSTREAM to the real server's URL (got %q)", os.Getenv("UPSTREAM"))
	}
	// No ErrorHandler: ReverseProxy's own logs the error and answers 502.
	proxy := &httputil.ReverseProxy{Director: newDirector(target)}
	log.Printf("proxy to %s, listening on %s", target, os.Getenv("LISTEN"))
	log.Fatal(http.ListenAndServe(os.Getenv("LISTEN"), proxy))
}
