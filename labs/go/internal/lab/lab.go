// Package lab is the plumbing every program under labs/go shares, so that
// each main.go can look like the article's listing and nothing else.
//
// The article starts its servers with http.ListenAndServe(":8080", h) and
// stops them with Ctrl-C. The lab needs a little more, the same way in every
// program, and this file is the one place that does it:
//
//   - --help prints what the program is and which article section it follows;
//   - Listen binds first (net.Listen), so port 0 works and a port already in
//     use is a clear message and exit status 1, not a panic;
//   - Serve logs "listening on ADDR" with the address actually bound (the
//     Rust side of the lab reads it from stderr);
//   - Wait stops every server on SIGINT/SIGTERM with Shutdown (1 s for the
//     requests in flight, then Close) and exits 0.
//
// This package is not in the article: it is our choice, to keep the programs
// short and alike.
package lab

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Usage makes --help print a one-line description and the article section
// before the flags. Call it before flag.Parse.
func Usage(description, section string) {
	flag.Usage = func() {
		out := flag.CommandLine.Output()
		fmt.Fprintf(out, "%s\nArticle: %s\n\nUsage: %s [flags]\n", description, section, filepath.Base(os.Args[0]))
		flag.PrintDefaults()
	}
}

// StringList is a repeatable string flag (--addr A --addr B). The defaults
// are used until the flag is given once; the first use replaces them.
type StringList struct {
	values []string
	set    bool
}

// NewStringList returns a StringList that holds defaults until the flag is set.
func NewStringList(defaults ...string) *StringList {
	return &StringList{values: defaults}
}

// String is flag.Value's String: the values joined by spaces.
func (s *StringList) String() string {
	if s == nil {
		return ""
	}
	return strings.Join(s.values, " ")
}

// Set is flag.Value's Set: one more value (the first one drops the defaults).
func (s *StringList) Set(v string) error {
	if !s.set {
		s.values = nil
		s.set = true
	}
	s.values = append(s.values, v)
	return nil
}

// Values returns the values given, or the defaults.
func (s *StringList) Values() []string { return s.values }

// Listen binds addr for TCP, or exits with status 1 and a message that says
// what to do. flagName is the flag that chooses the address (for the message).
func Listen(addr, flagName string) net.Listener {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln
	}
	hint := ""
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		err = syscall.EADDRINUSE
		hint = fmt.Sprintf(" (another program is on that port; pick another with --%s)", flagName)
	case errors.Is(err, syscall.EACCES):
		err = syscall.EACCES
		hint = fmt.Sprintf(" (ports below 1024 need privileges; pick another with --%s)", flagName)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		err = syscall.EADDRNOTAVAIL
		hint = fmt.Sprintf(" (that address is not on this machine; try 127.0.0.1:PORT with --%s)", flagName)
	}
	fmt.Fprintf(os.Stderr, "listen %s: %v%s\n", addr, err, hint)
	os.Exit(1)
	return nil
}

// Serve starts srv on ln in the background and logs the bound address.
// An error other than a normal shutdown ends the program with status 1.
func Serve(srv *http.Server, ln net.Listener) {
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Printf("serve %s: %v", ln.Addr(), err)
			os.Exit(1)
		}
	}()
	log.Printf("listening on %s", ln.Addr())
}

// Wait blocks until SIGINT or SIGTERM, then shuts every server down: up to
// one second for requests in flight to finish, then the connections left are
// closed. It exits the program with status 0.
func Wait(servers ...*http.Server) {
	quit := make(chan os.Signal, 1) // buffered: signal.Notify does not block
	signal.Notify(quit, syscall.SIGINT, syscall.SIGTERM)
	sig := <-quit
	log.Printf("%v: shutting down", sig)

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	done := make(chan struct{})
	for _, srv := range servers {
		go func(srv *http.Server) {
			if err := srv.Shutdown(ctx); err != nil {
				srv.Close() // the second passed: drop what is left
			}
			done <- struct{}{}
		}(srv)
	}
	for range servers {
		<-done
	}
	os.Exit(0)
}
