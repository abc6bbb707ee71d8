#!/bin/sh
# A handler written to the original fstaid's contract: four positional
# arguments, PRIMARY_EXIT PRIMARY_TIMEDOUT SECONDARY_EXIT SECONDARY_TIMEDOUT.
# It records them (one call per line) in $0.calls.
primary_exit=$1 primary_timedout=$2 secondary_exit=$3 secondary_timedout=$4
echo "$primary_exit $primary_timedout $secondary_exit $secondary_timedout" >> "$0.calls"
if [ "$primary_exit" != 0 ] && [ "$secondary_timedout" = true ]; then
  exit 1 # as the original's example: do nothing if the secondary timed out
fi
exit 0
