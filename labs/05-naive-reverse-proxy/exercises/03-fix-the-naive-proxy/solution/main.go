// Exercise 3 · Fix the naive reverse proxy (简单版反向代理), lab 05.
//
// The article's hand-written proxy points the request at the real server,
// sends it with http.DefaultTransport.RoundTrip and copies the answer back.
// Three of its flaws are fixed here, as ReverseProxy fixes them:
//  1. the client gets the real server's status, not always 200;
//  2. the real server learns who the client was: X-Forwarded-For;
//  3. hop-by-hop headers (逐段消息头) stay on their own hop, both ways.
//
// The contract with `lab verify` (any language can keep it):
//   - listen on $LISTEN (host:port; $PORT holds the port alone);
//   - the real server is the URL in $UPSTREAM.
//
// Run it:    LISTEN=127.0.0.1:2002 UPSTREAM=http://127.0.0.1:2003 go run .
// Verify it: lab verify 3
package main

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// hopHeaders describe one connection, not the message (RFC 9110 §7.6.1):
// a proxy has two connections, so it drops them on the way through.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// removeHopHeaders drops the hop-by-hop headers of h, and first every
// header that Connection names (a sender makes any header hop-by-hop so).
func removeHopHeaders(h http.Header) {
	for _, field := range h.Values("Connection") {
		for _, name := range strings.Split(field, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopHeaders {
		h.Del(name)
	}
}

// appendForwardedFor adds the client's IP to X-Forwarded-For, after what
// earlier proxies wrote there.
func appendForwardedFor(req *http.Request) {
	clientIP, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		return
	}
	if prior := req.Header.Values("X-Forwarded-For"); len(prior) > 0 {
		clientIP = strings.Join(prior, ", ") + ", " + clientIP
	}
	req.Header.Set("X-Forwarded-For", clientIP)
}

func main() {
	target, err := url.Parse(os.Getenv("UPSTREAM"))
	if err != nil || target.Host == "" {
		log.Fatalf("set UPSTREAM to the real server's URL (got %q)", os.Getenv("UPSTREAM"))
	}
	handler := func(rw http.ResponseWriter, req *http.Request) {
		// A handler must not change the request it was given: work on a copy.
		out := req.Clone(req.Context())
		out.URL.Scheme = target.Scheme
		out.URL.Host = target.Host
		out.RequestURI = ""
		removeHopHeaders(out.Header)
		appendForwardedFor(out)

		resp, err := http.DefaultTransport.RoundTrip(out)
		if err != nil {
			// Not a panic: the client is told the upstream failed.
			http.Error(rw, "bad gateway: "+err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		removeHopHeaders(resp.Header)
		for name, values := range resp.Header {
			for _, value := range values {
				rw.Header().Add(name, value)
			}
		}
		rw.WriteHeader(resp.StatusCode)
		io.Copy(rw, resp.Body)
	}
	log.Printf("proxy to %s, listening on %s", target, os.Getenv("LISTEN"))
	log.Fatal(http.ListenAndServe(os.Getenv("LISTEN"), http.HandlerFunc(handler)))
}
