// Exercise 1 · The real server (真实服务 RealServer), lab 01.
//
// The article's RealServer: every path echoes what the server saw (its own
// address and the path, the client's RemoteAddr, X-Forwarded-For and
// X-Real-Ip, the headers); /base/error answers 500; and
// /test_http_string/test_http_string/aaa sleeps 6 s under a 3 s
// WriteTimeout, so its client never gets an answer.
//
// The contract with `lab verify` (any language can keep it):
//   - listen on $LISTEN (host:port; $PORT holds the port alone).
//
// Run it:    LISTEN=127.0.0.1:2003 go run .
// Verify it: lab verify 1
package main

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"time"
)

// RealServer answers on Addr.
type RealServer struct {
	Addr string
}

// HelloHandler echoes what the server saw, in three lines.
func (r *RealServer) HelloHandler(w http.ResponseWriter, req *http.Request) {
	upath := fmt.Sprintf("http://%s%s\n", r.Addr, req.URL.Path)
	realIP := fmt.Sprintf("RemoteAddr=%s,X-Forwarded-For=%v,X-Real-Ip=%v\n",
		req.RemoteAddr, req.Header.Get("X-Forwarded-For"), req.Header.Get("X-Real-Ip"))
	header := fmt.Sprintf("headers =%v\n", req.Header)
	io.WriteString(w, upath)
	io.WriteString(w, realIP)
	io.WriteString(w, header)
}

// ErrorHandler answers 500 "error handler".
func (r *RealServer) ErrorHandler(w http.ResponseWriter, req *http.Request) {
	w.WriteHeader(http.StatusInternalServerError)
	io.WriteString(w, "error handler")
}

// TimeoutHandler takes longer than the server's WriteTimeout allows.
func (r *RealServer) TimeoutHandler(w http.ResponseWriter, req *http.Request) {
	time.Sleep(6 * time.Second)
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, "timeout handler")
}

func main() {
	rs := &RealServer{Addr: os.Getenv("LISTEN")}
	mux := http.NewServeMux()
	mux.HandleFunc("/", rs.HelloHandler)
	mux.HandleFunc("/base/error", rs.ErrorHandler)
	mux.HandleFunc("/test_http_string/test_http_string/aaa", rs.TimeoutHandler)
	server := &http.Server{
		Addr:         rs.Addr,
		WriteTimeout: 3 * time.Second,
		Handler:      mux,
	}
	log.Printf("Starting httpserver at %s", rs.Addr)
	log.Fatal(server.ListenAndServe())
}
