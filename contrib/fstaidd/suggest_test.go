package main

import (
	"strings"
	"testing"
)

// Issue 15: a misspelled key gets the closest known one, in every
// section of fstaidd.toml — the daemon's, [aws] and its tables, [etcd] —
// and a misspelled section at the top level.
func TestSuggestionsInEverySection(t *testing.T) {
	const (
		handler = "[handler]\ncommand = \"/bin/true\"\ntimeout = 10\n"
		primary = "[primary]\ncommand = \"true\"\ntimeout = 1\n"
		global  = "[global]\nport = 8080\n"
	)
	tests := []struct{ config, want string }{
		{global + "intervall = 1\n" + handler + primary, `[global] intervall: unknown key (did you mean "interval"?)`},
		{global + "[handler]\ncomand = \"/bin/true\"\ntimeout = 10\n" + primary, `[handler] comand: unknown key (did you mean "command"?)`},
		{global + handler + "[primary]\ncomand = \"true\"\ntimeout = 1\n", `[primary] comand: unknown key (did you mean "command"?)`},
		{global + handler + primary + "[secondary]\ncomand = \"true\"\ntimeout = 1\n", `[secondary] comand: unknown key (did you mean "command"?)`},
		{global + handler + primary + "[self]\ncomand = \"true\"\ntimeout = 1\n", `[self] comand: unknown key (did you mean "command"?)`},
		{global + handler + primary + "[secondry]\ncommand = \"true\"\ntimeout = 1\n", `top level secondry: unknown key (did you mean "secondary"?)`},
		{global + "[hanlder]\ncommand = \"/bin/true\"\ntimeout = 10\n" + primary, `top level hanlder: unknown key (did you mean "handler"?)`},
		{global + handler + primary + "[[usr]]\nuserid = \"a\"\npassword = \"b\"\n", `top level usr: unknown key (did you mean "user"?)`},
		{global + handler + primary + "[[user]]\nuserid = \"a\"\npasword = \"b\"\n", `[[user]] #1 pasword: unknown key (did you mean "password"?)`},
		{global + handler + primary + "[[user]]\nuserid = \"a\"\npassword_fil = \"/b\"\n", `[[user]] #1 password_fil: unknown key (did you mean "password_file"?)`},
		{global + handler + primary + "[aws]\nregoin = \"eu-west-1\"\n", `[aws] regoin: unknown key (did you mean "region"?)`},
		{global + handler + primary + "[asw]\nregion = \"eu-west-1\"\n", `top level asw: unknown key (did you mean "aws"?)`},
		{global + handler + primary + "[aws.imds]\nendpiont = \"http://169.254.169.254\"\n", `[aws.imds] endpiont: unknown key (did you mean "endpoint"?)`},
		{global + handler + primary + "[[aws.elastic_ip]]\nallocaton_id = \"eipalloc-1\"\n", `[[aws.elastic_ip]] #1 allocaton_id: unknown key (did you mean "allocation_id"?)`},
		{global + handler + primary + "[[aws.elastc_ip]]\nallocation_id = \"eipalloc-1\"\n", `[aws] elastc_ip: unknown key (did you mean "elastic_ip"?)`},
		{global + handler + primary + "[etcd]\nendpionts = [\"http://127.0.0.1:2379\"]\n", `[etcd] endpionts: unknown key (did you mean "endpoints"?)`},
		{global + handler + primary + "[etdc]\nendpoints = [\"http://127.0.0.1:2379\"]\n", `top level etdc: unknown key (did you mean "etcd"?)`},
	}
	for _, tt := range tests {
		_, err := ParseConfig(tt.config)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("config\n%s\ngave %v\nwant %q", tt.config, err, tt.want)
		}
	}
}
