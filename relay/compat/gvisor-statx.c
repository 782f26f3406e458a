/* Preloaded into gVisor sandboxes (/etc/ld.so.preload, mounted read-only).
 *
 * Debian 12's gVisor (runsc 20221219) answers statx(2) with EINVAL when the AT_NO_AUTOMOUNT flag
 * is set, and coreutils 9 sets it on every call: `ls -l`, `stat`, `ls DIR` all fail with
 * "Invalid argument". The flag changes nothing for statx on Linux >= 4.14 (stat never triggers
 * an automount), so this statx() drops it and asks the kernel directly.
 *
 * No libc of its own (-nostdlib): the same file loads under glibc and musl; errno goes through
 * __errno_location, which both export. */
#define AT_NO_AUTOMOUNT 0x800
#define SYS_statx 332

extern int *__errno_location(void);

static long raw_statx(long dirfd, const char *path, long flags, long mask, void *buf) {
    long ret;
    register long r10 __asm__("r10") = mask;
    register long r8 __asm__("r8") = (long)buf;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"((long)SYS_statx), "D"(dirfd), "S"(path), "d"(flags), "r"(r10), "r"(r8)
                     : "rcx", "r11", "memory");
    return ret;
}

__attribute__((visibility("default"))) int statx(int dirfd, const char *path, int flags,
                                                 unsigned int mask, void *buf) {
    long r = raw_statx(dirfd, path, flags & ~AT_NO_AUTOMOUNT, mask, buf);
    if (r < 0) {
        *__errno_location() = (int)-r;
        return -1;
    }
    return 0;
}
