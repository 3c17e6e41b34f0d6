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
	"bytes"
	"io"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
)

// prefixOK puts "hello " in front of every 200 body.
func prefixOK(res *http.Response) error {
	if res.StatusCode != http.StatusOK {
		// Not ours to change: the client should see the upstream's own
		// status and body (an error page stays an error page).
		return nil
	}
	// Read the whole body: the new one is built from it in memory.
	upstreamBody, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		// An error here goes to the ErrorHandler, like a failed round trip.
		return err
	}
	newBody := append([]byte("hello "), upstreamBody...)
	res.Body = io.NopCloser(bytes.NewReader(newBody))
	// Both lengths must count the prefix. ReverseProxy copies res.Header to
	// the client, so the upstream's Content-Length would promise fewer bytes
	// than the body has, and Go's server refuses to write past it.
	res.ContentLength = int64(len(newBody))
	res.Header.Set("Content-Length", strconv.Itoa(len(newBody)))
	return nil
}

// badGateway answers for an upstream that failed to answer.
func badGateway(w http.ResponseWriter, r *http.Request, err error) {
	log.Printf("%s %s: the upstream failed: %v", r.Method, r.URL.Path, err)
	// 502: "I am fine, the server behind me is not" (the article answers
	// 500, which blames the proxy itself).
	http.Error(w, "ErrorHandler error: "+err.Error(), http.StatusBadGateway)
}

func main() {
	target, err := url.Parse(os.Getenv("UPSTREAM"))
	if err != nil || target.Host == "" {
		log.Fatalf("$UPSTREAM must be a URL like http://127.0.0.1:2003, not %q", os.Getenv("UPSTREAM"))
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = prefixOK
	proxy.ErrorHandler = badGateway
	log.Printf("proxying to %s, listening on %s", target, os.Getenv("LISTEN"))
	log.Fatal(http.ListenAndServe(os.Getenv("LISTEN"), proxy))
}
