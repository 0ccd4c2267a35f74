/*
 * ts_image_data.c: image bytes. Upload (PUT /file) and staging (PUT /stage) stream the
 * body into the store in constant memory while computing md5 (checksum), sha512
 * (os_hash_value), size and virtual size; status moves queued -> saving -> active
 * (or queued -> uploading for staging) and back to queued on any failure, with the
 * temporary data removed. Download streams from the store's fd with Range support.
 * Import (glance-direct) copies staged data into the store on a worker thread. New data
 * goes to the default store (file or swift) and the image row records which one; reads
 * and deletes follow that record, so images stay readable after default_store changes.
 * Crash recovery puts images stuck in a transitional state back.
 */
#include "image/ts_image_int.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json/ts_json.h"

struct hasher {
    EVP_MD_CTX *md5, *sha512;
    unsigned char head[32];
    size_t head_len;
    uint64_t size;
};

static void hasher_init(struct hasher *h)
{
    memset(h, 0, sizeof(*h));
    h->md5 = EVP_MD_CTX_new();
    h->sha512 = EVP_MD_CTX_new();
    TS_ASSERT(h->md5 && h->sha512);
    TS_ASSERT(EVP_DigestInit_ex(h->md5, EVP_md5(), NULL) == 1);
    TS_ASSERT(EVP_DigestInit_ex(h->sha512, EVP_sha512(), NULL) == 1);
}

static void hasher_update(struct hasher *h, const void *data, size_t len)
{
    if (h->head_len < sizeof(h->head)) {
        size_t n = sizeof(h->head) - h->head_len;
        if (n > len) n = len;
        memcpy(h->head + h->head_len, data, n);
        h->head_len += n;
    }
    EVP_DigestUpdate(h->md5, data, len);
    EVP_DigestUpdate(h->sha512, data, len);
    h->size += len;
}

/* md5 hex into md5[33], sha512 hex into sha[129]. */
static void hasher_final(struct hasher *h, char md5[33], char sha[129])
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(h->md5, d, &n);
    ts_hex(d, n, md5);
    EVP_DigestFinal_ex(h->sha512, d, &n);
    ts_hex(d, n, sha);
}

static void hasher_free(struct hasher *h)
{
    EVP_MD_CTX_free(h->md5);
    EVP_MD_CTX_free(h->sha512);
    h->md5 = h->sha512 = NULL;
}

/* ---- upload and stage -------------------------------------------------------------- */

struct upload {
    struct ts_image_svc *svc;
    char id[TS_UUID_LEN + 1];
    char disk_format[32];
    bool staging;                   /* PUT /stage */
    struct ts_image_store_writer *w;
    struct hasher h;
    int64_t quota_left;             /* bytes, -1 = unlimited */
};

static void upload_free(struct upload *u)
{
    ts_image_store_abort(u->w);
    hasher_free(&u->h);
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

static int upload_write(void *ctx, const char *data, size_t len, struct ts_err *err)
{
    struct upload *u = ctx;
    if (u->quota_left >= 0 && u->h.size + len > (uint64_t)u->quota_left)
        return ts_err_set(err, TS_ETOOBIG, "Denying attempt to upload image because it exceeds the quota: the "
                                           "project's image_size_total quota would be exceeded.");
    hasher_update(&u->h, data, len);
    return ts_image_store_write(u->w, data, len, err);
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
    struct ts_image_store_writer *w = u->w;
    u->w = NULL;
    int rc = ts_image_store_commit(w, err);
    if (rc) {
        upload_restore(u);
        goto out;
    }
    struct ts_db_res *res = NULL;
    if (u->staging) {
        rc = ts_db_exec(svc->db, "UPDATE images SET staged_size = ?, updated_at = ? WHERE id = ? AND status = 'uploading'",
                        TS_DB_ARGS(TS_DB_I(u->h.size), TS_DB_I(ts_image_now_us()), TS_DB_S(u->id)), &res, err);
    } else {
        char md5[33], sha[129];
        hasher_final(&u->h, md5, sha);
        uint64_t vsize = u->h.size;
        if (ts_streq(u->disk_format, "qcow2")) {
            uint64_t v;
            if (ts_image_qcow2_virtual_size(u->h.head, u->h.head_len, &v) == 0) vsize = v;
        }
        rc = ts_db_exec(svc->db,
                        "UPDATE images SET status = 'active', size = ?, virtual_size = ?, checksum = ?, "
                        "os_hash_algo = 'sha512', os_hash_value = ?, store = ?, updated_at = ? "
                        "WHERE id = ? AND status = 'saving'",
                        TS_DB_ARGS(TS_DB_I(u->h.size), TS_DB_I(vsize), TS_DB_S(md5), TS_DB_S(sha),
                                   TS_DB_S(ts_image_store_name(svc->store)), TS_DB_I(ts_image_now_us()),
                                   TS_DB_S(u->id)),
                        &res, err);
    }
    if (rc == 0 && res->changes == 0) {
        /* deleted (or changed) while we were receiving */
        ts_image_store_delete(u->staging ? svc->staging : svc->store, u->id, NULL);
        rc = ts_err_set(err, TS_EGONE, "Image %s could not be found after upload. The image may have been deleted "
                                       "during the upload.", u->id);
    } else if (rc) {
        ts_image_store_delete(u->staging ? svc->staging : svc->store, u->id, NULL);
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
    hasher_init(&u->h);
    rc = ts_image_store_open_write_sized(staging ? svc->staging : svc->store, id, req->content_length, &u->w, err);
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

struct import_job {
    struct ts_image_svc *svc;
    char id[TS_UUID_LEN + 1];
    char disk_format[32];
};

static int import_copy(struct import_job *j, struct ts_err *err)
{
    struct ts_image_svc *svc = j->svc;
    int fd = -1;
    uint64_t size = 0;
    struct ts_image_store_writer *w = NULL;
    struct hasher h;
    struct ts_db_res *res = NULL;
    char *buf = NULL;
    hasher_init(&h);
    int rc = ts_image_store_open_read(svc->staging, j->id, &fd, &size, err);
    if (rc) goto out;
    rc = ts_image_store_open_write_sized(svc->store, j->id, (int64_t)size, &w, err);
    if (rc) goto out;
    buf = ts_malloc(1 << 20);
    for (;;) {
        ssize_t n = read(fd, buf, 1 << 20);
        if (n < 0) {
            rc = ts_err_set(err, TS_EIO, "read of staged data failed");
            goto out;
        }
        if (n == 0) break;
        hasher_update(&h, buf, (size_t)n);
        rc = ts_image_store_write(w, buf, (size_t)n, err);
        if (rc) goto out;
    }
    rc = ts_image_store_commit(w, err);
    w = NULL;
    if (rc) goto out;
    char md5[33], sha[129];
    hasher_final(&h, md5, sha);
    uint64_t vsize = h.size;
    if (ts_streq(j->disk_format, "qcow2")) {
        uint64_t v;
        if (ts_image_qcow2_virtual_size(h.head, h.head_len, &v) == 0) vsize = v;
    }
    rc = ts_db_exec(svc->db,
                    "UPDATE images SET status = 'active', size = ?, virtual_size = ?, checksum = ?, "
                    "os_hash_algo = 'sha512', os_hash_value = ?, staged_size = NULL, store = ?, updated_at = ? "
                    "WHERE id = ? AND status = 'importing'",
                    TS_DB_ARGS(TS_DB_I(h.size), TS_DB_I(vsize), TS_DB_S(md5), TS_DB_S(sha),
                               TS_DB_S(ts_image_store_name(svc->store)), TS_DB_I(ts_image_now_us()), TS_DB_S(j->id)),
                    &res, err);
    if (rc == 0 && res->changes == 0) {
        ts_image_store_delete(svc->store, j->id, NULL);
        rc = ts_err_set(err, TS_EGONE, "image deleted during import");
    }
out:
    if (fd >= 0) close(fd);
    ts_image_store_abort(w);
    hasher_free(&h);
    ts_db_res_free(res);
    free(buf);
    return rc;
}

static void *import_main(void *arg)
{
    struct import_job *j = arg;
    struct ts_image_svc *svc = j->svc;
    struct ts_err err = {0};
    int rc = import_copy(j, &err);
    if (rc == 0) {
        ts_image_store_delete(svc->staging, j->id, NULL);
        json_t *view = NULL;
        if (ts_image_load(svc, j->id, &view, NULL) == 0) {
            ts_image_notify(svc, "image.upload", view);
            ts_image_notify(svc, "image.activate", view);
            json_decref(view);
        }
    } else if (rc != -TS_EGONE) {
        ts_error("image", "import of image %s failed: %s", j->id, err.msg);
        ts_db_exec(svc->db, "UPDATE images SET status = 'queued', staged_size = NULL, updated_at = ? "
                            "WHERE id = ? AND status = 'importing'",
                   TS_DB_ARGS(TS_DB_I(ts_image_now_us()), TS_DB_S(j->id)), NULL, NULL);
        ts_image_store_delete(svc->staging, j->id, NULL);
    }
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

int ts_image_h_import(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_image_svc *svc = req->svc;
    json_t *body = NULL, *view = NULL;
    struct ts_db_res *res = NULL;
    int rc = ts_http_json_body(req, &body, err);
    if (rc) return rc;
    if (!json_is_object(body)) return ts_err_set(err, TS_EINVAL, "Body expected in request.");
    json_t *method = json_object_get(body, "method");
    if (!json_is_object(method)) return ts_err_set(err, TS_EINVAL, "Import request requires a 'method' field.");
    const char *name = json_string_value(json_object_get(method, "name"));
    if (!name) return ts_err_set(err, TS_EINVAL, "Import request requires a 'name' field.");
    if (!ts_streq(name, "glance-direct"))
        return ts_err_set(err, TS_EINVAL, "Unknown import method name '%s'.", name);
    json_t *b;
    if ((b = json_object_get(body, "all_stores_must_succeed")) && !json_is_boolean(b))
        return ts_err_set(err, TS_EINVAL, "'all_stores_must_succeed' must be boolean value only");
    if ((b = json_object_get(body, "all_stores")) && !json_is_boolean(b))
        return ts_err_set(err, TS_EINVAL, "'all_stores' must be boolean value only");
    const char *id = ts_http_param(req, "image_id");
    rc = ts_image_get_visible(svc, req, id, &view, err);
    if (rc) return rc;
    const char *status = ts_image_vs(view, "status");
    if (!ts_image_can_modify(req, view)) {
        rc = ts_err_set(err, TS_EFORBIDDEN, "You are not permitted to import this image.");
        goto out;
    }
    if (!ts_streq(status, "uploading")) {
        rc = ts_err_set(err, TS_ECONFLICT, "Image needs to be staged before 'glance-direct' method can be used");
        goto out;
    }
    if (!ts_image_vs(view, "disk_format") || !ts_image_vs(view, "container_format")) {
        rc = ts_err_set(err, TS_ECONFLICT, "'disk_format' needs to be set before import");
        goto out;
    }
    if (!ts_image_store_exists(svc->staging, id)) {
        rc = ts_err_set(err, TS_ECONFLICT, "Image needs to be staged before 'glance-direct' method can be used");
        goto out;
    }
    rc = ts_db_exec(svc->db, "UPDATE images SET status = 'importing', updated_at = ? WHERE id = ? AND status = 'uploading'",
                    TS_DB_ARGS(TS_DB_I(ts_image_now_us()), TS_DB_S(id)), &res, err);
    if (rc) goto out;
    if (res->changes == 0) {
        rc = ts_err_set(err, TS_ECONFLICT, "Image %s is already being imported", id);
        goto out;
    }
    struct import_job *j = ts_calloc(1, sizeof(*j));
    j->svc = svc;
    snprintf(j->id, sizeof(j->id), "%s", id);
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
        free(j);
        pthread_mutex_lock(&svc->lock);
        svc->imports_running--;
        pthread_mutex_unlock(&svc->lock);
        ts_db_exec(svc->db, "UPDATE images SET status = 'uploading' WHERE id = ? AND status = 'importing'",
                   TS_DB_ARGS(TS_DB_S(id)), NULL, NULL);
        rc = ts_err_set(err, TS_EUNAVAIL, "cannot start import");
        goto out;
    }
    pthread_attr_destroy(&attr);
    ts_http_resp_no_body(resp, 202, 0);
out:
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
