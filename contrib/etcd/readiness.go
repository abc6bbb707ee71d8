package etcd

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/fstaid/fstaid"
)

// Readiness: the shared lock needs nothing of its own (the Monitor's
// lock pre-flight reads the record and probes the keys, which also
// proves that the credentials still authenticate); the quorum does.

var _ fstaid.ReadinessCheck = (*Quorum)(nil)

// Ready reports whether a dead target could still be confirmed: the
// number of distinct monitors with a fresh vote about this target and
// configuration, this one included, must reach K (a fstaid.ProblemQuorum
// otherwise), another live process must not share this monitor's ID, and
// the votes must be readable (a fstaid.ProblemStore otherwise). The
// Monitor calls it in its readiness runs (fstaid.WithReadiness), being
// the secondary check.
func (q *Quorum) Ready(ctx context.Context) []fstaid.Problem {
	dir := q.v.s.voteDir()
	live, mismatched, err := q.v.Live(ctx)
	if err != nil {
		return []fstaid.Problem{{Kind: fstaid.ProblemStore, Resource: dir, Message: err.Error()}}
	}
	var ps []fstaid.Problem
	// This monitor counts once it publishes, whether or not its vote
	// is fresh right now.
	if !slices.Contains(live, q.v.s.id) {
		live = append(live, q.v.s.id)
	}
	if len(live) < q.K {
		msg := fmt.Sprintf("only %d live monitor(s) (%s, this one included) for quorum %d: a dead target cannot be confirmed until more run",
			len(live), strings.Join(live, ", "), q.K)
		if len(mismatched) > 0 {
			msg += fmt.Sprintf("; the verdicts of %s are about another target or configuration and do not count", strings.Join(mismatched, ", "))
		}
		ps = append(ps, fstaid.Problem{Kind: fstaid.ProblemQuorum, Resource: dir, Message: msg})
	}
	if err := q.v.Duplicate(); err != nil {
		ps = append(ps, fstaid.Problem{Kind: fstaid.ProblemQuorum, Resource: q.v.s.voteKey(), Message: err.Error()})
	}
	return ps
}
