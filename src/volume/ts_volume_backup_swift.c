/*
 * ts_volume_backup_swift.c: the object-storage backup driver (what Cinder's swift backup
 * driver does). A backup is a set of objects in a container (the request's, else
 * "volumebackups") of the account AUTH_<project_id> on the object service, reached over
 * HTTP with the user's token:
 *   <prefix>-00001, -00002, ...  the volume's bytes in chunks of [volume]
 *                                backup_swift_object_size (a chunk that reads as zeros
 *                                is not stored: restore leaves zeros there),
 *   <prefix>_sha256file          the sha256 of every backup_swift_block_size block,
 *   <prefix>_metadata            the list of data objects (offset, length, md5), last.
 * prefix = volume_<volume id>/<YYYYmmddHHMMSS>/az_<az>_backup_<backup id>. Compression
 * is not done ("none" in the metadata, as with backup_compression_algorithm = none).
 *
 * Memory stays constant whatever the volume size: a chunk is read once to hash it (md5,
 * sha256 per block) and is then sent straight from the volume's fd with that md5 as
 * ETag, so the object service refuses (422) bytes that changed in between; the sha256
 * list goes through a temporary file. Restore streams each object into the destination
 * fd and checks its length and md5 against the metadata. Functions here run on volume
 * manager threads only.
 */
#include "volume/ts_volume_int.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MOD "volume"
#define CALL_TIMEOUT_MS 60000
#define DATA_TIMEOUT_MS 900000 /* one data object up or down: a stuck object service ends in error */
#define IO_BLOCK (1u << 20)    /* read size while hashing */
#define META_MAX (64u << 20)

/* One backup's place in the object store during an operation. */
struct bsw {
    struct ts_volume_svc *svc;
    struct ts_pool *pool;
    char *account;   /* "http://host:8080/v1/AUTH_<project>" */
    char *token_hdr; /* "X-Auth-Token: ..." */
    char *cont_path; /* "/<container>" encoded */
    const struct ts_volume_bswift_job *job;
};

/* ---- configuration --------------------------------------------------------------------- */

int64_t ts_volume_bswift_object_size(struct ts_volume_svc *svc)
{
    return ts_conf_get_int(svc->env->conf, "volume", "backup_swift_object_size", 52428800);
}

int64_t ts_volume_bswift_block_size(struct ts_volume_svc *svc)
{
    return ts_conf_get_int(svc->env->conf, "volume", "backup_swift_block_size", 32768);
}

int ts_volume_bswift_check_conf(struct ts_volume_svc *svc, struct ts_err *err)
{
    int64_t obj = ts_volume_bswift_object_size(svc), blk = ts_volume_bswift_block_size(svc);
    if (blk < 512 || blk > (64 << 20))
        return ts_err_set(err, TS_EINVAL, "[volume] backup_swift_block_size must be 512 bytes to 64 MiB");
    if (obj < blk || obj > (5LL << 30) || obj % blk != 0)
        return ts_err_set(err, TS_EINVAL,
                          "[volume] backup_swift_object_size must be a multiple of backup_swift_block_size, "
                          "at most 5 GiB");
    const char *comp = ts_conf_get(svc->env->conf, "volume", "backup_compression_algorithm", "none");
    if (!ts_strcaseeq(comp, "none") && !ts_strcaseeq(comp, "off") && !ts_strcaseeq(comp, "no"))
        return ts_err_set(err, TS_EINVAL,
                          "[volume] backup_compression_algorithm: only \"none\" is supported");
    const char *u = ts_conf_get(svc->env->conf, "volume", "backup_swift_url", NULL);
    if (u && *u && strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0)
        return ts_err_set(err, TS_EINVAL, "[volume] backup_swift_url must be an http(s) URL");
    return 0;
}

/* ---- finding the account ------------------------------------------------------------------ */

/* The object-store endpoint from the caller's catalog (public interface), or NULL. */
static char *catalog_url(struct ts_volume_svc *svc, struct ts_pool *pool, const char *token)
{
    const char *idu = svc->env->identity_url ? svc->env->identity_url : "http://127.0.0.1:5000";
    char *url = ts_pool_printf(pool, "%s/v3/auth/catalog", idu);
    char *th = ts_pool_printf(pool, "X-Auth-Token: %s", token ? token : "");
    const char *hdrs[] = {th, NULL};
    struct ts_http_client_resp r = {0};
    struct ts_err e = {0};
    char *found = NULL;
    if (ts_http_client_request("GET", url, hdrs, NULL, 0, CALL_TIMEOUT_MS, &r, &e) != 0 || r.status != 200)
        goto out;
    json_t *doc = json_loadb(r.body ? r.body : "", r.body_len, 0, NULL);
    json_t *cat = json_object_get(doc, "catalog"), *svcj, *ep;
    size_t i, k;
    json_array_foreach(cat, i, svcj)
    {
        if (!ts_streq(ts_json_str(svcj, "type", NULL), "object-store")) continue;
        json_array_foreach(json_object_get(svcj, "endpoints"), k, ep)
        {
            if (ts_streq(ts_json_str(ep, "interface", NULL), "public") && ts_json_str(ep, "url", NULL)) {
                found = ts_pool_strdup(pool, ts_json_str(ep, "url", NULL));
                break;
            }
        }
        if (found) break;
    }
    json_decref(doc);
out:
    ts_http_client_resp_free(&r);
    return found;
}

/* The account URL of project: [volume] backup_swift_url (Cinder's meaning: the project id
 * is appended, or replaces "%(project_id)s"), else the catalog's object-store endpoint
 * with its AUTH_ part set to project, else the local object service's port. */
static char *account_url(struct ts_volume_svc *svc, struct ts_pool *pool, const char *token,
                         const char *project)
{
    struct ts_conf *c = svc->env->conf;
    const char *u = ts_conf_get(c, "volume", "backup_swift_url", NULL);
    char *out;
    if (u && *u) {
        const char *m = strstr(u, "%(project_id)s");
        out = m ? ts_pool_printf(pool, "%.*s%s%s", (int)(m - u), u, project, m + 14)
                : ts_pool_printf(pool, "%s%s", u, project);
    } else if ((out = catalog_url(svc, pool, token)) != NULL) {
        char *a = strstr(out, "/AUTH_");
        if (a) {
            a[6] = 0;
            out = ts_pool_printf(pool, "%s%s", out, project);
        }
    } else {
        out = ts_pool_printf(pool, "http://%s:%lld/v1/AUTH_%s",
                             ts_conf_get(c, "DEFAULT", "public_host", "127.0.0.1"),
                             (long long)ts_conf_get_int(c, "object", "port", 8080), project);
    }
    size_t l = strlen(out);
    while (l && out[l - 1] == '/')
        out[--l] = 0;
    return out;
}

static void bsw_open(struct bsw *b, struct ts_volume_svc *svc, const struct ts_volume_bswift_job *job)
{
    memset(b, 0, sizeof(*b));
    b->svc = svc;
    b->job = job;
    b->pool = ts_pool_new();
    b->account = account_url(svc, b->pool, job->token, job->project);
    b->token_hdr = ts_pool_printf(b->pool, "X-Auth-Token: %s", job->token ? job->token : "");
    b->cont_path = ts_pool_printf(b->pool, "/%s", ts_url_encode(b->pool, job->container, false));
}

static void bsw_close(struct bsw *b)
{
    ts_pool_free(b->pool);
    b->pool = NULL;
}

/* URL of an object "<prefix><suffix>" in the backup's container. */
static char *object_url(struct bsw *b, struct ts_pool *pool, const char *suffix)
{
    char *name = ts_pool_printf(pool, "%s%s", b->job->prefix, suffix);
    return ts_pool_printf(pool, "%s%s/%s", b->account, b->cont_path, ts_url_encode(pool, name, true));
}

/* Rewrites err's message as "<what>: <old message>" (formatting a message into itself is
 * undefined, so through a copy). */
static int wrap_err(struct ts_err *err, int code, const char *what)
{
    char old[sizeof(err->msg)];
    snprintf(old, sizeof(old), "%s", err->msg);
    return ts_err_set(err, code, "%s: %s", what, old);
}

static int status_error(struct ts_err *err, const char *what, int status)
{
    return ts_err_set(err, TS_EUNAVAIL, "object store: %s: the object service answered %d", what, status);
}

/* A request with a small body (or none), the answer in out. */
static int call(struct bsw *b, const char *method, const char *url, const char *extra, const void *body,
                size_t len, struct ts_http_client_resp *out, struct ts_err *err)
{
    const char *hdrs[] = {b->token_hdr, extra, NULL};
    memset(out, 0, sizeof(*out));
    int rc = ts_http_client_request(method, url, hdrs, body, len, CALL_TIMEOUT_MS, out, err);
    if (rc) return wrap_err(err, TS_EUNAVAIL, "object store: the object service is unreachable");
    return 0;
}

static int ensure_container(struct bsw *b, struct ts_err *err)
{
    struct ts_http_client_resp r;
    char *url = ts_pool_printf(b->pool, "%s%s", b->account, b->cont_path);
    int rc = call(b, "PUT", url, NULL, NULL, 0, &r, err);
    if (!rc && r.status != 201 && r.status != 202) rc = status_error(err, "creating the container", r.status);
    ts_http_client_resp_free(&r);
    return rc;
}

/* PUTs len bytes read from fd (at its current offset) with ETag md5. */
static int put_fd(struct bsw *b, const char *suffix, int fd, int64_t len, const char *md5, struct ts_err *err)
{
    struct ts_pool *p = ts_pool_new();
    char *url = object_url(b, p, suffix);
    char *etag = ts_pool_printf(p, "ETag: %s", md5);
    const char *hdrs[] = {b->token_hdr, etag, "Content-Type: application/octet-stream", NULL};
    struct ts_http_client_resp r = {0};
    int rc = ts_http_client_upload_fd("PUT", url, hdrs, fd, len, DATA_TIMEOUT_MS, &r, err);
    if (rc) {
        rc = wrap_err(err, TS_EUNAVAIL, "object store: storing a backup object");
    } else if (r.status == 422) {
        rc = ts_err_set(err, TS_EIO, "object store: %s%s: the data changed while it was sent (422)",
                        b->job->prefix, suffix);
    } else if (r.status != 201) {
        rc = status_error(err, "storing an object", r.status);
    } else {
        char *got = ts_http_client_resp_header(&r, "ETag");
        const char *g = got ? got : "";
        size_t gl = strlen(g);
        if (gl >= 2 && g[0] == '"') g++, gl -= 2;
        if (gl != 32 || strncasecmp(g, md5, 32) != 0)
            rc = ts_err_set(err, TS_EIO, "object store: %s%s: stored ETag %s, sent md5 %s", b->job->prefix,
                            suffix, got ? got : "(none)", md5);
        free(got);
    }
    ts_http_client_resp_free(&r);
    ts_pool_free(p);
    return rc;
}

/* PUTs a small in-memory body. */
static int put_mem(struct bsw *b, const char *suffix, const char *data, size_t len, struct ts_err *err)
{
    struct ts_pool *p = ts_pool_new();
    struct ts_http_client_resp r;
    int rc = call(b, "PUT", object_url(b, p, suffix), "Content-Type: application/json", data, len, &r, err);
    if (!rc && r.status != 201) rc = status_error(err, "storing the backup metadata", r.status);
    ts_http_client_resp_free(&r);
    ts_pool_free(p);
    return rc;
}

/* ---- hashing ---------------------------------------------------------------------------- */

static void digest_hex(EVP_MD_CTX *c, char *out)
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(c, d, &n);
    ts_hex(d, n, out);
}

static bool all_zero(const unsigned char *p, size_t n)
{
    static const unsigned char z[4096];
    while (n >= sizeof(z)) {
        if (memcmp(p, z, sizeof(z)) != 0) return false;
        p += sizeof(z);
        n -= sizeof(z);
    }
    return n == 0 || memcmp(p, z, n) == 0;
}

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ---- backup -------------------------------------------------------------------------------- */

/* Best effort: deletes every object under the backup's prefix. Returns 0 when the listing
 * and all deletes succeeded (404s count as deleted). */
static int delete_objects(struct bsw *b, struct ts_err *err)
{
    int rc = 0;
    struct ts_pool *p = ts_pool_new();
    char *marker = ts_pool_strdup(p, "");
    for (int rounds = 0; rounds < 100000; rounds++) {
        char *url =
            ts_pool_printf(p, "%s%s?format=json&limit=1000&prefix=%s&marker=%s", b->account, b->cont_path,
                           ts_url_encode(p, b->job->prefix, false), ts_url_encode(p, marker, false));
        struct ts_http_client_resp r;
        if ((rc = call(b, "GET", url, NULL, NULL, 0, &r, err))) break;
        if (r.status == 404) { /* no container: nothing stored */
            ts_http_client_resp_free(&r);
            break;
        }
        if (r.status != 200 && r.status != 204) {
            rc = status_error(err, "listing the backup's objects", r.status);
            ts_http_client_resp_free(&r);
            break;
        }
        json_t *list = r.status == 200 ? json_loadb(r.body ? r.body : "", r.body_len, 0, NULL) : NULL;
        ts_http_client_resp_free(&r);
        size_t n = json_is_array(list) ? json_array_size(list) : 0, i;
        json_t *o;
        json_array_foreach(list, i, o)
        {
            const char *name = ts_json_str(o, "name", NULL);
            if (!name || !ts_startswith(name, b->job->prefix)) continue;
            marker = ts_pool_strdup(p, name);
            char *ou = ts_pool_printf(p, "%s%s/%s", b->account, b->cont_path, ts_url_encode(p, name, true));
            struct ts_http_client_resp d;
            int drc = call(b, "DELETE", ou, NULL, NULL, 0, &d, err);
            if (!drc && d.status != 204 && d.status != 200 && d.status != 404)
                drc = status_error(err, "deleting an object", d.status);
            ts_http_client_resp_free(&d);
            if (drc && !rc) rc = drc;
        }
        json_decref(list);
        if (n < 1000 || rc) break;
    }
    ts_pool_free(p);
    return rc;
}

int ts_volume_bswift_backup(struct ts_volume_svc *svc, const struct ts_volume_bswift_job *job, int src,
                            int64_t len, int64_t *object_count, struct ts_err *err)
{
    struct bsw b;
    bsw_open(&b, svc, job);
    const int64_t obj_size = ts_volume_bswift_object_size(svc), blk = ts_volume_bswift_block_size(svc);
    unsigned char *buf = ts_malloc(IO_BLOCK);
    char shapath[1200], zero_sha[65] = "";
    int shafd = -1;
    EVP_MD_CTX *md5 = EVP_MD_CTX_new(), *sha = EVP_MD_CTX_new();
    TS_ASSERT(md5 && sha);
    json_t *objects = json_array();
    struct ts_buf shabuf; /* sha256 list text waiting to be written */
    ts_buf_init(&shabuf, 1u << 20);
    int64_t count = 0;
    int rc = ts_volume_bswift_check_conf(svc, err);
    if (rc) goto out;
    snprintf(shapath, sizeof(shapath), "%s/.tmp-sha256-%s",
             ts_conf_get(svc->env->conf, "volume", "backups_dir", "/tmp"), job->backup_id);
    ts_mkdirs(ts_conf_get(svc->env->conf, "volume", "backups_dir", "/tmp"), 0700);
    shafd = open(shapath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (shafd < 0) {
        rc = ts_err_set(err, TS_EIO, "open %s: %s", shapath, strerror(errno));
        goto out;
    }
    if ((rc = ensure_container(&b, err))) goto out;
    {
        /* the sha256 of a block of zeros, for chunks that are holes */
        EVP_DigestInit_ex(sha, EVP_sha256(), NULL);
        memset(buf, 0, (size_t)(blk < IO_BLOCK ? blk : IO_BLOCK));
        for (int64_t left = blk; left > 0; left -= IO_BLOCK)
            EVP_DigestUpdate(sha, buf, (size_t)(left < IO_BLOCK ? left : IO_BLOCK));
        digest_hex(sha, zero_sha);
    }
    json_t *head =
        json_pack("{s:s, s:s, s:s?, s:s?, s:s, s:s, s:I}", "backup_id", job->backup_id, "volume_id",
                  job->volume_id, "backup_name", job->name, "backup_description", job->description,
                  "created_at", job->created_at, "version", "1.0.0", "chunk_size", (json_int_t)blk);
    char *hs = json_dumps(head, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(head);
    size_t hl = strlen(hs);
    hs[hl - 1] = 0; /* drop the closing brace: the sha256 list follows */
    int wr = write_all(shafd, hs, hl - 1);
    free(hs);
    if (wr != 0 || write_all(shafd, ",\"sha256s\":[", 12) != 0) {
        rc = ts_err_set(err, TS_EIO, "write %s: %s", shapath, strerror(errno));
        goto out;
    }
    bool first_sha = true;
    for (int64_t off = 0; off < len; off += obj_size) {
        int64_t clen = len - off < obj_size ? len - off : obj_size;
        /* a chunk that is a hole of a sparse file needs no reading */
        off_t data = lseek(src, off, SEEK_DATA);
        bool hole = (data < 0 && errno == ENXIO) || (data >= 0 && data >= off + clen);
        bool zero = true;
        EVP_DigestInit_ex(md5, EVP_md5(), NULL);
        EVP_DigestInit_ex(sha, EVP_sha256(), NULL);
        int64_t in_blk = 0;
        char h[65];
        for (int64_t pos = 0; pos < clen;) {
            size_t want = (size_t)(clen - pos < IO_BLOCK ? clen - pos : IO_BLOCK);
            /* stop at block boundaries so each sha256 covers one block */
            if ((int64_t)want > blk - in_blk) want = (size_t)(blk - in_blk);
            if (!hole) {
                ssize_t n = pread(src, buf, want, off + pos);
                if (n < 0 && errno == EINTR) continue;
                if (n <= 0) {
                    rc = ts_err_set(err, TS_EIO, "read of the volume at %lld: %s", (long long)(off + pos),
                                    n < 0 ? strerror(errno) : "unexpected end");
                    goto out;
                }
                want = (size_t)n;
                if (zero && !all_zero(buf, want)) zero = false;
            }
            if (!hole) { /* a hole is not stored: no md5, and its sha256 is known */
                EVP_DigestUpdate(md5, buf, want);
                EVP_DigestUpdate(sha, buf, want);
            }
            pos += (int64_t)want;
            in_blk += (int64_t)want;
            if (in_blk == blk || pos == clen) {
                if (hole && in_blk == blk)
                    memcpy(h, zero_sha, sizeof(h));
                else if (hole) { /* a short last block of zeros */
                    memset(buf, 0, in_blk < IO_BLOCK ? (size_t)in_blk : IO_BLOCK);
                    for (int64_t left = in_blk; left > 0; left -= IO_BLOCK)
                        EVP_DigestUpdate(sha, buf, (size_t)(left < IO_BLOCK ? left : IO_BLOCK));
                    digest_hex(sha, h);
                } else
                    digest_hex(sha, h);
                ts_buf_printf(&shabuf, "%s\"%s\"", first_sha ? "" : ",", h);
                first_sha = false;
                if (shabuf.len >= (64u << 10)) {
                    if (write_all(shafd, shabuf.data, shabuf.len) != 0) {
                        rc = ts_err_set(err, TS_EIO, "write %s: %s", shapath, strerror(errno));
                        goto out;
                    }
                    ts_buf_reset(&shabuf);
                }
                EVP_DigestInit_ex(sha, EVP_sha256(), NULL);
                in_blk = 0;
            }
        }
        char m5[65];
        digest_hex(md5, m5);
        if (hole || zero) continue; /* nothing to store: restore leaves zeros */
        char suffix[32];
        snprintf(suffix, sizeof(suffix), "-%05lld", (long long)(off / obj_size + 1));
        if (lseek(src, off, SEEK_SET) < 0) {
            rc = ts_err_set(err, TS_EIO, "seek: %s", strerror(errno));
            goto out;
        }
        if ((rc = put_fd(&b, suffix, src, clen, m5, err))) goto out;
        count++;
        char *oname = ts_asprintf("%s%s", job->prefix, suffix);
        json_array_append_new(objects,
                              json_pack("{s:{s:I, s:I, s:s, s:s}}", oname, "offset", (json_int_t)off,
                                        "length", (json_int_t)clen, "md5", m5, "compression", "none"));
        free(oname);
    }
    ts_buf_appends(&shabuf, "]}");
    if (write_all(shafd, shabuf.data, shabuf.len) != 0 || fsync(shafd) != 0) {
        rc = ts_err_set(err, TS_EIO, "write %s: %s", shapath, strerror(errno));
        goto out;
    }
    {
        /* the sha256 file: hashed, then sent from its fd */
        off_t sl = lseek(shafd, 0, SEEK_END);
        EVP_DigestInit_ex(md5, EVP_md5(), NULL);
        for (off_t pos = 0; pos < sl;) {
            ssize_t n = pread(shafd, buf, IO_BLOCK, pos);
            if (n <= 0) {
                rc = ts_err_set(err, TS_EIO, "read %s", shapath);
                goto out;
            }
            EVP_DigestUpdate(md5, buf, (size_t)n);
            pos += n;
        }
        char m5[65];
        digest_hex(md5, m5);
        lseek(shafd, 0, SEEK_SET);
        if ((rc = put_fd(&b, "_sha256file", shafd, sl, m5, err))) goto out;
    }
    {
        json_t *vm = job->volume_meta ? json_loads(job->volume_meta, 0, NULL) : NULL;
        json_t *meta =
            json_pack("{s:s, s:s, s:s?, s:s?, s:s, s:s, s:O, s:n, s:I, s:o}", "backup_id", job->backup_id,
                      "volume_id", job->volume_id, "backup_name", job->name, "backup_description",
                      job->description, "created_at", job->created_at, "version", "1.0.0", "objects", objects,
                      "parent_id", "volume_size", (json_int_t)len, "volume_meta", vm ? vm : json_object());
        char *ms = json_dumps(meta, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(meta);
        rc = put_mem(&b, "_metadata", ms, strlen(ms), err);
        free(ms);
        if (rc) goto out;
    }
    *object_count = count;
out:
    if (rc) {
        struct ts_err e2 = {0};
        if (delete_objects(&b, &e2) != 0)
            ts_warn(MOD, "backup %s: leftover objects under %s not removed: %s", job->backup_id, job->prefix,
                    e2.msg);
    }
    if (shafd >= 0) {
        close(shafd);
        unlink(shapath);
    }
    json_decref(objects);
    ts_buf_free(&shabuf);
    EVP_MD_CTX_free(md5);
    EVP_MD_CTX_free(sha);
    free(buf);
    bsw_close(&b);
    return rc;
}

/* ---- restore ------------------------------------------------------------------------------ */

struct sink {
    int fd;
    int64_t off, end; /* next write position, end of this object's range */
    bool sparse_ok;   /* the destination reads as zeros where not written */
    EVP_MD_CTX *md5;
    int err_no;
};

static int sink_write(void *ctx, const char *data, size_t len)
{
    struct sink *s = ctx;
    if (s->off + (int64_t)len > s->end) return -TS_EIO; /* longer than the metadata says */
    EVP_DigestUpdate(s->md5, data, len);
    if (!(s->sparse_ok && all_zero((const unsigned char *)data, len))) {
        size_t done = 0;
        while (done < len) {
            ssize_t n = pwrite(s->fd, data + done, len - done, s->off + (int64_t)done);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                s->err_no = n < 0 ? errno : EIO;
                return -TS_EIO;
            }
            done += (size_t)n;
        }
    }
    s->off += (int64_t)len;
    return 0;
}

/* Zeros [off, off+len) of a destination that may hold old data. */
static int zero_range(int fd, int64_t off, int64_t len, struct ts_err *err)
{
#ifdef FALLOC_FL_ZERO_RANGE
    if (fallocate(fd, FALLOC_FL_ZERO_RANGE, off, len) == 0) return 0;
#endif
    static const char z[65536];
    while (len > 0) {
        size_t n = len < (int64_t)sizeof(z) ? (size_t)len : sizeof(z);
        ssize_t w = pwrite(fd, z, n, off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
            return ts_err_set(err, TS_EIO, "zeroing the volume: %s", w < 0 ? strerror(errno) : "short");
        off += w;
        len -= w;
    }
    return 0;
}

int ts_volume_bswift_restore(struct ts_volume_svc *svc, const struct ts_volume_bswift_job *job, int dst,
                             int64_t dst_len, bool sparse_ok, struct ts_err *err)
{
    struct bsw b;
    bsw_open(&b, svc, job);
    struct ts_http_client_resp r = {0};
    json_t *meta = NULL;
    EVP_MD_CTX *md5 = EVP_MD_CTX_new();
    TS_ASSERT(md5);
    int rc = call(&b, "GET", object_url(&b, b.pool, "_metadata"), NULL, NULL, 0, &r, err);
    if (rc) goto out;
    if (r.status != 200) {
        rc = status_error(err, "reading the backup metadata", r.status);
        goto out;
    }
    if (r.body_len > META_MAX || !(meta = json_loadb(r.body ? r.body : "", r.body_len, 0, NULL)) ||
        !json_is_array(json_object_get(meta, "objects"))) {
        rc = ts_err_set(err, TS_EIO, "object store: the backup metadata %s_metadata is not valid",
                        job->prefix);
        goto out;
    }
    int64_t vsize = json_integer_value(json_object_get(meta, "volume_size"));
    if (vsize > dst_len) {
        rc = ts_err_set(err, TS_EINVAL, "the volume (%lld bytes) is smaller than the backup (%lld bytes)",
                        (long long)dst_len, (long long)vsize);
        goto out;
    }
    int64_t done = 0; /* everything before is restored */
    size_t i;
    json_t *ent;
    json_array_foreach(json_object_get(meta, "objects"), i, ent)
    {
        const char *name = NULL;
        json_t *o = NULL;
        void *it = json_object_iter(ent);
        if (it) name = json_object_iter_key(it), o = json_object_iter_value(it);
        json_int_t off = json_integer_value(json_object_get(o, "offset"));
        json_int_t olen = json_integer_value(json_object_get(o, "length"));
        const char *want = ts_json_str(o, "md5", NULL);
        const char *comp = ts_json_str(o, "compression", "none");
        if (!name || !ts_startswith(name, job->prefix) || off < done || olen < 0 || off + olen > dst_len ||
            !want || (comp && !ts_streq(comp, "none"))) {
            rc = ts_err_set(err, TS_EIO, "object store: the backup metadata has a bad entry %zu", i);
            goto out;
        }
        if (!sparse_ok && off > done && (rc = zero_range(dst, done, off - done, err))) goto out;
        struct ts_pool *p = ts_pool_new();
        char *url = ts_pool_printf(p, "%s%s/%s", b.account, b.cont_path, ts_url_encode(p, name, true));
        const char *hdrs[] = {b.token_hdr, NULL};
        struct sink s = {.fd = dst, .off = off, .end = off + olen, .sparse_ok = sparse_ok, .md5 = md5};
        EVP_DigestInit_ex(md5, EVP_md5(), NULL);
        int status = 0;
        rc = ts_http_client_download(url, hdrs, DATA_TIMEOUT_MS, sink_write, &s, &status, err);
        ts_pool_free(p);
        char got[65];
        digest_hex(md5, got);
        if (rc && s.err_no)
            rc = ts_err_set(err, TS_EIO, "writing the restored volume: %s", strerror(s.err_no));
        else if (rc)
            rc = wrap_err(err, TS_EIO, "object store: reading a backup object");
        else if (status != 200)
            rc = status_error(err, "reading a backup object", status);
        else if (s.off != off + olen)
            rc = ts_err_set(err, TS_EIO, "object store: %s has %lld bytes, the metadata says %lld", name,
                            (long long)(s.off - off), (long long)olen);
        else if (strcasecmp(got, want) != 0)
            rc = ts_err_set(err, TS_EIO, "object store: %s is damaged: md5 %s, the metadata says %s", name,
                            got, want);
        if (rc) goto out;
        done = off + olen;
    }
    if (!sparse_ok && dst_len > done && (rc = zero_range(dst, done, dst_len - done, err))) goto out;
out:
    json_decref(meta);
    EVP_MD_CTX_free(md5);
    ts_http_client_resp_free(&r);
    bsw_close(&b);
    return rc;
}

int ts_volume_bswift_delete(struct ts_volume_svc *svc, const struct ts_volume_bswift_job *job,
                            struct ts_err *err)
{
    struct bsw b;
    bsw_open(&b, svc, job);
    int rc = delete_objects(&b, err);
    bsw_close(&b);
    return rc;
}

int ts_volume_bswift_check(struct ts_volume_svc *svc, const struct ts_volume_bswift_job *job,
                           struct ts_err *err)
{
    struct bsw b;
    bsw_open(&b, svc, job);
    struct ts_http_client_resp r = {0};
    int rc = call(&b, "GET", object_url(&b, b.pool, "_metadata"), NULL, NULL, 0, &r, err);
    json_t *meta = NULL;
    if (!rc && r.status != 200) rc = status_error(err, "reading the backup metadata", r.status);
    if (!rc && (!(meta = json_loadb(r.body ? r.body : "", r.body_len, 0, NULL)) ||
                !json_is_array(json_object_get(meta, "objects"))))
        rc = ts_err_set(err, TS_EIO, "object store: the backup metadata %s_metadata is not valid",
                        job->prefix);
    json_decref(meta);
    ts_http_client_resp_free(&r);
    bsw_close(&b);
    return rc;
}
