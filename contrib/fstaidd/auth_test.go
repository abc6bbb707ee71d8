package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"testing/synctest"

	"golang.org/x/crypto/bcrypt"
)

func mustHash(t *testing.T, pw string, cost int) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// remoteRequest is a request from another host (TEST-NET-1: nothing is
// sent anywhere, the handler is called in-process).
func remoteRequest(remote, user, pw string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/status", nil)
	r.RemoteAddr = remote
	if user != "" {
		r.SetBasicAuth(user, pw)
	}
	return r
}

// An unknown user costs one bcrypt comparison at the highest configured
// cost, as a known bcrypt user does; so does a plain-text user among
// bcrypt ones. Counted through the comparison hook, not timed.
func TestUnknownUserCostsABcryptOfTheHighestCost(t *testing.T) {
	a := newAuth([]User{
		{UserID: "cheap", Password: mustHash(t, "pw1", bcrypt.MinCost)},
		{UserID: "dear", Password: mustHash(t, "pw2", bcrypt.MinCost+2)},
		{UserID: "plain", Password: "pw3"},
	})
	if cost, err := bcrypt.Cost(a.dummy); err != nil || cost != bcrypt.MinCost+2 {
		t.Fatalf("dummy hash cost %d (%v), want the highest configured cost %d", cost, err, bcrypt.MinCost+2)
	}
	var costs []int
	a.compare = func(hash, pw []byte) error {
		c, _ := bcrypt.Cost(hash)
		costs = append(costs, c)
		return bcrypt.CompareHashAndPassword(hash, pw)
	}
	for _, tt := range []struct {
		user, pw string
		ok       bool
		cost     int
	}{
		{"eve", "pw2", false, bcrypt.MinCost + 2},
		{"mallory", "guess", false, bcrypt.MinCost + 2},
		{"dear", "wrong", false, bcrypt.MinCost + 2},
		{"cheap", "wrong", false, bcrypt.MinCost},
		{"plain", "wrong", false, bcrypt.MinCost + 2},
		{"plain", "pw3", true, bcrypt.MinCost + 2},
		{"dear", "pw2", true, bcrypt.MinCost + 2},
	} {
		costs = nil
		_, ok := a.check(context.Background(), remoteRequest("192.0.2.1:1234", tt.user, tt.pw))
		if ok != tt.ok || len(costs) != 1 || costs[0] != tt.cost {
			t.Errorf("check(%q, %q) = %v with bcrypt comparisons at costs %v; want %v with one at cost %d",
				tt.user, tt.pw, ok, costs, tt.ok, tt.cost)
		}
	}
}

// A flood of bad logins holds both bcrypt slots. A login from the
// monitor host itself, and one with a credential already verified, go
// through at once; a new credential from another host waits for a slot.
// Under synctest: a request that queued where it must not would leave
// every goroutine blocked, which synctest reports as a failure.
func TestLocalAndVerifiedLoginsSkipTheBcryptQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newAuth([]User{
			{UserID: "ops", Password: mustHash(t, "secret", bcrypt.MinCost)},
			{UserID: "local", Password: mustHash(t, "pw", bcrypt.MinCost)},
		})
		release := make(chan struct{})
		var mu sync.Mutex
		compared := map[string]int{}
		a.compare = func(hash, pw []byte) error {
			mu.Lock()
			compared[string(pw)]++
			mu.Unlock()
			if string(pw) == "flood" {
				<-release
			}
			return bcrypt.CompareHashAndPassword(hash, pw)
		}
		count := func(pw string) int {
			mu.Lock()
			defer mu.Unlock()
			return compared[pw]
		}
		h := (&api{auth: a}).authed(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		serve := func(r *http.Request) int {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			return rec.Code
		}

		// The operator logs in once from afar: verified and remembered.
		if code := serve(remoteRequest("192.0.2.10:1000", "ops", "secret")); code != http.StatusOK {
			t.Fatalf("first login: %d", code)
		}
		// The flood: two bad logins hold both slots.
		var wg sync.WaitGroup
		for _, user := range []string{"ops", "nobody"} {
			wg.Go(func() { serve(remoteRequest("192.0.2.66:1000", user, "flood")) })
		}
		synctest.Wait()
		if n := count("flood"); n != bcryptSlots {
			t.Fatalf("%d flood comparisons running, want %d", n, bcryptSlots)
		}
		// A new credential from another host queues behind them.
		eveDone := make(chan int, 1)
		go func() { eveDone <- serve(remoteRequest("192.0.2.67:1000", "eve", "guess")) }()
		synctest.Wait()
		select {
		case code := <-eveDone:
			t.Fatalf("an unverified remote login did not wait for a slot: %d", code)
		default:
		}
		if n := count("guess"); n != 0 {
			t.Fatalf("an unverified remote login ran bcrypt while the slots were full")
		}

		// Already verified: through at once, no bcrypt.
		if code := serve(remoteRequest("192.0.2.10:1001", "ops", "secret")); code != http.StatusOK {
			t.Errorf("verified credential: %d, want 200", code)
		}
		if n := count("secret"); n != 1 {
			t.Errorf("the verified credential cost %d bcrypt comparisons, want 1 (the first login)", n)
		}
		// From the monitor host: through at once, with its own bcrypt.
		for _, remote := range []string{"127.0.0.1:2000", "[::1]:2000"} {
			if code := serve(remoteRequest(remote, "local", "pw")); code != http.StatusOK {
				t.Errorf("loopback login from %s: %d, want 200", remote, code)
			}
		}
		if code := serve(remoteRequest("127.0.0.1:2001", "local", "bad")); code != http.StatusUnauthorized {
			t.Errorf("loopback bad login: %d, want 401", code)
		}

		close(release)
		if code := <-eveDone; code != http.StatusUnauthorized {
			t.Errorf("queued unknown login: %d, want 401", code)
		}
		wg.Wait()
		// Failures are never remembered.
		serve(remoteRequest("192.0.2.66:1001", "ops", "flood"))
		if n := count("flood"); n != bcryptSlots+1 {
			t.Errorf("a failed credential was remembered: %d comparisons, want %d", n, bcryptSlots+1)
		}
	})
}
