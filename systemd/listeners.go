package systemd

import (
	"errors"
	"fmt"
	"net"

	"github.com/coreos/go-systemd/v22/activation"
)

// Listeners returns the stream sockets systemd passed to this process
// (LISTEN_FDS, LISTEN_PID), keyed by their FileDescriptorName
// (LISTEN_FDNAMES; "LISTEN_FD_3" and so on when unnamed). Several sockets
// may share a name. It unsets the LISTEN_* variables, so that commands the
// monitor runs do not take the sockets for their own, and marks the
// descriptors close-on-exec, so that they do not inherit them either.
//
// Results:
//   - not socket-activated (or LISTEN_PID names another process): an empty
//     map and nil;
//   - activated: every listener and nil;
//   - a passed descriptor is not a stream listener (a datagram socket, a
//     FIFO): nil and an error naming it; every descriptor is closed, since
//     a unit that passes the wrong socket is a configuration error.
//
// Call it once: the second call finds the variables gone.
func Listeners() (map[string][]net.Listener, error) {
	// go-systemd's ListenersWithNames would skip (and leak) a descriptor
	// that is not a listener; do it here to report it instead.
	files := activation.Files(true)
	ls := make(map[string][]net.Listener, len(files))
	var errs []error
	for i, f := range files {
		l, err := net.FileListener(f) // dups the descriptor
		if err != nil {
			errs = append(errs, fmt.Errorf("systemd: socket %q (fd %d) is not a stream listener: %w", f.Name(), 3+i, err))
		} else {
			ls[f.Name()] = append(ls[f.Name()], l)
		}
		f.Close()
	}
	if len(errs) > 0 {
		for _, group := range ls {
			for _, l := range group {
				l.Close()
			}
		}
		return nil, errors.Join(errs...)
	}
	return ls, nil
}
