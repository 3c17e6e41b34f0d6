// Exercise 6 · ModifyResponse and ErrorHandler (修改返回内容, 错误回调), lab 07.
//
// NewSingleHostReverseProxy to one real server, with the two hooks the
// article hangs on it:
//   1. ModifyResponse changes the upstream's answer before the client sees
//      it: a 200 body gets "hello " in front, and the length is fixed to
//      count the new bytes (重置响应数据长度); any other status passes as it is;
//   2. ErrorHandler answers when the round trip fails (the upstream is down,
//      or closes the connection without answering): 502 Bad Gateway, with a
//      body that says what went wrong.
//
// The contract with `lab verify` (any language can keep it):
//   - listen on $LISTEN (host:port; $PORT holds the port alone);
//   - the real server is the URL in $UPSTREAM.
//
// Run it:    LISTEN=127.0.0.1:2002 UPSTREAM=http://127.0.0.1:2003 go run .
// Verify it: lab verify 6
package main

import (
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
)

// TODO 1: write the ModifyResponse hook, a func(res *http.Response) error:
// when res.StatusCode is 200, read the upstream's whole body, put "hello "
// and it back as res.Body, and fix both lengths (res.ContentLength and the
// Content-Length header) to count the new bytes. Any other status: return
// nil and leave the answer alone.

// TODO 2: write the ErrorHandler, a func(w http.ResponseWriter, r
// *http.Request, err error): answer 502 Bad Gateway with the body
// "ErrorHandler error: " + err.Error().

func main() {
	target, err := url.Parse(os.Getenv("UPSTREAM"))
	if err != nil || target.Host == "" {
		log.Fatalf("$UPSTREAM must be a URL like http://127.0.0.1:2003, not %q", os.Getenv("UPSTREAM"))
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	// TODO 1: proxy.ModifyResponse = your hook.
	// TODO 2: proxy.ErrorHandler = your handler.
	log.Printf("proxying to %s, listening on %s", target, os.Getenv("LISTEN"))
	log.Fatal(http.ListenAndServe(os.Getenv("LISTEN"), proxy))
}
