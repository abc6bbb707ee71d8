package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/fstaid/fstaid"
)

const rolesWarning = `WARNING: after a failover the roles are swapped. The standby is now the
active server. Re-arming with the old configuration would watch the wrong
server (or the dead one). Update [primary], [secondary] and the handler
for the new roles BEFORE starting fstaidd again.`

// cmdUnlock shows the failover record and removes it only with -yes.
func cmdUnlock(ctx context.Context, path string, yes bool, out, errOut io.Writer) int {
	cfg, err := loadToolConfig(path)
	if err != nil {
		fmt.Fprintln(errOut, err)
		return exitConfig
	}
	code := 0
	if cfg.Etcd != nil {
		code = etcdUnlock(ctx, cfg, yes, func(s string) { fmt.Fprintln(out, s) })
	}
	// With on_unavailable = "local-lock" a failover may have fallen back
	// to the file: it is cleared too, also while etcd is unreachable.
	if cfg.UsesFileLock() {
		if c := fileUnlock(ctx, cfg.FileLock, yes, out, errOut); c != 0 {
			code = c
		}
	}
	return code
}

// fileUnlock shows the file lock's record and removes it only with yes.
func fileUnlock(ctx context.Context, lock *fstaid.FileLock, yes bool, out, errOut io.Writer) int {
	rec, err := lock.Load(ctx)
	if err != nil {
		fmt.Fprintln(errOut, err)
		return 1
	}
	if rec == nil {
		fmt.Fprintf(out, "no failover record at %s: nothing to unlock\n", lock)
		return 0
	}
	fmt.Fprintf(out, "failover record at %s (%s):\n", lock, describeRecord(rec))
	if !rec.Legacy {
		data, _ := json.MarshalIndent(rec, "", "  ")
		fmt.Fprintf(out, "%s\n", data)
	}
	fmt.Fprintln(out, rolesWarning)
	if !yes {
		fmt.Fprintln(out, "Not removed. Run `fstaidd unlock -yes` once the configuration matches the new roles.")
		return 1
	}
	switch err := lock.Remove(ctx, rec); {
	case errors.Is(err, fstaid.ErrLockNotDurable):
		// Removed: only its durability is in doubt.
		fmt.Fprintln(errOut, "WARNING:", err)
	case err != nil:
		fmt.Fprintln(errOut, "removing the record:", err.Error()+unlockAgain(err))
		return 1
	}
	fmt.Fprintf(out, "removed %s: fstaidd will arm on its next start\n", lock)
	return 0
}

// unlockAgain is the hint after a refused removal: the record changed
// since it was shown.
func unlockAgain(err error) string {
	if errors.Is(err, fstaid.ErrRecordChanged) {
		return "; run unlock again to see the current record"
	}
	return ""
}
