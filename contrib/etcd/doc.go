// Package etcd coordinates several fstaid monitors of one target through
// etcd, so that the monitor is no single point of failure and the target
// is still failed over at most once.
//
// # Keys
//
// Everything lives under one prefix per target, shared by its monitors:
//
//	<prefix>/record              the failover record: JSON fstaid.Record, no lease
//	<prefix>/holder              the record's holder (Holder), bound to the holder lease
//	<prefix>/verdicts/<monitor>  each monitor's vote, bound to its vote lease
//
// # The lock
//
// Store.Lock is a fstaid.Lock: the first monitor to decide creates the
// record in a transaction that succeeds only if the key does not exist;
// every other monitor gets a *fstaid.LockedError with that record and runs
// no handler. The record never expires: a holder SIGKILLed mid-handler
// leaves it in state failing-over, Status reports it Interrupted once the
// holder lease is gone, and no monitor fails over again until a human
// removes it with Lock.Remove (`fstaidd unlock`), which removes only the
// record shown (fstaid.LockRemover).
//
// The lock is also a fstaid.LockWatcher: every running Monitor watches the
// record key and stops with a *fstaid.LockedError as soon as any monitor
// has created the record, including one whose own rounds never reach
// Acquire (its dead vote outvoted).
//
// # Losing etcd
//
// The lock fails closed: while etcd cannot be reached (or has no quorum)
// Load, Probe and Acquire return errors wrapping fstaid.ErrLockUnavailable,
// the Monitor refuses to start or, armed, runs no handler and keeps
// monitoring. Each call gives up after the Store's timeout (WithTimeout,
// fstaidd's dial_timeout), so every round retries. Such an error also
// says which of two things happened: ErrUnreachable (no answer:
// transport errors, no leader, timeouts) or ErrRefused (etcd answered
// "no": permission denied, a refused credential, the NOSPACE alarm).
//
// A creation whose answer was lost may have committed. The Monitor draws
// one random ID per failover attempt (fstaid.Record.ID) and keeps it for
// every retry; Acquire treats a record carrying that ID as its own,
// binds a new holder key to it and succeeds, and the LockWatcher delivers
// the record with its ID so that the Monitor recognises it too.
//
// Failing open is a choice the operator makes explicitly: FallbackLock
// (fstaidd's on_unavailable = "local-lock") takes a local file lock when
// etcd cannot be reached at failover time — only when unreachable, and
// only after a linearizable read of the record got no answer either; any
// answer from etcd decides — at the price of one failover per monitor at
// worst.
//
// # k-of-n votes
//
// (A vote is what fstaidd's docs and its verdict_ttl key call a verdict;
// fstaid.Verdict is a round's outcome.) Optionally each monitor publishes its vote on the target every round
// (Votes.Observer), and the Quorum check, used as the secondary check,
// confirms the target dead only when k distinct monitors say so. See
// Votes for the wiring. A vote lives for the vote TTL, which must
// cover the time between two rounds' publications (MinVoteTTL,
// WithRoundTiming); only a successful write renews it. Votes carry the
// target and a config digest (WithVoteScope) and only matching ones
// count; a second live process under one monitor ID is found
// (Votes.CheckUnique at start, Votes.Duplicate while running), and
// Store.Status counts the live monitors against k. Quorum is also a
// fstaid.ReadinessCheck: with fstaid.WithReadiness the Monitor finds out
// between rounds when fewer than k distinct monitors are live (or the
// votes cannot be read), before a dead target goes unconfirmed; the
// lock needs no check of its own, since the Monitor's lock pre-flight
// reads the record and probes the keys with the same credentials.
//
// # Lifecycle
//
// Open (from the daemon's [etcd] Config) or NewStore (from a client of your
// own); build the Monitor with store.Lock() and, for votes,
// store.Votes(); run it; after Run returns, Store.Close withdraws the
// vote, revokes the holder lease (the record stays) and closes the
// client Open made.
package etcd
