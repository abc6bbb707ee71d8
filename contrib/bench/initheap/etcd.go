//go:build !noetcd

package main

import _ "github.com/fstaid/fstaid/contrib/etcd"

func init() { linked += "contrib/etcd " }
