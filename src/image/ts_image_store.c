/*
 * ts_image_store.c: the filesystem image store. Objects are plain files <dir>/<id>;
 * writes go to <dir>/.<id>.tmp.<hex> (same directory, so rename is atomic), then fsync,
 * rename over the final name and fsync of the directory. Opening the store removes
 * temporaries a crash left behind. A store opened with ts_image_store_open_swift hands
 * every call to the swift store (ts_image_swift.c).
 */
#include "image/ts_image_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/ts_image_swift.h"

struct ts_image_store {
    char *dir;                    /* file store */
    bool buffered;                /* [image] store_direct_io = false: no O_DIRECT */
    struct ts_image_swift *swift; /* or swift store */
};

struct ts_image_store_writer {
    struct ts_image_store *store;
    struct ts_image_swift_writer *sw;   /* swift store */
    int fd;
    char *tmp_path;
    char *final_path;
    uint64_t written;
    bool direct;   /* O_DIRECT: aligned blocks skip the page-cache copy (see ts_image_store_write) */
};

static bool id_ok(const char *id)
{
    /* ids become file names: no '/', no leading '.', bounded */
    if (!id || !*id || id[0] == '.' || strlen(id) > 128) return false;
    for (const char *p = id; *p; p++)
        if (*p == '/' || *p == '\\') return false;
    return true;
}

int ts_image_store_open(const char *dir, struct ts_image_store **out, struct ts_err *err)
{
    if (ts_mkdirs(dir, 0750) != 0) return ts_err_set(err, TS_EIO, "cannot create image store %s: %s", dir, strerror(errno));
    DIR *d = opendir(dir);
    if (!d) return ts_err_set(err, TS_EIO, "cannot open image store %s: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' && strstr(e->d_name, ".tmp.")) {
            char *p = ts_asprintf("%s/%s", dir, e->d_name);
            if (unlink(p) == 0) ts_warn("image", "removed stray temporary file %s", p);
            free(p);
        }
    }
    closedir(d);
    struct ts_image_store *s = ts_calloc(1, sizeof(*s));
    s->dir = ts_strdup(dir);
    *out = s;
    return 0;
}

int ts_image_store_open_swift(const struct ts_image_swift_opts *o, struct ts_image_store **out, struct ts_err *err)
{
    struct ts_image_swift *sw = NULL;
    int rc = ts_image_swift_new(o, &sw, err);
    if (rc) return rc;
    struct ts_image_store *s = ts_calloc(1, sizeof(*s));
    s->swift = sw;
    *out = s;
    return 0;
}

void ts_image_store_close(struct ts_image_store *s)
{
    if (!s) return;
    ts_image_swift_free(s->swift);
    free(s->dir);
    free(s);
}

const char *ts_image_store_dir(const struct ts_image_store *s) { return s->dir; }

const char *ts_image_store_name(const struct ts_image_store *s) { return s->swift ? "swift" : "file"; }

bool ts_image_store_has_fd(const struct ts_image_store *s) { return !s->swift; }

int ts_image_store_open_write(struct ts_image_store *s, const char *id, struct ts_image_store_writer **out,
                              struct ts_err *err)
{
    return ts_image_store_open_write_sized(s, id, -1, out, err);
}

int ts_image_store_open_write_sized(struct ts_image_store *s, const char *id, int64_t size,
                                    struct ts_image_store_writer **out, struct ts_err *err)
{
    if (!id_ok(id)) return ts_err_set(err, TS_EINVAL, "bad image id");
    if (s->swift) {
        struct ts_image_swift_writer *sw = NULL;
        int rc = ts_image_swift_open_write(s->swift, id, size, &sw, err);
        if (rc) return rc;
        struct ts_image_store_writer *w = ts_calloc(1, sizeof(*w));
        w->store = s;
        w->sw = sw;
        w->fd = -1;
        *out = w;
        return 0;
    }
    unsigned char rnd[8];
    char hex[17];
    ts_random(rnd, sizeof(rnd));
    ts_hex(rnd, sizeof(rnd), hex);
    struct ts_image_store_writer *w = ts_calloc(1, sizeof(*w));
    w->store = s;
    w->tmp_path = ts_asprintf("%s/.%s.tmp.%s", s->dir, id, hex);
    w->final_path = ts_asprintf("%s/%s", s->dir, id);
    /* O_DIRECT where the filesystem has it (not tmpfs): an upload's 1 MiB aligned blocks go
     * to the disk without the copy into the page cache, which cost as much CPU as one of the
     * two digests, and the fsync at commit has no dirty pages left to write */
    w->fd = open(w->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | (s->buffered ? 0 : O_DIRECT), 0640);
    w->direct = w->fd >= 0 && !s->buffered;
    if (w->fd < 0 && errno == EINVAL) w->fd = open(w->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (w->fd < 0) {
        int rc = ts_err_set(err, TS_EIO, "cannot create %s: %s", w->tmp_path, strerror(errno));
        free(w->tmp_path);
        free(w->final_path);
        free(w);
        return rc;
    }
    *out = w;
    return 0;
}

#define DIRECT_ALIGN 4096

void ts_image_store_set_direct(struct ts_image_store *s, bool direct)
{
    if (s) s->buffered = !direct;
}

static void direct_off(struct ts_image_store_writer *w)
{
    int fl = fcntl(w->fd, F_GETFL);
    if (fl >= 0) fcntl(w->fd, F_SETFL, fl & ~O_DIRECT);
    w->direct = false;
}

int ts_image_store_write(struct ts_image_store_writer *w, const void *data, size_t len, struct ts_err *err)
{
    if (w->sw) {
        int rc = ts_image_swift_write(w->sw, data, len, err);
        if (!rc) w->written += len;
        return rc;
    }
    const char *p = data;
    while (len > 0) {
        /* O_DIRECT wants the buffer, length and offset aligned: the first write that is not
         * (the last, short block; a caller's own buffer) turns it off for the rest */
        if (w->direct && (((uintptr_t)p | (uintptr_t)len | (uintptr_t)w->written) & (DIRECT_ALIGN - 1)))
            direct_off(w);
        ssize_t n = write(w->fd, p, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EINVAL && w->direct) {
                direct_off(w);
                continue;
            }
            if (errno == ENOSPC || errno == EDQUOT)
                return ts_err_set(err, TS_ETOOBIG, "Image storage media is full: %s", strerror(errno));
            return ts_err_set(err, TS_EIO, "write failed: %s", strerror(errno));
        }
        p += n;
        len -= (size_t)n;
        w->written += (uint64_t)n;
    }
    return 0;
}

uint64_t ts_image_store_written(const struct ts_image_store_writer *w) { return w->written; }

static void writer_free(struct ts_image_store_writer *w)
{
    if (w->fd >= 0) close(w->fd);
    free(w->tmp_path);
    free(w->final_path);
    free(w);
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int ts_image_store_commit(struct ts_image_store_writer *w, struct ts_err *err)
{
    int rc = 0;
    if (w->sw) {
        rc = ts_image_swift_commit(w->sw, err);
        w->sw = NULL;
        free(w);
        return rc;
    }
    if (fsync(w->fd) != 0) {
        rc = ts_err_set(err, TS_EIO, "fsync failed: %s", strerror(errno));
        goto out;
    }
    if (close(w->fd) != 0) {
        w->fd = -1;
        rc = ts_err_set(err, TS_EIO, "close failed: %s", strerror(errno));
        goto out;
    }
    w->fd = -1;
    if (rename(w->tmp_path, w->final_path) != 0) {
        rc = ts_err_set(err, TS_EIO, "rename failed: %s", strerror(errno));
        goto out;
    }
    if (fsync_dir(w->store->dir) != 0) ts_warn("image", "fsync of %s failed: %s", w->store->dir, strerror(errno));
out:
    if (rc) unlink(w->tmp_path);
    writer_free(w);
    return rc;
}

void ts_image_store_abort(struct ts_image_store_writer *w)
{
    if (!w) return;
    if (w->sw) {
        ts_image_swift_abort(w->sw);
        free(w);
        return;
    }
    unlink(w->tmp_path);
    writer_free(w);
}

int ts_image_store_open_read(struct ts_image_store *s, const char *id, int *fd, uint64_t *size, struct ts_err *err)
{
    if (s->swift) return ts_err_set(err, TS_ENOTIMPL, "the swift store streams with ts_image_store_open_range");
    if (!id_ok(id)) return ts_err_set(err, TS_ENOTFOUND, "No image data could be found");
    char *p = ts_asprintf("%s/%s", s->dir, id);
    int f = open(p, O_RDONLY | O_CLOEXEC);
    free(p);
    if (f < 0) {
        if (errno == ENOENT) return ts_err_set(err, TS_ENOTFOUND, "No image data could be found");
        return ts_err_set(err, TS_EIO, "cannot open image data: %s", strerror(errno));
    }
    struct stat st;
    if (fstat(f, &st) != 0) {
        close(f);
        return ts_err_set(err, TS_EIO, "stat failed: %s", strerror(errno));
    }
    *fd = f;
    *size = (uint64_t)st.st_size;
    return 0;
}

bool ts_image_store_exists(struct ts_image_store *s, const char *id)
{
    if (!id_ok(id)) return false;
    if (s->swift) {
        bool e = false;
        struct ts_err err = {0};
        if (ts_image_swift_exists(s->swift, id, &e, &err) != 0) ts_warn("image", "%s", err.msg);
        return e;
    }
    char *p = ts_asprintf("%s/%s", s->dir, id);
    bool ok = access(p, F_OK) == 0;
    free(p);
    return ok;
}

int ts_image_store_delete(struct ts_image_store *s, const char *id, struct ts_err *err)
{
    if (!id_ok(id)) return 0;
    if (s->swift) return ts_image_swift_delete(s->swift, id, err);
    char *p = ts_asprintf("%s/%s", s->dir, id);
    int rc = 0;
    if (unlink(p) != 0 && errno != ENOENT) rc = ts_err_set(err, TS_EIO, "cannot delete %s: %s", p, strerror(errno));
    free(p);
    return rc;
}

/* ---- range readers ------------------------------------------------------------------------ */

struct ts_image_store_reader {
    struct ts_image_swift_reader *sw;   /* swift, or: */
    int fd;
    uint64_t off, left;
};

int ts_image_store_open_range(struct ts_image_store *s, const char *id, uint64_t off, uint64_t len,
                              struct ts_image_store_reader **out, struct ts_err *err)
{
    if (s->swift) {
        struct ts_image_swift_reader *sr = NULL;
        int rc = ts_image_swift_open_range(s->swift, id, off, len, &sr, err);
        if (rc) return rc;
        struct ts_image_store_reader *r = ts_calloc(1, sizeof(*r));
        r->sw = sr;
        r->fd = -1;
        *out = r;
        return 0;
    }
    int fd = -1;
    uint64_t size = 0;
    int rc = ts_image_store_open_read(s, id, &fd, &size, err);
    if (rc) return rc;
    if (off > size || len > size - off) {
        close(fd);
        return ts_err_set(err, TS_ERANGE, "Requested range not satisfiable");
    }
    struct ts_image_store_reader *r = ts_calloc(1, sizeof(*r));
    r->fd = fd;
    r->off = off;
    r->left = len;
    *out = r;
    return 0;
}

ssize_t ts_image_store_reader_read(void *reader, uint64_t pos, char *buf, size_t max)
{
    (void)pos;   /* readers are sequential */
    struct ts_image_store_reader *r = reader;
    if (r->sw) return ts_image_swift_read(r->sw, buf, max);
    if (r->left == 0) return 0;
    if (max > r->left) max = (size_t)r->left;
    for (;;) {
        ssize_t n = pread(r->fd, buf, max, (off_t)r->off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;   /* the file shrank under us */
        r->off += (uint64_t)n;
        r->left -= (uint64_t)n;
        return n;
    }
}

void ts_image_store_reader_free(void *reader)
{
    struct ts_image_store_reader *r = reader;
    if (!r) return;
    ts_image_swift_reader_free(r->sw);
    if (r->fd >= 0) close(r->fd);
    free(r);
}
