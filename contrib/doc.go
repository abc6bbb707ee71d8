// Package contrib holds what builds on the fstaid library but must not
// weigh on its users: the fstaidd daemon, AWS handlers, the etcd lock and
// packaging, each in a subdirectory.
package contrib
