#!/bin/sh
# Example fstaidd failover handler: move an Elastic IP from the primary
# EC2 instance to the standby with the AWS CLI (package awscli, or AWS
# CLI v2), optionally stopping the old primary first (fencing).
#
# fstaidd runs on a third host, so this script names both instances
# instead of asking the metadata service "who am I". Settings come from
# the environment or from /etc/fstaidd/aws-elastic-ip.env (another file
# with FSTAID_EIP_CONFIG=...), a shell fragment such as:
#
#   FSTAID_EIP_ALLOCATION_ID=eipalloc-0123456789abcdef0
#   FSTAID_EIP_PRIMARY_INSTANCE=i-0aaaaaaaaaaaaaaaa
#   FSTAID_EIP_STANDBY_INSTANCE=i-0bbbbbbbbbbbbbbbb
#   FSTAID_EIP_FENCE=stop           # or none (the default)
#   FSTAID_EIP_FENCE_TIMEOUT=300    # seconds to wait for the stop
#   AWS_DEFAULT_REGION=eu-west-1
#
# and in fstaidd.toml:
#
#   [handler]
#   command = "/usr/share/fstaidd/examples/aws-elastic-ip.sh"
#   timeout = 420     # > fence timeout + a few API calls
#
# The shipped unit runs this script as the user fstaidd (unprivileged:
# an API call needs no root): make the .env file root:fstaidd 0640.
# Credentials: the monitor host's instance profile (or the usual AWS CLI
# configuration of that user, /var/lib/fstaidd/.aws). It needs
# ec2:DescribeAddresses, ec2:AssociateAddress, and with fencing
# ec2:StopInstances and ec2:DescribeInstances, limited to these resources
# where possible.
#
# Safety: the script is idempotent (a second run after the address moved
# succeeds without calling AssociateAddress again), and it refuses to move
# an address that is on neither of the two instances: someone else moved
# it, and a failover now would take it from them. It honours the original
# fstaid argument contract:
#
#   PRIMARY_EXIT PRIMARY_TIMEDOUT SECONDARY_EXIT SECONDARY_TIMEDOUT
#
# which it logs; the decision to fail over is fstaidd's. Exit 0 when the
# address is on the standby; anything else makes fstaidd exit 11.
#
# After a failover the roles are swapped: swap PRIMARY and STANDBY here
# and the checks in fstaidd.toml before `fstaidd unlock -yes`.
set -u

conf=${FSTAID_EIP_CONFIG:-/etc/fstaidd/aws-elastic-ip.env}
if [ -r "$conf" ]; then
	# shellcheck disable=SC1090
	. "$conf"
fi

log() {
	echo "aws-elastic-ip: $*"
}
die() {
	log "FAILED: $*"
	exit 1
}

log "called with: $* (reason ${FSTAID_REASON:-?}, target ${FSTAID_TARGET:-?})"

alloc=${FSTAID_EIP_ALLOCATION_ID:-}
primary=${FSTAID_EIP_PRIMARY_INSTANCE:-}
standby=${FSTAID_EIP_STANDBY_INSTANCE:-}
fence=${FSTAID_EIP_FENCE:-none}
fence_timeout=${FSTAID_EIP_FENCE_TIMEOUT:-300}

[ -n "$alloc" ] || die "FSTAID_EIP_ALLOCATION_ID is not set (see $conf)"
[ -n "$primary" ] || die "FSTAID_EIP_PRIMARY_INSTANCE is not set (see $conf)"
[ -n "$standby" ] || die "FSTAID_EIP_STANDBY_INSTANCE is not set (see $conf)"
[ "$primary" != "$standby" ] || die "primary and standby are the same instance ($primary)"
case $fence in
none | stop) ;;
*) die "FSTAID_EIP_FENCE must be none or stop, got '$fence'" ;;
esac
command -v aws >/dev/null 2>&1 || die "the aws command is not installed"

# Every call is bounded, so that the handler's timeout is spent on the
# failover and not on one hung connection.
awsc() {
	aws --cli-connect-timeout 5 --cli-read-timeout 20 --output text "$@"
}

# where prints the instance the address is associated with, or "None".
where() {
	awsc ec2 describe-addresses --allocation-ids "$alloc" \
		--query 'Addresses[0].InstanceId'
}

current=$(where) || die "cannot describe $alloc"
log "$alloc is on ${current:-None}"
if [ "$current" = "$standby" ]; then
	log "already on the standby $standby: nothing to do"
	exit 0
fi
if [ "$current" != "$primary" ] && [ "$current" != None ] && [ -n "$current" ]; then
	die "$alloc is on $current, neither primary $primary nor standby $standby: refusing to take it"
fi

if [ "$fence" = stop ]; then
	# Stop the old primary before it loses its address, so that it cannot
	# keep serving writes it will never be able to hand over.
	log "fencing: stopping $primary (force), waiting up to ${fence_timeout}s"
	awsc ec2 stop-instances --force --instance-ids "$primary" >/dev/null ||
		die "cannot stop $primary"
	timeout "$fence_timeout" aws ec2 wait instance-stopped --instance-ids "$primary" ||
		die "$primary did not stop within ${fence_timeout}s"
	log "$primary stopped"
fi

log "associating $alloc with $standby"
awsc ec2 associate-address --allocation-id "$alloc" --instance-id "$standby" \
	--allow-reassociation >/dev/null || die "associate-address failed"

after=$(where) || die "cannot describe $alloc after associating it"
[ "$after" = "$standby" ] || die "$alloc is on '$after' after associating it with $standby"
log "failover done: $alloc is on $standby"
exit 0
