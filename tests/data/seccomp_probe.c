/* Calls every syscall number from 0 to 470 with harmless arguments and prints, per number, "ok" or
 * the errno: EPERM for a call the seccomp filter denies, ENOSYS past the profile's last syscall.
 * Compiled statically by tests/sandbox_seccomp.rs; its output under BuildKit 0.13 (Docker 26) is
 * tests/data/seccomp_buildkit.txt. Numbers that would end or replace the process, block, or
 * change its signal state for good are skipped (x86-64 numbering; other arches skip nothing
 * they would need to, since the test only runs where the recording was made). */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const long skip[] = {15, 34, 56, 57, 58, 60, 135, 218, 231, 335, 336};

int main(void) {
    const char *path = "/nonexist";
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (long n = 0; n <= 470; n++) {
        int skipped = 0;
        for (unsigned i = 0; i < sizeof skip / sizeof skip[0]; i++) skipped |= skip[i] == n;
        if (skipped) continue;
        errno = 0;
        long r = syscall(n, -100L, (long)path, 0L, 0L, 0L, 0L);
        if (r < 0) printf("%ld %d\n", n, errno); else printf("%ld ok\n", n);
    }
    const unsigned long personas[] = {0x0, 0x8, 0x20000, 0x20008, 0xffffffff, 0x40000};
    for (unsigned i = 0; i < 6; i++) {
        long r = syscall(SYS_personality, personas[i]);
        if (r < 0) printf("personality %lx %d\n", personas[i], errno); else printf("personality %lx ok\n", personas[i]);
        if (r >= 0) syscall(SYS_personality, 0UL);
    }
    const int domains[] = {40, 1, 2, 16};
    for (unsigned i = 0; i < 4; i++) {
        long r = syscall(SYS_socket, domains[i], 1, 0);
        if (r < 0) printf("socket %d %d\n", domains[i], errno); else { printf("socket %d ok\n", domains[i]); close(r); }
    }
    /* clone with a namespace flag (CLONE_NEWUTS) and without. */
    const unsigned long flags[] = {0x04000000UL | SIGCHLD, SIGCHLD};
    for (unsigned i = 0; i < 2; i++) {
        long r = syscall(SYS_clone, flags[i], 0L, 0L, 0L, 0L);
        if (r == 0) _exit(0);
        if (r < 0) printf("clone %lx %d\n", flags[i], errno); else { waitpid(r, NULL, 0); printf("clone %lx ok\n", flags[i]); }
    }
    return 0;
}
