#!/bin/sh
# Example fstaidd failover handler: the contract, documented and logged.
#
# fstaidd calls the [handler] command exactly as the original fstaid did,
# with four arguments:
#
#   handler PRIMARY_EXIT PRIMARY_TIMEDOUT SECONDARY_EXIT SECONDARY_TIMEDOUT
#
#   1 false -1 false   primary exited 1, no secondary configured
#   -1 true 7 false    primary timed out, secondary exited 7
#
# An *_EXIT is the check command's exit status (native http/tcp checks
# report 0 or 1), -1 when it timed out or was killed by a signal, 127 when
# it could not start. A manual failover (POST /fail, `fstaidd fail -exit N`)
# passes N (default 1) for both checks.
#
# The environment adds, among others:
#   FSTAID_REASON          auto or manual
#   FSTAID_TARGET          [global] target
#   FSTAID_TIME            when the failover started
#   FSTAID_REQUESTED_BY    who asked for a manual failover
#   FSTAID_PRIMARY_EXIT, _TIMED_OUT, _HTTP_STATUS, _ERROR, _DURATION,
#   _ATTEMPTS, and the same for SECONDARY and SELF.
#
# The handler runs at most once per failover record, in its own process
# group, killed whole at [handler] timeout. Its output goes to fstaidd's
# log (the journal under systemd). Exit 0 when the address has moved: any
# other status makes fstaidd exit 11 ("a handler failed: page someone").
#
# This example moves nothing: it logs what it was told and exits 1, so a
# failover with the shipped configuration is recorded as failed rather
# than silently "done". Copy it (e.g. to /usr/local/sbin/fstaid-handler),
# replace move_address, and point [handler] command at the copy.
set -u

primary_exit=${1:?usage: $0 PRIMARY_EXIT PRIMARY_TIMEDOUT SECONDARY_EXIT SECONDARY_TIMEDOUT}
primary_timedout=${2:-false}
secondary_exit=${3:--1}
secondary_timedout=${4:-false}

log() {
	echo "fstaid handler: $*"
}

log "target=${FSTAID_TARGET:-?} reason=${FSTAID_REASON:-?}" \
	"requested_by=${FSTAID_REQUESTED_BY:-}" \
	"primary_exit=$primary_exit primary_timedout=$primary_timedout" \
	"secondary_exit=$secondary_exit secondary_timedout=$secondary_timedout"
if [ -n "${FSTAID_PRIMARY_ERROR:-}" ]; then
	log "primary error: $FSTAID_PRIMARY_ERROR"
fi

# move_address makes the standby the active server: move the floating
# address, repoint DNS, promote the replica, ... It must be idempotent
# (safe to run again if a previous attempt was cut short) and finish well
# within [handler] timeout. Replace this body.
move_address() {
	log "example handler: no action configured; edit a copy of $0"
	return 1
}

if [ "${FSTAID_REASON:-}" = auto ] && [ "$primary_exit" = 0 ]; then
	# fstaidd fails over automatically only on a failed primary check.
	log "refusing: automatic failover with a passing primary check"
	exit 1
fi

if move_address; then
	log "failover done"
	exit 0
fi
log "failover FAILED"
exit 1
