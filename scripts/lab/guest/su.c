/*
 * su for the kml lab guest, in the two flavours kml meets on phones (built twice by make-initramfs,
 * installed setuid root; rcS links the one the device plays to su):
 *
 *   -DSU_AOSP    AOSP's system/extras/su (userdebug builds): `su [UID[,GID...] [COMMAND...]]`, callable
 *                by root and the shell user only; the command is exec'd as is (no -c option: `su -c X`
 *                is "unknown user -c").
 *   -DSU_MAGISK  Magisk's su (rooted user builds): `su [-] [-c COMMAND...] [UID]`; the command runs
 *                through the shell; other arguments after the user are ignored, so `su 0 sh -c X`
 *                starts an interactive shell on stdin.
 *
 * Only what kml's root detection and root shells use is implemented.
 */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define AID_ROOT 0
#define AID_SHELL 2000
#define SHELL "/system/bin/sh"

static void die(const char *msg, const char *arg) {
    fprintf(stderr, "su: %s%s%s\n", msg, arg ? " " : "", arg ? arg : "");
    exit(1);
}

/* A user name (the two Android ids kml meets; a static binary has no NSS) or a number; -1 when neither. */
static long parse_user(const char *s) {
    if (strcmp(s, "root") == 0) return AID_ROOT;
    if (strcmp(s, "shell") == 0) return AID_SHELL;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || (*end && *end != ',') || v < 0) return -1;
    return v;
}

static void become(long uid) {
    gid_t gid = (gid_t)uid;
    if (setgroups(1, &gid) || setgid(gid) || setuid((uid_t)uid)) die("cannot change user:", strerror(errno));
    setenv("PATH", "/system/bin:/system/xbin:/vendor/bin:/sbin:/bin:/usr/sbin:/usr/bin", 1);
    unsetenv("IFS");
}

int main(int argc, char **argv) {
#if defined(SU_AOSP)
    uid_t caller = getuid();
    if (caller != AID_ROOT && caller != AID_SHELL) {
        fprintf(stderr, "su: uid %u not allowed to su\n", (unsigned)caller);
        return 1;
    }
    long uid = 0;
    int i = 1;
    if (i < argc) {
        uid = parse_user(argv[i]);
        if (uid < 0) {
            fprintf(stderr, "su: unknown user '%s'\n", argv[i]);
            return 1;
        }
        i++;
    }
    become(uid);
    if (i >= argc) {
        execl(SHELL, SHELL, (char *)NULL);
        die("failed to exec", SHELL);
    }
    execvp(argv[i], argv + i);
    die("failed to exec", argv[i]);
#elif defined(SU_MAGISK)
    const char *command = NULL;
    long uid = 0;
    int i = 1;
    if (i < argc && strcmp(argv[i], "-") == 0) i++;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--command") == 0) {
            if (i + 1 >= argc) die("option requires an argument:", argv[i]);
            command = argv[++i];
            continue;
        }
        if (argv[i][0] == '-') die("unknown option", argv[i]);
        uid = parse_user(argv[i]);
        if (uid < 0) die("unknown user", argv[i]);
        break; /* anything after the user is ignored */
    }
    become(uid);
    if (command) execl(SHELL, "sh", "-c", command, (char *)NULL);
    else execl(SHELL, "sh", (char *)NULL);
    die("failed to exec", SHELL);
#else
#error "build with -DSU_AOSP or -DSU_MAGISK"
#endif
    return 1;
}
