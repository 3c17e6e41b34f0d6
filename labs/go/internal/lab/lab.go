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
//   - Wait logs "ready (Ctrl-C stops the program)" once every listener is
//     up, and stops every server on SIGINT/SIGTERM with Shutdown (1 s for the
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
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
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
	// The same ready line as lab's own servers end with.
	log.Printf("ready (Ctrl-C stops the program)")
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

// Fatalf prints a message for a bad flag or setting and exits with status 1.
func Fatalf(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

// Upstream is one --upstream URL[,WEIGHT]: the URL as given and its weight
// (a decimal integer, as a string: the balancers' Add takes strings).
type Upstream struct {
	URL    string
	Weight string
}

// UpstreamList is a repeatable --upstream URL[,WEIGHT] flag. Like StringList,
// the first use drops the defaults. Set checks that the URL has a scheme and
// a host and that the weight is an integer (our choice: the article would
// find out at Add, or at the first request). A missing weight is
// DefaultWeight.
type UpstreamList struct {
	Upstreams     []Upstream
	DefaultWeight string
	set           bool
}

// String is flag.Value's String.
func (u *UpstreamList) String() string {
	if u == nil {
		return ""
	}
	var parts []string
	for _, up := range u.Upstreams {
		parts = append(parts, up.URL+","+up.Weight)
	}
	return strings.Join(parts, " ")
}

// Set is flag.Value's Set: parse and check one URL[,WEIGHT].
func (u *UpstreamList) Set(v string) error {
	up, err := u.parse(v)
	if err != nil {
		return err
	}
	if !u.set {
		u.Upstreams = nil
		u.set = true
	}
	u.Upstreams = append(u.Upstreams, up)
	return nil
}

func (u *UpstreamList) parse(v string) (Upstream, error) {
	rawURL, weight := v, u.DefaultWeight
	if i := strings.LastIndex(v, ","); i >= 0 {
		rawURL, weight = v[:i], v[i+1:]
	}
	parsed, err := url.Parse(rawURL)
	if err != nil || parsed.Scheme == "" || parsed.Host == "" {
		return Upstream{}, fmt.Errorf("%q: want URL[,WEIGHT], e.g. http://127.0.0.1:2003/base,10", v)
	}
	if _, err := strconv.Atoi(weight); err != nil {
		return Upstream{}, fmt.Errorf("%q: the weight %q is not an integer", v, weight)
	}
	return Upstream{URL: rawURL, Weight: weight}, nil
}

// NewUpstreamList returns the flag value holding defaults ("URL,WEIGHT" each).
func NewUpstreamList(defaultWeight string, defaults ...string) *UpstreamList {
	u := &UpstreamList{DefaultWeight: defaultWeight}
	for _, d := range defaults {
		up, err := u.parse(d)
		if err != nil {
			panic(err) // a default written wrong in the program
		}
		u.Upstreams = append(u.Upstreams, up)
	}
	return u
}
