/*
 * ts_volume_backend_file.c: the default backend: each volume is a sparse raw file
 * (or a qcow2 file) "volume-<id>" under the backend's directory, each snapshot a full
 * sparse copy "snapshot-<id>". Long writes go to ".tmp-<name>" and are fsynced and
 * renamed into place, so a crash leaves either nothing or complete data.
 * Also holds ts_volume_run (qemu-img and friends, stderr kept for the error message).
 */
#include "volume/ts_volume_backend.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "volume/ts_volume_util.h"

extern char **environ;

int ts_volume_run(const char *const *argv, struct ts_err *err)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) return ts_err_set(err, TS_EIO, "pipe: %s", strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    if (rc != 0) {
        close(pfd[0]);
        return ts_err_set(err, TS_EIO, "cannot run %s: %s", argv[0], strerror(rc));
    }
    char msg[512];
    size_t n = 0;
    for (;;) {
        char tmp[512];
        ssize_t r = read(pfd[0], tmp, sizeof(tmp));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        size_t take = (size_t)r < sizeof(msg) - 1 - n ? (size_t)r : sizeof(msg) - 1 - n;
        memcpy(msg + n, tmp, take);
        n += take;
    }
    msg[n] = 0;
    close(pfd[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
            msg[--n] = 0;
        return ts_err_set(err, TS_EIO, "%s failed: %s", argv[0], msg);
    }
    return 0;
}

static void vol_path(struct ts_volume_backend *be, const char *prefix, const char *id, char *out, size_t len)
{
    snprintf(out, len, "%s/%s-%s", be->dir, prefix, id);
}

static void tmp_path(struct ts_volume_backend *be, const char *prefix, const char *id, char *out, size_t len)
{
    snprintf(out, len, "%s/.tmp-%s-%s", be->dir, prefix, id);
}

static bool is_qcow2(struct ts_volume_backend *be)
{
    return strcmp(be->format, "qcow2") == 0;
}

/* fsync the file and its directory, then rename tmp over final. */
static int commit_file(struct ts_volume_backend *be, const char *tmp, const char *final, struct ts_err *err)
{
    int fd = open(tmp, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ts_err_set(err, TS_EIO, "open %s: %s", tmp, strerror(errno));
    fsync(fd);
    close(fd);
    if (rename(tmp, final) != 0) {
        int e = errno;
        unlink(tmp);
        return ts_err_set(err, TS_EIO, "rename %s: %s", final, strerror(e));
    }
    int dfd = open(be->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

static int raw_truncate(const char *path, int64_t bytes, bool create, struct ts_err *err)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0), 0600);
    if (fd < 0) return ts_err_set(err, TS_EIO, "open %s: %s", path, strerror(errno));
    int rc = 0;
    if (ftruncate(fd, bytes) != 0) rc = ts_err_set(err, TS_EIO, "truncate %s: %s", path, strerror(errno));
    close(fd);
    return rc;
}

static int qemu_resize(const char *path, const char *fmt, int64_t size_gb, struct ts_err *err)
{
    char sz[32];
    snprintf(sz, sizeof(sz), "%lldG", (long long)size_gb);
    const char *argv[] = {"/usr/bin/qemu-img", "resize", "-q", "-f", fmt, path, sz, NULL};
    return ts_volume_run(argv, err);
}

static int f_create(struct ts_volume_backend *be, const char *vol_id, int64_t size_gb, struct ts_err *err)
{
    char tmp[1200], final[1200];
    tmp_path(be, "volume", vol_id, tmp, sizeof(tmp));
    vol_path(be, "volume", vol_id, final, sizeof(final));
    int rc;
    if (is_qcow2(be)) {
        char sz[32];
        snprintf(sz, sizeof(sz), "%lldG", (long long)size_gb);
        const char *argv[] = {"/usr/bin/qemu-img", "create", "-q", "-f", "qcow2", tmp, sz, NULL};
        rc = ts_volume_run(argv, err);
    } else {
        rc = raw_truncate(tmp, size_gb << 30, true, err);
    }
    if (rc) {
        unlink(tmp);
        return rc;
    }
    return commit_file(be, tmp, final, err);
}

static int f_create_from_image(struct ts_volume_backend *be, const char *vol_id, const char *image_path,
                               int64_t size_gb, struct ts_err *err)
{
    char tmp[1200], final[1200];
    tmp_path(be, "volume", vol_id, tmp, sizeof(tmp));
    vol_path(be, "volume", vol_id, final, sizeof(final));
    const char *fmt = is_qcow2(be) ? "qcow2" : "raw";
    const char *argv[] = {"/usr/bin/qemu-img", "convert", "-q", "-O", fmt, image_path, tmp, NULL};
    int rc = ts_volume_run(argv, err);
    if (rc == 0) {
        if (is_qcow2(be))
            rc = qemu_resize(tmp, fmt, size_gb, err);
        else {
            struct stat st;
            if (stat(tmp, &st) != 0)
                rc = ts_err_set(err, TS_EIO, "stat %s: %s", tmp, strerror(errno));
            else if (st.st_size > (size_gb << 30))
                rc = ts_err_set(err, TS_EINVAL,
                                "Image virtual size is %lld bytes and doesn't fit in a volume "
                                "of size %lldGB.",
                                (long long)st.st_size, (long long)size_gb);
            else
                rc = raw_truncate(tmp, size_gb << 30, false, err);
        }
    }
    if (rc) {
        unlink(tmp);
        return rc;
    }
    return commit_file(be, tmp, final, err);
}

static int copy_into(struct ts_volume_backend *be, const char *src, const char *tmp, int64_t size_gb,
                     struct ts_err *err)
{
    if (is_qcow2(be)) {
        const char *argv[] = {
            "/usr/bin/qemu-img", "convert", "-q", "-f", "qcow2", "-O", "qcow2", src, tmp, NULL};
        int rc = ts_volume_run(argv, err);
        if (rc == 0 && size_gb > 0) rc = qemu_resize(tmp, "qcow2", size_gb, err);
        return rc;
    }
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) return ts_err_set(err, TS_EIO, "open %s: %s", src, strerror(errno));
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) {
        close(in);
        return ts_err_set(err, TS_EIO, "open %s: %s", tmp, strerror(errno));
    }
    struct stat st;
    int rc = fstat(in, &st) == 0 ? 0 : ts_err_set(err, TS_EIO, "stat %s", src);
    if (rc == 0) rc = ts_volume_sparse_copy(in, out, st.st_size, err);
    if (rc == 0 && size_gb > 0 && (size_gb << 30) > st.st_size && ftruncate(out, size_gb << 30) != 0)
        rc = ts_err_set(err, TS_EIO, "truncate: %s", strerror(errno));
    close(in);
    close(out);
    return rc;
}

static int f_clone(struct ts_volume_backend *be, const char *vol_id, const char *src_id, bool src_is_snapshot,
                   int64_t size_gb, struct ts_err *err)
{
    char src[1200], tmp[1200], final[1200];
    vol_path(be, src_is_snapshot ? "snapshot" : "volume", src_id, src, sizeof(src));
    tmp_path(be, "volume", vol_id, tmp, sizeof(tmp));
    vol_path(be, "volume", vol_id, final, sizeof(final));
    int rc = copy_into(be, src, tmp, size_gb, err);
    if (rc) {
        unlink(tmp);
        return rc;
    }
    return commit_file(be, tmp, final, err);
}

static int f_delete(struct ts_volume_backend *be, const char *vol_id, struct ts_err *err)
{
    char p[1200];
    vol_path(be, "volume", vol_id, p, sizeof(p));
    if (unlink(p) != 0 && errno != ENOENT)
        return ts_err_set(err, TS_EIO, "unlink %s: %s", p, strerror(errno));
    tmp_path(be, "volume", vol_id, p, sizeof(p));
    unlink(p);
    return 0;
}

static int f_extend(struct ts_volume_backend *be, const char *vol_id, int64_t new_size_gb, struct ts_err *err)
{
    char p[1200];
    vol_path(be, "volume", vol_id, p, sizeof(p));
    if (is_qcow2(be)) return qemu_resize(p, "qcow2", new_size_gb, err);
    return raw_truncate(p, new_size_gb << 30, false, err);
}

static int f_snapshot_create(struct ts_volume_backend *be, const char *snap_id, const char *vol_id,
                             struct ts_err *err)
{
    char src[1200], tmp[1200], final[1200];
    vol_path(be, "volume", vol_id, src, sizeof(src));
    tmp_path(be, "snapshot", snap_id, tmp, sizeof(tmp));
    vol_path(be, "snapshot", snap_id, final, sizeof(final));
    int rc = copy_into(be, src, tmp, 0, err);
    if (rc) {
        unlink(tmp);
        return rc;
    }
    return commit_file(be, tmp, final, err);
}

static int f_snapshot_delete(struct ts_volume_backend *be, const char *snap_id, struct ts_err *err)
{
    char p[1200];
    vol_path(be, "snapshot", snap_id, p, sizeof(p));
    if (unlink(p) != 0 && errno != ENOENT)
        return ts_err_set(err, TS_EIO, "unlink %s: %s", p, strerror(errno));
    return 0;
}

static int f_revert(struct ts_volume_backend *be, const char *vol_id, const char *snap_id, struct ts_err *err)
{
    char cur[1200];
    vol_path(be, "volume", vol_id, cur, sizeof(cur));
    struct stat st;
    int64_t size_gb = 0;
    if (stat(cur, &st) == 0 && !is_qcow2(be)) size_gb = (st.st_size + (1LL << 30) - 1) >> 30;
    return f_clone(be, vol_id, snap_id, true, size_gb, err);
}

static void f_path(struct ts_volume_backend *be, const char *vol_id, char *out, size_t outlen)
{
    vol_path(be, "volume", vol_id, out, outlen);
}

static json_t *f_connection_info(struct ts_volume_backend *be, const char *vol_id)
{
    char p[1200], name[128];
    vol_path(be, "volume", vol_id, p, sizeof(p));
    snprintf(name, sizeof(name), "volume-%s", vol_id);
    return json_pack("{s:s, s:{s:s, s:s, s:s, s:s, s:s, s:s}}", "driver_volume_type", "file", "data",
                     "device_path", p, "path", p, "format", be->format, "name", name, "volume_id", vol_id,
                     "access_mode", "rw");
}

static int f_stats(struct ts_volume_backend *be, struct ts_volume_backend_stats *out)
{
    struct statvfs vfs;
    if (statvfs(be->dir, &vfs) != 0) return -TS_EIO;
    double total = (double)vfs.f_blocks * (double)vfs.f_frsize / (1024.0 * 1024 * 1024);
    double avail = (double)vfs.f_bavail * (double)vfs.f_frsize / (1024.0 * 1024 * 1024);
    out->total_gb = be->capacity_gb > 0 ? be->capacity_gb : total;
    out->free_gb = avail < out->total_gb ? avail : out->total_gb;
    out->thin = true;
    return 0;
}

static void f_cleanup(struct ts_volume_backend *be)
{
    DIR *d = opendir(be->dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, ".tmp-", 5) == 0) {
            char p[1400];
            snprintf(p, sizeof(p), "%s/%s", be->dir, e->d_name);
            unlink(p);
        }
    }
    closedir(d);
}

static void f_free(struct ts_volume_backend *be)
{
    free(be);
}

static const struct ts_volume_backend_ops file_ops = {
    .driver = "file",
    .create = f_create,
    .create_from_image = f_create_from_image,
    .clone = f_clone,
    .delete = f_delete,
    .extend = f_extend,
    .snapshot_create = f_snapshot_create,
    .snapshot_delete = f_snapshot_delete,
    .revert = f_revert,
    .path = f_path,
    .connection_info = f_connection_info,
    .stats = f_stats,
    .cleanup = f_cleanup,
    .free = f_free,
};

int ts_volume_backend_file_open(const char *name, const char *dir, const char *format, double capacity_gb,
                                struct ts_volume_backend **out, struct ts_err *err)
{
    if (format && strcmp(format, "raw") && strcmp(format, "qcow2"))
        return ts_err_set(err, TS_EINVAL, "file backend %s: format must be raw or qcow2", name);
    /* QEMU runs as libvirt-qemu and must reach the files of attached volumes: the
     * directory is searchable (not listable); libvirt gives it the file itself on attach */
    int rc = ts_mkdirs(dir, 0711);
    if (rc || chmod(dir, 0711) < 0) return ts_err_set(err, TS_EIO, "cannot create %s", dir);
    struct ts_volume_backend *be = ts_calloc(1, sizeof(*be));
    be->ops = &file_ops;
    snprintf(be->name, sizeof(be->name), "%s", name);
    snprintf(be->dir, sizeof(be->dir), "%s", dir);
    snprintf(be->format, sizeof(be->format), "%s", format ? format : "raw");
    be->capacity_gb = capacity_gb;
    be->ratio = 20.0;
    *out = be;
    return 0;
}
