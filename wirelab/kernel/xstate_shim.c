/*
 * xstate_shim.c: lets Debian's User-Mode Linux 6.1 run on hosts whose CPUs have a
 * large extended register state (AVX-512, AMX).
 *
 * Why: UML saves and restores a guest process's FPU/vector registers with
 * ptrace(PTRACE_GETREGSET / PTRACE_SETREGSET, NT_X86_XSTATE) into a buffer of
 * sizeof(struct _xstate) = 832 bytes (x87, SSE, AVX).  Since Linux 5.14 the host
 * refuses a SETREGSET that is not exactly the whole XSAVE area (EFAULT,
 * arch/x86/kernel/fpu/regset.c xstateregs_set): 11008 bytes on a CPU with AMX.
 * UML 6.1 then panics at the first user process ("userspace - ptrace set fp regs
 * failed, errno = 14", init killed by SIGSEGV).
 *
 * What: loaded into linux.uml with LD_PRELOAD, this wraps ptrace() for those two
 * requests only.  A GETREGSET reads the whole area, hands UML the part it asked
 * for and keeps the whole area, keyed by UML's buffer (one per guest thread).  A
 * SETREGSET writes back the whole area kept for that buffer with UML's (possibly
 * changed) first part on top.  So every register a guest thread has, AVX-512 and
 * AMX included, is saved and restored with it, as on a kernel that knows the size.
 * Every other ptrace call goes straight through.  UML calls ptrace from one host
 * thread only, so the table needs no lock.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/uio.h>

#define NT_X86_XSTATE 0x202
#define XSTATE_MAX (64 * 1024)   /* more than any x86 CPU's XSAVE area */
#define SLOTS 16384              /* guest threads whose areas are kept */

typedef long (*ptrace_fn)(enum __ptrace_request, pid_t, void *, void *);

struct slot {
    void *key;                   /* UML's buffer */
    unsigned char *area;         /* the whole XSAVE area last read into it */
};

static ptrace_fn real_ptrace;
static struct slot slots[SLOTS];
static unsigned char scratch[XSTATE_MAX] __attribute__((aligned(64)));
static size_t host_size;         /* the host's XSAVE area, learnt at the first read */

static struct slot *lookup(void *key, int create)
{
    size_t start = ((uintptr_t)key >> 4) % SLOTS;
    for (size_t i = 0; i < SLOTS; i++) {
        struct slot *s = &slots[(start + i) % SLOTS];
        if (s->key == key)
            return s;
        if (s->key == NULL) {
            if (!create)
                return NULL;
            s->key = key;
            return s;
        }
    }
    return NULL;                 /* full: fall back to the live registers */
}

static long get_xstate(pid_t pid, void *addr, struct iovec *iov)
{
    struct iovec whole = { scratch, XSTATE_MAX };
    long ret = real_ptrace(PTRACE_GETREGSET, pid, addr, &whole);
    if (ret < 0)
        return ret;
    host_size = whole.iov_len;
    size_t n = iov->iov_len < whole.iov_len ? iov->iov_len : whole.iov_len;
    memcpy(iov->iov_base, scratch, n);
    iov->iov_len = n;
    struct slot *s = lookup(iov->iov_base, 1);
    if (s != NULL) {
        if (s->area == NULL)
            s->area = malloc(XSTATE_MAX);
        if (s->area != NULL)
            memcpy(s->area, scratch, whole.iov_len);
    }
    return ret;
}

static long set_xstate(pid_t pid, void *addr, struct iovec *iov)
{
    if (host_size == 0 || iov->iov_len >= host_size)
        return real_ptrace(PTRACE_SETREGSET, pid, addr, iov);
    struct slot *s = lookup(iov->iov_base, 0);
    if (s != NULL && s->area != NULL) {
        memcpy(scratch, s->area, host_size);
    } else {
        struct iovec live = { scratch, XSTATE_MAX };
        long ret = real_ptrace(PTRACE_GETREGSET, pid, addr, &live);
        if (ret < 0)
            return ret;
    }
    memcpy(scratch, iov->iov_base, iov->iov_len);
    struct iovec whole = { scratch, host_size };
    return real_ptrace(PTRACE_SETREGSET, pid, addr, &whole);
}

long ptrace(enum __ptrace_request request, ...)
{
    va_list ap;
    va_start(ap, request);
    pid_t pid = va_arg(ap, pid_t);
    void *addr = va_arg(ap, void *);
    void *data = va_arg(ap, void *);
    va_end(ap);
    if (real_ptrace == NULL)
        real_ptrace = (ptrace_fn)dlsym(RTLD_NEXT, "ptrace");
    if ((uintptr_t)addr == NT_X86_XSTATE && data != NULL) {
        if (request == PTRACE_GETREGSET)
            return get_xstate(pid, addr, data);
        if (request == PTRACE_SETREGSET)
            return set_xstate(pid, addr, data);
    }
    return real_ptrace(request, pid, addr, data);
}
