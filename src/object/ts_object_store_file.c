/*
 * ts_object_store_file.c: the file backend of ts_object_store. A writer streams into
 * <dir>/tmp/<uuid>.tmp computing md5 as bytes arrive; commit fsyncs the file, renames it
 * to <dir>/<xx>/<uuid>.data and fsyncs that directory, so a committed blob survives a
 * crash (exactly Swift's durability: fsync data, rename, fsync dir). Large blobs start
 * writeback every WRITEBACK_STEP bytes while they arrive (sync_file_range), so the disk
 * works during the upload and the final fsync only waits for the tail. Blobs are never
 * modified afterwards; clones are hard links. Memory per writer is constant: one MD5
 * context, and past 512 KiB four 512 KiB buffers feeding a hashing thread.
 */
#include "object/ts_object_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

struct file_store {
    struct ts_object_store base;
    char *dir;
};

/* Writeback is started every this many bytes of a blob being written. */
#define WRITEBACK_STEP (8u << 20)
/* Past its first HASH_SLOT bytes a blob's MD5 runs on a thread of its own, fed through
 * HASH_SLOTS buffers: receiving + writing and hashing (~1.8 s per GiB here) then overlap,
 * as Swift's proxy and object server do in two processes. */
#define HASH_SLOT (512u << 10)
#define HASH_SLOTS 4

struct hasher {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    EVP_MD_CTX *md5;            /* the writer's; only this thread touches it meanwhile */
    char *slot[HASH_SLOTS];
    size_t len[HASH_SLOTS];
    unsigned head, tail;        /* slots published / slots hashed */
    size_t fill;                /* bytes in slot[head % HASH_SLOTS], being filled */
    bool done;                  /* no more slots will come */
    bool discard;               /* stop without hashing what is queued */
};

struct ts_object_writer {
    struct file_store *fs;
    int fd;
    char tmp[4096];
    char uuid[33];
    EVP_MD_CTX *md5;
    uint64_t size;
    uint64_t kicked;       /* bytes handed to writeback so far */
    struct hasher *h;      /* NULL while hashing inline */
};

static void *hasher_main(void *arg)
{
    struct hasher *h = arg;
    pthread_mutex_lock(&h->mu);
    for (;;) {
        while (h->tail == h->head && !h->done) pthread_cond_wait(&h->cv, &h->mu);
        if (h->tail == h->head || h->discard) break;
        unsigned i = h->tail % HASH_SLOTS;
        pthread_mutex_unlock(&h->mu);
        EVP_DigestUpdate(h->md5, h->slot[i], h->len[i]);
        pthread_mutex_lock(&h->mu);
        h->tail++;
        pthread_cond_broadcast(&h->cv);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

/* Starts w's hasher; false (hash inline) if no thread can be had. */
static bool hasher_start(struct ts_object_writer *w)
{
    struct hasher *h = ts_calloc(1, sizeof(*h));
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    h->md5 = w->md5;
    for (int i = 0; i < HASH_SLOTS; i++) h->slot[i] = ts_malloc(HASH_SLOT);
    if (pthread_create(&h->th, NULL, hasher_main, h) != 0) {
        for (int i = 0; i < HASH_SLOTS; i++) free(h->slot[i]);
        pthread_mutex_destroy(&h->mu);
        pthread_cond_destroy(&h->cv);
        free(h);
        return false;
    }
    w->h = h;
    return true;
}

/* Hands the slot being filled to the hasher and waits for a free one. */
static void hasher_publish(struct hasher *h)
{
    pthread_mutex_lock(&h->mu);
    h->len[h->head % HASH_SLOTS] = h->fill;
    h->head++;
    h->fill = 0;
    pthread_cond_broadcast(&h->cv);
    while (h->head - h->tail >= HASH_SLOTS) pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
}

static void hasher_feed(struct hasher *h, const char *p, size_t len)
{
    while (len > 0) {
        size_t n = HASH_SLOT - h->fill < len ? HASH_SLOT - h->fill : len;
        memcpy(h->slot[h->head % HASH_SLOTS] + h->fill, p, n);
        h->fill += n;
        p += n;
        len -= n;
        if (h->fill == HASH_SLOT) hasher_publish(h);
    }
}

/* Hashes what is left (unless discard), stops the thread and frees the hasher. */
static void hasher_finish(struct ts_object_writer *w, bool discard)
{
    struct hasher *h = w->h;
    if (!h) return;
    pthread_mutex_lock(&h->mu);
    if (discard) h->discard = true;   /* a slot being hashed still completes; nothing else */
    else if (h->fill) {
        h->len[h->head % HASH_SLOTS] = h->fill;
        h->head++;
    }
    h->done = true;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->th, NULL);
    for (int i = 0; i < HASH_SLOTS; i++) free(h->slot[i]);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h);
    w->h = NULL;
}

struct ts_object_blob {
    int fd;
};

static bool id_valid(const char *id)
{
    /* "<xx>/<32 hex>" */
    if (!id || strlen(id) != 35 || id[2] != '/') return false;
    for (int i = 0; i < 35; i++) {
        if (i == 2) continue;
        char c = id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return memcmp(id, id + 3, 2) == 0;
}

static void blob_path(struct file_store *fs, const char *id, char *out, size_t outsz)
{
    snprintf(out, outsz, "%s/%s.data", fs->dir, id);
}

static int fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static int fw_writer_new(struct ts_object_store *s, struct ts_object_writer **out, struct ts_err *err)
{
    struct file_store *fs = (struct file_store *)s;
    struct ts_object_writer *w = ts_calloc(1, sizeof(*w));
    w->fs = fs;
    ts_uuid_hex(w->uuid);
    snprintf(w->tmp, sizeof(w->tmp), "%s/tmp/%s.tmp", fs->dir, w->uuid);
    w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (w->fd < 0) {
        int e = errno;
        free(w);
        return ts_err_set(err, TS_EIO, "cannot create %s: %s", "temp file", strerror(e));
    }
    w->md5 = EVP_MD_CTX_new();
    EVP_DigestInit_ex(w->md5, EVP_md5(), NULL);
    *out = w;
    return 0;
}

static int fw_write(struct ts_object_writer *w, const void *data, size_t len, struct ts_err *err)
{
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(w->fd, p, left);
        if (n < 0) {
            if (errno == EINTR) continue;
            return ts_err_set_full(err, errno == ENOSPC ? TS_EUNAVAIL : TS_EIO, errno == ENOSPC ? 507 : 500, NULL,
                                   "write failed: %s", strerror(errno));
        }
        p += n;
        left -= (size_t)n;
    }
    if (!w->h && w->size + len > HASH_SLOT) hasher_start(w);
    if (w->h) hasher_feed(w->h, data, len);
    else EVP_DigestUpdate(w->md5, data, len);
    w->size += len;
    if (w->size - w->kicked >= WRITEBACK_STEP) {
        /* asynchronous: queues the pages for the disk without waiting for them */
        sync_file_range(w->fd, (off_t)w->kicked, (off_t)(w->size - w->kicked), SYNC_FILE_RANGE_WRITE);
        w->kicked = w->size;
    }
    return 0;
}

static void writer_free(struct ts_object_writer *w)
{
    hasher_finish(w, true);
    if (w->fd >= 0) close(w->fd);
    EVP_MD_CTX_free(w->md5);
    free(w);
}

static void fw_abort(struct ts_object_writer *w)
{
    if (!w) return;
    unlink(w->tmp);
    writer_free(w);
}

static int fw_commit(struct ts_object_writer *w, char id[TS_OBJECT_BLOB_ID_MAX], char md5[33], uint64_t *size,
                     struct ts_err *err)
{
    int rc = 0;
    unsigned char dg[16];
    unsigned dl = 0;
    hasher_finish(w, false);
    EVP_DigestFinal_ex(w->md5, dg, &dl);
    ts_hex(dg, 16, md5);
    if (size) *size = w->size;
    if (fsync(w->fd) < 0) {
        rc = ts_err_set(err, TS_EIO, "fsync failed: %s", strerror(errno));
        goto out;
    }
    char sub[4096], path[4096];
    snprintf(id, TS_OBJECT_BLOB_ID_MAX, "%.2s/%s", w->uuid, w->uuid);
    snprintf(sub, sizeof(sub), "%s/%.2s", w->fs->dir, w->uuid);
    if (mkdir(sub, 0700) < 0 && errno != EEXIST) {
        rc = ts_err_set(err, TS_EIO, "mkdir failed: %s", strerror(errno));
        goto out;
    }
    blob_path(w->fs, id, path, sizeof(path));
    if (rename(w->tmp, path) < 0) {
        rc = ts_err_set(err, TS_EIO, "rename failed: %s", strerror(errno));
        goto out;
    }
    fsync_dir(sub);
out:
    if (rc < 0) unlink(w->tmp);
    writer_free(w);
    return rc;
}

static int fw_open(struct ts_object_store *s, const char *id, struct ts_object_blob **out, uint64_t *size,
                   struct ts_err *err)
{
    struct file_store *fs = (struct file_store *)s;
    if (!id_valid(id)) return ts_err_set(err, TS_ENOTFOUND, "bad blob id");
    char path[4096];
    blob_path(fs, id, path, sizeof(path));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ts_err_set(err, errno == ENOENT ? TS_ENOTFOUND : TS_EIO, "blob %s: %s", id, strerror(errno));
    struct stat st;
    if (size && fstat(fd, &st) < 0) {
        close(fd);
        return ts_err_set(err, TS_EIO, "stat failed");
    }
    struct ts_object_blob *b = ts_calloc(1, sizeof(*b));
    b->fd = fd;
    if (size) *size = (uint64_t)st.st_size;
    *out = b;
    return 0;
}

static ssize_t fw_pread(struct ts_object_blob *b, void *buf, size_t len, uint64_t off)
{
    for (;;) {
        ssize_t n = pread(b->fd, buf, len, (off_t)off);
        if (n < 0 && errno == EINTR) continue;
        return n;
    }
}

static int fw_dup_fd(struct ts_object_blob *b)
{
    return fcntl(b->fd, F_DUPFD_CLOEXEC, 0);
}

static void fw_close(struct ts_object_blob *b)
{
    if (!b) return;
    close(b->fd);
    free(b);
}

static int fw_clone(struct ts_object_store *s, const char *id, char out[TS_OBJECT_BLOB_ID_MAX], struct ts_err *err)
{
    struct file_store *fs = (struct file_store *)s;
    if (!id_valid(id)) return ts_err_set(err, TS_ENOTFOUND, "bad blob id");
    char uuid[33], src[4096], dst[4096], sub[4096];
    ts_uuid_hex(uuid);
    snprintf(out, TS_OBJECT_BLOB_ID_MAX, "%.2s/%s", uuid, uuid);
    snprintf(sub, sizeof(sub), "%s/%.2s", fs->dir, uuid);
    if (mkdir(sub, 0700) < 0 && errno != EEXIST) return ts_err_set(err, TS_EIO, "mkdir failed");
    blob_path(fs, id, src, sizeof(src));
    blob_path(fs, out, dst, sizeof(dst));
    if (link(src, dst) < 0)
        return ts_err_set(err, errno == ENOENT ? TS_ENOTFOUND : TS_EIO, "link failed: %s", strerror(errno));
    fsync_dir(sub);
    return 0;
}

static int fw_remove(struct ts_object_store *s, const char *id)
{
    struct file_store *fs = (struct file_store *)s;
    if (!id_valid(id)) return 0;
    char path[4096];
    blob_path(fs, id, path, sizeof(path));
    if (unlink(path) < 0 && errno != ENOENT) return -TS_EIO;
    return 0;
}

static int fw_reconcile(struct ts_object_store *s, bool (*referenced)(void *ctx, const char *id), void *ctx)
{
    struct file_store *fs = (struct file_store *)s;
    char path[4096];
    int removed = 0;
    snprintf(path, sizeof(path), "%s/tmp", fs->dir);
    DIR *d = opendir(path);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            if (de->d_name[0] == '.') continue;
            char p[4096 + 300];
            snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
            unlink(p);
        }
        closedir(d);
    }
    DIR *top = opendir(fs->dir);
    if (!top) return 0;
    struct dirent *te;
    while ((te = readdir(top))) {
        if (strlen(te->d_name) != 2) continue;
        char sub[4096 + 8];
        snprintf(sub, sizeof(sub), "%s/%s", fs->dir, te->d_name);
        DIR *sd = opendir(sub);
        if (!sd) continue;
        struct dirent *de;
        while ((de = readdir(sd))) {
            size_t l = strlen(de->d_name);
            if (l != 37 || strcmp(de->d_name + 32, ".data") != 0) continue;
            char id[TS_OBJECT_BLOB_ID_MAX];
            snprintf(id, sizeof(id), "%s/%.32s", te->d_name, de->d_name);
            if (!referenced(ctx, id)) {
                char p[4096 + 300];
                snprintf(p, sizeof(p), "%s/%s", sub, de->d_name);
                if (unlink(p) == 0) removed++;
            }
        }
        closedir(sd);
    }
    closedir(top);
    return removed;
}

static void fw_free(struct ts_object_store *s)
{
    struct file_store *fs = (struct file_store *)s;
    if (!fs) return;
    free(fs->dir);
    free(fs);
}

static const struct ts_object_store_ops file_ops = {
    .name = "file",
    .writer_new = fw_writer_new,
    .write = fw_write,
    .commit = fw_commit,
    .abort = fw_abort,
    .open = fw_open,
    .pread = fw_pread,
    .dup_fd = fw_dup_fd,
    .close = fw_close,
    .clone = fw_clone,
    .remove = fw_remove,
    .reconcile = fw_reconcile,
    .free = fw_free,
};

int ts_object_store_file_new(const char *dir, struct ts_object_store **out, struct ts_err *err)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s/tmp", dir);
    if (ts_mkdirs(tmp, 0700) < 0) return ts_err_set(err, TS_EIO, "cannot create %s", tmp);
    struct file_store *fs = ts_calloc(1, sizeof(*fs));
    fs->base.ops = &file_ops;
    fs->dir = ts_strdup(dir);
    *out = &fs->base;
    return 0;
}
