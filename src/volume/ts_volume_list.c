/*
 * ts_volume_list.c: the volume detail list written straight into the response body.
 * GET /volumes/detail streams its one SELECT (ts_db_each: no result set, no copy per cell)
 * and renders each row as text while SQLite steps; the select list carries two flags per
 * row (has metadata, has attachments), so rows without either (most) need nothing else.
 * Where a row needs more (its metadata or attachments, or the general jansson view for
 * rows with image metadata) the renderer leaves a hole at that point of the body; after the
 * walk those few are loaded with one query each (IN lists of just those ids) and spliced
 * in. Output is byte for byte what the jansson views + json_dumps(JSON_COMPACT) give.
 * Also ts_volume_render_pre, the same row renderer over a loaded result (other callers).
 */
#include "volume/ts_volume_int.h"

#include <stdlib.h>
#include <string.h>

/* TS_VOLUME_COLS, in order; the streamed list adds has_metadata and has_attachments */
enum {
    VC_ID,
    VC_PROJECT_ID,
    VC_USER_ID,
    VC_NAME,
    VC_DESCRIPTION,
    VC_STATUS,
    VC_ATTACH_STATUS,
    VC_SIZE,
    VC_AZ,
    VC_TYPE_ID,
    VC_SNAPSHOT_ID,
    VC_SOURCE_VOLID,
    VC_IMAGE_ID,
    VC_BOOTABLE,
    VC_MULTIATTACH,
    VC_HOST,
    VC_BACKEND,
    VC_MIGRATION_STATUS,
    VC_CREATED_AT,
    VC_UPDATED_AT,
    VC_LAUNCHED_AT,
    VC_IMAGE_META,
    VC_ENCRYPTED,
    VC_NCOLS,
    VC_HAS_METADATA = VC_NCOLS,
    VC_HAS_ATTACHMENTS,
    VC_NCOLS_FLAGS
};

/* Appends without a call into the buffer code while there is room (most of a list page);
 * ts_buf_append grows it otherwise. The NUL terminator is restored at the end of each row. */
static inline void app(struct ts_buf *b, const char *s, size_t n)
{
    if (b->data && b->len + n < b->cap) {
        memcpy(b->data + b->len, s, n);
        b->len += n;
    } else {
        ts_buf_append(b, s, n);
    }
}
#define APPL(b, lit) app((b), (lit), sizeof(lit) - 1)

/* true when one of the 8 bytes of w is < 0x20, '"' or '\\' (SWAR: no branch per byte) */
static inline bool word_needs_escape(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    uint64_t lt20 = (w - ones * 0x20) & ~w;
    uint64_t q = w ^ (ones * '"'), bs = w ^ (ones * '\\');
    uint64_t eq = ((q - ones) & ~q) | ((bs - ones) & ~bs);
    return ((lt20 | eq) & highs) != 0;
}

/* The JSON string body of s (no quotes), escaped as jansson escapes (bytes >= 0x80 as they are:
 * stored text is valid UTF-8, checked when it came in). */
static void esc(struct ts_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s), i = 0, run = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (!word_needs_escape(w)) {
                i += 8;
                continue;
            }
        }
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        app(b, s + run, i - run);
        run = i + 1;
        char e[6] = {'\\', 0};
        size_t el = 2;
        switch (c) {
        case '"':
            e[1] = '"';
            break;
        case '\\':
            e[1] = '\\';
            break;
        case '\b':
            e[1] = 'b';
            break;
        case '\f':
            e[1] = 'f';
            break;
        case '\n':
            e[1] = 'n';
            break;
        case '\r':
            e[1] = 'r';
            break;
        case '\t':
            e[1] = 't';
            break;
        default:
            e[1] = 'u', e[2] = '0', e[3] = '0', e[4] = hex[c >> 4], e[5] = hex[c & 15];
            el = 6;
        }
        app(b, e, el);
        i++;
    }
    app(b, s + run, n - run);
}

/* ,"key": then the string or null (ts_json_set_str's value); keylit has its quotes */
#define PUT_STR(b, keylit, s)                                                                                \
    do {                                                                                                     \
        const char *v_ = (s);                                                                                \
        APPL(b, "," keylit ":");                                                                             \
        if (v_) {                                                                                            \
            app(b, "\"", 1);                                                                                 \
            esc(b, v_);                                                                                      \
            app(b, "\"", 1);                                                                                 \
        } else {                                                                                             \
            APPL(b, "null");                                                                                 \
        }                                                                                                    \
    } while (0)

static bool is_true_int(const char *v)
{
    return v && v[0] && !(v[0] == '0' && v[1] == 0);
}

static bool ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80) return false;
    return true;
}

/* What goes where a row's attachments / metadata go: the JSON of a loaded value, an empty
 * one, or (hole) nothing yet. */
enum part { PART_EMPTY, PART_JSON, PART_HOLE };

struct hole {
    size_t off;  /* where in the body */
    int kind;    /* 'a' attachments, 'm' metadata, 'i' image metadata, 'r' the whole row */
    char id[64]; /* volume id */
    char *text;  /* 'i': the stored image metadata (owned) */
};

struct holes {
    struct hole *v;
    int n, cap;
};

static void hole_add(struct holes *h, size_t off, int kind, const char *id, const char *text)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 16;
        h->v = ts_realloc(h->v, (size_t)h->cap * sizeof(*h->v));
    }
    struct hole *x = &h->v[h->n++];
    x->off = off;
    x->kind = kind;
    snprintf(x->id, sizeof(x->id), "%s", id);
    x->text = text ? ts_strdup(text) : NULL;
}

/* One volume in the detail view from its TS_VOLUME_COLS cells c. pa/pm: the attachments and
 * metadata (PART_JSON: ja/jm; PART_HOLE: a hole is recorded in holes). */
static void render_cells(struct ts_buf *b, const char *const *c, int mv, bool admin, const char *host,
                         const char *tn, enum part pa, json_t *ja, enum part pm, json_t *jm,
                         struct holes *holes)
{
    const char *id = c[VC_ID];
    APPL(b, "{\"id\":\"");
    esc(b, id);
    app(b, "\"", 1);
    PUT_STR(b, "\"name\"", c[VC_NAME]);
    PUT_STR(b, "\"description\"", c[VC_DESCRIPTION]);
    PUT_STR(b, "\"status\"", c[VC_STATUS]);
    APPL(b, ",\"size\":");
    const char *sz = c[VC_SIZE];
    char num[32];
    int nl =
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, (json_int_t)(sz ? strtoll(sz, NULL, 10) : 0));
    app(b, num, (size_t)nl);
    PUT_STR(b, "\"availability_zone\"", c[VC_AZ]);
    PUT_STR(b, "\"created_at\"", c[VC_CREATED_AT]);
    PUT_STR(b, "\"updated_at\"", c[VC_UPDATED_AT]);
    APPL(b, ",\"attachments\":");
    if (pa == PART_JSON)
        ts_volume_dump_json(b, ja);
    else if (pa == PART_HOLE)
        hole_add(holes, b->len, 'a', id, NULL);
    else
        APPL(b, "[]");
    if (is_true_int(c[VC_BOOTABLE]))
        APPL(b, ",\"bootable\":\"true\"");
    else
        APPL(b, ",\"bootable\":\"false\"");
    if (is_true_int(c[VC_ENCRYPTED]))
        APPL(b, ",\"encrypted\":true");
    else
        APPL(b, ",\"encrypted\":false");
    if (is_true_int(c[VC_MULTIATTACH]))
        APPL(b, ",\"multiattach\":true");
    else
        APPL(b, ",\"multiattach\":false");
    APPL(b, ",\"replication_status\":null,\"consistencygroup_id\":null");
    PUT_STR(b, "\"snapshot_id\"", c[VC_SNAPSHOT_ID]);
    PUT_STR(b, "\"source_volid\"", c[VC_SOURCE_VOLID]);
    PUT_STR(b, "\"user_id\"", c[VC_USER_ID]);
    PUT_STR(b, "\"os-vol-tenant-attr:tenant_id\"", c[VC_PROJECT_ID]);
    PUT_STR(b, "\"os-vol-mig-status-attr:migstat\"", c[VC_MIGRATION_STATUS]);
    APPL(b, ",\"os-vol-mig-status-attr:name_id\":null");
    if (admin) {
        PUT_STR(b, "\"os-vol-host-attr:host\"", c[VC_HOST]);
        PUT_STR(b, "\"migration_status\"", c[VC_MIGRATION_STATUS]);
    }
    PUT_STR(b, "\"volume_type\"", tn && tn[0] ? tn : NULL);
    APPL(b, ",\"metadata\":");
    if (pm == PART_JSON)
        ts_volume_dump_json(b, jm);
    else if (pm == PART_HOLE)
        hole_add(holes, b->len, 'm', id, NULL);
    else
        APPL(b, "{}");
    if (holes && c[VC_IMAGE_META]) hole_add(holes, b->len, 'i', id, c[VC_IMAGE_META]);
    if (mv >= 13) APPL(b, ",\"group_id\":null");
    if (mv >= 21) APPL(b, ",\"provider_id\":null");
    if (mv >= 48) APPL(b, ",\"shared_targets\":false,\"service_uuid\":null");
    if (mv >= 61 && admin) APPL(b, ",\"cluster_name\":null");
    if (mv >= 63) PUT_STR(b, "\"volume_type_id\"", c[VC_TYPE_ID]);
    if (mv >= 64) APPL(b, ",\"encryption_key_id\":null");
    if (mv >= 65) APPL(b, ",\"consumes_quota\":true");
    /* the self and bookmark links: http://<host>/v3/<project>/volumes/<id> */
    for (int k = 0; k < 2; k++) {
        if (k == 0)
            APPL(b, ",\"links\":[{\"rel\":\"self\",\"href\":\"http://");
        else
            APPL(b, "},{\"rel\":\"bookmark\",\"href\":\"http://");
        esc(b, host);
        APPL(b, "/v3/");
        esc(b, c[VC_PROJECT_ID]);
        APPL(b, "/volumes/");
        esc(b, id);
        app(b, "\"", 1);
    }
    APPL(b, "}]}");
    if (b->data) b->data[b->len] = 0;
}

/* The type name for a type id from the preloaded map; false when too long for the view. */
static bool type_name(json_t *types, const char *tid, const char **tn)
{
    *tn = tid ? json_string_value(json_object_get(types, tid)) : NULL;
    return !*tn || strlen(*tn) < 256;
}

static const char *req_host(struct ts_http_req *req)
{
    return req && ts_http_header(req, "Host") ? ts_http_header(req, "Host") : "localhost";
}

bool ts_volume_render_pre(struct ts_buf *b, struct ts_http_req *req, const struct ts_db_res *res, int r,
                          int mv, const struct ts_volume_preload *pre)
{
    if (!pre || !pre->types || !pre->metadata || !pre->attachments) return false;
    /* the columns are TS_VOLUME_COLS in order (checked at both ends, cheaply) */
    if (res->ncols < VC_NCOLS || strcmp(res->cols[VC_ID], "id") != 0 ||
        strcmp(res->cols[VC_ENCRYPTED], "encrypted") != 0)
        return false;
    const char *const *c = (const char *const *)res->cells + (size_t)r * (size_t)res->ncols;
    if (c[VC_IMAGE_META] || !c[VC_ID] || !c[VC_PROJECT_ID] || !c[VC_STATUS]) return false;
    const char *host = req_host(req);
    if (!ascii(host)) return false;
    json_t *ja = json_object_get(pre->attachments, c[VC_ID]), *jm = json_object_get(pre->metadata, c[VC_ID]);
    if ((!ja || !jm) && !pre->sparse) return false;
    const char *tn;
    if (!type_name(pre->types, c[VC_TYPE_ID], &tn)) return false;
    render_cells(b, c, mv, req && req->auth->is_admin, host, tn, ja ? PART_JSON : PART_EMPTY, ja,
                 jm ? PART_JSON : PART_EMPTY, jm, NULL);
    return true;
}

/* ---- the streamed detail list ------------------------------------------------------------- */

struct walk {
    struct ts_buf *body;
    int mv;
    bool admin, host_ok;
    const char *host;
    json_t *types;
    struct holes holes;
    int nrows;
    char last_id[256];
};

static int on_row(void *ctx, const char *const *cells, const size_t *lens, int ncols)
{
    (void)lens;
    struct walk *w = ctx;
    if (ncols < VC_NCOLS_FLAGS || !cells[VC_ID]) return -TS_EIO;
    if (w->nrows++) app(w->body, ",", 1);
    snprintf(w->last_id, sizeof(w->last_id), "%s", cells[VC_ID]);
    const char *tn;
    bool fast = w->host_ok && cells[VC_PROJECT_ID] && cells[VC_STATUS] &&
                strlen(cells[VC_ID]) < sizeof(((struct hole *)0)->id) &&
                type_name(w->types, cells[VC_TYPE_ID], &tn);
    if (!fast) {
        /* the general view, rendered after the walk */
        hole_add(&w->holes, w->body->len, 'r', cells[VC_ID], NULL);
        return 0;
    }
    render_cells(w->body, cells, w->mv, w->admin, w->host, tn,
                 is_true_int(cells[VC_HAS_ATTACHMENTS]) ? PART_HOLE : PART_EMPTY, NULL,
                 is_true_int(cells[VC_HAS_METADATA]) ? PART_HOLE : PART_EMPTY, NULL, &w->holes);
    return 0;
}

/* SELECT TS_VOLUME_COLS FROM volumes WHERE id IN (the row holes' ids) */
static struct ts_db_res *load_rows(struct ts_volume_svc *svc, const struct holes *h)
{
    struct ts_buf sql;
    ts_buf_init(&sql, 1 << 24);
    ts_buf_appends(&sql, "SELECT " TS_VOLUME_COLS " FROM volumes WHERE id IN (");
    struct ts_db_val *args = ts_calloc((size_t)h->n + 1, sizeof(*args));
    int n = 0;
    for (int i = 0; i < h->n; i++) {
        if (h->v[i].kind != 'r') continue;
        ts_buf_appends(&sql, n ? ", ?" : "?");
        args[n++] = TS_DB_S(h->v[i].id);
    }
    ts_buf_appends(&sql, ")");
    struct ts_db_res *res = NULL;
    if (n == 0 || ts_db_exec(svc->db, ts_buf_cstr(&sql), args, n, &res, NULL) != 0) res = NULL;
    free(args);
    ts_buf_free(&sql);
    return res;
}

/* Fills the holes: loads what they need and rebuilds body with it spliced in. */
static void fill_holes(struct ts_volume_svc *svc, struct ts_http_req *req, int mv, struct walk *w)
{
    struct holes *h = &w->holes;
    /* the ids whose metadata/attachments are needed, as a one-column result */
    static char id_col[] = "id";
    char *cols[] = {id_col};
    struct ts_db_res ids = {.nrows = 0, .ncols = 1, .cols = cols, .cells = NULL, .changes = 0};
    ids.cells = ts_calloc((size_t)h->n + 1, sizeof(char *));
    for (int i = 0; i < h->n; i++)
        ids.cells[ids.nrows++] = h->v[i].id;
    struct ts_volume_preload pre = {0};
    ts_volume_preload_load(svc, &ids, &pre);
    struct ts_db_res *rows = load_rows(svc, h);
    json_t *rows_by_id = rows ? json_object() : NULL;
    for (int k = 0; rows && k < rows->nrows; k++)
        json_object_set_new(rows_by_id, ts_db_res_get(rows, k, 0), json_integer(k));
    struct ts_buf out;
    ts_buf_init(&out, (size_t)1 << 40);
    size_t prev = 0;
    for (int i = 0; i < h->n; i++) {
        struct hole *x = &h->v[i];
        app(&out, w->body->data + prev, x->off - prev);
        prev = x->off;
        if (x->kind == 'a') {
            json_t *a = json_object_get(pre.attachments, x->id);
            if (a)
                ts_volume_dump_json(&out, a);
            else
                APPL(&out, "[]");
            continue;
        }
        if (x->kind == 'm') {
            json_t *m = json_object_get(pre.metadata, x->id);
            if (m)
                ts_volume_dump_json(&out, m);
            else
                APPL(&out, "{}");
            continue;
        }
        if (x->kind == 'i') { /* as the view: the stored object parsed and dumped */
            json_t *j = json_loads(x->text, 0, NULL);
            if (j) {
                APPL(&out, ",\"volume_image_metadata\":");
                ts_volume_dump_json(&out, j);
            }
            json_decref(j);
            continue;
        }
        json_t *rk = rows_by_id ? json_object_get(rows_by_id, x->id) : NULL;
        int r = rk ? (int)json_integer_value(rk) : -1;
        json_t *view = r >= 0 ? ts_volume_view_pre(svc, req, rows, r, mv, &pre) : NULL;
        if (view)
            ts_volume_dump_json(&out, view);
        else
            APPL(&out, "null"); /* deleted between the two queries */
        json_decref(view);
    }
    app(&out, w->body->data + prev, w->body->len - prev);
    ts_buf_cstr(&out);
    ts_buf_free(w->body);
    *w->body = out;
    json_decref(rows_by_id);
    ts_db_res_free(rows);
    ts_volume_preload_free(&pre);
    free(ids.cells);
}

int ts_volume_list_detail(struct ts_volume_svc *svc, struct ts_http_req *req, int mv, const char *from_where,
                          const struct ts_db_val *args, int nargs, struct ts_buf *body, int *nrows,
                          char *last_id, size_t last_len, struct ts_err *err)
{
    struct walk w = {.body = body, .mv = mv, .admin = req->auth->is_admin, .host = req_host(req)};
    w.host_ok = ascii(w.host);
    w.types = json_object();
    struct ts_db_res *t = NULL;
    if (ts_db_exec(svc->db, "SELECT id, name FROM volume_types", TS_DB_NOARGS, &t, NULL) == 0)
        for (int i = 0; i < t->nrows; i++)
            json_object_set_new(w.types, ts_db_res_get(t, i, 0), json_string(ts_db_res_get(t, i, 1)));
    ts_db_res_free(t);
    char *sql = ts_asprintf(
        "SELECT " TS_VOLUME_COLS ", CASE WHEN EXISTS (SELECT 1 FROM volume_metadata m WHERE m.volume_id = "
                                 "volumes.id) THEN 1 ELSE 0 END"
        " AS has_metadata, CASE WHEN EXISTS (SELECT 1 FROM attachments a WHERE a.volume_id = volumes.id AND"
        " a.attach_status = 'attached') THEN 1 ELSE 0 END AS has_attachments%s",
        from_where);
    /* room for a full page up front: ~1.2 KB a volume */
    ts_buf_append(body, "{\"volumes\":[", 12);
    int rc = ts_db_each(svc->db, sql, args, nargs, on_row, &w, err);
    free(sql);
    if (rc == 0 && w.holes.n > 0) fill_holes(svc, req, mv, &w);
    if (rc == 0) app(body, "]", 1);
    ts_buf_cstr(body);
    *nrows = w.nrows;
    snprintf(last_id, last_len, "%s", w.last_id);
    for (int i = 0; i < w.holes.n; i++)
        free(w.holes.v[i].text);
    free(w.holes.v);
    json_decref(w.types);
    return rc;
}
