/*
 * idle_shim.c: a User-Mode Linux guest that polls, instead of sleeping, when it is idle
 * (WIRELAB_UML_IDLE=poll in linux.uml's environment; wirelab/kernel/uml.py idle_mode).
 *
 * Why: an idle UML guest waits for its next timer in sigsuspend() (arch/um/os-Linux/
 * time.c, os_idle_sleep), so each timer the guest arms (netem's delay, TCP's timers, a
 * reader's wake-up) fires only once the host has woken the UML process, and that costs
 * whatever the host's scheduler and hypervisor make it cost at the moment: on a host
 * running one lowest-priority task, netem's 50 ms round trip came out 2 ms late at the
 * median (benchmarks/netem_timing.py).  A guest-side spinner process keeps the UML
 * process awake too, but every wake-up of a real guest task then switches host
 * processes (guest address spaces) first: a TLS connection took 9 ms longer.
 *
 * What: loaded into linux.uml with LD_PRELOAD, this wraps sigsuspend(MASK).  With every
 * signal blocked it polls sigpending() until a signal MASK lets through is pending, then
 * calls the real sigsuspend(MASK), which delivers it at once and returns as it would
 * have; the caller's signal mask is restored after.  The UML process keeps its host CPU
 * for as long as the guest runs.  Without WIRELAB_UML_IDLE=poll it calls straight through.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

typedef int (*sigsuspend_fn)(const sigset_t *);

static sigsuspend_fn real_sigsuspend;
static int polling = -1;          /* unknown until the first call */

static int deliverable(const sigset_t *pending, const sigset_t *mask)
{
    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(pending, sig) == 1 && sigismember(mask, sig) == 0)
            return 1;
    return 0;
}

int sigsuspend(const sigset_t *mask)
{
    if (real_sigsuspend == NULL)
        real_sigsuspend = (sigsuspend_fn)dlsym(RTLD_NEXT, "sigsuspend");
    if (polling < 0) {
        const char *v = getenv("WIRELAB_UML_IDLE");
        polling = v != NULL && strcmp(v, "poll") == 0;
    }
    if (!polling)
        return real_sigsuspend(mask);
    sigset_t all, old, pending;
    sigfillset(&all);
    if (sigprocmask(SIG_BLOCK, &all, &old) != 0)
        return real_sigsuspend(mask);
    for (;;) {
        if (sigpending(&pending) != 0 || deliverable(&pending, mask))
            break;
        __builtin_ia32_pause();
    }
    int ret = real_sigsuspend(mask);
    int saved = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    return ret;
}
