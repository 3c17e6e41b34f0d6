// Command realserver is the article's RealServer: the upstream every proxy
// in the lab talks to.
//
// Article: go实现HTTP代理 › 2. 反向代理 (reverse proxy), the listing under
// "真是的服务代码实现" (the real server's code).
//
// It shows what an upstream can know about a request that came through a
// proxy: the address of the TCP peer (RemoteAddr, the proxy's own socket),
// and what the proxy chose to tell it in headers (X-Forwarded-For,
// X-Real-Ip). Three handlers, as in the article:
//
//	/                                       the three-line echo (HelloHandler)
//	/base/error                             500 "error handler" (ErrorHandler)
//	/test_http_string/test_http_string/aaa  sleeps 6 s under a 3 s WriteTimeout
//	                                        (TimeoutHandler): the client never
//	                                        gets the answer.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"time"

	"labgo/internal/lab"
)

// RealServer is one upstream, named by the address it serves.
type RealServer struct {
	Addr string
}

// Run starts the server in the background, as the article's Run does.
// WriteTimeout is the article's 3 s unless --write-timeout says otherwise.
//
// The article calls server.ListenAndServe() inside the goroutine; we bind
// first (lab.Listen) so that --addr 127.0.0.1:0 works, and r.Addr becomes the
// address actually bound, which HelloHandler prints.
func (r *RealServer) Run(writeTimeout time.Duration) *http.Server {
	ln := lab.Listen(r.Addr, "addr")
	r.Addr = ln.Addr().String()
	log.Println("Starting httpserver at " + r.Addr)

	mux := http.NewServeMux()
	// "/" matches every path no other pattern matches: it is the catch-all.
	mux.HandleFunc("/", r.HelloHandler)
	mux.HandleFunc("/base/error", r.ErrorHandler)
	mux.HandleFunc("/test_http_string/test_http_string/aaa", r.TimeoutHandler)
	server := &http.Server{
		// WriteTimeout is a deadline on writing the response, counted from
		// the end of reading the request headers. A handler that takes
		// longer cannot answer at all: its writes fail and the server closes
		// the connection. The client sees no status line, not a 504.
		WriteTimeout: writeTimeout,
		Handler:      mux,
	}
	// The article ends Run with go func() { log.Fatal(server.ListenAndServe()) }().
	// Had it ever called Shutdown, ListenAndServe would return
	// http.ErrServerClosed and log.Fatal would exit 1 on a clean stop;
	// lab.Serve treats that error as the normal end.
	lab.Serve(server, ln)
	return server
}

// HelloHandler writes three lines: which server answered and the path it saw;
// the TCP peer and the two proxy headers; and every request header.
func (r *RealServer) HelloHandler(w http.ResponseWriter, req *http.Request) {
	// A request for 127.0.0.1:2003/abc?x=1 gives r.Addr=127.0.0.1:2003 and
	// req.URL.Path=/abc: the query is not printed.
	upath := fmt.Sprintf("http://%s%s\n", r.Addr, req.URL.Path)
	// RemoteAddr comes from the TCP connection: behind a proxy it is the
	// proxy's address. The headers are whatever the client and proxies sent.
	realIP := fmt.Sprintf("RemoteAddr=%s,X-Forwarded-For=%v,X-Real-Ip=%v\n",
		req.RemoteAddr, req.Header.Get("X-Forwarded-For"), req.Header.Get("X-Real-Ip"))
	// %v of an http.Header (a map) prints map[Name:[values] ...] with the
	// names sorted. Go's server moves the Host header into req.Host, so Host
	// is never in this map; neither is anything the client did not send.
	header := fmt.Sprintf("headers =%v\n", req.Header)
	io.WriteString(w, upath)
	io.WriteString(w, realIP)
	io.WriteString(w, header)
}

// ErrorHandler answers 500 "error handler": a failing upstream, for the
// lessons on ModifyResponse and ErrorHandler.
func (r *RealServer) ErrorHandler(w http.ResponseWriter, req *http.Request) {
	upath := "error handler"
	w.WriteHeader(500)
	io.WriteString(w, upath)
}

// TimeoutHandler sleeps 6 s, twice the 3 s WriteTimeout, then writes. The
// write lands in the response buffer; when the handler returns, the server
// flushes it, the socket's write deadline has passed, and the connection is
// closed. The client (curl: "Empty reply from server") gets nothing.
func (r *RealServer) TimeoutHandler(w http.ResponseWriter, req *http.Request) {
	time.Sleep(6 * time.Second)
	upath := "timeout handler"
	w.WriteHeader(200)
	io.WriteString(w, upath)
}

func main() {
	lab.Usage("The article's RealServer: three handlers, a 3 s WriteTimeout, one server per --addr.",
		"go实现HTTP代理 › 2. 反向代理 (真实服务 RealServer)")
	// The article starts two servers, 127.0.0.1:2003 and 127.0.0.1:2004.
	addrs := lab.NewStringList("127.0.0.1:2003", "127.0.0.1:2004")
	flag.Var(addrs, "addr", "address to serve on; repeat for several servers")
	writeTimeout := flag.Duration("write-timeout", 3*time.Second, "the servers' WriteTimeout (the article's 3s)")
	flag.Parse()

	var servers []*http.Server
	for _, addr := range addrs.Values() {
		rs := &RealServer{Addr: addr}
		servers = append(servers, rs.Run(*writeTimeout))
	}

	// ARTICLE BUG: the article waits with quit := make(chan os.Signal), an
	// unbuffered channel. signal.Notify never blocks: a signal that arrives
	// while nobody is receiving is dropped (go vet reports it). Give the
	// channel a buffer of 1, as lab.Wait does. The article also never calls
	// Shutdown: its servers just die with the process.
	lab.Wait(servers...)
}
