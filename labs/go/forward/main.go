// Command forward is the article's forward proxy, the Pxy handler.
//
// Article: go实现HTTP代理 › 1. 正向代理 (forward proxy).
//
// It shows the three steps of the article: copy the client's request and
// add X-Forwarded-For (复制原请求对象), send it to the real server with
// http.DefaultTransport.RoundTrip (请求下游), copy the answer back (把下游请求
// 内容返回给上游). The client must be configured to use the proxy, so it sends
// absolute-form requests: `curl -x http://127.0.0.1:8080 http://host/path`
// puts "GET http://host/path HTTP/1.1" on the wire, and Go's server parses
// the full URL into req.URL.
//
// The listing is short and has several bugs; they are kept, each marked
// ARTICLE BUG, so the lab can show what they do.
package main

import (
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"strings"

	"labgo/internal/lab"
)

// Pxy is the proxy: a struct with a ServeHTTP method is an http.Handler.
type Pxy struct{}

func (p *Pxy) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	// The article prints this with fmt.Printf to stdout; every line the lab's
	// Go programs print goes to stderr through log (our choice).
	log.Printf("Received request %s %s %s\n", req.Method, req.Host, req.RemoteAddr)
	transport := http.DefaultTransport

	// 1. Copy the request and add to it.
	// ARTICLE BUG: *outReq = *req is a shallow copy: outReq.Header is the
	// same map as req.Header, so the Set below also changes the server's
	// request. Handlers must not modify the request they are given; use
	// outReq := req.Clone(req.Context()), which copies the header map.
	outReq := new(http.Request)
	*outReq = *req
	if clientIP, _, err := net.SplitHostPort(req.RemoteAddr); err == nil {
		if prior, ok := outReq.Header["X-Forwarded-For"]; ok {
			// ARTICLE BUG: earlier X-Forwarded-For lines are joined with ","
			// and the new address with ", ", so two incoming lines "1.1.1.1"
			// and "2.2.2.2" become "1.1.1.1,2.2.2.2, 127.0.0.1". The format
			// (and Go's ReverseProxy) uses ", " everywhere.
			clientIP = strings.Join(prior, ",") + ", " + clientIP
		}
		outReq.Header.Set("X-Forwarded-For", clientIP)
	}

	// ARTICLE BUG: hop-by-hop headers are not removed. Everything the client
	// addressed to this proxy goes on to the real server: Connection and the
	// headers it names, Keep-Alive, TE, Upgrade, Proxy-Connection and
	// Proxy-Authorization. The last is the client's password for the proxy:
	// forwarding it leaks the credential to every site the client visits.
	// Delete the headers listed in Connection, then the hop-by-hop list
	// (RFC 9110 §7.6.1), as ReverseProxy does.

	// 2. Send it on.
	// ARTICLE BUG: only absolute-form requests have a scheme and a host in
	// req.URL. An origin-form request ("GET /abc", what a client sends when
	// it does not know it talks to a proxy) fails in RoundTrip with
	// "unsupported protocol scheme" and gets the 502 below. CONNECT (how
	// clients ask for an HTTPS tunnel) never gets here: see main. This proxy
	// cannot tunnel HTTPS. Answer origin-form with 400, and implement
	// CONNECT by hijacking the connection, dialing host:port, answering 200
	// and copying bytes both ways.
	res, err := transport.RoundTrip(outReq)
	if err != nil {
		// ARTICLE BUG: the error is dropped: a bare 502, no body, nothing in
		// the log. Log err (and say something in the body) so a 502 can be
		// explained.
		rw.WriteHeader(http.StatusBadGateway)
		return
	}

	// 3. Copy the answer back: headers (hop-by-hop ones included, the same
	// bug as above in the other direction), status, body.
	for key, value := range res.Header {
		for _, v := range value {
			rw.Header().Add(key, v)
		}
	}
	rw.WriteHeader(res.StatusCode)
	// The article ignores io.Copy's error (a client that went away) and
	// closes the body only on this path; `defer res.Body.Close()` right after
	// the error check is the usual form.
	io.Copy(rw, res.Body)
	res.Body.Close()
}

func main() {
	lab.Usage("The article's forward proxy (Pxy): absolute-form requests only, bugs kept.",
		"go实现HTTP代理 › 1. 正向代理 (forward proxy)")
	// The article listens on ":8080", every interface; the lab stays on loopback.
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on")
	flag.Parse()

	// The article registers Pxy on http.DefaultServeMux (http.Handle("/",
	// &Pxy{}) and ListenAndServe with a nil handler); a ServeMux of our own
	// does the same without the global. The mux matters:
	// ARTICLE BUG: a CONNECT request has no path (req.URL.Path is ""), no
	// pattern matches it, not even "/", and ServeMux answers 404 page not
	// found before Pxy sees it. Serve Pxy directly (Handler: &Pxy{}) and
	// handle CONNECT in it.
	mux := http.NewServeMux()
	mux.Handle("/", &Pxy{})

	ln := lab.Listen(*listen, "listen")
	log.Println("server on " + ln.Addr().String())
	server := &http.Server{Handler: mux}
	lab.Serve(server, ln)
	lab.Wait(server)
}
