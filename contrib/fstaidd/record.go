package main

import (
	"fmt"
	"time"

	"github.com/fstaid/fstaid"
)

func describeRecord(rec *fstaid.Record) string {
	if rec.Legacy {
		return "a bare lock file as the original fstaid writes, modified " + rec.Time.Format(time.RFC3339)
	}
	return fmt.Sprintf("written %s by %s pid %d, reason %s, state %s", rec.Time.Format(time.RFC3339), rec.Host, rec.PID, rec.Reason(), rec.State)
}
