module github.com/fstaid/fstaid

go 1.25

require (
	github.com/coreos/go-systemd/v22 v22.7.0
	github.com/hashicorp/go-multierror v1.1.1
	github.com/mattn/go-shellwords v1.0.16
)

require (
	github.com/hashicorp/errwrap v1.0.0 // indirect
	golang.org/x/sys v0.1.0 // indirect
)
