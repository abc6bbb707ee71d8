package main

import (
	"errors"
	"slices"
	"testing"

	"github.com/fstaid/fstaid"
	"github.com/fstaid/fstaid/systemd"
)

// While the failover lock cannot be taken (etcd unreachable), STATUS=
// says so in every line, not just "failing over", until the target is
// healthy again.
func TestStatusLineSaysWhyFailoverIsBlocked(t *testing.T) {
	ns := bindNotify(t)
	s := &statusLine{n: systemd.NewNotifier(), target: "db1"}
	dead := &fstaid.Round{Verdict: fstaid.VerdictFailover}
	lockErr := errors.New("fstaid: failover lock unavailable: etcd: context deadline exceeded")
	for _, n := range []fstaid.Notice{
		{Kind: fstaid.NoticeArmed, State: fstaid.StateArmed},
		{Kind: fstaid.NoticeRound, State: fstaid.StateArmed, Round: dead},
		{Kind: fstaid.NoticeFailoverStarted, State: fstaid.StateFailingOver, Reason: "auto"},
		{Kind: fstaid.NoticeLockUnavailable, State: fstaid.StateArmed, Err: lockErr},
		{Kind: fstaid.NoticeArmed, State: fstaid.StateArmed, Reason: lockErr.Error()},
		{Kind: fstaid.NoticeCheck, State: fstaid.StateArmed},
		{Kind: fstaid.NoticeRound, State: fstaid.StateArmed, Round: dead},
		{Kind: fstaid.NoticeFailoverStarted, State: fstaid.StateFailingOver, Reason: "auto"},
		{Kind: fstaid.NoticeLockUnavailable, State: fstaid.StateArmed, Err: lockErr},
		{Kind: fstaid.NoticeRound, State: fstaid.StateArmed, Round: &fstaid.Round{Verdict: fstaid.VerdictHealthy}},
	} {
		s.observe(n)
	}
	blocked := "; last attempt blocked: " + lockErr.Error()
	want := []string{
		"STATUS=armed: watching db1",
		"STATUS=armed: watching db1; last round: failover",
		"STATUS=failing over (auto)",
		"STATUS=armed: watching db1" + blocked,
		"STATUS=armed: watching db1; last round: failover" + blocked,
		"STATUS=failing over (auto)" + blocked,
		"STATUS=armed: watching db1" + blocked,
		"STATUS=armed: watching db1",
	}
	// Each line was queued on the socket when observe sent it.
	if got := ns.take(t); !slices.Equal(got, want) {
		t.Errorf("STATUS= lines:\n got %q\nwant %q", got, want)
	}
}
