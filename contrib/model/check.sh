#!/usr/bin/env bash
# check.sh: verify the Promela models of fstaid's failover protocol with
# spin. Each run is exhaustive (no bitstate): the real model must verify
# clean; each mutant (and the known bug) must give a counterexample.
# Safety runs check the assertions (P1, P2); liveness runs check an LTL
# formula (P3, P4) for acceptance cycles under weak fairness.
# Builds pan in a temporary directory; writes nothing into the repository.
# Needs spin and gcc. Usage: contrib/model/check.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0

# run NAME EXPECT FILE [spin -D flags...]: a safety run (assertions).
# live NAME EXPECT CLAIM FILE [spin -D flags...]: a liveness run of the
# LTL formula CLAIM, acceptance cycles under weak fairness
# (pan -a -f -N CLAIM).
# EXPECT is "clean" or "counterexample".
run() { check "" "$@"; }
live() {
	local name=$1 expect=$2 claim=$3
	shift 3
	check "$claim" "$name" "$expect" "$@"
}
check() {
	local claim=$1 name=$2 expect=$3 file=$4
	shift 4
	local dir="$work/$name" what="$file $*"
	mkdir -p "$dir"
	cp "$here/$file" "$dir/"
	if [ -z "$claim" ]; then
		(cd "$dir" && spin -a "$@" "$file" >spin.out 2>&1 &&
			gcc -w -O2 -DSAFETY -DNOCLAIM -DCOLLAPSE -o pan pan.c &&
			./pan -E -m1000000 >pan.out 2>&1) || true
	else
		what="$what, ltl $claim, weak fairness"
		(cd "$dir" && spin -a "$@" "$file" >spin.out 2>&1 &&
			gcc -w -O2 -DNFAIR=3 -DCOLLAPSE -o pan pan.c &&
			./pan -a -f -E -m1000000 -N "$claim" >pan.out 2>&1) || true
	fi
	local out="$dir/pan.out"
	if [ ! -s "$out" ]; then
		echo "FAIL $name: spin or gcc failed:" >&2
		cat "$dir/spin.out" >&2
		fail=1
		return
	fi
	if [ -n "$claim" ] && ! grep -qE "never claim[[:space:]]+\+ \($claim\)" "$out"; then
		echo "FAIL $name: pan did not check the formula $claim:" >&2
		cat "$out" >&2
		fail=1
		return
	fi
	local errors states depth
	errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$out")
	states=$(awk '/states, stored/ {print $1}' "$out")
	depth=$(sed -n 's/.*depth reached \([0-9]*\).*/\1/p' "$out")
	if grep -q 'max search depth too small' "$out"; then
		echo "FAIL $name: search depth too small: not exhaustive" >&2
		fail=1
		return
	fi
	case $expect in
	clean)
		if [ "$errors" = 0 ]; then
			echo "ok   $name: verified: $states states, depth $depth ($what)"
		else
			echo "FAIL $name: counterexample in the real model ($what):" >&2
			grep -E 'violated|invalid|acceptance cycle' "$out" >&2 || true
			(cd "$dir" && spin -t -p -g ${claim:+-N "$claim"} "$@" "$file" | grep MSC | head -40) >&2 || true
			fail=1
		fi
		;;
	counterexample)
		if [ "${errors:-0}" != 0 ]; then
			echo "ok   $name: refuted as it must be: $(grep -m1 -E 'violated|acceptance cycle' "$out" | sed 's/^pan:[0-9]*: //') ($states states, $what)"
		else
			echo "FAIL $name: the mutant verifies clean: the check cannot tell ($what)" >&2
			fail=1
		fi
		;;
	esac
}

# The real model, one fault mix per run (together they exceed CI's budget).
run monitor-fail    clean monitor.pml -DKILLS=0 -DTERMS=0 -DSELFFAILS=0 -DLEGACIES=0
run monitor-stop    clean monitor.pml -DKILLS=0 -DTERMS=1 -DSELFFAILS=0 -DLEGACIES=0
run monitor-crash   clean monitor.pml -DKILLS=1 -DTERMS=0 -DSELFFAILS=0 -DLEGACIES=0
run monitor-isolated clean monitor.pml -DKILLS=0 -DTERMS=0 -DSELFFAILS=1 -DLEGACIES=1 -DNFAIL=1
run etcd-crash      clean etcd.pml -DFALLBACK -DKILLS=1 -DREFUSALS=0 -DCUTS=0

# Liveness (README: the LIVE environment: no SIGKILL, no SIGTERM, finite
# faults; partitions heal): P4 on the file lock, P3 and P4 on etcd with a
# partition that may lose a committed reply.
live monitor-P4 clean p4 monitor.pml -DLIVE
live etcd-P3    clean p3 etcd.pml -DFALLBACK -DLIVE -DCUTS=1 -DREFUSALS=0
live etcd-P4    clean p4 etcd.pml -DFALLBACK -DLIVE -DCUTS=1 -DREFUSALS=0

# Mutants: spin must find each one.
run M1-record-leased      counterexample etcd.pml -DFALLBACK -DKILLS=1 -DREFUSALS=0 -DCUTS=0 -DM1
run M2-fallback-any-error counterexample etcd.pml -DFALLBACK -DKILLS=0 -DREFUSALS=1 -DCUTS=0 -DM2
live M3-no-own-record     counterexample p4 etcd.pml -DFALLBACK -DLIVE -DCUTS=1 -DREFUSALS=0 -DM3
run M4-deadline-manual    counterexample monitor.pml -DKILLS=0 -DTERMS=0 -DSELFFAILS=0 -DLEGACIES=0 -DM4
# The code before the fix (README, Findings): a /fail queued during a stop.
run finding-shutdown      counterexample monitor.pml -DKILLS=0 -DTERMS=1 -DSELFFAILS=0 -DLEGACIES=0 -DSHUTDOWN_BUG -DLOCKFAILS=2

exit $fail
