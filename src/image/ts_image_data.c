/*
 * ts_image_data.c: image bytes. Upload (PUT /file) and staging (PUT /stage) stream the
 * body into the store in constant memory, in 1 MiB blocks that md5 (checksum) and sha512
 * (os_hash_value) digest on their own threads while the block is written (ts_image_hash.c);
 * size and virtual size come along. Status moves queued -> saving -> active (or queued ->
 * uploading for staging) and back to queued on any failure, with the temporary data
 * removed. Download streams from the store's fd with Range support. Import runs on a
 * worker thread: glance-direct copies staged data into one or more stores (the image is
 * active once the first has it), copy-image copies an active image's data from a store
 * holding it into others; the image row's store column lists the stores holding the data
 * ("file,swift"), reads use the first enabled one and delete clears them all. The
 * os_glance_importing_to_stores / os_glance_failed_import properties report progress as
 * in Glance; a non-empty os_glance_importing_to_stores is the copy lock. Crash recovery
 * puts images stuck in a transitional state back.
 */
#include "image/ts_image_int.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json/ts_json.h"

/* ---- upload and stage -------------------------------------------------------------- */

struct upload {
    struct ts_image_svc *svc;
    char id[TS_UUID_LEN + 1];
    char disk_format[32];
    bool staging;                   /* PUT /stage */
    struct ts_image_store *store;   /* where the data goes (staging for PUT /stage) */
    struct ts_image_store_writer *w;
    struct ts_image_hash *h;
    char *blk;                      /* the block being filled, from h */
    size_t blk_len, blk_cap;
    uint64_t received;
    int64_t quota_left;             /* bytes, -1 = unlimited */
};

static void upload_free(struct upload *u)
{
    if (u->blk) ts_image_hash_release(u->h, u->blk);
    ts_image_store_abort(u->w);
    ts_image_hash_free(u->h);
    free(u);
}

static void upload_restore(struct upload *u)
{
    /* back to queued so the client can retry (Glance's _restore) */
    struct ts_err e = {0};
    const char *from = u->staging ? "uploading" : "saving";
    if (ts_db_exec(u->svc->db, "UPDATE images SET status = 'queued', staged_size = NULL, updated_at = ? "
                               "WHERE id = ? AND status = ?",
                   TS_DB_ARGS(TS_DB_I(ts_image_now_us()), TS_DB_S(u->id), TS_DB_S(from)), NULL, &e) != 0)
        ts_error("image", "cannot restore image %s to queued: %s", u->id, e.msg);
}

/* The filled block goes to the digest threads and, meanwhile, to the store in one write. */
static int upload_flush(struct upload *u, struct ts_err *err)
{
    if (!u->blk) return 0;
    if (!u->staging) ts_image_hash_put(u->h, u->blk, u->blk_len);   /* staged data is hashed at import */
    int rc = ts_image_store_write(u->w, u->blk, u->blk_len, err);
    ts_image_hash_release(u->h, u->blk);
    u->blk = NULL;
    return rc;
}

static int upload_write(void *ctx, const char *data, size_t len, struct ts_err *err)
{
    struct upload *u = ctx;
    if (u->quota_left >= 0 && u->received + len > (uint64_t)u->quota_left)
        return ts_err_set(err, TS_ETOOBIG, "Denying attempt to upload image because it exceeds the quota: the "
                                           "project's image_size_total quota would be exceeded.");
    u->received += len;
    while (len > 0) {
        if (!u->blk) {
            u->blk = ts_image_hash_get(u->h, &u->blk_cap);
            u->blk_len = 0;
        }
        size_t n = u->blk_cap - u->blk_len;
        if (n > len) n = len;
        memcpy(u->blk + u->blk_len, data, n);
        u->blk_len += n;
        data += n;
        len -= n;
        if (u->blk_len == u->blk_cap) {
            int rc = upload_flush(u, err);
            if (rc) return rc;
        }
    }
    return 0;
}

static void upload_abort(void *ctx)
{
    struct upload *u = ctx;
    ts_warn("image", "upload of image %s aborted", u->id);
    /* drop the partial data before the image is queued again and a retry may start */
    ts_image_store_abort(u->w);
    u->w = NULL;
    upload_restore(u);
    upload_free(u);
}

static int upload_finish(void *ctx, struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)req;
    struct upload *u = ctx;
    struct ts_image_svc *svc = u->svc;
    int rc = upload_flush(u, err);
    if (rc) {
        ts_image_store_abort(u->w);
        u->w = NULL;
        upload_restore(u);
        goto out;
    }
    struct ts_image_store_writer *w = u->w;
    u->w = NULL;
    rc = ts_image_store_commit(w, err);
    if (rc) {
        upload_restore(u);
        goto out;
    }
    struct ts_db_res *res = NULL;
    if (u->staging) {
        rc = ts_db_exec(svc->db, "UPDATE images SET staged_size = ?, updated_at = ? WHERE id = ? AND status = 'uploading'",
                        TS_DB_ARGS(TS_DB_I(u->received), TS_DB_I(ts_image_now_us()), TS_DB_S(u->id)), &res, err);
    } else {
        char md5[33], sha[129];
        ts_image_hash_final(u->h, md5, sha);
        uint64_t vsize = u->received;
        size_t head_len = 0;
        const unsigned char *head = ts_image_hash_head(u->h, &head_len);
        if (ts_streq(u->disk_format, "qcow2")) {
            uint64_t v;
            if (ts_image_qcow2_virtual_size(head, head_len, &v) == 0) vsize = v;
        }
        rc = ts_db_exec(svc->db,
                        "UPDATE images SET status = 'active', size = ?, virtual_size = ?, checksum = ?, "
                        "os_hash_algo = 'sha512', os_hash_value = ?, store = ?, updated_at = ? "
                        "WHERE id = ? AND status = 'saving'",
                        TS_DB_ARGS(TS_DB_I(u->received), TS_DB_I(vsize), TS_DB_S(md5), TS_DB_S(sha),
                                   TS_DB_S(ts_image_store_name(u->store)), TS_DB_I(ts_image_now_us()),
                                   TS_DB_S(u->id)),
                        &res, err);
    }
    if (rc == 0 && res->changes == 0) {
        /* deleted (or changed) while we were receiving */
        ts_image_store_delete(u->store, u->id, NULL);
        rc = ts_err_set(err, TS_EGONE, "Image %s could not be found after upload. The image may have been deleted "
                                       "during the upload.", u->id);
    } else if (rc) {
        ts_image_store_delete(u->store, u->id, NULL);
        upload_restore(u);
    }
    ts_db_res_free(res);
    if (rc) goto out;
    if (!u->staging) {
        json_t *view = NULL;
        if (ts_image_load(svc, u->id, &view, NULL) == 0) {
            ts_image_notify(svc, "image.upload", view);
            ts_image_notify(svc, "image.activate", view);
            json_decref(view);
        }
    }
    ts_http_resp_no_body(resp, 204, 0);
out:
    upload_free(u);
    return rc;
}

static int start_upload(struct ts_http_req *req, bool staging, struct ts_err *err)
{
    struct ts_image_svc *svc = req->svc;
    json_t *view = NULL;
    struct ts_db_res *res = NULL;
    struct upload *u = NULL;
    const char *id = ts_http_param(req, "image_id");
    int rc = ts_image_get_visible(svc, req, id, &view, err);
    if (rc) return rc;
    if (!ts_image_can_modify(req, view)) {
        rc = ts_err_set(err, TS_EFORBIDDEN, "You are not permitted to upload data to this image.");
        goto out;
    }
    const char *status = ts_image_vs(view, "status");
    if (!ts_streq(status, "queued")) {
        rc = ts_err_set(err, TS_ECONFLICT, "Image status transition from %s to %s is not allowed", status,
                        staging ? "uploading" : "saving");
        goto out;
    }
    if (!staging && (!ts_image_vs(view, "disk_format") || !ts_image_vs(view, "container_format"))) {
        rc = ts_err_set(err, TS_EINVAL, "Properties disk_format, container_format must be set prior to saving data.");
        goto out;
    }
    int64_t quota_left = -1;
    const char *owner = ts_image_vs(view, "owner");
    if (svc->quota_bytes > 0 && owner) {
        int64_t used = 0;
        rc = ts_image_project_usage(svc, owner, &used, NULL, err);
        if (rc) goto out;
        quota_left = svc->quota_bytes > used ? svc->quota_bytes - used : 0;
        if (req->content_length >= 0 && req->content_length > quota_left) {
            rc = ts_err_set(err, TS_ETOOBIG, "Denying attempt to upload image because it exceeds the quota: "
                                             "image_size_total limit %lld, %lld in use, %lld requested.",
                            (long long)svc->quota_bytes, (long long)used, (long long)req->content_length);
            goto out;
        }
    }
    /* X-Image-Meta-Store: the store for this upload (Glance with enabled_backends) */
    struct ts_image_store *store = staging ? svc->staging : svc->store;
    const char *want = staging ? NULL : ts_http_header(req, "X-Image-Meta-Store");
    if (want && *want) {
        store = ts_image_store_by_id(svc, want, strlen(want));
        if (!store) {
            rc = ts_err_set(err, TS_EINVAL, "Store for identifier %s not found", want);
            goto out;
        }
    }
    /* the conditional update is the lock: only one upload wins the queued image */
    rc = ts_db_exec(svc->db, "UPDATE images SET status = ?, updated_at = ? WHERE id = ? AND status = 'queued'",
                    TS_DB_ARGS(TS_DB_S(staging ? "uploading" : "saving"), TS_DB_I(ts_image_now_us()), TS_DB_S(id)),
                    &res, err);
    if (rc) goto out;
    if (res->changes == 0) {
        rc = ts_err_set(err, TS_ECONFLICT, "Image status transition from %s to %s is not allowed", "queued",
                        staging ? "uploading" : "saving");
        goto out;
    }
    u = ts_calloc(1, sizeof(*u));
    u->svc = svc;
    u->staging = staging;
    u->quota_left = quota_left;
    snprintf(u->id, sizeof(u->id), "%s", id);
    snprintf(u->disk_format, sizeof(u->disk_format), "%s", ts_image_vs(view, "disk_format") ?: "");
    u->h = ts_image_hash_new();
    u->store = store;
    rc = ts_image_store_open_write_sized(store, id, req->content_length, &u->w, err);
    if (rc) {
        upload_restore(u);
        upload_free(u);
        goto out;
    }
    req->upload.write = upload_write;
    req->upload.finish = upload_finish;
    req->upload.abort = upload_abort;
    req->upload.ctx = u;
out:
    ts_db_res_free(res);
    json_decref(view);
    return rc;
}

int ts_image_h_upload(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)resp;
    return start_upload(req, false, err);
}

int ts_image_h_stage(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)resp;
    return start_upload(req, true, err);
}

/* ---- download ---------------------------------------------------------------------- */

/* Stores without an fd (swift): the range is asked of the store and streamed through. */
static int download_stream(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_image_store *store,
                           const json_t *view, struct ts_err *err)
{
    const char *id = ts_image_vs(view, "id");
    json_int_t jsize = json_integer_value(json_object_get(view, "size"));
    uint64_t size = jsize > 0 ? (uint64_t)jsize : 0;
    uint64_t off = 0, len = size;
    int range = ts_image_range_parse(ts_http_header(req, "Range"), size, &off, &len);
    if (range == -TS_ERANGE || range == -TS_EINVAL) {
        ts_http_resp_headerf(resp, "Content-Range", "bytes */%llu", (unsigned long long)size);
        return ts_err_set(err, TS_ERANGE, "Requested range not satisfiable");
    }
    struct ts_image_store_reader *r = NULL;
    int rc = ts_image_store_open_range(store, id, off, len, &r, err);
    if (rc == -TS_ENOTFOUND) return ts_err_set(err, TS_ENOTFOUND, "Image data for %s could not be found", id);
    if (rc) return rc;
    const char *checksum = ts_image_vs(view, "checksum");
    if (checksum) ts_http_resp_header(resp, "Content-MD5", checksum);
    if (range == 0)
        ts_http_resp_headerf(resp, "Content-Range", "bytes %llu-%llu/%llu", (unsigned long long)off,
                             (unsigned long long)(off + len - 1), (unsigned long long)size);
    ts_http_resp_stream(resp, range == 0 ? 206 : 200, "application/octet-stream", (int64_t)len,
                        ts_image_store_reader_read, ts_image_store_reader_free, r);
    return 0;
}

int ts_image_h_download(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_image_svc *svc = req->svc;
    json_t *view = NULL;
    const char *id = ts_http_param(req, "image_id");
    int rc = ts_image_get_visible(svc, req, id, &view, err);
    if (rc) return rc;
    const char *status = ts_image_vs(view, "status");
    if (ts_streq(status, "deactivated") && !req->auth->is_admin) {
        rc = ts_err_set(err, TS_EFORBIDDEN, "The requested image has been deactivated. Image data download is "
                                            "forbidden.");
        goto out;
    }
    if (!ts_streq(status, "active") && !ts_streq(status, "deactivated")) {
        ts_http_resp_no_body(resp, 204, 0);
        goto out;
    }
    struct ts_image_store *store = ts_image_store_of(svc, ts_image_vs(view, "stores"));
    if (!store) {
        rc = ts_err_set(err, TS_EUNAVAIL, "The data of image %s is in the %s store, which is not enabled", id,
                        ts_image_vs(view, "stores"));
        goto out;
    }
    if (!ts_image_store_has_fd(store)) {
        rc = download_stream(req, resp, store, view, err);
        goto out;
    }
    int fd = -1;
    uint64_t size = 0;
    rc = ts_image_store_open_read(store, id, &fd, &size, err);
    if (rc == -TS_ENOTFOUND) {
        rc = ts_err_set(err, TS_ENOTFOUND, "Image data for %s could not be found", id);
        goto out;
    }
    if (rc) goto out;
    uint64_t off = 0, len = size;
    int range = ts_image_range_parse(ts_http_header(req, "Range"), size, &off, &len);
    if (range == -TS_ERANGE || range == -TS_EINVAL) {
        close(fd);
        ts_http_resp_headerf(resp, "Content-Range", "bytes */%llu", (unsigned long long)size);
        rc = ts_err_set(err, TS_ERANGE, "Requested range not satisfiable");
        goto out;
    }
    const char *checksum = ts_image_vs(view, "checksum");
    if (checksum) ts_http_resp_header(resp, "Content-MD5", checksum);
    if (range == 0) {
        ts_http_resp_headerf(resp, "Content-Range", "bytes %llu-%llu/%llu", (unsigned long long)off,
                             (unsigned long long)(off + len - 1), (unsigned long long)size);
        ts_http_resp_fd(resp, 206, "application/octet-stream", fd, off, len);
    } else {
        ts_http_resp_fd(resp, 200, "application/octet-stream", fd, 0, size);
    }
out:
    json_decref(view);
    return rc;
}

/* ---- import ---------------------------------------------------------------------------- */

#define IMPORT_STORES_MAX 4

struct import_job {
    struct ts_image_svc *svc;
    char id[TS_UUID_LEN + 1];
    char disk_format[32];
    bool copy;                      /* copy-image (else glance-direct from staging) */
    bool must_succeed;              /* all_stores_must_succeed */
    int n;
    struct ts_image_store *targets[IMPORT_STORES_MAX];
};

/* Sets one of the image's os_glance_* properties (the import job owns them while it runs). */
static int prop_set(struct ts_image_svc *svc, const char *id, const char *name, const char *value, struct ts_err *err)
{
    return ts_db_exec(svc->db,
                      "INSERT INTO image_properties (image_id, name, value) VALUES (?, ?, ?) "
                      "ON CONFLICT (image_id, name) DO UPDATE SET value = excluded.value",
                      TS_DB_ARGS(TS_DB_S(id), TS_DB_S(name), TS_DB_S(value)), NULL, err);
}

/* "a,b" of targets[from..n) into out[cap]. */
static void store_list(struct ts_image_store *const *targets, int from, int n, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = 0;
    for (int i = from; i < n; i++)
        len += (size_t)snprintf(out + len, len < cap ? cap - len : 0, "%s%s", len ? "," : "",
                                ts_image_store_name(targets[i]));
}

/* Streams the image's data from src (staging or a store holding it) into dst and commits;
 * h (may be NULL) hashes the bytes on the way. */
static int import_one(struct import_job *j, struct ts_image_store *src, struct ts_image_store *dst,
                      struct ts_image_hash *h, struct ts_err *err)
{
    struct ts_image_svc *svc = j->svc;
    struct ts_image_store_writer *w = NULL;
    struct ts_image_store_reader *r = NULL;
    char *buf = NULL;
    uint64_t size = 0;
    int rc;
    if (src == svc->staging) {
        int fd = -1;
        rc = ts_image_store_open_read(src, j->id, &fd, &size, err);
        if (rc) goto out;
        close(fd);
    } else {
        struct ts_db_res *res = NULL;
        rc = ts_db_exec(svc->db, "SELECT size FROM images WHERE id = ?", TS_DB_ARGS(TS_DB_S(j->id)), &res, err);
        if (rc) goto out;
        size = res->nrows ? (uint64_t)ts_db_res_int(res, 0, 0, 0) : 0;
        ts_db_res_free(res);
    }
    rc = ts_image_store_open_range(src, j->id, 0, size, &r, err);
    if (rc) goto out;
    rc = ts_image_store_open_write_sized(dst, j->id, (int64_t)size, &w, err);
    if (rc) goto out;
    size_t cap = 1 << 20;
    if (!h) buf = ts_malloc(cap);
    uint64_t pos = 0;
    for (;;) {
        /* with digests: read straight into a digest block, write it while they run */
        char *b = h ? ts_image_hash_get(h, &cap) : buf;
        ssize_t n = ts_image_store_reader_read(r, pos, b, cap);
        if (n <= 0) {
            if (h) ts_image_hash_release(h, b);
            if (n == 0) break;
            rc = ts_err_set(err, TS_EIO, "read of the image data failed");
            goto out;
        }
        pos += (uint64_t)n;
        if (h) ts_image_hash_put(h, b, (size_t)n);
        rc = ts_image_store_write(w, b, (size_t)n, err);
        if (h) ts_image_hash_release(h, b);
        if (rc) goto out;
    }
    if (pos != size) {
        rc = ts_err_set(err, TS_EIO, "image data is %llu bytes, expected %llu", (unsigned long long)pos,
                        (unsigned long long)size);
        goto out;
    }
    rc = ts_image_store_commit(w, err);
    w = NULL;
out:
    ts_image_store_reader_free(r);
    ts_image_store_abort(w);
    free(buf);
    return rc;
}

/* glance-direct's first store: the image becomes active there. */
static int import_activate(struct import_job *j, struct ts_image_store *dst, struct ts_image_hash *h,
                           struct ts_err *err)
{
    struct ts_image_svc *svc = j->svc;
    struct ts_db_res *res = NULL;
    char md5[33], sha[129];
    ts_image_hash_final(h, md5, sha);
    uint64_t vsize = ts_image_hash_size(h);
    size_t head_len = 0;
    const unsigned char *head = ts_image_hash_head(h, &head_len);
    if (ts_streq(j->disk_format, "qcow2")) {
        uint64_t v;
        if (ts_image_qcow2_virtual_size(head, head_len, &v) == 0) vsize = v;
    }
    int rc = ts_db_exec(svc->db,
                        "UPDATE images SET status = 'active', size = ?, virtual_size = ?, checksum = ?, "
                        "os_hash_algo = 'sha512', os_hash_value = ?, staged_size = NULL, store = ?, updated_at = ? "
                        "WHERE id = ? AND status = 'importing'",
                        TS_DB_ARGS(TS_DB_I(ts_image_hash_size(h)), TS_DB_I(vsize), TS_DB_S(md5), TS_DB_S(sha),
                                   TS_DB_S(ts_image_store_name(dst)), TS_DB_I(ts_image_now_us()), TS_DB_S(j->id)),
                        &res, err);
    if (rc == 0 && res->changes == 0) rc = ts_err_set(err, TS_EGONE, "image deleted during import");
    ts_db_res_free(res);
    return rc;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* One more store holds the data (copy-image, or glance-direct's later stores). The list
 * stays sorted ("file,swift" whatever the order of the copies), as Tempest compares it
 * with the sorted store ids. The job holds the import lock: no other writer of the column. */
static int import_add_store(struct import_job *j, struct ts_image_store *dst, struct ts_err *err)
{
    struct ts_db_res *res = NULL;
    char *names[IMPORT_STORES_MAX + 1], buf[128], list[128];
    int n = 0;
    int rc = ts_db_exec(j->svc->db, "SELECT store FROM images WHERE id = ?", TS_DB_ARGS(TS_DB_S(j->id)), &res, err);
    if (rc) return rc;
    const char *cur = res->nrows ? ts_db_res_get(res, 0, 0) : NULL;
    snprintf(buf, sizeof(buf), "%s", cur && *cur ? cur : "file");
    ts_db_res_free(res);
    res = NULL;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t && n < IMPORT_STORES_MAX; t = strtok_r(NULL, ",", &save))
        names[n++] = t;
    names[n++] = (char *)ts_image_store_name(dst);
    qsort(names, (size_t)n, sizeof(names[0]), cmp_str);
    size_t len = 0;
    list[0] = 0;
    for (int i = 0; i < n; i++)
        if (i == 0 || strcmp(names[i], names[i - 1]) != 0)
            len += (size_t)snprintf(list + len, len < sizeof(list) ? sizeof(list) - len : 0, "%s%s", len ? "," : "",
                                    names[i]);
    rc = ts_db_exec(j->svc->db,
                    "UPDATE images SET store = ?, updated_at = ? WHERE id = ? AND status IN ('active', 'deactivated')",
                    TS_DB_ARGS(TS_DB_S(list), TS_DB_I(ts_image_now_us()), TS_DB_S(j->id)), &res, err);
    if (rc == 0 && res->changes == 0) rc = ts_err_set(err, TS_EGONE, "image deleted during import");
    ts_db_res_free(res);
    return rc;
}

/* Takes back the copies this job made (all_stores_must_succeed and a store failed). */
static void import_undo(struct import_job *j, struct ts_image_store *const *done, int ndone, const char *before)
{
    struct ts_image_svc *svc = j->svc;
    for (int i = 0; i < ndone; i++) ts_image_store_delete(done[i], j->id, NULL);
    if (j->copy)
        ts_db_exec(svc->db, "UPDATE images SET store = ?, updated_at = ? WHERE id = ?",
                   TS_DB_ARGS(before ? TS_DB_S(before) : TS_DB_NULL, TS_DB_I(ts_image_now_us()), TS_DB_S(j->id)),
                   NULL, NULL);
    else
        ts_db_exec(svc->db,
                   "UPDATE images SET status = 'queued', size = NULL, virtual_size = NULL, checksum = NULL, "
                   "os_hash_algo = NULL, os_hash_value = NULL, staged_size = NULL, store = NULL, updated_at = ? "
                   "WHERE id = ? AND status IN ('importing', 'active')",
                   TS_DB_ARGS(TS_DB_I(ts_image_now_us()), TS_DB_S(j->id)), NULL, NULL);
}

static void import_run(struct import_job *j)
{
    struct ts_image_svc *svc = j->svc;
    struct ts_image_store *done[IMPORT_STORES_MAX];
    int ndone = 0;
    char failed[64] = "", left[64], *before = NULL;
    struct ts_image_hash *h = j->copy ? NULL : ts_image_hash_new();
    struct ts_image_store *src = svc->staging;
    if (j->copy) {
        json_t *view = NULL;
        if (ts_image_load(svc, j->id, &view, NULL) != 0) goto out;   /* deleted meanwhile */
        before = ts_strdup(ts_image_vs(view, "stores") ?: "file");
        src = ts_image_store_of(svc, before);
        json_decref(view);
    }
    for (int i = 0; i < j->n; i++) {
        struct ts_image_store *dst = j->targets[i];
        struct ts_err err = {0};
        if (!j->copy && ndone == 0 && i > 0) {   /* the failed store's attempt fed the digests */
            ts_image_hash_free(h);
            h = ts_image_hash_new();
        }
        int rc = src ? 0 : ts_err_set(&err, TS_EUNAVAIL, "no enabled store holds the image data");
        if (!rc) rc = import_one(j, src, dst, !j->copy && ndone == 0 ? h : NULL, &err);
        if (!rc) rc = !j->copy && ndone == 0 ? import_activate(j, dst, h, &err) : import_add_store(j, dst, &err);
        if (rc == -TS_EGONE) {
            ts_image_store_delete(dst, j->id, NULL);
            ts_info("image", "image %s was deleted during its import", j->id);
            for (int k = 0; k < ndone; k++) ts_image_store_delete(done[k], j->id, NULL);
            goto out;
        }
        store_list(j->targets, i + 1, j->n, left, sizeof(left));
        if (rc) {
            ts_error("image", "%s of image %s to store %s failed: %s", j->copy ? "copy" : "import", j->id,
                     ts_image_store_name(dst), err.msg);
            /* dst held nothing of this image before (checked at the request): drop what a
             * commit may have left when the database update after it failed */
            ts_image_store_delete(dst, j->id, NULL);
            size_t fl = strlen(failed);
            snprintf(failed + fl, sizeof(failed) - fl, "%s%s", fl ? "," : "", ts_image_store_name(dst));
            prop_set(svc, j->id, "os_glance_failed_import", failed, NULL);
            if (j->must_succeed) {
                import_undo(j, done, ndone, before);
                store_list(j->targets, 0, 0, left, sizeof(left));
                prop_set(svc, j->id, "os_glance_importing_to_stores", "", NULL);
                ndone = 0;
                break;
            }
        } else {
            done[ndone++] = dst;
        }
        prop_set(svc, j->id, "os_glance_importing_to_stores", left, NULL);
    }
    if (!j->copy) {
        if (ndone == 0) {   /* nowhere: back to queued, as a failed upload */
            ts_db_exec(svc->db, "UPDATE images SET status = 'queued', staged_size = NULL, updated_at = ? "
                                "WHERE id = ? AND status = 'importing'",
                       TS_DB_ARGS(TS_DB_I(ts_image_now_us()), TS_DB_S(j->id)), NULL, NULL);
        }
        ts_image_store_delete(svc->staging, j->id, NULL);
    }
    if (ndone > 0) {
        json_t *view = NULL;
        if (ts_image_load(svc, j->id, &view, NULL) == 0) {
            if (!j->copy) {
                ts_image_notify(svc, "image.upload", view);
                ts_image_notify(svc, "image.activate", view);
            }
            json_decref(view);
        }
    }
out:
    ts_image_hash_free(h);
    free(before);
}

static void *import_main(void *arg)
{
    struct import_job *j = arg;
    struct ts_image_svc *svc = j->svc;
    import_run(j);
    free(j);
    pthread_mutex_lock(&svc->lock);
    svc->imports_running--;
    pthread_cond_broadcast(&svc->cond);
    pthread_mutex_unlock(&svc->lock);
    return NULL;
}

void ts_image_imports_wait(struct ts_image_svc *svc)
{
    pthread_mutex_lock(&svc->lock);
    while (svc->imports_running > 0) pthread_cond_wait(&svc->cond, &svc->lock);
    pthread_mutex_unlock(&svc->lock);
}

/* The target stores of an import (Glance's get_stores_from_request): "stores", or every
 * enabled store with all_stores, or the X-Image-Meta-Store header, or the default store.
 * An unknown store is 409 as in Glance (glance_store's UnknownScheme). */
static int import_targets(struct ts_http_req *req, const json_t *body, struct import_job *j, struct ts_err *err)
{
    struct ts_image_svc *svc = req->svc;
    const json_t *stores = json_object_get(body, "stores");
    bool all = json_is_true(json_object_get(body, "all_stores"));
    if (stores && !json_is_array(stores)) return ts_err_set(err, TS_EINVAL, "'stores' must be a list of store ids");
    if (all && json_array_size(stores) > 0)
        return ts_err_set(err, TS_EINVAL, "All_stores parameter can't be used with x-image-meta-store header or stores "
                                          "parameter");
    j->n = 0;
    if (all) {
        struct ts_image_store *order[] = {svc->store, svc->store == svc->file ? svc->swift : svc->file};
        for (int i = 0; i < 2; i++)
            if (order[i]) j->targets[j->n++] = order[i];
        return 0;
    }
    size_t i;
    json_t *v;
    json_array_foreach(stores, i, v) {
        const char *s = json_string_value(v);
        if (!s) return ts_err_set(err, TS_EINVAL, "'stores' must be a list of store ids");
        struct ts_image_store *st = ts_image_store_by_id(svc, s, strlen(s));
        if (!st) return ts_err_set(err, TS_ECONFLICT, "Unknown scheme '%s' found in URI", s);
        bool dup = false;
        for (int k = 0; k < j->n; k++) dup |= j->targets[k] == st;
        if (dup) continue;
        if (j->n == IMPORT_STORES_MAX) return ts_err_set(err, TS_EINVAL, "too many stores");
        j->targets[j->n++] = st;
    }
    if (j->n > 0) return 0;
    const char *hdr = ts_http_header(req, "X-Image-Meta-Store");
    if (hdr && *hdr) {
        struct ts_image_store *st = ts_image_store_by_id(svc, hdr, strlen(hdr));
        if (!st) return ts_err_set(err, TS_ECONFLICT, "Unknown scheme '%s' found in URI", hdr);
        j->targets[j->n++] = st;
        return 0;
    }
    j->targets[j->n++] = svc->store;
    return 0;
}

int ts_image_h_import(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_image_svc *svc = req->svc;
    json_t *body = NULL, *view = NULL;
    struct ts_db_res *res = NULL;
    struct import_job *j = NULL;
    int rc = ts_http_json_body(req, &body, err);
    if (rc) return rc;
    if (!json_is_object(body)) return ts_err_set(err, TS_EINVAL, "Body expected in request.");
    json_t *method = json_object_get(body, "method");
    if (!json_is_object(method)) return ts_err_set(err, TS_EINVAL, "Import request requires a 'method' field.");
    const char *name = json_string_value(json_object_get(method, "name"));
    if (!name) return ts_err_set(err, TS_EINVAL, "Import request requires a 'name' field.");
    bool copy = ts_streq(name, "copy-image");
    if (!copy && !ts_streq(name, "glance-direct"))
        return ts_err_set(err, TS_EINVAL, "Unknown import method name '%s'.", name);
    json_t *b;
    if ((b = json_object_get(body, "all_stores_must_succeed")) && !json_is_boolean(b))
        return ts_err_set(err, TS_EINVAL, "'all_stores_must_succeed' must be boolean value only");
    if ((b = json_object_get(body, "all_stores")) && !json_is_boolean(b))
        return ts_err_set(err, TS_EINVAL, "'all_stores' must be boolean value only");
    j = ts_calloc(1, sizeof(*j));
    j->svc = svc;
    j->copy = copy;
    b = json_object_get(body, "all_stores_must_succeed");
    j->must_succeed = !b || json_is_true(b);
    rc = import_targets(req, body, j, err);
    if (rc) goto out;
    const char *id = ts_http_param(req, "image_id");
    rc = ts_image_get_visible(svc, req, id, &view, err);
    if (rc) goto out;
    snprintf(j->id, sizeof(j->id), "%s", id);
    const char *status = ts_image_vs(view, "status");
    if (!copy && ts_streq(status, "active")) {
        rc = ts_err_set(err, TS_ECONFLICT, "Image with status active cannot be target for import");
        goto out;
    }
    if (copy && !ts_streq(status, "active")) {
        rc = ts_err_set(err, TS_ECONFLICT, "Only images with status active can be targeted for copying");
        goto out;
    }
    if (!copy && !ts_streq(status, "uploading")) {
        rc = ts_err_set(err, TS_ECONFLICT, "Image needs to be staged before 'glance-direct' method can be used");
        goto out;
    }
    if (!ts_image_vs(view, "container_format")) {
        rc = ts_err_set(err, TS_ECONFLICT, "'container_format' needs to be set before import");
        goto out;
    }
    if (!ts_image_vs(view, "disk_format")) {
        rc = ts_err_set(err, TS_ECONFLICT, "'disk_format' needs to be set before import");
        goto out;
    }
    /* copy_image is an admin action in Glance's default policy; the rest needs the owner */
    if (copy && (!req->auth->is_admin || req->auth->is_reader_only)) {
        rc = ts_err_set(err, TS_EFORBIDDEN, "You are not authorized to complete copy_image action.");
        goto out;
    }
    if (!copy && !ts_image_can_modify(req, view)) {
        rc = ts_err_set(err, TS_EFORBIDDEN, "You are not permitted to import this image.");
        goto out;
    }
    if (copy) {
        const char *have = ts_image_vs(view, "stores");
        if (json_is_true(json_object_get(body, "all_stores"))) {
            /* all_stores: skip the stores that hold the image already; none left is a no-op */
            int n = 0;
            for (int i = 0; i < j->n; i++)
                if (!ts_image_stores_has(have, ts_image_store_name(j->targets[i]))) j->targets[n++] = j->targets[i];
            j->n = n;
            if (n == 0) {   /* still report a finished copy, which Tempest's waiter looks for */
                const char *running = ts_image_vs(view, "os_glance_importing_to_stores");
                if (!running || !*running) rc = prop_set(svc, id, "os_glance_importing_to_stores", "", err);
                if (!rc && !ts_image_vs(view, "os_glance_failed_import"))
                    rc = prop_set(svc, id, "os_glance_failed_import", "", err);
                if (!rc) ts_http_resp_no_body(resp, 202, 0);
                goto out;
            }
        } else {
            for (int i = 0; i < j->n; i++)
                if (ts_image_stores_has(have, ts_image_store_name(j->targets[i]))) {
                    rc = ts_err_set(err, TS_EINVAL, "Image is already present at store '%s'",
                                    ts_image_store_name(j->targets[i]));
                    goto out;
                }
        }
        /* the import lock: a copy runs while os_glance_importing_to_stores is not empty */
        char list[64];
        store_list(j->targets, 0, j->n, list, sizeof(list));
        rc = ts_db_exec(svc->db,
                        "INSERT INTO image_properties (image_id, name, value) "
                        "VALUES (?, 'os_glance_importing_to_stores', ?) ON CONFLICT (image_id, name) DO UPDATE "
                        "SET value = excluded.value WHERE image_properties.value IS NULL OR image_properties.value = ''",
                        TS_DB_ARGS(TS_DB_S(id), TS_DB_S(list)), &res, err);
        if (rc) goto out;
        if (res->changes == 0) {
            rc = ts_err_set(err, TS_ECONFLICT, "Image %s is already being imported to %s", id,
                            ts_image_vs(view, "os_glance_importing_to_stores"));
            goto out;
        }
        rc = prop_set(svc, id, "os_glance_failed_import", "", err);
        if (rc) goto out;
    } else {
        if (!ts_image_store_exists(svc->staging, id)) {
            rc = ts_err_set(err, TS_ECONFLICT, "Image needs to be staged before 'glance-direct' method can be used");
            goto out;
        }
        rc = ts_db_exec(svc->db,
                        "UPDATE images SET status = 'importing', updated_at = ? WHERE id = ? AND status = 'uploading'",
                        TS_DB_ARGS(TS_DB_I(ts_image_now_us()), TS_DB_S(id)), &res, err);
        if (rc) goto out;
        if (res->changes == 0) {
            rc = ts_err_set(err, TS_ECONFLICT, "Image %s is already being imported", id);
            goto out;
        }
        char list[64];
        store_list(j->targets, 0, j->n, list, sizeof(list));
        rc = prop_set(svc, id, "os_glance_importing_to_stores", list, err);
        if (!rc) rc = prop_set(svc, id, "os_glance_failed_import", "", err);
        if (rc) {
            ts_db_exec(svc->db, "UPDATE images SET status = 'uploading' WHERE id = ? AND status = 'importing'",
                       TS_DB_ARGS(TS_DB_S(id)), NULL, NULL);
            goto out;
        }
    }
    snprintf(j->disk_format, sizeof(j->disk_format), "%s", ts_image_vs(view, "disk_format"));
    pthread_mutex_lock(&svc->lock);
    svc->imports_running++;
    pthread_mutex_unlock(&svc->lock);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, import_main, j) != 0) {
        pthread_attr_destroy(&attr);
        pthread_mutex_lock(&svc->lock);
        svc->imports_running--;
        pthread_mutex_unlock(&svc->lock);
        if (!copy)
            ts_db_exec(svc->db, "UPDATE images SET status = 'uploading' WHERE id = ? AND status = 'importing'",
                       TS_DB_ARGS(TS_DB_S(id)), NULL, NULL);
        prop_set(svc, id, "os_glance_importing_to_stores", "", NULL);
        rc = ts_err_set(err, TS_EUNAVAIL, "cannot start import");
        goto out;
    }
    pthread_attr_destroy(&attr);
    j = NULL;   /* the thread owns it */
    ts_http_resp_no_body(resp, 202, 0);
out:
    free(j);
    ts_db_res_free(res);
    json_decref(view);
    return rc;
}

/* ---- crash recovery ------------------------------------------------------------------- */

int ts_image_recover(struct ts_image_svc *svc, struct ts_err *err)
{
    struct ts_db_res *res = NULL;
    int rc = ts_db_exec(svc->db, "UPDATE images SET status = 'queued' WHERE status = 'saving'", TS_DB_NOARGS, &res, err);
    if (rc) return rc;
    if (res->changes) ts_warn("image", "%lld interrupted uploads put back to queued", (long long)res->changes);
    ts_db_res_free(res);
    res = NULL;
    /* an import or copy the stop interrupted: its remaining stores failed */
    rc = ts_db_exec(svc->db,
                    "UPDATE image_properties SET value = CASE WHEN value = '' THEN (SELECT p.value FROM "
                    "image_properties p WHERE p.image_id = image_properties.image_id AND p.name = "
                    "'os_glance_importing_to_stores') ELSE value || ',' || (SELECT p.value FROM image_properties p "
                    "WHERE p.image_id = image_properties.image_id AND p.name = 'os_glance_importing_to_stores') END "
                    "WHERE name = 'os_glance_failed_import' AND image_id IN (SELECT image_id FROM image_properties "
                    "WHERE name = 'os_glance_importing_to_stores' AND value <> '')",
                    TS_DB_NOARGS, NULL, err);
    if (!rc)
        rc = ts_db_exec(svc->db, "UPDATE image_properties SET value = '' WHERE name = 'os_glance_importing_to_stores'",
                        TS_DB_NOARGS, NULL, err);
    if (rc) return rc;
    rc = ts_db_exec(svc->db, "UPDATE images SET status = 'uploading' WHERE status = 'importing'", TS_DB_NOARGS, NULL, err);
    if (rc) return rc;
    rc = ts_db_exec(svc->db, "SELECT id FROM images WHERE status = 'uploading'", TS_DB_NOARGS, &res, err);
    if (rc) return rc;
    for (int r = 0; r < res->nrows && rc == 0; r++) {
        const char *id = ts_db_res_get(res, r, 0);
        if (ts_image_store_exists(svc->staging, id)) continue;
        rc = ts_db_exec(svc->db, "UPDATE images SET status = 'queued', staged_size = NULL WHERE id = ?",
                        TS_DB_ARGS(TS_DB_S(id)), NULL, err);
    }
    ts_db_res_free(res);
    return rc;
}
