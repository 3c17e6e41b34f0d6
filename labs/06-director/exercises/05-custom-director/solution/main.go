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
	"bytes"
	"io"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
)

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
		// The rewrite runs first, on the client's path: /dir/abc → /abc.
		// "$1" is expanded to what the group matched. (It rewrites the
		// decoded Path, so an encoded slash, /dir/a%2Fb, arrives as
		// /base/a/b: lab 06 shows why.)
		req.URL.Path = dirPrefix.ReplaceAllString(req.URL.Path, "$1")

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

		// A header for the upstream.
		req.Header.Set("token", "ssss")

		// The body. ServeHTTP hands the Director no body at all (Body is
		// nil) when the client sent none, as with a plain GET: reading a
		// nil Body panics, so such a request goes on as it is.
		if req.Body == nil {
			return
		}
		// Read what the client sent (the article prints it). ServeHTTP
		// closes the client's body itself when it is done.
		old, err := io.ReadAll(req.Body)
		if err != nil {
			// A Director cannot fail the request; the new body is sent
			// anyway, and the client's broken upload only logged.
			log.Printf("reading the client's body: %v", err)
		}
		log.Printf("replacing a %d-byte body", len(old))
		req.Body = io.NopCloser(bytes.NewReader(replacementBody))
		// The transport writes Content-Length from this field, not from
		// req.Header, and refuses a body longer or shorter than it says.
		req.ContentLength = int64(len(replacementBody))
		// A client that sent its body chunked asked for chunked: the
		// transport would send this one chunked too, with no length.
		req.TransferEncoding = nil
		// The header line too, so that anything reading req.Header later
		// (a log, a hook) reads the same length.
		req.Header.Set("Content-Length", strconv.Itoa(len(replacementBody)))
		req.Header.Set("Content-Type", "application/json")
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
