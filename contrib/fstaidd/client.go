package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// The subcommands that talk to a running daemon share its address, the
// credentials and one HTTP client.

// daemonURL is the running daemon's base URL from the flag or the config.
func daemonURL(cfg *Config, addr string) string {
	if addr == "" {
		addr = cfg.ListenAddress()
		host, port, _ := net.SplitHostPort(addr)
		if host == "" || host == "0.0.0.0" || host == "::" {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
	}
	if strings.Contains(addr, "://") {
		return strings.TrimSuffix(addr, "/")
	}
	return "http://" + addr
}

// credentials fall back to the config's first user (the first admin
// when admin is set: only admins may fail over), and to its password
// when that is plain.
func credentials(cfg *Config, user, password string, admin bool) (string, string) {
	if user != "" {
		return user, password
	}
	for _, u := range cfg.Users {
		if admin && u.Role != RoleAdmin {
			continue
		}
		if password == "" && !isBcrypt(u.Password) {
			password = u.Password
		}
		return u.UserID, password
	}
	return user, password
}

var toolClient = &http.Client{Timeout: 15 * time.Minute}

func request(ctx context.Context, method, rawURL, user, password string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, rawURL, nil)
	if err != nil {
		return nil, nil, err
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := toolClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, body, err
}
