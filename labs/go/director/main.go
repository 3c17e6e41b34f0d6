// Command director is the article's custom SingleHostReverseProxy,
// NewMySingleHostReverseProxy: a ReverseProxy whose Director rewrites the
// URL, adds a header and replaces the body, whose ModifyResponse changes the
// answer, and whose ErrorHandler reports failures.
//
// Article: ReverseProxy实现原理 › 2.2 自定义SingleHostReverseProxy (a custom
// SingleHostReverseProxy).
//
// It shows the three hooks ReverseProxy gives you:
//
//	Director        the outgoing request: "^/dir(.*)" → "$1" (URL重写), then
//	                the 2.1 join onto the target, header token: ssss, and the
//	                body replaced by {"apple":2,"banana":3,"cherry":4}
//	ModifyResponse  the answer: a non-200 becomes an error; a 200's body is
//	                prefixed with "hello " and its Content-Length fixed
//	ErrorHandler    any error from the round trip or from ModifyResponse
//
// The listing has real bugs, kept and marked ARTICLE BUG. The biggest: in
// Go 1.19 a request without a body (any plain GET) makes the Director panic,
// so the client gets no answer at all. Use POST (curl -d ...) to see the
// rest work.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/ioutil"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"

	"labgo/internal/lab"
)

// staleLength is --stale-length, which is ours, not the article's: the
// Director then leaves req.ContentLength as the client sent it after
// replacing the body, so the article's warning (否则会报错) can be seen.
var staleLength bool

// NewMySingleHostReverseProxy builds the ReverseProxy the way
// NewSingleHostReverseProxy does (see 2.1), with the article's additions.
// target is the real server, e.g. http://127.0.0.1:2003/base.
func NewMySingleHostReverseProxy(target *url.URL) *httputil.ReverseProxy {
	// 1. The target's own query, merged into every request below.
	targetQuery := target.RawQuery

	// 2. The Director: it gets ServeHTTP's copy of the request (outreq) and
	// rewrites it in place. It cannot return an error, only change req.
	director := func(req *http.Request) {
		// 2.1 URL rewrite: /dir/abc → /abc.
		// ARTICLE BUG: the regexp is compiled on every request and its error
		// ignored; compile it once with regexp.MustCompile at package level.
		// ARTICLE BUG: "^/dir(.*)" has no boundary after "dir", so /dirt and
		// /directory are rewritten too (/dirt → "t" → /base/t). Use
		// "^/dir(/.*)?$", or strings.TrimPrefix after checking for "/dir/".
		// ARTICLE BUG: it rewrites the decoded req.URL.Path and leaves
		// req.URL.RawPath as it was; below, only Path is joined too. Once
		// RawPath no longer matches Path, Go ignores it and re-encodes Path:
		// an encoded slash (/dir/a%2Fb) reaches the upstream as /base/a/b,
		// two segments. NewSingleHostReverseProxy's joinURLPath keeps both.
		re, _ := regexp.Compile("^/dir(.*)")
		req.URL.Path = re.ReplaceAllString(req.URL.Path, "$1")
		// 2.2 Scheme and 2.3 host of the real server. req.Host is not
		// changed: the upstream sees the Host the client sent to the proxy.
		req.URL.Scheme = target.Scheme
		req.URL.Host = target.Host
		// 2.4 The path: the target's base path, then the request's.
		req.URL.Path = singleJoiningSlash(target.Path, req.URL.Path)
		// 2.5 The query: the target's first, then "&", then the request's.
		if targetQuery == "" || req.URL.RawQuery == "" {
			req.URL.RawQuery = targetQuery + req.URL.RawQuery
		} else {
			req.URL.RawQuery = targetQuery + "&" + req.URL.RawQuery
		}
		// 2.6 No User-Agent from the client: send an empty one, so that Go's
		// transport does not add its own "Go-http-client/1.1".
		if _, ok := req.Header["User-Agent"]; !ok {
			req.Header.Set("User-Agent", "")
		}

		// 2.7 Read the body, then replace it.
		// ARTICLE BUG: ServeHTTP sets outreq.Body = nil when the request has
		// no body (req.ContentLength == 0, Go issue 16036: a nil body lets
		// the transport retry). A plain GET therefore reaches this line with
		// req.Body == nil, and ioutil.ReadAll(nil) panics with a nil pointer
		// dereference. net/http's server recovers the panic, logs
		// "http: panic serving ...", and closes the connection: the client
		// gets no answer (curl: "Empty reply from server") and the upstream
		// never sees the request. Check req.Body != nil first.
		body, err := ioutil.ReadAll(req.Body)
		if err != nil {
			// ARTICLE BUG: on a read error the Director returns with the body
			// half read and ContentLength unchanged, and the request goes on.
			// When the client stopped sending mid-body, Go's server has seen
			// its end of the connection and cancelled the request's context:
			// the round trip fails with "context canceled", which the
			// ErrorHandler below turns into a 200. A Director cannot fail a
			// request: do this kind of work in a handler in front of the
			// proxy, which can answer 400.
			log.Println("Failed to read request body:", err)
			return
		}
		// The article prints the body with fmt.Println (stdout); we log it
		// to stderr like everything else.
		log.Println(string(body))
		// Closes the client's body (the defer takes req.Body's value now,
		// before it is replaced below).
		defer req.Body.Close()
		data := map[string]int{
			"apple":  2,
			"banana": 3,
			"cherry": 4,
		}
		// encoding/json sorts map keys: {"apple":2,"banana":3,"cherry":4},
		// 33 bytes, whatever the client sent.
		jsonBytes, err := json.Marshal(data)
		if err != nil {
			log.Println("Failed to serialize map to JSON:", err)
			return
		}
		clientLength := req.ContentLength // for --stale-length below
		req.Body = ioutil.NopCloser(bytes.NewReader(jsonBytes))
		// The article's warning: change ContentLength with the body, or the
		// transport refuses to send it (http: ContentLength=… with Body
		// length …). The transport writes the Content-Length header from
		// this field, not from req.Header, so this one line is enough.
		// (A chunked request keeps its Transfer-Encoding and is sent chunked.)
		req.ContentLength = int64(len(jsonBytes))
		if staleLength {
			// --stale-length (ours) undoes the line above, to show what the
			// warning is about: an 11-byte POST keeps ContentLength 11, the
			// transport refuses to send 33 bytes under it, and RoundTrip
			// returns "http: ContentLength=11 with Body length 33".
			req.ContentLength = clientLength
		}
		// ARTICLE BUG: the body is now JSON but Content-Type is still what
		// the client sent (curl -d sends application/x-www-form-urlencoded).
		// Set Content-Type: application/json with the new body.

		// 2.8 A header for the upstream.
		req.Header.Set("token", "ssss")
	}

	// 3. ModifyResponse: runs after the upstream answered, before anything is
	// written to the client. An error sends the request to the ErrorHandler
	// (and ReverseProxy closes the upstream body).
	modifyFunc := func(res *http.Response) error {
		if res.StatusCode != 200 {
			// 3.1 Any other status is turned into an error.
			// ARTICLE BUG: the upstream's status and body are thrown away
			// here, and the ErrorHandler below answers 200: the upstream's
			// 500 "error handler" reaches the client as 200 "error
			// statusCode". Return nil to pass the answer on as it is, or
			// have the ErrorHandler write a 502.
			return errors.New("error statusCode")
		}
		// 3.2 Read the upstream's body (all of it, in memory).
		oldPayload, err := ioutil.ReadAll(res.Body)
		if err != nil {
			return err
		}
		// 3.3 The new body.
		// ARTICLE BUG: the prefix is put in front of whatever bytes came,
		// whatever Content-Encoding says. When the client asked for gzip
		// (Accept-Encoding: gzip), Go's transport passes the upstream's
		// compressed body through as it is, and "hello " + gzip data is a
		// broken body. Only change a body whose Content-Encoding is empty
		// (or decompress it first and drop the header).
		newPayLoad := []byte("hello " + string(oldPayload))
		// 3.4 Put it back as the response's Body.
		res.Body = ioutil.NopCloser(bytes.NewBuffer(newPayLoad))
		// 3.5 Fix the length, in the field and in the header: ReverseProxy
		// copies res.Header to the client, so a stale Content-Length there
		// would cut the answer short.
		res.ContentLength = int64(len(newPayLoad))
		res.Header.Set("Content-Length", fmt.Sprint(len(newPayLoad)))
		return nil
	}

	// 4. ErrorHandler: called with the error from the round trip (upstream
	// down, timeout, the transport refusing the request) or from
	// ModifyResponse.
	// ARTICLE BUG: it writes the body without a status, so every error is
	// answered 200 OK (upstream down: 200 "dial tcp ...: connection
	// refused"). It also logs nothing. Call res.WriteHeader(502) (or
	// http.Error(res, ..., http.StatusBadGateway)) and log err.
	errorHandler := func(res http.ResponseWriter, req *http.Request, err error) {
		res.Write([]byte(err.Error()))
	}

	// 5. The ReverseProxy. Transport is nil: http.DefaultTransport.
	return &httputil.ReverseProxy{Director: director, ModifyResponse: modifyFunc, ErrorHandler: errorHandler}
}

func main() {
	lab.Usage("The article's NewMySingleHostReverseProxy: rewrite, token header, JSON body, \"hello \" prefix.",
		"ReverseProxy实现原理 › 2.2 自定义SingleHostReverseProxy (custom Director)")
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on")
	rs1 := flag.String("target", "http://127.0.0.1:2003/base", "the real server, with the base path to join")
	flag.BoolVar(&staleLength, "stale-length", false, "keep the client's ContentLength after the body is replaced (the article's warning ignored, to see the transport refuse)")
	flag.Parse()

	// 2.1 The target, as a *url.URL.
	url1, err1 := url.Parse(*rs1)
	if err1 != nil {
		// ARTICLE BUG: logged and ignored: NewMySingleHostReverseProxy then
		// reads target.RawQuery from a nil *url.URL and panics. log.Fatal.
		log.Println(err1)
	}
	// 2.2 The proxy; 2.3 it is the server's handler.
	proxy := NewMySingleHostReverseProxy(url1)
	ln := lab.Listen(*listen, "listen")
	server := &http.Server{Handler: proxy}
	lab.Serve(server, ln)
	lab.Wait(server)
}

// singleJoiningSlash is copied from net/http/httputil (as the article does):
// it joins a and b with exactly one slash between them.
//
//	"/base"  + "/abc" → "/base/abc"
//	"/base/" + "/abc" → "/base/abc"
//	"/base"  + "abc"  → "/base/abc"
//	"/base"  + ""     → "/base/"    (what GET /dir becomes)
func singleJoiningSlash(a, b string) string {
	aslash := strings.HasSuffix(a, "/")
	bslash := strings.HasPrefix(b, "/")
	switch {
	case aslash && bslash:
		return a + b[1:]
	case !aslash && !bslash:
		return a + "/" + b
	}
	return a + b
}
