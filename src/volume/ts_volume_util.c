/*
 * ts_volume_util.c: pure helpers shared by the volume API and backends: the
 * microversion header, sort and size parsing, status rules and a hole-preserving copy.
 * Nothing here touches the database or the bus, so it is unit tested directly.
 */
#include "volume/ts_volume_util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *skip_ws(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

int ts_volume_mv_parse(const char *header, int *minor, struct ts_err *err)
{
    *minor = TS_VOLUME_MV_MIN;
    if (!header || !*header) return 0;
    const char *p = header;
    while (*p) {
        p = skip_ws(p);
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n >= 7 && strncasecmp(p, "volume", 6) == 0 && (p[6] == ' ' || p[6] == '\t')) {
            char v[32];
            const char *q = skip_ws(p + 6);
            size_t vn = n - (size_t)(q - p);
            while (vn > 0 && (q[vn - 1] == ' ' || q[vn - 1] == '\t'))
                vn--;
            if (vn == 0 || vn >= sizeof(v)) goto bad;
            memcpy(v, q, vn);
            v[vn] = 0;
            if (strcasecmp(v, "latest") == 0) {
                *minor = TS_VOLUME_MV_MAX;
                return 0;
            }
            char *dot = strchr(v, '.');
            if (!dot || dot == v || !dot[1]) goto bad;
            for (char *c = v; *c; c++)
                if (c != dot && !isdigit((unsigned char)*c)) goto bad;
            if (dot - v > 4 || strlen(dot + 1) > 4) goto bad;
            long major = strtol(v, NULL, 10), mi = strtol(dot + 1, NULL, 10);
            if (major != 3 || mi < TS_VOLUME_MV_MIN || mi > TS_VOLUME_MV_MAX)
                return ts_err_set(err, TS_ENOTACCEPT,
                                  "Version %s is not supported by the API. Minimum is 3.0 "
                                  "and maximum is 3.%d.",
                                  v, TS_VOLUME_MV_MAX);
            *minor = (int)mi;
            return 0;
        }
        if (!end) break;
        p = end + 1;
    }
    return 0;
bad:
    return ts_err_set(err, TS_EINVAL, "Invalid API version request string %s", header);
}

int ts_volume_sort_parse(const char *sort, const char *sort_key, const char *sort_dir,
                         const char *const *allowed, const char *const *map_to, struct ts_volume_sort *out,
                         int max, struct ts_err *err)
{
    char keys[512] = "", dirs[256] = "";
    int n = 0;
    if (sort && *sort) {
        if (sort_key || sort_dir)
            return ts_err_set(err, TS_EINVAL,
                              "The 'sort_key' and 'sort_dir' parameters are deprecated and "
                              "cannot be used with the 'sort' parameter.");
        snprintf(keys, sizeof(keys), "%s", sort);
    } else if (sort_key && *sort_key) {
        snprintf(keys, sizeof(keys), "%s", sort_key);
        if (sort_dir) snprintf(dirs, sizeof(dirs), "%s", sort_dir);
    }
    if (!keys[0]) {
        if (max < 2) return 0;
        snprintf(out[0].key, sizeof(out[0].key), "created_at");
        out[0].desc = !(sort_dir && strcasecmp(sort_dir, "asc") == 0);
        snprintf(out[1].key, sizeof(out[1].key), "id");
        out[1].desc = out[0].desc;
        return 2;
    }
    char *save1 = NULL, *save2 = NULL;
    char *dir_tok = dirs[0] ? strtok_r(dirs, ",", &save2) : NULL;
    for (char *tok = strtok_r(keys, ",", &save1); tok; tok = strtok_r(NULL, ",", &save1)) {
        while (*tok == ' ')
            tok++;
        char *colon = strchr(tok, ':');
        const char *dir = NULL;
        if (colon) {
            *colon = 0;
            dir = colon + 1;
        } else if (dir_tok) {
            dir = dir_tok;
        }
        if (dir_tok) dir_tok = strtok_r(NULL, ",", &save2);
        bool desc = true;
        if (dir && *dir) {
            if (strcasecmp(dir, "asc") == 0)
                desc = false;
            else if (strcasecmp(dir, "desc") == 0)
                desc = true;
            else
                return ts_err_set(err, TS_EINVAL, "Invalid sort direction: %s", dir);
        }
        int found = -1;
        for (int i = 0; allowed[i]; i++)
            if (strcmp(allowed[i], tok) == 0) found = i;
        if (found < 0) return ts_err_set(err, TS_EINVAL, "Invalid sort key: %s", tok);
        if (n >= max) return ts_err_set(err, TS_EINVAL, "Too many sort keys");
        snprintf(out[n].key, sizeof(out[n].key), "%s", map_to ? map_to[found] : allowed[found]);
        out[n].desc = desc;
        n++;
    }
    /* a stable order for markers: id last */
    bool has_id = false;
    for (int i = 0; i < n; i++)
        if (strcmp(out[i].key, "id") == 0) has_id = true;
    if (!has_id && n < max) {
        snprintf(out[n].key, sizeof(out[n].key), "id");
        out[n].desc = n > 0 ? out[n - 1].desc : true;
        n++;
    }
    return n;
}

int ts_volume_size_parse(const char *text, int64_t *out, struct ts_err *err)
{
    int64_t v;
    if (!text || ts_parse_int64(text, &v) != 0 || v <= 0 || v > 2147483647LL)
        return ts_err_set(err, TS_EINVAL,
                          "Invalid input received: 'size' parameter must be an integer "
                          "greater than zero and no more than 2147483647 (got %s)",
                          text ? text : "null");
    *out = v;
    return 0;
}

bool ts_volume_status_deletable(const char *status)
{
    static const char *const ok[] = {"available",       "error",          "error_restoring",
                                     "error_extending", "error_managing", NULL};
    for (int i = 0; ok[i]; i++)
        if (ts_streq(status, ok[i])) return true;
    return false;
}

bool ts_volume_status_valid(const char *status)
{
    static const char *const ok[] = {"available",        "error",
                                     "creating",         "deleting",
                                     "in-use",           "attaching",
                                     "detaching",        "error_deleting",
                                     "maintenance",      "reserved",
                                     "extending",        "error_extending",
                                     "downloading",      "uploading",
                                     "retyping",         "backing-up",
                                     "restoring-backup", "error_restoring",
                                     "reverting",        "awaiting-transfer",
                                     "error_managing",   NULL};
    for (int i = 0; ok[i]; i++)
        if (ts_streq(status, ok[i])) return true;
    return false;
}

static bool all_zero(const char *p, size_t n)
{
    static const char zero[4096];
    while (n >= sizeof(zero)) {
        if (memcmp(p, zero, sizeof(zero))) return false;
        p += sizeof(zero);
        n -= sizeof(zero);
    }
    return n == 0 || memcmp(p, zero, n) == 0;
}

int ts_volume_sparse_copy(int src, int dst, int64_t len, struct ts_err *err)
{
    const size_t bs = 1 << 20;
    char *buf = ts_malloc(bs);
    int rc = 0;
    int64_t off = 0;
    while (off < len) {
        size_t want = (size_t)((len - off) < (int64_t)bs ? (len - off) : (int64_t)bs);
        ssize_t got = pread(src, buf, want, off);
        if (got < 0) {
            if (errno == EINTR) continue;
            rc = ts_err_set(err, TS_EIO, "read failed: %s", strerror(errno));
            goto out;
        }
        if (got == 0) break; /* short source: the rest is a hole */
        if (!all_zero(buf, (size_t)got)) {
            size_t done = 0;
            while (done < (size_t)got) {
                ssize_t w = pwrite(dst, buf + done, (size_t)got - done, off + (off_t)done);
                if (w < 0) {
                    if (errno == EINTR) continue;
                    rc = ts_err_set(err, TS_EIO, "write failed: %s", strerror(errno));
                    goto out;
                }
                done += (size_t)w;
            }
        }
        off += got;
    }
    if (ftruncate(dst, len) != 0) rc = ts_err_set(err, TS_EIO, "truncate failed: %s", strerror(errno));
out:
    free(buf);
    return rc;
}

int ts_volume_check_text(const char *field, const char *value, size_t max, struct ts_err *err)
{
    if (!value) return 0;
    size_t n = strlen(value);
    if (n > max)
        return ts_err_set(err, TS_EINVAL, "Invalid input received: %s has %zu characters, more than %zu.",
                          field, n, max);
    if (!ts_utf8_valid(value, n))
        return ts_err_set(err, TS_EINVAL, "Invalid input received: %s is not UTF-8.", field);
    return 0;
}
