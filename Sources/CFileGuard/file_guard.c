#if defined(__linux__)
#define _GNU_SOURCE
#endif
#include "file_guard.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <fcntl.h>
#endif

#define TFG_SLOTS 256

typedef struct {
    _Atomic uintptr_t base;    /* 0 = free */
    _Atomic uintptr_t length;
    _Atomic int tripped;
} tfg_slot;

static tfg_slot slots[TFG_SLOTS];
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sigaction previous_action;
static int installed = 0;

static void tfg_handler(int sig, siginfo_t *info, void *context) {
    uintptr_t address = (uintptr_t)info->si_addr;
    for (int i = 0; i < TFG_SLOTS; i++) {
        uintptr_t base = atomic_load(&slots[i].base);
        uintptr_t length = atomic_load(&slots[i].length);
        if (base != 0 && address >= base && address - base < length) {
            long page = sysconf(_SC_PAGESIZE);
            uintptr_t start = address & ~((uintptr_t)page - 1);
            /* mmap is a plain system call (async-signal-safe in practice on Linux and Darwin). */
            void *p = mmap((void *)start, (size_t)page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
            if (p != MAP_FAILED) {
                atomic_store(&slots[i].tripped, 1);
                return;
            }
            break;
        }
    }
    /* Not ours: behave as if we were never installed. */
    if (previous_action.sa_flags & SA_SIGINFO) {
        if (previous_action.sa_sigaction) { previous_action.sa_sigaction(sig, info, context); return; }
    } else if (previous_action.sa_handler != SIG_DFL && previous_action.sa_handler != SIG_IGN) {
        previous_action.sa_handler(sig);
        return;
    }
    signal(sig, SIG_DFL);  /* returning re-executes the faulting access, which now kills the process */
}

static int install_locked(void) {
    if (installed) return 0;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = tfg_handler;
    action.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGBUS, &action, &previous_action) != 0) return -1;
    installed = 1;
    return 0;
}

int tfg_register(const void *base, size_t length) {
    if (base == NULL || length == 0) return -1;
    pthread_mutex_lock(&table_lock);
    int slot = -1;
    if (install_locked() == 0) {
        for (int i = 0; i < TFG_SLOTS; i++) {
            if (atomic_load(&slots[i].base) == 0) {
                atomic_store(&slots[i].tripped, 0);
                atomic_store(&slots[i].length, (uintptr_t)length);
                atomic_store(&slots[i].base, (uintptr_t)base);
                slot = i;
                break;
            }
        }
    }
    pthread_mutex_unlock(&table_lock);
    return slot;
}

void tfg_unregister(int slot) {
    if (slot < 0 || slot >= TFG_SLOTS) return;
    pthread_mutex_lock(&table_lock);
    atomic_store(&slots[slot].base, 0);
    atomic_store(&slots[slot].length, 0);
    pthread_mutex_unlock(&table_lock);
}

int tfg_tripped(int slot) {
    if (slot < 0 || slot >= TFG_SLOTS) return 0;
    return atomic_load(&slots[slot].tripped);
}

int tfg_rename_noreplace(const char *from, const char *to) {
#if defined(__linux__) && defined(SYS_renameat2)
    return (int)syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, 1u /* RENAME_NOREPLACE */);
#elif defined(__APPLE__)
    return renamex_np(from, to, RENAME_EXCL);
#else
    errno = ENOSYS;
    return -1;
#endif
}
