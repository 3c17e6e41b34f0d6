// The article's ReverseProxy with its round-robin balancer (section
// "2. ReverseProxy 集成负载均衡", and "1.2 轮询负载均衡" for the balancer),
// standard library only, as the Go side of bench/compare.sh.
//
// Changes from the article, and only these:
//   - the listen address and the upstreams come from flags instead of the
//     constants 127.0.0.1:2002, http://127.0.0.1:2003/base and :2004/base;
//   - the loadBalance package is inlined (the LoadBalance interface and
//     RoundRobinBalance, without the ZooKeeper/health-check observer parts,
//     which the benchmark does not use);
//   - the Transport's MaxIdleConnsPerHost is raised (flag -max-idle-per-host)
//     and MaxIdleConns sized to match: with Go's default of 2 idle
//     connections per host the proxy would open a new upstream connection
//     for almost every request under load, i.e. it would not pool.
//
// The round-robin balancer is the article's, unsynchronised: curIndex is read
// and written by every request goroutine without a lock (a data race, as in
// the article; every value written is < len(rss), so it never indexes out of
// range, it only skews the rotation).
//
// Build: go build -o go-proxy .   (Debian's golang-go is enough)
// Run:   GOMAXPROCS=1 ./go-proxy -listen 127.0.0.1:2002 \
//            -upstream http://127.0.0.1:2003/base -upstream http://127.0.0.1:2004/base
package main

import (
	"bytes"
	"errors"
	"flag"
	"io/ioutil"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ---- load balancer (the article's loadBalance package, trimmed) ----

type LoadBalance interface {
	Add(...string) error
	Get(string) (string, error)
}

type RoundRobinBalance struct {
	curIndex int
	rss      []string
}

func (r *RoundRobinBalance) Add(params ...string) error {
	if len(params) == 0 {
		return errors.New("param len 1 at least")
	}
	addr := params[0]
	r.rss = append(r.rss, addr)
	return nil
}

func (r *RoundRobinBalance) Next() string {
	if len(r.rss) == 0 {
		return ""
	}
	lens := len(r.rss) //5
	if r.curIndex >= lens {
		r.curIndex = 0
	}
	curAddr := r.rss[r.curIndex]
	r.curIndex = (r.curIndex + 1) % lens
	return curAddr
}

func (r *RoundRobinBalance) Get(key string) (string, error) {
	return r.Next(), nil
}

// ---- the proxy (the article's main.go) ----

var transport *http.Transport

func newTransport(maxIdlePerHost, hosts int) *http.Transport {
	return &http.Transport{
		DialContext: (&net.Dialer{
			Timeout:   30 * time.Second, //连接超时
			KeepAlive: 30 * time.Second, //长连接超时时间
		}).DialContext,
		MaxIdleConns:          maxIdlePerHost * hosts, //最大空闲连接 (article: 100)
		MaxIdleConnsPerHost:   maxIdlePerHost,         // raised for the benchmark (Go's default: 2)
		IdleConnTimeout:       90 * time.Second,       //空闲超时时间
		TLSHandshakeTimeout:   10 * time.Second,       //tls握手超时时间
		ExpectContinueTimeout: 1 * time.Second,        //100-continue状态码超时时间
	}
}

func NewMultipleHostsReverseProxy(lb LoadBalance) *httputil.ReverseProxy {
	//请求协调者
	director := func(req *http.Request) {
		nextAddr, err := lb.Get(req.RemoteAddr)
		if err != nil {
			log.Fatal("get next addr fail")
		}
		target, err := url.Parse(nextAddr)
		if err != nil {
			log.Fatal(err)
		}
		targetQuery := target.RawQuery
		req.URL.Scheme = target.Scheme
		req.URL.Host = target.Host
		req.URL.Path = singleJoiningSlash(target.Path, req.URL.Path)
		if targetQuery == "" || req.URL.RawQuery == "" {
			req.URL.RawQuery = targetQuery + req.URL.RawQuery
		} else {
			req.URL.RawQuery = targetQuery + "&" + req.URL.RawQuery
		}
		if _, ok := req.Header["User-Agent"]; !ok {
			req.Header.Set("User-Agent", "user-agent")
		}
	}

	//更改内容
	modifyFunc := func(resp *http.Response) error {
		if resp.StatusCode != 200 {
			//获取内容
			oldPayload, err := ioutil.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			//追加内容
			newPayload := []byte("StatusCode error:" + string(oldPayload))
			resp.Body = ioutil.NopCloser(bytes.NewBuffer(newPayload))
			resp.ContentLength = int64(len(newPayload))
			resp.Header.Set("Content-Length", strconv.FormatInt(int64(len(newPayload)), 10))
		}
		return nil
	}

	//错误回调
	errFunc := func(w http.ResponseWriter, r *http.Request, err error) {
		http.Error(w, "ErrorHandler error:"+err.Error(), 500)
	}

	return &httputil.ReverseProxy{Director: director, Transport: transport, ModifyResponse: modifyFunc, ErrorHandler: errFunc}
}

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

type upstreamList []string

func (u *upstreamList) String() string     { return strings.Join(*u, " ") }
func (u *upstreamList) Set(s string) error { *u = append(*u, s); return nil }

func main() {
	addr := flag.String("listen", "127.0.0.1:2002", "address to listen on")
	maxIdle := flag.Int("max-idle-per-host", 1024, "Transport.MaxIdleConnsPerHost (Go's default is 2)")
	var upstreams upstreamList
	flag.Var(&upstreams, "upstream", "upstream URL[,WEIGHT] (repeatable; the weight is passed to Add and ignored by round robin)")
	flag.Parse()
	if len(upstreams) == 0 {
		upstreams = upstreamList{"http://127.0.0.1:2003/base,10", "http://127.0.0.1:2004/base,20"}
	}
	transport = newTransport(*maxIdle, len(upstreams))

	rb := &RoundRobinBalance{}
	for _, u := range upstreams {
		if err := rb.Add(strings.Split(u, ",")...); err != nil {
			log.Println(err)
		}
	}
	proxy := NewMultipleHostsReverseProxy(rb)
	log.Println("Starting httpserver at " + *addr)
	log.Fatal(http.ListenAndServe(*addr, proxy))
}
