/* Preloaded into gVisor sandboxes (LD_PRELOAD, mounted read-only) — a workaround, not a feature.
 *
 * gVisor 0.0~20240729 (the newest in Debian: bookworm-backports, trixie and sid alike) answers
 * lgetxattr(2) and llistxattr(2) on a symlink of the image with EBADF (google/gvisor#11049).
 * coreutils' `ls -l` asks every entry for ACLs that way and prints "Bad file descriptor" for each
 * symlink (`ls -la /`: /bin, /lib, /sbin…). A symlink has no xattrs a program could want; these
 * wrappers answer "not supported" instead of EBADF and pass everything else through. Remove this
 * file (and its bind in server/src/sandbox/runtime.rs) once Debian ships a gVisor with the fix.
 *
 * No libc of its own (-nostdlib): the same file loads under glibc and musl; errno goes through
 * __errno_location, which both export. Static binaries ignore LD_PRELOAD and still see EBADF. */
#define SYS_lgetxattr 192
#define SYS_llistxattr 195
#define EBADF 9
#define ENOTSUP 95

extern int *__errno_location(void);

static long raw4(long nr, long a, long b, long c, long d) {
    long ret;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10)
                     : "rcx", "r11", "memory");
    return ret;
}

static long answer(long r) {
    if (r == -EBADF) r = -ENOTSUP; /* gvisor#11049: a symlink's xattrs */
    if (r < 0) {
        *__errno_location() = (int)-r;
        return -1;
    }
    return r;
}

__attribute__((visibility("default"))) long lgetxattr(const char *path, const char *name,
                                                      void *value, unsigned long size) {
    return answer(raw4(SYS_lgetxattr, (long)path, (long)name, (long)value, (long)size));
}

__attribute__((visibility("default"))) long llistxattr(const char *path, char *list,
                                                       unsigned long size) {
    return answer(raw4(SYS_llistxattr, (long)path, (long)list, (long)size, 0));
}
