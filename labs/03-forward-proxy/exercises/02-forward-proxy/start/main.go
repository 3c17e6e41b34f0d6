// Exercise 2 · The forward proxy done right (正向代理), lab 03.
//
// The article's Pxy takes requests in absolute form
// (GET http://host:port/abc HTTP/1.1), sends a copy on with
// http.DefaultTransport.RoundTrip and copies the answer back. This one
// does the same, and what Pxy gets wrong or leaves out:
//  1. the copy is a real copy (req.Clone), and the answer keeps its status;
//  2. the client's IP is appended to X-Forwarded-For, in the list format;
//  3. hop-by-hop headers (逐段消息头) stop here, Proxy-Authorization (the
//     client's password for this proxy) and Proxy-Connection included;
//  4. CONNECT opens a tunnel (隧道): how a browser asks for an HTTPS site.
//
// The contract with `lab verify` (any language can keep it):
//   - listen on $LISTEN (host:port; $PORT holds the port alone);
//   - the real server is the URL in $UPSTREAM: the client names it in its
//     requests, and its port is the one CONNECT may open a tunnel to.
//
// Run it:    LISTEN=127.0.0.1:8080 UPSTREAM=http://127.0.0.1:2003 go run .
// Try it:    curl -s -x http://127.0.0.1:8080 http://127.0.0.1:2003/abc -U foo:bar
// Verify it: lab verify 2
package main

import (
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"
)

// (You will need "io" and "strings" too: add them here.)

// hopHeaders describe one connection, not the message (RFC 9110 §7.6.1).
// The two Proxy-* ones are addressed to this proxy: the client's password
// for it and its wish about the connection to it.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// removeHopHeaders drops the hop-by-hop headers of h, and first every
// header that Connection names.
func removeHopHeaders(h http.Header) {
	// TODO 3: delete every header Connection names (its value is a
	// comma-separated list), then every header of hopHeaders.
}

// appendForwardedFor adds the client's IP to X-Forwarded-For, after what
// the client (or a proxy before this one) wrote there. Every entry is
// separated by ", ", however many header lines they came on.
func appendForwardedFor(req *http.Request) {
	// TODO 2: the client's IP is req.RemoteAddr without its port
	// (net.SplitHostPort). Set X-Forwarded-For to it or, when the request
	// has X-Forwarded-For lines already, to all of them, then it, each
	// separated by ", ".
}

// Pxy is the forward proxy: a type with a ServeHTTP method is an http.Handler.
type Pxy struct {
	// tunnelPorts are the ports CONNECT may reach. A proxy that tunnels to
	// any port relays any TCP protocol (mail, SSH) for whoever reaches it.
	tunnelPorts map[string]bool
}

func (p *Pxy) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	if req.Method == http.MethodConnect {
		p.tunnel(rw, req)
		return
	}
	// A client that uses a proxy names the whole URL; "GET /abc" names no
	// server, so there is nowhere to send it.
	if req.URL.Scheme == "" || req.URL.Host == "" {
		http.Error(rw, "a forward proxy needs the whole URL (GET http://host/path)", http.StatusBadRequest)
		return
	}

	// TODO 1: the article's three steps.
	//   1. A copy of the request: req.Clone (the handler must not change
	//      the request it was given), with RequestURI cleared (it belongs
	//      to requests a server received); then removeHopHeaders(out.Header)
	//      and appendForwardedFor(out).
	//   2. Send it on with http.DefaultTransport.RoundTrip: its absolute
	//      URL says where to go. An error is a 502, said in the body.
	//   3. The answer back: its headers (less the hop-by-hop ones), its
	//      status, then its body.
}

// tunnel answers CONNECT host:port: it dials the target, tells the client
// 200, and from then on copies bytes both ways without reading them. Over
// HTTPS those bytes are TLS, which the proxy could not read anyway.
func (p *Pxy) tunnel(rw http.ResponseWriter, req *http.Request) {
	// CONNECT's target is its authority form, "host:port": req.Host.
	_, port, err := net.SplitHostPort(req.Host)
	if err != nil || !p.tunnelPorts[port] {
		http.Error(rw, "no tunnel to "+req.Host, http.StatusForbidden)
		return
	}
	// Dial before answering, so a failure can still be told as a 502.
	target, err := net.DialTimeout("tcp", req.Host, 10*time.Second)
	if err != nil {
		http.Error(rw, "bad gateway: "+err.Error(), http.StatusBadGateway)
		return
	}
	// TODO 4: take the client's connection from the server
	// (rw.(http.Hijacker).Hijack()): from then on it is yours, and no
	// longer HTTP. Write "HTTP/1.1 200 Connection Established\r\n\r\n"
	// on it, then copy bytes both ways at once, client → target and
	// target → client, until both are done (closeWrite below helps), and
	// close both. This line is a placeholder:
	target.Close()
}

// closeWrite sends a TCP FIN (no more bytes from this side) and keeps the
// connection open for reading what the other side still has to say.
func closeWrite(conn net.Conn) {
	if tcp, ok := conn.(*net.TCPConn); ok {
		tcp.CloseWrite()
	} else {
		conn.Close()
	}
}

func main() {
	upstream, err := url.Parse(os.Getenv("UPSTREAM"))
	if err != nil || upstream.Host == "" {
		log.Fatalf("set UPSTREAM to the real server's URL (got %q)", os.Getenv("UPSTREAM"))
	}
	proxy := &Pxy{tunnelPorts: map[string]bool{"443": true, upstream.Port(): true}}
	log.Printf("forward proxy on %s (tunnels to ports 443 and %s)", os.Getenv("LISTEN"), upstream.Port())
	// Pxy itself is the server's handler, not a ServeMux: CONNECT has no
	// path, and a mux answers it 404 before any handler runs.
	log.Fatal(http.ListenAndServe(os.Getenv("LISTEN"), proxy))
}
