/*
 * monitor.pml: one fstaid Monitor on the file lock, inside fstaidd, under
 * systemd. Each proctype and step names the Go code it models:
 *   fstaid.go                    Monitor.Run, failover, failoverGate, currentDeadline
 *   lock.go                      FileLock.Acquire (temp file, fsync, link(2))
 *   contrib/fstaidd/daemon.go    watchdog pings, Shutdown, exit statuses
 *   contrib/fstaidd/server.go    POST /fail -> Monitor.Fail
 *   contrib/systemd/fstaidd.service  WatchdogSec, Restart=on-failure,
 *                                RestartPreventExitStatus=10 11 12 78, TimeoutStopSec
 *
 * Time is discrete: the Clock ticks only when no other process can move
 * (Promela's timeout), so a step takes no time unless it waits for a timer.
 * Every bounded activity (a round, a lock call, a handler) draws its
 * duration up front, within its timeout, and waits for that many ticks.
 *
 * Switches (cc -D, or spin -D):
 *   M4           mutant: the watchdog deadline does not cover a manual
 *                failover (currentDeadline ignores a Fail's gate bound)
 *   SHUTDOWN_BUG the code before the fix: /fail ran on WithoutCancel and
 *                gate.begin did not check ctx after taking the gate, so a
 *                /fail queued on the gate could begin a failover after the
 *                stop began (see README, "Findings")
 *   LIVE         the environment of property P4: no SIGTERM, no SIGKILL,
 *                no isolated monitor, no legacy file; faults are finite
 */

/* ---- durations, in ticks ---- */
#define L 1             /* Monitor.lockTimeout: one lock call */
#define H 2             /* the handler's timeout */
#define F (2*L+H+1)     /* Monitor.FailoverBound: 2 lock calls + handlers + margin */
#define R 2             /* Monitor.RoundBound: a round lasts at most R-1 ticks */
#define I 1             /* interval */
#ifndef TSTOP
#define TSTOP F         /* TimeoutStopSec: the README's minimum, the whole failover */
#endif
#ifndef NFAIL
#define NFAIL 2         /* concurrent POST /fail callers per process (1 or 2) */
#endif

/* ---- the lock file: survives every restart (lock.go) ---- */
mtype = { NONE, FAILING, DONE, LEGACY };
mtype rec = NONE;       /* the file's content */
byte rec_id = 0;        /* Record.ID: the writer's incarnation (gen) */
byte hb = 0;            /* handler runs begun on this record (P1) */

/* ---- the fstaidd process: reset at every start ---- */
byte gen = 0;           /* incarnation; changing it kills every proctype of the old one */
bool up = false;
bool running = false;   /* Monitor.running */
bool armed = false;
bool dl_set = false;    /* Monitor.deadline != 0 */
byte loop_dl = 0;       /* Monitor.deadline, as ticks left */
byte g_holder = 0;      /* failoverGate.sem: 0 free, else caller+1 */
bool g_run = false;     /* failoverGate.running(): until != 0 */
byte g_left = 0;        /* failoverGate.until, as ticks left */
bool g_auto = false;    /* the running attempt came from the loop (for M4) */
bool g_last = false;    /* failoverGate.last != nil */
bool g_done = false;    /* failoverGate.done closed */
byte g_res = 0;         /* the final result, as fstaidd's exit status: 10 or 12 */
byte h_run = 0;         /* handlers running now */
bool term = false;      /* SIGTERM: Run's ctx is cancelled */
bool listening = false; /* the HTTP server accepts /fail */
byte inflight = 0;      /* /fail requests being served */
byte act[NFAIL+1];      /* each caller's activity timer: 0 the loop, 1.. the Fail callers */
byte sleep_t = 0;       /* the loop's timer (sleepUntil) */
byte shut_t = 0;        /* srv.Shutdown's timeout */
bool exited = false;    /* the daemon returned its exit status */
byte code = 0;
bool tk = false;        /* flips at every tick: "wait for the next tick" */
byte nprocs = 0;        /* proctypes of the process still there */

/* ---- systemd ---- */
bool stopping = false;  /* systemctl stop: SIGTERM sent */
byte stop_t = 0;        /* TimeoutStopSec left */
bool stop_kill = false; /* TimeoutStopSec expired: SIGKILL */
bool wd_fire = false;   /* WatchdogSec without a ping: SIGABRT */
byte restarts = 1;      /* one restart after a crash */

/* ---- the environment's fault budgets ---- */
bool dead = false;      /* the target is dead */
#ifdef LIVE
#define KILLS 0
#define TERMS 0
#define SELFFAILS 0
#define LEGACIES 0
#endif
#ifndef STARTFAILS
#define STARTFAILS 0
#endif
#ifndef VETOES
#define VETOES 0
#endif
#ifndef KILLS
#define KILLS 1
#endif
#ifndef TERMS
#define TERMS 1
#endif
#ifndef SELFFAILS
#define SELFFAILS 1
#endif
#ifndef LEGACIES
#define LEGACIES 1
#endif
byte kills = KILLS; byte terms = TERMS; byte selffails = SELFFAILS; byte legacies = LEGACIES;
#ifndef LOCKFAILS
#define LOCKFAILS 1
#endif
byte lockfails = LOCKFAILS;     /* Acquire cannot write or publish (ENOSPC, EROFS, EIO) */
byte startfails = STARTFAILS;    /* a start-up check fails although the target lives */
byte vetoes = VETOES;        /* the secondary sees the target alive, or the self check after fails */

/* Monitor.currentDeadline has passed: fstaidd's watchdog stops pinging
 * (daemon.go: healthy = dl.IsZero() || now.Before(dl)). */
#ifdef M4
#define GATE_DL (g_run && g_auto)
#else
#define GATE_DL g_run
#endif
#define HUNG (running && (dl_set || GATE_DL) && (!dl_set || loop_dl == 0) && (!GATE_DL || g_left == 0))

/* Run's loopCtx is done: SIGTERM, or finish's loopCancel */
#define LCTX_DONE (term || g_done)

#define dec(x) if :: x > 0 -> x-- :: else fi

/* The Clock: one tick when nothing else can move. The watchdog and
 * TimeoutStopSec are checked at the tick. */
active proctype Clock() {
	byte i;
	do
	:: timeout ->
		atomic {
			tk = !tk; printf("MSC: tick\n");
			dec(loop_dl); dec(g_left); dec(sleep_t); dec(shut_t);
			i = 0;
			do
			:: i <= NFAIL -> dec(act[i]); i++
			:: else -> break
			od;
			if
			:: up && stopping && stop_t > 0 ->
				stop_t--;
				if :: stop_t == 0 -> stop_kill = true :: else fi
			:: else
			fi;
			/* systemd: a whole tick without a ping; WatchdogSec is
			 * larger than the ping period (README). */
			if :: up && HUNG -> wd_fire = true :: else fi
		}
	od
}

/* A bounded activity of caller c: it takes 0 to t ticks (its timeout).
 * d is a local of the calling proctype, reset so that it adds no state. */
inline upto(c, t) {
	atomic { select (d : 0 .. t); act[c] = d; d = 0 };
	act[c] == 0
}

/* failoverGate.finish and Monitor.finish: the final result, the gate
 * released for good, loopCancel. */
inline finish(res) {
	atomic { g_res = res; g_done = true; g_run = false; g_left = 0; g_holder = 0 }
}

/* Monitor.failover(ctx, ev): c is the caller (0 the loop), isauto the loop's
 * attempt, ev false for a retry of the last attempt (checkLock's own record). */
inline failover(c, isauto, ev) {
	/* failoverGate.begin(ctx, FailoverBound): the loop's ctx is loopCtx; a
	 * Fail's is fstaidd's stopping context, which SIGTERM ends (server.go,
	 * api.stopping; under SHUTDOWN_BUG the request's, WithoutCancel). */
	if
	:: atomic { g_holder == 0 -> g_holder = c + 1 };
		if
		:: g_done -> g_holder = 0         /* begin: the failover ended for good: its result */
#ifndef SHUTDOWN_BUG
		/* begin: ctx.Err() after taking the gate: an attempt whose caller's
		 * context ended never begins (the loop's loopCtx; a /fail's is
		 * fstaidd's stopping context, ended by SIGTERM) */
		:: !g_done && term -> g_holder = 0
		:: !g_done && !term ->
#else
		:: else ->
#endif
			atomic { g_run = true; g_left = F; g_auto = isauto; printf("MSC: caller %d: gate.begin\n", c);
				if :: ev -> g_last = true :: else fi }
			if
			:: !g_last -> atomic { g_run = false; g_left = 0; g_holder = 0 } /* no attempt to resume: gate.end */
			:: else ->
				/* setState(failing-over); FileLock.Acquire within lockTimeout:
				 * writeTemp (temp file, write, fsync), publish with link(2)
				 * (EEXIST if any file is there, even the original's empty
				 * one), syncDir. */
				upto(c, L);
				if
				:: atomic { lockfails > 0 -> lockfails--; out = 3; printf("MSC: caller %d: lock unavailable\n", c) } /* nothing published: ErrLockUnavailable */
				:: atomic { rec == NONE -> rec = FAILING; rec_id = gen; out = 1 }
					/* published; syncDir ok, or ErrLockNotDurable: taken all the same */
				:: atomic { rec != NONE && rec_id == gen -> out = 1 } /* EEXIST, Record.ID ours: owned */
				:: atomic { rec != NONE && rec_id != gen -> out = 2 } /* EEXIST, another's or LEGACY: LockedError */
				fi;
				if
				:: out == 2 -> out = 0; finish(12)       /* setState(locked); finish(le.Record, le) */
				:: out == 3 ->                  /* endAttempt: state restored, gate.end */
					atomic { out = 0; g_run = false; g_left = 0; g_holder = 0 }
				:: out == 1 -> out = 0;
					/* runHandler: on context.WithoutCancel, bounded by its timeout */
					atomic { hb++; assert(hb <= 1); h_run++; printf("MSC: caller %d: handler begins\n", c) } /* P1 */
					upto(c, H);
					atomic { h_run--; printf("MSC: caller %d: handler ends\n", c) };
					/* lock.Update within lockTimeout: the outcome in the record */
					upto(c, L);
					rec = DONE;
					finish(10)
				fi
			fi
		fi
	:: c == 0 && LCTX_DONE -> skip             /* begin: ctx.Done() */
#ifndef SHUTDOWN_BUG
	/* begin: a /fail's ctx (fstaidd's stopping context) ended while it waited */
	:: c > 0 && term -> skip
#endif
	fi
}

/* Monitor.Run, and fstaidd's daemon.run around it. */
proctype Monitor(byte g) {
	byte res = 0; byte out = 0; byte d = 0;
	{
		listening = true;                   /* daemon.run: serves before Run; READY=1 */
		running = true;                     /* Run: running.CompareAndSwap */
		if :: g_done -> res = g_res; goto ran :: else fi; /* gate.result() */
		/* checkLock: gate.wait(ctx) for a Fail taking the lock now */
		if
		:: term -> goto ran                 /* ctx ended: nil */
		:: g_holder == 0 -> skip
		fi;
		if :: g_done -> res = g_res; goto ran :: else fi;
		atomic { dl_set = true; loop_dl = L + 1 }  /* setDeadline(now + lockTimeout + 1s) */
		/* lock.Load: a record this Monitor wrote is a failover to finish;
		 * any other (a LEGACY empty file too) refuses the start: exit 12 */
		if
		:: rec != NONE && rec_id == gen -> failover(0, false, false); res = g_res; goto ran
		:: rec != NONE && rec_id != gen -> res = 12; goto ran
		:: else
		fi;
startup:	/* start-up rounds: fstaidd retries them, unarmed */
		atomic { dl_set = true; loop_dl = R }     /* setDeadline(next + RoundBound) */
		if                                        /* beforeRound: gate.wait */
		:: g_run -> if :: LCTX_DONE -> goto stopped :: g_holder == 0 fi;
			if :: g_done -> goto stopped :: else fi;
			loop_dl = R
		:: else
		fi;
		atomic { select (d : 0 .. R-1); act[0] = d; d = 0 };        /* startupRound: self, primary, secondary */
		if :: act[0] == 0 :: LCTX_DONE fi;
		if :: LCTX_DONE -> goto stopped :: else fi;
		if
		:: !dead -> skip                          /* passed */
		:: dead || startfails > 0 ->              /* unarmed: loopState, sleepUntil(next) */
			if :: !dead -> startfails-- :: else fi;
			atomic { loop_dl = I + R; sleep_t = I };
			if :: sleep_t == 0 :: LCTX_DONE fi;
			if :: LCTX_DONE -> goto stopped :: else fi;
			goto startup
		fi;
		armed = true;                             /* loopState(armed) */
		do
		:: atomic { dl_set = true; loop_dl = I + R; sleep_t = I }; /* setDeadline(next + RoundBound) */
			if :: sleep_t == 0 :: LCTX_DONE fi;  /* sleepUntil(next) */
			if :: LCTX_DONE -> goto stopped :: else fi;
			if                                    /* beforeRound */
			:: g_run -> if :: LCTX_DONE -> goto stopped :: g_holder == 0 fi;
				if :: g_done -> goto stopped :: else fi;
				loop_dl = R                       /* setDeadline(now + RoundBound) */
			:: else
			fi;
			/* round: self, primary attempts, secondary, self again,
			 * each within its timeout; cancelled by loopCtx */
			atomic { select (d : 0 .. R-1); act[0] = d; d = 0 };
			if :: act[0] == 0 :: LCTX_DONE fi;
			if :: LCTX_DONE -> goto stopped :: else fi;
			if
			:: !dead -> skip                      /* healthy */
			:: dead && vetoes > 0 -> vetoes--     /* secondary-alive / self-check-failed-after */
			:: selffails > 0 ->                   /* self check failed: stop, exit 14 */
				selffails--;
				g_holder == 0;                    /* stopRun: gate.wait(Background) */
				if :: g_done -> res = g_res :: else -> res = 14 fi;
				goto ran
			:: dead ->                            /* VerdictFailover */
				failover(0, true, true);
				if :: g_done -> goto stopped :: else fi;     /* gate.result() */
				if :: LCTX_DONE -> goto stopped :: else fi;  /* loopCtx.Err() */
				/* lock unavailable: no handler ran; keep monitoring */
			fi
		od;
stopped:	/* Monitor.stopped -> stopRun: gate.wait(Background), then the result */
		g_holder == 0;
		if :: g_done -> res = g_res :: else -> res = 0 fi;
ran:		/* Run returns: running false, deadline zero (healthy) */
		atomic { running = false; dl_set = false; armed = false };
		/* daemon.run: STOPPING=1, srv.Shutdown(FailoverBound): stop
		 * accepting, wait for in-flight /fail requests or the timeout */
		atomic { listening = false; shut_t = F; printf("MSC: Run returned; srv.Shutdown\n") };
		if :: inflight == 0 :: shut_t == 0 fi;
		/* P2: fstaidd's own exit never cuts a handler short */
		assert(h_run == 0);
		if :: res == 0 && g_done -> res = g_res :: else fi; /* a /fail raced the shutdown */
		atomic { code = res; exited = true }
	} unless { gen != g };
	nprocs--                                /* gone: pan drops the process */
}

/* POST /fail (server.go) -> Monitor.Fail: arrives at any step while the
 * server listens, or never. */
proctype Fail(byte g; byte c) {
	bool b; byte out = 0; byte d = 0;
	{
		/* accepted: srv.Shutdown waits for it. One arriving after SIGTERM
		 * gets 503 at once (its ctx ended: gate.begin gives up): not
		 * modelled, it takes no step that matters. */
		do
#ifdef SHUTDOWN_BUG
		:: atomic { listening -> inflight++ }; break
#else
		:: atomic { listening && !term -> inflight++ }; break
#endif
		:: atomic { b = tk }; tk != b       /* not now: maybe at a later tick */
		od;
		failover(c, false, true);
		inflight--
	} unless { gen != g };
	nprocs--
}

/* kill(): the process dies where it is: every proctype of this
 * incarnation ends (their unless), the in-memory state is gone. */
inline kill() {
	gen++; up = false; running = false; armed = false; dl_set = false; loop_dl = 0;
	g_holder = 0; g_run = false; g_left = 0; g_auto = false; g_last = false; g_done = false; g_res = 0;
	h_run = 0; term = false; listening = false; inflight = 0; act[0] = 0; act[1] = 0;
#if NFAIL > 1
	act[2] = 0;
#endif
	
	sleep_t = 0; shut_t = 0; wd_fire = false; stop_kill = false
}

/* systemd: starts fstaidd, restarts it (Restart=on-failure), kills it on
 * the watchdog (SIGABRT) and after TimeoutStopSec (SIGKILL). */
active proctype Systemd() {
	bool restart;
start:
	atomic {
		nprocs == 0;            /* the old incarnation's proctypes are gone */
		gen++; up = true; exited = false; nprocs = 1 + NFAIL;
		run Monitor(gen); run Fail(gen, 1);
#if NFAIL > 1
		run Fail(gen, 2)
#endif

	}
	do
	:: wd_fire ->                 /* WatchdogSec: SIGABRT, Go exits 2: restarted */
		atomic { assert(h_run == 0); kill(); restart = !stopping } /* P2 */
		break
	:: stop_kill ->               /* TimeoutStopSec: SIGKILL */
		atomic { assert(h_run == 0); kill(); restart = false }      /* P2 */
		break
	:: !up ->                     /* an external SIGKILL (Env): restarted */
		restart = !stopping; break
	:: exited ->                  /* RestartPreventExitStatus=10 11 12 78; 0 is success */
		atomic { restart = !stopping && code != 0 && code != 10 && code != 12;
			kill() }
		break
	od;
	if
	:: restart && restarts > 0 -> restarts--; goto start
	:: else -> stopping = false
	fi
}

/* The environment, at any step or at a later tick: the target dies, an
 * operator stops the unit, an external SIGKILL, the original fstaid's
 * empty lock file appears. */
active proctype Env() {
	bool b;
	do
	:: !dead && armed -> dead = true
	:: atomic { up && terms > 0 && !stopping -> terms--; term = true; printf("MSC: SIGTERM\n"); stopping = true; stop_t = TSTOP }
	:: atomic { up && kills > 0 -> kills--; kill() } /* external SIGKILL: P2 allows it */
	:: atomic { rec == NONE && legacies > 0 -> legacies--; rec = LEGACY; rec_id = 0 }
	:: atomic { b = tk }; tk != b
	od
}

#ifdef LIVE
/* P4: with the target dead, the monitor healthy and the lock reachable, a
 * failover eventually begins. */
ltl p4 { [] (dead -> <> (hb > 0)) }
#endif
