/*
 * ts_object_bulk.c: Swift's bulk middleware and form POST. Bulk delete (POST ?bulk-delete,
 * a newline-separated list of URL-encoded /container[/object] paths) and extract-archive
 * (PUT ?extract-archive=tar|tar.gz|tar.bz2: the upload is spooled to a temp file, then
 * read entry by entry with the tar reader, gzip/bzip2 decompressed through the system
 * tools, each file streamed into the store). Form POST parses a bounded multipart body
 * and checks its HMAC signature against the temp URL keys.
 */
#include "object/ts_object_api.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define BULK_MAX_BODY (16 << 20)
#define FORM_MAX_BODY (64 << 20)

/* ---- buffered body for stream routes ---- */

struct body_ctx {
    struct ts_object_req *s;
    struct ts_buf buf;
    int (*done)(struct ts_object_req *s, const char *body, size_t len, struct ts_err *err);
};

static int body_write(void *ctx, const char *data, size_t len, struct ts_err *err)
{
    struct body_ctx *b = ctx;
    if (ts_buf_append(&b->buf, data, len) < 0)
        return ts_err_set_full(err, TS_ETOOBIG, 413, NULL, "Request body too large");
    return 0;
}

static int body_finish(void *ctx, struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)req;
    (void)resp;
    struct body_ctx *b = ctx;
    return b->done(b->s, b->buf.data ? b->buf.data : "", b->buf.len, err);
}

static void body_abort(void *ctx)
{
    struct body_ctx *b = ctx;
    ts_buf_free(&b->buf);
}

static void body_cleanup(void *ctx)
{
    struct body_ctx *b = ctx;
    ts_buf_free(&b->buf);
}

static int want_body(struct ts_object_req *s, size_t max,
                     int (*done)(struct ts_object_req *s, const char *body, size_t len, struct ts_err *err))
{
    struct body_ctx *b = ts_pool_alloc(s->req->pool, sizeof(*b));
    b->s = s;
    b->done = done;
    ts_buf_init(&b->buf, max);
    ts_pool_cleanup(s->req->pool, body_cleanup, b);
    s->req->upload.write = body_write;
    s->req->upload.finish = body_finish;
    s->req->upload.abort = body_abort;
    s->req->upload.ctx = b;
    return 0;
}

/* ---- results in Swift's bulk format ---- */

static void bulk_result(struct ts_object_req *s, json_t *fields, json_t *errors, const char *status)
{
    const char *acc = ts_http_header(s->req, "Accept");
    json_object_set_new(fields, "Response Status", json_string(status));
    json_object_set_new(fields, "Response Body", json_string(""));
    json_object_set(fields, "Errors", errors);
    if (acc && strstr(acc, "json")) {
        ts_http_resp_json(s->resp, 200, fields);
        return;
    }
    struct ts_buf b;
    ts_buf_init(&b, 0);
    const char *k;
    json_t *v;
    json_object_foreach(fields, k, v) {
        if (strcmp(k, "Errors") == 0) continue;
        if (json_is_integer(v)) ts_buf_printf(&b, "%s: %lld\n", k, (long long)json_integer_value(v));
        else ts_buf_printf(&b, "%s: %s\n", k, json_string_value(v) ? json_string_value(v) : "");
    }
    ts_buf_appends(&b, "Errors:\n");
    size_t i;
    json_array_foreach(errors, i, v) {
        ts_buf_printf(&b, "%s, %s\n", json_string_value(json_array_get(v, 0)), json_string_value(json_array_get(v, 1)));
    }
    ts_http_resp_body(s->resp, 200, "text/plain", b.data ? b.data : "", b.len);
    ts_buf_free(&b);
    json_decref(fields);
}

/* ---- bulk delete ---- */

static int bulk_delete_done(struct ts_object_req *s, const char *body, size_t len, struct ts_err *err)
{
    (void)err;
    int deleted = 0, missing = 0, count = 0;
    json_t *errors = json_array();
    ts_pool_cleanup(s->req->pool, (void (*)(void *))json_decref, errors);
    const char *p = body, *end = body + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        size_t l = (size_t)(le - p);
        while (l && (p[l - 1] == '\r' || p[l - 1] == ' ')) l--;
        const char *line = p;
        p = nl ? nl + 1 : end;
        if (!l) continue;
        if (++count > 10000) {
            json_array_append_new(errors, json_pack("[s,s]", "", "413 Request Entity Too Large"));
            break;
        }
        char *path = ts_url_decode(s->req->pool, line, l);
        if (!path) {
            json_array_append_new(errors, json_pack("[s,s]", ts_pool_strndup(s->req->pool, line, l), "412 Precondition Failed"));
            continue;
        }
        char *q = path;
        while (*q == '/') q++;
        char *slash = strchr(q, '/');
        struct ts_object_req sub = *s;
        sub.container = slash ? ts_pool_strndup(s->req->pool, q, (size_t)(slash - q)) : q;
        sub.object = slash && slash[1] ? slash + 1 : NULL;
        struct ts_err e2;
        ts_err_clear(&e2);
        int rc;
        if (!*sub.container || ts_object_name_check(sub.container, strlen(sub.container), TS_OBJECT_MAX_CONTAINER_NAME, "Container", &e2) < 0) {
            json_array_append_new(errors, json_pack("[s,s]", path, "400 Bad Request"));
            continue;
        }
        if (sub.object) {
            rc = ts_object_authorize(&sub, TS_OBJECT_OP_OBJECT_WRITE, &e2);
            if (rc == 0) rc = ts_object_db_delete(s->svc, s->account, sub.container, sub.object, true, &e2);
        } else {
            rc = ts_object_authorize(&sub, TS_OBJECT_OP_CONTAINER_WRITE, &e2);
            if (rc == 0) {
                struct ts_db_res *r = NULL;
                rc = ts_db_exec(s->svc->db,
                                "DELETE FROM containers WHERE account = ? AND name = ? AND object_count = 0 RETURNING name",
                                TS_DB_ARGS(TS_DB_S(s->account), TS_DB_S(sub.container)), &r, &e2);
                if (rc == 0 && r->nrows > 0) ts_object_usage_changed(s->svc, s->account);
                if (rc == 0 && r->nrows == 0) {
                    struct ts_object_container c;
                    rc = ts_object_db_container(s->svc, s->req->pool, s->account, sub.container, &c, &e2);
                    if (rc == 0) rc = ts_object_fail(&e2, TS_ECONFLICT, 409);
                }
                ts_db_res_free(r);
            }
        }
        if (rc == 0) deleted++;
        else if (rc == -TS_ENOTFOUND) missing++;
        else {
            int st = e2.status ? e2.status : ts_err_status(rc);
            json_array_append_new(errors, json_pack("[s,s]", path, ts_pool_printf(s->req->pool, "%d %s", st, ts_err_title(st))));
        }
    }
    json_t *f = json_pack("{s:i,s:i}", "Number Deleted", deleted, "Number Not Found", missing);
    bulk_result(s, f, errors, json_array_size(errors) ? "400 Bad Request" : "200 OK");
    return 0;
}

int ts_object_bulk_delete(struct ts_object_req *s, struct ts_err *err)
{
    (void)err;
    return want_body(s, BULK_MAX_BODY, bulk_delete_done);
}

/* ---- extract archive ---- */

struct extract_ctx {
    struct ts_object_req *s;
    int fd;
    char path[4200];
    uint64_t got;
};

static void extract_release(void *ctx)
{
    struct extract_ctx *x = ctx;
    if (x->fd >= 0) {
        close(x->fd);
        x->fd = -1;
        unlink(x->path);
    }
}

static int extract_write(void *ctx, const char *data, size_t len, struct ts_err *err)
{
    struct extract_ctx *x = ctx;
    x->got += len;
    if (x->got > (uint64_t)TS_OBJECT_MAX_FILE_SIZE) return ts_err_set_full(err, TS_ETOOBIG, 413, NULL, "Archive too large");
    while (len) {
        ssize_t n = write(x->fd, data, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return ts_err_set(err, TS_EIO, "spool write failed");
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static ssize_t file_read(void *ctx, void *buf, size_t len)
{
    FILE *f = ctx;
    size_t n = fread(buf, 1, len, f);
    if (n == 0 && ferror(f)) return -1;
    return (ssize_t)n;
}

static ssize_t tar_data_read(void *ctx, void *buf, size_t len)
{
    return ts_object_tar_read(ctx, buf, len);
}

static int extract_finish(void *ctx, struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)req;
    (void)resp;
    struct extract_ctx *x = ctx;
    struct ts_object_req *s = x->s;
    const char *kind = ts_http_query(s->req, "extract-archive");
    FILE *f = NULL;
    bool piped = false;
    if (strcmp(kind, "tar") == 0) {
        f = fopen(x->path, "rbe");
    } else {
        const char *tool = strcmp(kind, "tar.gz") == 0 || strcmp(kind, "tgz") == 0 ? "gzip" : "bzip2";
        char *cmd = ts_pool_printf(s->req->pool, "%s -dc < '%s' 2>/dev/null", tool, x->path);
        f = popen(cmd, "re");
        piped = true;
    }
    if (!f) return ts_err_set(err, TS_EIO, "cannot read the archive");
    struct ts_object_tar *t = ts_object_tar_new(file_read, f);
    int created = 0;
    json_t *errors = json_array();
    ts_pool_cleanup(s->req->pool, (void (*)(void *))json_decref, errors);
    const char *status = "201 Created";
    struct ts_object_tar_entry *e = ts_pool_alloc(s->req->pool, sizeof(*e));
    int r;
    while ((r = ts_object_tar_next(t, e)) == 1) {
        if (e->type != '0') continue;
        const char *name = e->name;
        while (ts_startswith(name, "./")) name += 2;
        while (*name == '/') name++;
        if (!*name) continue;
        /* full path: [container/][prefix/]name */
        const char *full;
        if (s->object) full = ts_pool_printf(s->req->pool, "%s/%s/%s", s->container, s->object, name);
        else if (s->container) full = ts_pool_printf(s->req->pool, "%s/%s", s->container, name);
        else full = name;
        const char *slash = strchr(full, '/');
        if (!slash || !slash[1]) {
            json_array_append_new(errors, json_pack("[s,s]", full, "400 Bad Request"));
            continue;
        }
        struct ts_object_req sub = *s;
        sub.container = ts_pool_strndup(s->req->pool, full, (size_t)(slash - full));
        sub.object = slash + 1;
        struct ts_err e2;
        ts_err_clear(&e2);
        int rc = ts_object_name_check(sub.container, strlen(sub.container), TS_OBJECT_MAX_CONTAINER_NAME, "Container", &e2);
        if (rc == 0) rc = ts_object_name_check(sub.object, strlen(sub.object), TS_OBJECT_MAX_OBJECT_NAME, "Object", &e2);
        if (rc == 0) rc = ts_object_authorize(&sub, TS_OBJECT_OP_OBJECT_WRITE, &e2);
        if (rc == 0) {
            struct ts_object_container c;
            if (ts_object_db_container(s->svc, s->req->pool, s->account, sub.container, &c, &e2) < 0) {
                rc = ts_object_authorize(&sub, TS_OBJECT_OP_CONTAINER_WRITE, &e2);
                if (rc == 0) {
                    ts_db_exec(s->svc->db,
                               "INSERT INTO accounts (name, created, meta) VALUES (?, ?, '{}') ON CONFLICT (name) DO NOTHING",
                               TS_DB_ARGS(TS_DB_S(s->account), TS_DB_D(s->now)), NULL, NULL);
                    rc = ts_db_exec(s->svc->db,
                                    "INSERT INTO containers (account, name, created, put_ts, meta) VALUES (?, ?, ?, ?, '{}')"
                                    " ON CONFLICT (account, name) DO NOTHING",
                                    TS_DB_ARGS(TS_DB_S(s->account), TS_DB_S(sub.container), TS_DB_D(s->now), TS_DB_D(s->now)),
                                    NULL, &e2);
                    if (rc == 0) ts_object_usage_changed(s->svc, s->account);
                }
            }
        }
        if (rc == 0) {
            char etag[33];
            rc = ts_object_put_from(s->svc, s->account, sub.container, sub.object, NULL, tar_data_read, t, etag, &e2);
        }
        if (rc == 0) {
            created++;
        } else {
            int st = e2.status ? e2.status : ts_err_status(rc);
            json_array_append_new(errors, json_pack("[s,s]", full, ts_pool_printf(s->req->pool, "%d %s", st, ts_err_title(st))));
            if (rc == -TS_EINVAL && strcmp(e2.msg, "truncated data") == 0) break;
        }
    }
    if (r < 0) status = "400 Bad Request";
    else if (json_array_size(errors)) status = "400 Bad Request";
    ts_object_tar_free(t);
    if (piped) pclose(f);
    else fclose(f);
    extract_release(x);
    json_t *fields = json_pack("{s:i}", "Number Files Created", created);
    if (r < 0 && created == 0 && json_array_size(errors) == 0)
        json_object_set_new(fields, "Response Body", json_string("Invalid Tar File"));
    bulk_result(s, fields, errors, status);
    return 0;
}

int ts_object_extract(struct ts_object_req *s, struct ts_err *err)
{
    const char *kind = ts_http_query(s->req, "extract-archive");
    if (strcmp(kind, "tar") && strcmp(kind, "tar.gz") && strcmp(kind, "tgz") && strcmp(kind, "tar.bz2") &&
        strcmp(kind, "tbz"))
        return ts_err_set_full(err, TS_EINVAL, 400, NULL, "Unsupported archive format");
    const char *te = ts_http_header(s->req, "Transfer-Encoding");
    if (s->req->content_length < 0 && !(te && strcasestr(te, "chunked"))) return ts_object_fail(err, TS_ELENGTH, 411);
    struct extract_ctx *x = ts_pool_alloc(s->req->pool, sizeof(*x));
    x->s = s;
    char hex[33];
    ts_uuid_hex(hex);
    snprintf(x->path, sizeof(x->path), "%s/%s.extract", s->svc->tmp_dir, hex);
    x->fd = open(x->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (x->fd < 0) return ts_err_set(err, TS_EIO, "cannot spool the archive");
    ts_pool_cleanup(s->req->pool, extract_release, x);
    s->req->upload.write = extract_write;
    s->req->upload.finish = extract_finish;
    s->req->upload.abort = extract_release;
    s->req->upload.ctx = x;
    return 0;
}

/* ---- form POST ---- */

struct form_part {
    const char *name, *filename, *ctype;
    const char *data;
    size_t len;
};

static const char *memstr(const char *h, size_t hl, const char *n, size_t nl)
{
    if (nl == 0 || hl < nl) return NULL;
    for (size_t i = 0; i + nl <= hl; i++)
        if (h[i] == n[0] && memcmp(h + i, n, nl) == 0) return h + i;
    return NULL;
}

static const char *disp_param(struct ts_pool *pool, const char *hdr, size_t hl, const char *key)
{
    char *h = ts_pool_strndup(pool, hdr, hl);
    char *pat = ts_pool_printf(pool, "%s=\"", key);
    char *p = h;
    while ((p = strstr(p, pat))) {
        if (p == h || p[-1] == ' ' || p[-1] == ';') break;
        p++;
    }
    if (!p) return NULL;
    p += strlen(pat);
    char *e = strchr(p, '"');
    if (!e) return NULL;
    *e = '\0';
    return p;
}

static int parse_form(struct ts_pool *pool, const char *body, size_t len, const char *boundary, struct form_part *parts,
                      int max)
{
    char *delim = ts_pool_printf(pool, "--%s", boundary);
    size_t dl = strlen(delim);
    const char *p = memstr(body, len, delim, dl);
    int n = 0;
    while (p && n < max) {
        p += dl;
        if ((size_t)(body + len - p) >= 2 && p[0] == '-' && p[1] == '-') break;
        if ((size_t)(body + len - p) >= 2 && p[0] == '\r' && p[1] == '\n') p += 2;
        const char *hend = memstr(p, (size_t)(body + len - p), "\r\n\r\n", 4);
        if (!hend) return -1;
        const char *data = hend + 4;
        char *nd = ts_pool_printf(pool, "\r\n%s", delim);
        const char *next = memstr(data, (size_t)(body + len - data), nd, strlen(nd));
        if (!next) return -1;
        struct form_part *fp = &parts[n++];
        memset(fp, 0, sizeof(*fp));
        /* headers */
        const char *h = p;
        while (h < hend) {
            const char *le = memstr(h, (size_t)(hend - h) + 2, "\r\n", 2);
            if (!le) le = hend;
            size_t hl = (size_t)(le - h);
            if (hl > 20 && strncasecmp(h, "Content-Disposition:", 20) == 0) {
                fp->name = disp_param(pool, h, hl, "name");
                fp->filename = disp_param(pool, h, hl, "filename");
            } else if (hl > 13 && strncasecmp(h, "Content-Type:", 13) == 0) {
                const char *v = h + 13;
                while (*v == ' ') v++;
                fp->ctype = ts_pool_strndup(pool, v, (size_t)(le - v));
            }
            h = le + 2;
        }
        fp->data = data;
        fp->len = (size_t)(next - data);
        p = next + 2;
    }
    return n;
}

struct mem_src {
    const char *p;
    size_t left;
};
static ssize_t mem_read(void *ctx, void *buf, size_t len)
{
    struct mem_src *m = ctx;
    size_t n = m->left < len ? m->left : len;
    memcpy(buf, m->p, n);
    m->p += n;
    m->left -= n;
    return (ssize_t)n;
}

static bool form_sig_ok(const char *key, const char *msg, const char *sig)
{
    if (!key || !sig) return false;
    enum ts_object_digest d;
    size_t l = strlen(sig);
    if (l == 40) d = TS_OBJECT_SHA1;
    else if (l == 64) d = TS_OBJECT_SHA256;
    else if (l == 128) d = TS_OBJECT_SHA512;
    else return false;
    char want[129];
    ts_object_hmac_hex(d, key, msg, strlen(msg), want);
    return strcasecmp(want, sig) == 0;
}

static int formpost_done(struct ts_object_req *s, const char *body, size_t len, struct ts_err *err)
{
    const char *ct = ts_http_header(s->req, "Content-Type");
    const char *b = ct ? strcasestr(ct, "boundary=") : NULL;
    if (!b) return ts_err_set_full(err, TS_EINVAL, 400, NULL, "FormPost: invalid boundary");
    b += 9;
    char *boundary = ts_pool_strdup(s->req->pool, b[0] == '"' ? b + 1 : b);
    char *q = strpbrk(boundary, "\";");
    if (q) *q = '\0';
    struct form_part *parts = ts_pool_alloc(s->req->pool, sizeof(*parts) * 64);
    int n = parse_form(s->req->pool, body, len, boundary, parts, 64);
    if (n < 0) return ts_err_set_full(err, TS_EINVAL, 400, NULL, "FormPost: invalid multipart body");
    const char *redirect = "", *mfs = NULL, *mfc = NULL, *expires = NULL, *sig = NULL;
    for (int i = 0; i < n; i++) {
        if (parts[i].filename || !parts[i].name) continue;
        const char *v = ts_pool_strndup(s->req->pool, parts[i].data, parts[i].len);
        if (strcmp(parts[i].name, "redirect") == 0) redirect = v;
        else if (strcmp(parts[i].name, "max_file_size") == 0) mfs = v;
        else if (strcmp(parts[i].name, "max_file_count") == 0) mfc = v;
        else if (strcmp(parts[i].name, "expires") == 0) expires = v;
        else if (strcmp(parts[i].name, "signature") == 0) sig = v;
    }
    int64_t exp = 0, maxsize = 0, maxcount = 0;
    if (!expires || ts_parse_int64(expires, &exp) < 0 || !mfs || ts_parse_int64(mfs, &maxsize) < 0 || !mfc ||
        ts_parse_int64(mfc, &maxcount) < 0)
        return ts_err_set_full(err, TS_EUNAUTH, 401, NULL, "FormPost: Invalid Signature");
    if ((double)exp < s->now) return ts_err_set_full(err, TS_EUNAUTH, 401, NULL, "FormPost: Form Expired");
    const char *path = s->object ? ts_pool_printf(s->req->pool, "/v1/%s/%s/%s", s->account, s->container, s->object)
                                 : ts_pool_printf(s->req->pool, "/v1/%s/%s", s->account, s->container);
    const char *msg = ts_pool_printf(s->req->pool, "%s\n%s\n%s\n%s\n%s", path, redirect, mfs, mfc, expires);
    json_t *am;
    ts_object_account_meta(s->svc, s->req->pool, s->account, &am);
    struct ts_object_container c;
    struct ts_err e2;
    bool ok = form_sig_ok(json_string_value(json_object_get(am, "X-Account-Meta-Temp-Url-Key")), msg, sig) ||
              form_sig_ok(json_string_value(json_object_get(am, "X-Account-Meta-Temp-Url-Key-2")), msg, sig);
    if (!ok && ts_object_db_container(s->svc, s->req->pool, s->account, s->container, &c, &e2) == 0)
        ok = form_sig_ok(json_string_value(json_object_get(c.meta, "X-Container-Meta-Temp-Url-Key")), msg, sig) ||
             form_sig_ok(json_string_value(json_object_get(c.meta, "X-Container-Meta-Temp-Url-Key-2")), msg, sig);
    if (!ok) return ts_err_set_full(err, TS_EUNAUTH, 401, NULL, "FormPost: Invalid Signature");
    int files = 0;
    const char *status = "201 Created", *message = "";
    for (int i = 0; i < n; i++) {
        if (!parts[i].filename || !*parts[i].filename) continue;
        if (++files > maxcount) {
            status = "400 Bad Request";
            message = "max file count exceeded";
            break;
        }
        if ((int64_t)parts[i].len > maxsize) {
            status = "400 Bad Request";
            message = "max_file_size exceeded";
            break;
        }
        const char *name = s->object ? ts_pool_printf(s->req->pool, "%s%s", s->object, parts[i].filename) : parts[i].filename;
        if (ts_object_name_check(name, strlen(name), TS_OBJECT_MAX_OBJECT_NAME, "Object", &e2) < 0) {
            status = "400 Bad Request";
            message = "invalid object name";
            break;
        }
        struct mem_src m = {parts[i].data, parts[i].len};
        char etag[33];
        if (ts_object_put_from(s->svc, s->account, s->container, name, parts[i].ctype, mem_read, &m, etag, &e2) < 0) {
            status = "400 Bad Request";
            message = e2.msg;
            break;
        }
    }
    if (*redirect) {
        ts_http_resp_headerf(s->resp, "Location", "%s%sstatus=%.3s&message=%s", redirect,
                             strchr(redirect, '?') ? "&" : "?", status, ts_url_encode(s->req->pool, message, false));
        ts_http_resp_body(s->resp, 303, "text/html; charset=UTF-8", "", 0);
        return 0;
    }
    char *html = ts_pool_printf(s->req->pool, "<html><body><p>Status: %s<br/>Message: %s</p></body></html>", status, message);
    ts_http_resp_body(s->resp, atoi(status), "text/html; charset=UTF-8", html, strlen(html));
    return 0;
}

int ts_object_formpost(struct ts_object_req *s, struct ts_err *err)
{
    (void)err;
    return want_body(s, FORM_MAX_BODY, formpost_done);
}
