package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// auth checks HTTP basic credentials against the [[user]] list.
//
// Plain passwords are compared in constant time (over SHA-256 digests, so
// the length leaks nothing either). Bcrypt hashes are compared by bcrypt,
// and then every login costs one bcrypt comparison, whoever asks: an
// unknown user, or a plain-text user among bcrypt ones, is compared
// against a dummy hash of the highest configured cost, so that timing
// cannot tell which user names exist.
//
// Bcrypt work is bounded twice: the cost is capped at load time
// (maxBcryptCost) and at most bcryptSlots comparisons for requests from
// other hosts run at once, so a flood of logins cannot eat the CPU the
// monitor needs. Two kinds of request never queue behind that flood: a
// request from the monitor host itself (loopback or a unix socket: the
// operator running `fstaidd fail` there), and a request carrying a
// credential this process has already verified (kept in memory as a keyed
// hash of the password, one per user; failures are never remembered).
//
// check may be called by many goroutines at once.
type auth struct {
	users map[string]credential
	roles map[string]string // user -> RoleAdmin or RoleViewer
	// anyBcrypt: some user has a bcrypt hash, so every check costs one
	// bcrypt comparison (against dummy when there is no real hash).
	anyBcrypt bool
	dummy     []byte
	slots     chan struct{}

	macKey   [32]byte // random per process: the cache is useless outside it
	mu       sync.Mutex
	verified map[string][sha256.Size]byte // user -> HMAC of a password bcrypt accepted

	// compare is bcrypt.CompareHashAndPassword; tests wrap it to count
	// and hold comparisons.
	compare func(hash, password []byte) error
}

type credential struct {
	plain  [sha256.Size]byte
	bcrypt []byte
}

const bcryptSlots = 2

func newAuth(users []User) *auth {
	if len(users) == 0 {
		return nil
	}
	a := &auth{
		users:    map[string]credential{},
		roles:    map[string]string{},
		slots:    make(chan struct{}, bcryptSlots),
		verified: map[string][sha256.Size]byte{},
		compare:  bcrypt.CompareHashAndPassword,
	}
	rand.Read(a.macKey[:])
	maxCost, costliest := 0, ""
	for _, u := range users {
		a.roles[u.UserID] = u.Role
		if a.roles[u.UserID] == "" {
			a.roles[u.UserID] = RoleAdmin // a User built by hand, not by the config
		}
		if isBcrypt(u.Password) {
			a.users[u.UserID] = credential{bcrypt: []byte(u.Password)}
			if cost, err := bcryptCost(u.Password); err == nil && cost > maxCost {
				maxCost, costliest = cost, u.Password
			}
		} else {
			a.users[u.UserID] = credential{plain: sha256.Sum256([]byte(u.Password))}
		}
	}
	if maxCost > 0 {
		a.anyBcrypt = true
		var secret [16]byte
		rand.Read(secret[:])
		var err error
		// Made once: as slow to compare as the costliest user's hash.
		if a.dummy, err = bcrypt.GenerateFromPassword(secret[:], maxCost); err != nil {
			// Unreachable (the cost was validated); the costliest hash
			// itself costs exactly the same, and check never accepts
			// an unknown user whatever the comparison says.
			a.dummy = []byte(costliest)
		}
	}
	return a
}

// check returns the authenticated user, or "" and false.
// role returns an authenticated user's role.
func (a *auth) role(user string) string { return a.roles[user] }

func (a *auth) check(ctx context.Context, r *http.Request) (string, bool) {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return "", false
	}
	cred, known := a.users[user]
	if !a.anyBcrypt {
		// Plain passwords only: microseconds for everyone, known or not.
		digest := sha256.Sum256([]byte(pass))
		match := subtle.ConstantTimeCompare(digest[:], cred.plain[:]) == 1
		return user, match && known
	}
	mac := a.mac(pass)
	if a.isVerified(user, mac) {
		return user, true
	}
	if !fromThisHost(r) {
		select {
		case a.slots <- struct{}{}:
		case <-ctx.Done():
			return "", false
		}
		defer func() { <-a.slots }()
	}
	hash := a.dummy
	if known && cred.bcrypt != nil {
		hash = cred.bcrypt
	}
	err := a.compare(hash, []byte(pass))
	var match bool
	switch {
	case !known:
	case cred.bcrypt != nil:
		match = err == nil
	default:
		digest := sha256.Sum256([]byte(pass))
		match = subtle.ConstantTimeCompare(digest[:], cred.plain[:]) == 1
	}
	if !match {
		return "", false
	}
	a.mu.Lock()
	a.verified[user] = mac
	a.mu.Unlock()
	return user, true
}

func (a *auth) mac(pass string) [sha256.Size]byte {
	h := hmac.New(sha256.New, a.macKey[:])
	h.Write([]byte(pass))
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// isVerified reports whether bcrypt already accepted this password for user.
func (a *auth) isVerified(user string, mac [sha256.Size]byte) bool {
	a.mu.Lock()
	known, ok := a.verified[user]
	a.mu.Unlock()
	return ok && subtle.ConstantTimeCompare(known[:], mac[:]) == 1
}

// fromThisHost reports whether r came over loopback or a unix socket.
// (A reverse proxy on the monitor host makes every request look local.)
func fromThisHost(r *http.Request) bool {
	if _, unix := r.Context().Value(http.LocalAddrContextKey).(*net.UnixAddr); unix {
		return true
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func isBcrypt(s string) bool {
	return strings.HasPrefix(s, "$2a$") || strings.HasPrefix(s, "$2b$") || strings.HasPrefix(s, "$2y$")
}

func bcryptCost(hash string) (int, error) { return bcrypt.Cost([]byte(hash)) }
