/*
 * ts_image_util.c: pure helpers of the image service (no HTTP, no SQL): qcow2 header
 * parsing, Glance's JSON-patch dialect applied to the API view of an image, validation
 * of that view against the image schema, list filter operators, sort and Range parsing.
 * See ts_image_util.h for the contracts.
 */
#include "image/ts_image_util.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const disk_formats[] = {"ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw",
                                           "qcow2", "vdi", "iso", "ploop", NULL};
static const char *const container_formats[] = {"ami", "ari", "aki", "bare", "ovf", "ova", "docker",
                                                "compressed", NULL};
static const char *const readonly_attrs[] = {"created_at", "updated_at", "status", "checksum", "size",
                                             "virtual_size", "direct_url", "self", "file", "schema",
                                             "id", "os_hash_algo", "os_hash_value", "stores", NULL};
static const char *const reserved_attrs[] = {"location", "deleted", "deleted_at", NULL};
static const char *const base_attrs[] = {"name", "visibility", "protected", "os_hidden", "container_format",
                                         "disk_format", "min_disk", "min_ram", "tags", "owner",
                                         "locations", NULL};

static bool in_list(const char *const *list, const char *s)
{
    if (!s) return false;
    for (int i = 0; list[i]; i++)
        if (strcmp(list[i], s) == 0) return true;
    return false;
}

int ts_image_qcow2_virtual_size(const unsigned char *hdr, size_t len, uint64_t *out)
{
    if (!hdr || len < 32) return -TS_EINVAL;
    if (hdr[0] != 'Q' || hdr[1] != 'F' || hdr[2] != 'I' || hdr[3] != 0xfb) return -TS_EINVAL;
    uint32_t version = ((uint32_t)hdr[4] << 24) | ((uint32_t)hdr[5] << 16) | ((uint32_t)hdr[6] << 8) | hdr[7];
    if (version < 1 || version > 3) return -TS_EINVAL;
    uint64_t v = 0;
    for (int i = 24; i < 32; i++) v = (v << 8) | hdr[i];
    if (v > (uint64_t)INT64_MAX) return -TS_EINVAL;
    *out = v;
    return 0;
}

bool ts_image_disk_format_valid(const char *s) { return in_list(disk_formats, s); }
bool ts_image_container_format_valid(const char *s) { return in_list(container_formats, s); }
bool ts_image_attr_readonly(const char *name) { return in_list(readonly_attrs, name); }
bool ts_image_attr_base(const char *name) { return in_list(base_attrs, name); }

bool ts_image_attr_reserved(const char *name)
{
    return in_list(reserved_attrs, name) || ts_startswith(name, "os_glance");
}

static int bad_schema(struct ts_err *err, const char *key, const char *why)
{
    return ts_err_set(err, TS_EINVAL, "Provided object does not match schema 'image': %s: %s", key, why);
}

static int check_enum(const json_t *v, const char *key, bool (*valid)(const char *), struct ts_err *err)
{
    if (json_is_null(v)) return 0;
    if (!json_is_string(v) || !valid(json_string_value(v)))
        return ts_err_set(err, TS_EINVAL, "Invalid value '%s' for %s", json_is_string(v) ? json_string_value(v) : "?",
                          key);
    return 0;
}

static bool visibility_valid(const char *s)
{
    return ts_streq(s, "public") || ts_streq(s, "private") || ts_streq(s, "shared") || ts_streq(s, "community");
}

int ts_image_view_validate(const json_t *view, bool check_readonly, struct ts_err *err)
{
    if (!json_is_object(view)) return ts_err_set(err, TS_EINVAL, "Body must be a JSON object.");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)view, key, v) {
        if (check_readonly && (ts_image_attr_readonly(key) && !ts_streq(key, "id")))
            return ts_err_set(err, TS_EFORBIDDEN, "Attribute '%s' is read-only.", key);
        if (check_readonly && ts_image_attr_reserved(key))
            return ts_err_set(err, TS_EFORBIDDEN, "Attribute '%s' is reserved.", key);
        if (ts_streq(key, "id")) {
            if (!json_is_string(v) || !ts_uuid_valid(json_string_value(v)) || strlen(json_string_value(v)) != 36)
                return bad_schema(err, key, "not a valid UUID");
        } else if (ts_streq(key, "name") || ts_streq(key, "owner")) {
            if (!json_is_null(v) && !json_is_string(v)) return bad_schema(err, key, "is not of type 'null', 'string'");
            if (json_is_string(v) && json_string_length(v) > 255) return bad_schema(err, key, "is too long");
        } else if (ts_streq(key, "visibility")) {
            if (!json_is_string(v) || !visibility_valid(json_string_value(v)))
                return bad_schema(err, key, "is not one of ['community', 'public', 'private', 'shared']");
        } else if (ts_streq(key, "protected") || ts_streq(key, "os_hidden")) {
            if (!json_is_boolean(v)) return bad_schema(err, key, "is not of type 'boolean'");
        } else if (ts_streq(key, "disk_format")) {
            int rc = check_enum(v, key, ts_image_disk_format_valid, err);
            if (rc) return rc;
        } else if (ts_streq(key, "container_format")) {
            int rc = check_enum(v, key, ts_image_container_format_valid, err);
            if (rc) return rc;
        } else if (ts_streq(key, "min_disk") || ts_streq(key, "min_ram")) {
            if (!json_is_integer(v)) return bad_schema(err, key, "is not of type 'integer'");
            if (json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX)
                return ts_err_set(err, TS_EINVAL, "%s: Cannot be a negative value", key);
        } else if (ts_streq(key, "tags")) {
            if (!json_is_array(v)) return bad_schema(err, key, "is not of type 'array'");
            if (json_array_size(v) > 128) return ts_err_set(err, TS_ETOOBIG, "Maximum number of tags exceeded");
            size_t i;
            json_t *t;
            json_array_foreach(v, i, t) {
                if (!json_is_string(t)) return bad_schema(err, key, "items must be strings");
                if (json_string_length(t) > 255) return bad_schema(err, key, "tag is too long");
                if (json_string_length(t) == 0) return bad_schema(err, key, "tag is empty");
            }
        } else if (ts_streq(key, "locations")) {
            return ts_err_set(err, TS_EFORBIDDEN, "It's not allowed to update locations if locations are invisible.");
        } else if (ts_image_attr_readonly(key)) {
            continue;   /* server-set attributes of a stored view */
        } else {
            if (strlen(key) > 255)
                return ts_err_set(err, TS_EINVAL, "Custom property should not be greater than 255 characters.");
            if (!json_is_string(v)) return bad_schema(err, key, "is not of type 'string'");
            if (json_string_length(v) > 65535) return bad_schema(err, key, "is too long");
            if (ts_image_attr_reserved(key) && check_readonly)
                return ts_err_set(err, TS_EFORBIDDEN, "Attribute '%s' is reserved.", key);
        }
    }
    return 0;
}

/* ---- JSON patch ---------------------------------------------------------------------- */

/* Glance's restricted JSON pointer: "/name" -> "name" (~1 = '/', ~0 = '~'), one level only
 * (no attribute of ours allows deeper paths). *out is malloc'd. */
static int decode_pointer(const char *p, char **out, struct ts_err *err)
{
    if (!p || p[0] != '/') return ts_err_set(err, TS_EINVAL, "Pointer `%s` does not start with \"/\".", p ? p : "");
    size_t n = strlen(p);
    if (n > 1 && p[n - 1] == '/') return ts_err_set(err, TS_EINVAL, "Pointer `%s` end with \"/\".", p);
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '~' && (i + 1 >= n || (p[i + 1] != '0' && p[i + 1] != '1')))
            return ts_err_set(err, TS_EINVAL, "Pointer `%s` contains \"~\" not part of a recognized escape sequence.",
                              p);
    }
    if (strchr(p + 1, '/'))
        return ts_err_set(err, TS_EINVAL, "Invalid JSON pointer for this resource: '%s'", p);
    char *s = ts_malloc(n + 1);
    size_t j = 0;
    for (size_t i = 1; i < n; i++) {
        if (p[i] == '~') {
            s[j++] = p[i + 1] == '1' ? '/' : '~';
            i++;
        } else {
            s[j++] = p[i];
        }
    }
    s[j] = '\0';
    /* Glance strips whitespace around each token */
    char *b = s;
    while (*b && isspace((unsigned char)*b)) b++;
    char *e = b + strlen(b);
    while (e > b && isspace((unsigned char)e[-1])) *--e = '\0';
    if (*b == '\0') {
        free(s);
        return ts_err_set(err, TS_EINVAL, "Pointer `%s` does not contains valid token.", p);
    }
    memmove(s, b, strlen(b) + 1);
    *out = s;
    return 0;
}

int ts_image_patch_apply(json_t *view, const json_t *ops, int draft, struct ts_err *err)
{
    if (!json_is_object(view)) return ts_err_set(err, TS_EINVAL, "Bad image");
    if (!json_is_array(ops)) return ts_err_set(err, TS_EINVAL, "Request body must be a JSON array of operation objects.");
    size_t i;
    json_t *op_obj;
    int rc = 0;
    json_array_foreach(ops, i, op_obj) {
        char *path = NULL;
        const char *op = NULL, *ptr = NULL;
        if (!json_is_object(op_obj)) return ts_err_set(err, TS_EINVAL, "Operations must be JSON objects.");
        if (draft == 4) {
            static const char *const names[] = {"add", "remove", "replace"};
            for (int k = 0; k < 3; k++) {
                if (json_object_get(op_obj, names[k])) {
                    if (op)
                        return ts_err_set(err, TS_EINVAL, "Operation objects must contain only one member named "
                                                          "\"add\", \"remove\", or \"replace\".");
                    op = names[k];
                }
            }
            if (!op)
                return ts_err_set(err, TS_EINVAL, "Operation objects must contain exactly one member named \"add\", "
                                                  "\"remove\", or \"replace\".");
            ptr = json_string_value(json_object_get(op_obj, op));
        } else {
            const json_t *o = json_object_get(op_obj, "op");
            if (!o)
                return ts_err_set(err, TS_EINVAL, "Unable to find `op` in JSON Schema change. It must be one of "
                                                  "the following: add, remove, replace.");
            op = json_string_value(o);
            if (!op || (!ts_streq(op, "add") && !ts_streq(op, "remove") && !ts_streq(op, "replace")))
                return ts_err_set(err, TS_EINVAL, "Invalid operation: `%s`. It must be one of the following: add, "
                                                  "remove, replace.", op ? op : "?");
            const json_t *p = json_object_get(op_obj, "path");
            if (!p) return ts_err_set(err, TS_EINVAL, "Unable to find 'path' in JSON Schema change");
            ptr = json_string_value(p);
        }
        if (!ptr) return ts_err_set(err, TS_EINVAL, "Pointer must be a string.");
        rc = decode_pointer(ptr, &path, err);
        if (rc) return rc;
        json_t *value = json_object_get(op_obj, "value");
        if (ts_image_attr_readonly(path)) {
            rc = ts_err_set(err, TS_EFORBIDDEN, "Attribute '%s' is read-only.", path);
            goto next;
        }
        if (ts_image_attr_reserved(path)) {
            rc = ts_err_set(err, TS_EFORBIDDEN, "Attribute '%s' is reserved.", path);
            goto next;
        }
        bool base = ts_image_attr_base(path);
        bool exists = json_object_get(view, path) != NULL;
        if (ts_streq(op, "remove")) {
            if (base) rc = ts_err_set(err, TS_EFORBIDDEN, "Property %s may not be removed.", path);
            else if (!exists) rc = ts_err_set(err, TS_ECONFLICT, "Property %s does not exist.", path);
            else json_object_del(view, path);
            goto next;
        }
        if (!value) {
            rc = ts_err_set(err, TS_EINVAL, "Operation \"%s\" requires a member named \"value\".", op);
            goto next;
        }
        /* validate the single change the way Glance does (schema of {path: value}) */
        json_t *partial = json_object();
        json_object_set(partial, path, value);
        rc = ts_image_view_validate(partial, false, err);
        json_decref(partial);
        if (rc) goto next;
        if (ts_streq(op, "replace") && !base && !exists) {
            rc = ts_err_set(err, TS_ECONFLICT, "Property %s does not exist.", path);
            goto next;
        }
        if (ts_streq(op, "add") && draft == 4 && (exists || base)) {
            rc = ts_err_set(err, TS_ECONFLICT, "Property %s already present.", path);
            goto next;
        }
        json_object_set(view, path, value);
    next:
        free(path);
        if (rc) return rc;
    }
    return ts_image_view_validate(view, false, err);
}

/* ---- list parameters ------------------------------------------------------------------ */

int ts_image_filter_in(struct ts_pool *pool, const char *v, const char ***out, struct ts_err *err)
{
    if (!v) return ts_err_set(err, TS_EINVAL, "Missing filter value");
    if (!ts_startswith(v, "in:")) {
        const char **arr = ts_pool_alloc(pool, sizeof(char *));
        arr[0] = ts_pool_strdup(pool, v);
        *out = arr;
        return 1;
    }
    const char *p = v + 3;
    size_t cap = 8, n = 0;
    const char **arr = ts_pool_alloc(pool, cap * sizeof(char *));
    struct ts_buf cur;
    ts_buf_init(&cur, 65536);
    for (;;) {
        ts_buf_reset(&cur);
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (ts_buf_append(&cur, p, 1)) goto bad;
                p++;
            }
            if (*p != '"') goto bad;
            p++;
            if (*p && *p != ',') goto bad;
        } else {
            while (*p && *p != ',') {
                if (ts_buf_append(&cur, p, 1)) goto bad;
                p++;
            }
        }
        if (n == cap) {
            const char **bigger = ts_pool_alloc(pool, cap * 2 * sizeof(char *));
            memcpy(bigger, arr, cap * sizeof(char *));
            arr = bigger;
            cap *= 2;
        }
        arr[n++] = ts_pool_strndup(pool, cur.data ? cur.data : "", cur.len);
        if (n > 1000) goto bad;
        if (*p == ',') {
            p++;
            continue;
        }
        break;
    }
    ts_buf_free(&cur);
    *out = arr;
    return (int)n;
bad:
    ts_buf_free(&cur);
    return ts_err_set(err, TS_EINVAL, "Invalid filter value %s. There is no comma before opening quotation mark.", v);
}

int ts_image_filter_time(const char *v, const char **sql_op, double *t, struct ts_err *err)
{
    static const struct { const char *name, *sql; } ops[] = {
        {"gt", ">"}, {"gte", ">="}, {"lt", "<"}, {"lte", "<="}, {"eq", "="}, {"neq", "<>"},
    };
    if (!v) return ts_err_set(err, TS_EINVAL, "Missing time filter");
    const char *colon = strchr(v, ':');
    const char *when = v;
    *sql_op = "=";
    /* an ISO time contains ':' too: an operator is letters only before the first ':' */
    if (colon && colon - v <= 3) {
        bool letters = true;
        for (const char *q = v; q < colon; q++)
            if (!isalpha((unsigned char)*q)) letters = false;
        if (letters) {
            size_t n = (size_t)(colon - v);
            bool found = false;
            for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++) {
                if (strlen(ops[k].name) == n && strncmp(ops[k].name, v, n) == 0) {
                    *sql_op = ops[k].sql;
                    found = true;
                }
            }
            if (!found) return ts_err_set(err, TS_EINVAL, "Invalid operator specified: %.*s", (int)n, v);
            when = colon + 1;
        }
    }
    if (ts_time_parse(when, t) != 0) return ts_err_set(err, TS_EINVAL, "Unable to parse datetime string: %s", when);
    return 0;
}

static const char *sort_key_valid(const char *k)
{
    static const char *const keys[] = {"name", "status", "container_format", "disk_format", "size", "id",
                                       "created_at", "updated_at", NULL};
    for (int i = 0; keys[i]; i++)
        if (ts_streq(keys[i], k)) return keys[i];
    return NULL;
}

static int sort_dir_parse(const char *d, bool *desc, struct ts_err *err)
{
    if (ts_streq(d, "asc")) *desc = false;
    else if (ts_streq(d, "desc")) *desc = true;
    else return ts_err_set(err, TS_EINVAL, "Invalid sort direction: %s", d);
    return 0;
}

static char *strip(char *s)
{
    while (*s && isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
    return s;
}

#define SORT_KEYS_ERR "It must be one of the following: name, status, container_format, disk_format, size, id, " \
                      "created_at, updated_at."

int ts_image_sort_parse(const char *sort, const char *const *sort_keys, int n_keys, const char *const *sort_dirs,
                        int n_dirs, struct ts_image_sort *out, struct ts_err *err)
{
    memset(out, 0, sizeof(*out));
    if (sort) {
        if (n_keys > 0 || n_dirs > 0) return ts_err_set(err, TS_EINVAL, "Old and new sorting syntax cannot be combined");
        char *copy = ts_strdup(sort);
        char *save = NULL;
        int rc = 0;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            char *dir = strchr(tok, ':');
            if (dir) *dir++ = '\0';
            char *key = strip(tok);
            const char *k = sort_key_valid(key);
            if (!k) {
                rc = ts_err_set(err, TS_EINVAL, "Invalid sort key: %s. " SORT_KEYS_ERR, key);
                break;
            }
            if (out->n >= TS_IMAGE_SORT_MAX) {
                rc = ts_err_set(err, TS_EINVAL, "Too many sort keys");
                break;
            }
            bool desc = true;
            if (dir && *strip(dir) && (rc = sort_dir_parse(strip(dir), &desc, err)) != 0) break;
            out->keys[out->n] = k;
            out->desc[out->n++] = desc;
        }
        free(copy);
        if (rc) return rc;
        if (out->n == 0) return ts_err_set(err, TS_EINVAL, "Invalid sort key: . " SORT_KEYS_ERR);
        return 0;
    }
    if (n_keys > TS_IMAGE_SORT_MAX) return ts_err_set(err, TS_EINVAL, "Too many sort keys");
    bool dirs[TS_IMAGE_SORT_MAX] = {0};
    if (n_dirs > TS_IMAGE_SORT_MAX) return ts_err_set(err, TS_EINVAL, "Too many sort directions");
    for (int i = 0; i < n_dirs; i++) {
        char *d = ts_strdup(sort_dirs[i]);
        int rc = sort_dir_parse(strip(d), &dirs[i], err);
        free(d);
        if (rc) return rc;
    }
    if (n_dirs > 1 && n_dirs != n_keys)
        return ts_err_set(err, TS_EINVAL, "Number of sort dirs does not match the number of sort keys");
    for (int i = 0; i < n_keys; i++) {
        char *kcopy = ts_strdup(sort_keys[i]);
        const char *k = sort_key_valid(strip(kcopy));
        if (!k) {
            int rc = ts_err_set(err, TS_EINVAL, "Invalid sort key: %s. " SORT_KEYS_ERR, strip(kcopy));
            free(kcopy);
            return rc;
        }
        free(kcopy);
        out->keys[i] = k;
        out->desc[i] = n_dirs == 0 ? true : (n_dirs == 1 ? dirs[0] : dirs[i]);
    }
    out->n = n_keys;
    if (out->n == 0) {
        out->keys[0] = "created_at";
        out->desc[0] = n_dirs == 1 ? dirs[0] : true;
        out->n = 1;
    }
    return 0;
}

static int parse_u64(const char *s, size_t n, uint64_t *out)
{
    if (n == 0 || n > 19) return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i])) return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

int ts_image_range_parse(const char *h, uint64_t size, uint64_t *off, uint64_t *len)
{
    if (!h) return 1;
    while (*h == ' ') h++;
    if (!ts_startswith(h, "bytes=")) return 1;
    const char *spec = h + 6;
    if (strchr(spec, ',')) return 1;
    const char *dash = strchr(spec, '-');
    if (!dash) return -TS_EINVAL;
    const char *end = spec + strlen(spec);
    while (end > dash + 1 && end[-1] == ' ') end--;
    uint64_t a = 0, b = 0;
    bool has_a = dash > spec, has_b = end > dash + 1;
    if (has_a && parse_u64(spec, (size_t)(dash - spec), &a)) return -TS_EINVAL;
    if (has_b && parse_u64(dash + 1, (size_t)(end - dash - 1), &b)) return -TS_EINVAL;
    if (!has_a && !has_b) return -TS_EINVAL;
    if (!has_a) {   /* suffix: the last b bytes */
        if (b == 0 || size == 0) return -TS_ERANGE;
        if (b > size) b = size;
        *off = size - b;
        *len = b;
        return 0;
    }
    if (has_b && b < a) return -TS_EINVAL;
    if (a >= size) return -TS_ERANGE;
    uint64_t last = has_b && b < size ? b : size - 1;
    *off = a;
    *len = last - a + 1;
    return 0;
}

/* ---- stores -------------------------------------------------------------------------- */

int ts_image_size_parse(const char *s, uint64_t *out)
{
    if (!s) return -TS_EINVAL;
    while (*s == ' ') s++;
    if (!isdigit((unsigned char)*s)) return -TS_EINVAL;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) return -TS_EINVAL;
    unsigned shift = 0;
    switch (toupper((unsigned char)*end)) {
    case 'K': shift = 10; end++; break;
    case 'M': shift = 20; end++; break;
    case 'G': shift = 30; end++; break;
    case 'T': shift = 40; end++; break;
    default: break;
    }
    if (shift && (*end == 'i' || *end == 'I')) {
        end++;
        if (*end != 'B' && *end != 'b') return -TS_EINVAL;
    }
    if (*end == 'B' || *end == 'b') end++;
    while (*end == ' ') end++;
    if (*end) return -TS_EINVAL;
    if (v == 0 || (shift && v > (UINT64_MAX >> shift))) return -TS_EINVAL;
    *out = (uint64_t)v << shift;
    return 0;
}

int ts_image_stores_parse(const char *stores, const char *default_store, bool *file, bool *swift,
                          struct ts_err *err)
{
    *file = true;
    *swift = false;
    if (!default_store || !*default_store) default_store = "file";
    if (strcmp(default_store, "swift") == 0) *swift = true;
    else if (strcmp(default_store, "file") != 0)
        return ts_err_set(err, TS_EINVAL, "[image] default_store = %s: unknown store (file or swift)", default_store);
    const char *p = stores ? stores : "";
    while (*p) {
        while (*p == ',' || *p == ' ') p++;
        const char *e = p;
        while (*e && *e != ',' && *e != ' ') e++;
        size_t n = (size_t)(e - p);
        if (n == 5 && strncmp(p, "swift", 5) == 0) *swift = true;
        else if (n == 4 && strncmp(p, "file", 4) == 0) *file = true;
        else if (n) return ts_err_set(err, TS_EINVAL, "[image] stores: unknown store '%.*s' (file or swift)", (int)n, p);
        p = e;
    }
    return 0;
}

int ts_image_token_parse(const char *body, size_t len, char *project_id, size_t cap, double *expires_at)
{
    int rc = -TS_EINVAL;
    json_t *j = body ? json_loadb(body, len, 0, NULL) : NULL;
    json_t *tok = json_object_get(j, "token");
    const char *pid = json_string_value(json_object_get(json_object_get(tok, "project"), "id"));
    const char *exp = json_string_value(json_object_get(tok, "expires_at"));
    double t = 0;
    if (!pid || !*pid || strlen(pid) >= cap || !exp || ts_time_parse(exp, &t) != 0) goto out;
    for (const char *c = pid; *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_') goto out;
    snprintf(project_id, cap, "%s", pid);
    *expires_at = t;
    rc = 0;
out:
    json_decref(j);
    return rc;
}

bool ts_image_token_stale(double now, double issued_at, double expires_at)
{
    double life = expires_at - issued_at;
    double margin = life / 4;
    if (margin < 300) margin = 300;
    if (margin > life / 2) margin = life / 2;   /* short-lived tokens: still use half */
    return now >= expires_at - margin;
}

bool ts_image_etag_match(const char *etag, const char *md5_hex)
{
    if (!etag || !md5_hex) return false;
    size_t n = strlen(etag);
    if (n >= 2 && etag[0] == '"' && etag[n - 1] == '"') {
        etag++;
        n -= 2;
    }
    return n == strlen(md5_hex) && n > 0 && strncasecmp(etag, md5_hex, n) == 0;
}

int ts_image_segment_name(const char *id, int n, char *out, size_t cap)
{
    if (!id || n < 1) return -TS_EINVAL;
    int w = snprintf(out, cap, "%s-%05d", id, n);
    return w < 0 || (size_t)w >= cap ? -TS_EINVAL : 0;
}
