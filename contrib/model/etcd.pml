/*
 * etcd.pml: N fstaid monitors of one target sharing the etcd record
 * (contrib/etcd), with the local-lock fallback and k-of-n verdicts.
 * Each proctype and step names the Go code it models:
 *   fstaid.go                 Monitor.Run (rounds), failover, failoverGate,
 *                             watchLock, resume, checkLock
 *   contrib/etcd/lock.go      Lock.Acquire: create-if-absent Txn on
 *                             CreateRevision == 0, the record WITHOUT a lease,
 *                             the holder key bound to a lease; own record
 *                             recognised by Record.ID after a lost reply
 *   contrib/etcd/watch.go     Lock.Watch / awaitRecord: Get, then Watch; a
 *                             dropped watch resyncs with a Get
 *   contrib/etcd/fallback.go  FallbackLock.Acquire: the local lock only when
 *                             etcd is unreachable AND a read fails too
 *   contrib/etcd/verdicts.go  Verdicts (leased keys) and the Quorum check
 * Time is not modelled here (monitor.pml does the deadlines); steps
 * interleave freely, so a delayed watch is any interleaving.
 *
 * Switches: M1 record bound to the holder lease; M2 fallback on any etcd
 * error; M3 no own-record recognition; LIVE the environment of P3/P4
 * (no SIGKILL, partitions heal, finite faults).
 */

#ifndef N
#define N 2             /* monitors */
#endif
#ifndef K
#define K 2             /* Quorum(K): dead verdicts needed */
#endif

/* ---- etcd ---- */
byte erec = 0;          /* <prefix>/record: 0 none, else the writer's Record.ID */
byte holder = 0;        /* <prefix>/holder: the ID whose lease holds it, 0 none */
bool vdead[N];          /* <prefix>/verdicts/<i> says dead (leased) */
/* ---- each monitor's local fallback lock file ---- */
byte lrec[N];           /* 0 none, else the writer's Record.ID */

/* ---- the monitors' processes ---- */
byte inc[N];            /* incarnation: a restart draws a new gate ID */
bool alive[N];
bool armed[N];
byte g_holder[N];       /* failoverGate.sem: 0 free, 1 the loop, 2 the watcher */
bool g_done[N];         /* failoverGate.done */
bool g_last[N];         /* failoverGate.last != nil */
bool owned[N];          /* Lock.owned */
#define MYID(i) (2*(i) + inc[i] + 1)
#define OWNER(id) (((id) - 1) / 2)

/* ---- properties ---- */
byte hb = 0;            /* handler runs begun, counted for P1 */
byte hb_all = 0;        /* every handler run begun (P4) */

/* ---- the environment ---- */
bool dead = false;      /* the target */
bool cut[N];            /* monitor i cannot reach etcd (transport errors, timeouts) */
#ifndef KILLS
#ifdef LIVE
#define KILLS 0
#else
#define KILLS 1
#endif
#endif
byte kills = KILLS;
#ifndef CUTS
#define CUTS 1
#endif
byte cuts = CUTS;          /* partitions: each also may lose a committed reply */
#ifndef REFUSALS
#define REFUSALS 1
#endif
byte refusals = REFUSALS;      /* etcd answers "no" (NOSPACE alarm, permission denied) */
byte restarts = 1;

/* Monitor.finish: the final result, the gate released for good, loopCancel */
inline finish(i) { atomic { g_done[i] = true; g_holder[i] = 0 } }

/* A handler begins: P1. Under the etcd record or this monitor's local
 * record taken while it was cut off, at most one handler run per target
 * counts: a fallback is the documented price only when etcd was
 * unreachable (README: "one failover per monitor at worst"). */
inline handler(i, counts) {
	atomic {
		hb_all++;
		if :: counts -> hb++ :: else fi;
		printf("MSC: monitor %d: handler begins (counted %d)\n", i, counts);
		assert(hb <= 1)
	}
}

/* Monitor.failover(ctx, ev) on monitor i by caller c (1 loop, 2 watcher);
 * ev false: resume the last attempt (ev == nil). */
inline failover(i, c, ev) {
	if
	:: atomic { g_holder[i] == 0 -> g_holder[i] = c };      /* gate.begin */
		if
		:: g_done[i] -> g_holder[i] = 0
		:: else ->
			if :: ev -> g_last[i] = true :: else fi;
			if
			:: !g_last[i] -> g_holder[i] = 0                /* nothing to resume: gate.end */
			:: else ->
				/* FallbackLock.Acquire -> Lock.Acquire: Grant the holder
				 * lease; Txn If CreateRevision(record) == 0 Then Put record
				 * (no lease), Put holder (lease) Else Get record. */
				atomic {
				if
				:: cut[i] -> out = 3                         /* unreachable: nothing committed */
				:: !cut[i] && cuts > 0 && erec == 0 ->      /* committed, then the reply is lost */
					cuts--; erec = MYID(i); cut[i] = true; out = 3;
					printf("MSC: monitor %d: record created, reply lost\n", i)
				:: !cut[i] && refusals > 0 -> refusals--; out = 4 /* refused: etcd answered */
				:: !cut[i] && erec == 0 -> erec = MYID(i); holder = MYID(i); out = 1
#ifndef M3
				:: !cut[i] && erec != 0 && erec == MYID(i) ->
					holder = MYID(i); out = 1                /* ours (Record.ID): bind a holder */
				:: !cut[i] && erec != 0 && erec != MYID(i) -> out = 2 /* LockedError */
#else
				:: !cut[i] && erec != 0 -> out = 2           /* M3: every record is another's */
#endif
				fi
				};
#ifdef FALLBACK
				/* FallbackLock.Acquire: on ErrLockUnavailable only */
				if
				:: out == 3 || out == 4 ->
#ifdef M2
					out = 5; fbcut = cut[i]                  /* M2: any error falls back */
#else
					atomic {                                 /* shared.Load, linearizable */
					if
#ifndef M3
					:: !cut[i] && erec != 0 && erec == MYID(i) -> out = 3 /* own: retry */
					:: !cut[i] && erec != 0 && erec != MYID(i) -> out = 2 /* LockedError */
#else
					:: !cut[i] && erec != 0 -> out = 2
#endif
					:: out == 4 && (cut[i] || erec == 0) -> skip /* refused: etcd decides */
					:: out == 3 && !cut[i] && erec == 0 -> skip /* answered: no fallback */
					:: out == 3 && cut[i] -> out = 5; fbcut = true /* unreachable twice: fall back */
					fi
					}
#endif
				:: else
				fi;
				if
				:: out == 5 ->                               /* local.Acquire (FileLock) */
					atomic {
					if
					:: lrec[i] == 0 -> lrec[i] = MYID(i); out = 6
					:: lrec[i] != 0 && lrec[i] == MYID(i) -> out = 6
					:: lrec[i] != 0 && lrec[i] != MYID(i) -> out = 2; fbcut = false
					fi
					}
				:: else
				fi;
#endif
				if
				:: out == 1 || out == 6 ->
					out = 0; owned[i] = true;
					handler(i, (!fbcut));
					/* runHandler, then Lock.Update: Txn If CreateRevision ==
					 * createRev (a no-op here: the record is never removed) */
					fbcut = false;
					finish(i)
				:: out == 2 -> out = 0; finish(i)            /* setState(locked); finish */
				:: out == 3 || out == 4 -> out = 0; g_holder[i] = 0 /* endAttempt; gate.end */
				fi
			fi
		fi
	:: c == 1 && g_done[i] -> skip                           /* begin: loopCtx done */
	fi
}

/* Monitor.Run on monitor i (and fstaidd around it): checkLock, then rounds. */
proctype Mon(byte i; byte n) {
	byte out = 0; bool fbcut = false; byte d = 0;
	{
		/* checkLock: FallbackLock.Load (local first, then etcd); an
		 * unreachable etcd fails the start (exit 70, restarted: not here) */
		!cut[i];
		if
		:: atomic { lrec[i] != 0 || erec != 0 -> alive[i] = false }; goto gone /* exit 12 */
		:: atomic { lrec[i] == 0 && erec == 0 -> armed[i] = true }
		fi;
		do
		:: g_done[i] -> break                               /* loopCtx done (finish) */
		:: !g_done[i] && !dead ->                           /* healthy: the verdict says alive */
			atomic { if :: !cut[i] -> vdead[i] = false :: else fi }
		:: !g_done[i] && dead ->
			/* primary attempts failed; secondary = Quorum(K): Publish dead
			 * (a failed publish vetoes), List, count */
			atomic {
				if
				:: cut[i] -> out = 0                         /* veto */
				:: else -> vdead[i] = true;
					out = 0; d = 0;
					do
					:: d < N -> if :: vdead[d] -> out++ :: else fi; d++
					:: else -> break
					od;
					d = 0;
					if :: out >= K -> out = 1 :: else -> out = 0 fi
				fi
			};
			if
			:: out == 1 -> out = 0; failover(i, 1, true)   /* VerdictFailover */
			:: else
			fi
		od;
		/* Run returned: Verdicts withdraws (or the lease expires) */
		atomic { armed[i] = false; if :: !cut[i] -> vdead[i] = false :: else fi; alive[i] = false }
gone:		skip
	} unless { atomic { (!alive[i] || inc[i] != n) -> armed[i] = false } }
}

/* Monitor.watchLock with Lock.Watch: the record once it exists; a dropped
 * watch resyncs with a Get, so delivery waits only for reachability. */
proctype Watcher(byte i; byte n) {
	byte out = 0; bool fbcut = false; byte r = 0;
	{
		atomic { erec != 0 && !cut[i] -> r = erec };
#ifndef M3
		if
		:: r == MYID(i) ->                                  /* gate.ours: resume */
			r = 0;
			do
			:: !g_done[i] -> failover(i, 2, false)
			:: g_done[i] -> break
			od
		:: else ->
#else
		if
		:: true ->
#endif
			r = 0;
			/* another's: gate.begin(lockTimeout), setState(locked), finish */
			if
			:: atomic { g_holder[i] == 0 -> g_holder[i] = 2 };
				if :: g_done[i] -> g_holder[i] = 0 :: else -> finish(i) fi
			fi
		fi
	} unless { !alive[i] || inc[i] != n }
}

/* systemd: an external SIGKILL of monitor j, and one restart (a new
 * incarnation, a new gate ID; the record and the files survive). */
active proctype Systemd() {
	byte j;
	do
	:: atomic { kills > 0 && alive[0] -> kills--; j = 0; alive[0] = false }; goto killed
	:: atomic { kills > 0 && alive[1] -> kills--; j = 1; alive[1] = false }; goto killed
#if N > 2
	:: atomic { kills > 0 && alive[2] -> kills--; j = 2; alive[2] = false }; goto killed
#endif
	:: kills == 0 -> goto idle     /* no SIGKILL left: systemd restarts nobody */
	od;
killed:
	printf("MSC: SIGKILL monitor %d\n", j);
	(!armed[j]);    /* its proctypes leave through unless */
	atomic {        /* Restart=on-failure; Run's checkLock needs etcd */
		!cut[j];
		if
		:: restarts > 0 -> restarts--; inc[j] = 1; g_holder[j] = 0; g_done[j] = false;
			g_last[j] = false; owned[j] = false; alive[j] = true;
			run Mon(j, 1); run Watcher(j, 1)
		:: else
		fi;
		j = 0
	};
idle:	skip
}

/* Leases: the holder key expires once its holder is dead or cut off
 * (Lock.watchHolder's keep-alive stops); a gone monitor's verdict too. */
#define HOLDER_GONE (!alive[OWNER(holder)] || inc[OWNER(holder)] != (holder - 1) % 2 || cut[OWNER(holder)])
active proctype Leases() {
	do
	:: atomic { holder != 0 && HOLDER_GONE ->
#ifdef M1
		erec = 0;       /* M1: the record goes with the holder lease */
#endif
		holder = 0 }
	:: atomic { vdead[0] && !alive[0] -> vdead[0] = false }
	:: atomic { vdead[1] && !alive[1] -> vdead[1] = false }
#if N > 2
	:: atomic { vdead[2] && !alive[2] -> vdead[2] = false }
#endif
	od
}

/* The environment: the target dies; a partition cuts a monitor off (a
 * committed Txn may lose its reply to it: Acquire). */
active proctype Env() {
	do
	:: !dead -> dead = true
	:: atomic { cuts > 0 && !cut[0] -> cuts--; cut[0] = true }
	:: atomic { cuts > 0 && !cut[1] -> cuts--; cut[1] = true }
#if N > 2
	:: atomic { cuts > 0 && !cut[2] -> cuts--; cut[2] = true }
#endif
	:: cuts == 0 -> break
	od
}

/* Partitions heal (a separate process: weak fairness makes it happen). */
active proctype Heal() {
	do
	:: cut[0] -> cut[0] = false
	:: cut[1] -> cut[1] = false
#if N > 2
	:: cut[2] -> cut[2] = false
#endif
	od
}

init {
	byte i;
	atomic {
		i = 0;
		do
		:: i < N -> alive[i] = true; run Mon(i, 0); run Watcher(i, 0); i++
		:: else -> break
		od;
		i = 0
	}
}

#define ANOTHERS0 (erec != 0 && OWNER(erec) != 0)
/* P3: a monitor never stays armed forever once another's record exists */
ltl p3 { [] (ANOTHERS0 -> <> !armed[0]) }
/* P4: the target dead, the monitors healthy, etcd reachable in the end:
 * a failover begins */
ltl p4 { [] (dead -> <> (hb_all > 0)) }
