/*
 * ts_core_file.c: small file helpers: mkdir -p, atomic whole-file writes (temp file in the
 * same directory, fsync, rename, fsync of the directory) and bounded whole-file reads.
 */
#include "core/ts_core.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int ts_mkdirs(const char *path, int mode)
{
    if (!path || !*path) return -TS_EINVAL;
    size_t len = strlen(path);
    if (len >= PATH_MAX) return -TS_EINVAL;
    char buf[PATH_MAX];
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, (mode_t)mode) < 0 && errno != EEXIST) return -TS_EIO;
        buf[i] = saved;
    }
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) return -TS_EIO;
    return 0;
}

static void fsync_dir_of(const char *path)
{
    char *dir = ts_strdup(path);
    char *slash = strrchr(dir, '/');
    const char *d = ".";
    if (slash == dir) {
        d = "/";
    } else if (slash) {
        *slash = '\0';
        d = dir;
    }
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
}

int ts_file_write_atomic(const char *path, const void *data, size_t len, int mode)
{
    int rc = -TS_EIO;
    int fd = -1;
    char *tmp = NULL;
    if (!path || (!data && len)) return -TS_EINVAL;
    tmp = ts_asprintf("%s.tmp.XXXXXX", path);
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) goto out;
    if (fchmod(fd, (mode_t)mode) < 0) goto out;
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0) {
            if (errno == EINTR) continue;
            goto out;
        }
        p += n;
        left -= (size_t)n;
    }
    if (fsync(fd) < 0) goto out;
    if (close(fd) < 0) {
        fd = -1;
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) < 0) goto out;
    fsync_dir_of(path);
    rc = 0;
out:
    if (fd >= 0) close(fd);
    if (rc < 0 && tmp) unlink(tmp);
    free(tmp);
    return rc;
}

int ts_file_read(const char *path, size_t max, char **out, size_t *len)
{
    int rc = -TS_EIO;
    int fd = -1;
    char *buf = NULL;
    size_t used = 0, cap = 0;
    if (!path || !out) return -TS_EINVAL;
    *out = NULL;
    if (len) *len = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = errno == ENOENT ? -TS_ENOTFOUND : errno == EACCES ? -TS_EFORBIDDEN : -TS_EIO;
        goto out;
    }
    for (;;) {
        if (cap - used < 4096 + 1) {
            size_t ncap = cap ? cap * 2 : 8192;
            if (ncap > max + 4096 + 2) ncap = max + 4096 + 2;
            if (ncap <= cap) ncap = cap + 4096 + 1;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                rc = -TS_ENOMEM;
                goto out;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t n = read(fd, buf + used, cap - used - 1);
        if (n < 0) {
            if (errno == EINTR) continue;
            goto out;
        }
        if (n == 0) break;
        used += (size_t)n;
        if (used > max) {
            rc = -TS_ETOOBIG;
            goto out;
        }
    }
    buf[used] = '\0';
    *out = buf;
    buf = NULL;
    if (len) *len = used;
    rc = 0;
out:
    if (fd >= 0) close(fd);
    free(buf);
    return rc;
}
