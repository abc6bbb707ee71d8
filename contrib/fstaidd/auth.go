package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// auth checks HTTP basic credentials against the [[user]] list. Plain
// passwords are compared in constant time (over SHA-256 digests, so the
// length leaks nothing either); bcrypt hashes are compared by bcrypt,
// whose work is bounded twice: the cost is capped at load time
// (maxBcryptCost) and at most bcryptSlots comparisons run at once, so a
// flood of logins cannot eat the CPU the monitor needs.
type auth struct {
	users map[string]credential
	slots chan struct{}
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
	a := &auth{users: map[string]credential{}, slots: make(chan struct{}, bcryptSlots)}
	for _, u := range users {
		if isBcrypt(u.Password) {
			a.users[u.UserID] = credential{bcrypt: []byte(u.Password)}
		} else {
			a.users[u.UserID] = credential{plain: sha256.Sum256([]byte(u.Password))}
		}
	}
	return a
}

// dummyHash keeps the time of an unknown user close to a known one's.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("fstaid"), bcrypt.MinCost)

// check returns the authenticated user, or "" and false.
func (a *auth) check(ctx context.Context, r *http.Request) (string, bool) {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return "", false
	}
	cred, known := a.users[user]
	if cred.bcrypt == nil {
		digest := sha256.Sum256([]byte(pass))
		match := subtle.ConstantTimeCompare(digest[:], cred.plain[:]) == 1
		return user, match && known
	}
	select {
	case a.slots <- struct{}{}:
	case <-ctx.Done():
		return "", false
	}
	defer func() { <-a.slots }()
	hash := cred.bcrypt
	if !known {
		hash = dummyHash
	}
	match := bcrypt.CompareHashAndPassword(hash, []byte(pass)) == nil
	return user, match && known
}

func isBcrypt(s string) bool {
	return strings.HasPrefix(s, "$2a$") || strings.HasPrefix(s, "$2b$") || strings.HasPrefix(s, "$2y$")
}

func bcryptCost(hash string) (int, error) { return bcrypt.Cost([]byte(hash)) }
