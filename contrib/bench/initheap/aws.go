//go:build !noaws

package main

import _ "github.com/fstaid/fstaid/contrib/aws"

func init() { linked += "contrib/aws " }
