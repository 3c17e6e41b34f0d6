package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestTokenBucket(t *testing.T) {
	b := newTokenBucket(2) // 2 per second, burst 2
	t0 := b.last
	// time (ms)  tokens before  take?
	//    0          2            yes (1 left)
	//    0          1            yes (0 left)
	//    0          0            no, wait 500ms
	//  250          0.5          no, wait 250ms
	//  500          1            yes
	// 5000          2 (capped)   yes, yes, no
	steps := []struct {
		at   time.Duration
		ok   bool
		wait time.Duration
	}{
		{0, true, 0},
		{0, true, 0},
		{0, false, 500 * time.Millisecond},
		{250 * time.Millisecond, false, 250 * time.Millisecond},
		{500 * time.Millisecond, true, 0},
		{5 * time.Second, true, 0},
		{5 * time.Second, true, 0},
		{5 * time.Second, false, 500 * time.Millisecond},
	}
	for i, s := range steps {
		ok, wait := b.take(t0.Add(s.at))
		if ok != s.ok || wait != s.wait {
			t.Errorf("step %d at %v: got %v %v, want %v %v", i, s.at, ok, wait, s.ok, s.wait)
		}
	}
}

func TestChain(t *testing.T) {
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			t.Error("the credential reached the upstream")
		}
	})
	h := auth("tok")(rateLimit(1)(inner))
	do := func(authz string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/x", nil)
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		h.ServeHTTP(rec, req)
		return rec
	}
	if rec := do(""); rec.Code != 401 || rec.Header().Get("WWW-Authenticate") == "" {
		t.Errorf("no token: %d %v", rec.Code, rec.Header())
	}
	if rec := do("Bearer tok"); rec.Code != 200 {
		t.Errorf("first: %d", rec.Code)
	}
	if rec := do("Bearer tok"); rec.Code != 429 || rec.Header().Get("Retry-After") != "1" {
		t.Errorf("second in the same second: %d Retry-After=%q", rec.Code, rec.Header().Get("Retry-After"))
	}
	// a refused request spends no token: still 429, not 401-then-200
	if rec := do("Bearer wrong"); rec.Code != 401 {
		t.Errorf("wrong token: %d", rec.Code)
	}
}
