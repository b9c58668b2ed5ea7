/*
 * dualpipe-no-uring CMD [ARGS...]: runs CMD with io_uring refused, the way Docker's and podman's
 * default seccomp profiles refuse it. It installs a classic-BPF seccomp filter (raw prctl, no
 * libseccomp) under which io_uring_setup, io_uring_enter and io_uring_register fail with EPERM and
 * every other system call is allowed, then execvp's CMD; the filter is inherited across exec and
 * fork. The syscall numbers (425-427) are the same on x86_64, i386 and aarch64, the architectures
 * the filter checks; x32 calls on x86_64 (number | 0x40000000) are refused too. On any other
 * architecture the filter allows everything. Exit status: CMD's, or 2 on a usage error, 1 if the
 * filter cannot be installed, 127 if CMD cannot be executed.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#define NU_IO_URING_SETUP 425u
#define NU_IO_URING_ENTER 426u
#define NU_IO_URING_REGISTER 427u
#define NU_X32_BIT 0x40000000u

#ifndef AUDIT_ARCH_AARCH64
#define AUDIT_ARCH_AARCH64 (EM_AARCH64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE)
#endif

/* Installs the filter on the calling thread (and so on everything it execs). Returns 0 or -errno. */
static int nu_install(void)
{
    struct sock_filter prog[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 3),
        /* x86_64: drop the x32 bit so x32 calls match too */
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_STMT(BPF_ALU | BPF_AND | BPF_K, ~NU_X32_BIT),
        BPF_JUMP(BPF_JMP | BPF_JA, 3, 0, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_AARCH64, 1, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_I386, 0, 4),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        /* io_uring_setup <= nr <= io_uring_register: refuse */
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, NU_IO_URING_SETUP, 0, 2),
        BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, NU_IO_URING_REGISTER, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog fprog = {.len = (unsigned short)(sizeof prog / sizeof prog[0]), .filter = prog};
    /* Required to install a filter without CAP_SYS_ADMIN; also what a container runtime sets. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -errno;
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0) != 0) return -errno;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: dualpipe-no-uring CMD [ARGS...]\n"
                        "Runs CMD with io_uring_setup/io_uring_enter/io_uring_register failing with "
                        "EPERM (as under Docker's default seccomp profile).\n");
        return 2;
    }
    int rc = nu_install();
    if (rc < 0) {
        fprintf(stderr, "dualpipe-no-uring: cannot install the seccomp filter: %s\n", strerror(-rc));
        return 1;
    }
    execvp(argv[1], argv + 1);
    fprintf(stderr, "dualpipe-no-uring: %s: %s\n", argv[1], strerror(errno));
    return 127;
}
