/*
 * ts_object_api.h: what the object service's HTTP files share: the per-request context,
 * authorization, metadata collection and the handlers split across files.
 */
#ifndef TS_OBJECT_API_H
#define TS_OBJECT_API_H

#include "object/ts_object_int.h"

struct ts_object_req {
    struct ts_http_req *req;
    struct ts_http_resp *resp;
    struct ts_object_svc *svc;
    const char *account;     /* decoded "AUTH_<project>" */
    const char *container;   /* NULL at account level */
    const char *object;      /* NULL at account/container level */
    double now;
    bool owner;              /* operator of the account or reseller admin */
    bool tempurl_ok;         /* authorized by a valid temp URL signature */
};

enum ts_object_op {
    TS_OBJECT_OP_ACCOUNT_READ,
    TS_OBJECT_OP_ACCOUNT_WRITE,
    TS_OBJECT_OP_CONTAINER_READ,
    TS_OBJECT_OP_CONTAINER_WRITE,
    TS_OBJECT_OP_OBJECT_READ,
    TS_OBJECT_OP_OBJECT_WRITE,
};

/* 0 when the caller may do op on s's path; else 401 (anonymous) or 403 with err set. */
int ts_object_authorize(struct ts_object_req *s, enum ts_object_op op, struct ts_err *err);
/* Sets err to code/status with an empty message (Swift's short HTML body) and returns -code. */
int ts_object_fail(struct ts_err *err, int code, int status);
/* Collects X-<kind>-Meta-* (checked against Swift's limits), X-Remove-<kind>-Meta-* (as
 * ""), the extra headers and rm_extra pairs {"x-remove-foo", "X-Foo", ..., NULL, NULL}.
 * *out is pool-owned. */
int ts_object_collect_meta(struct ts_object_req *s, const char *kind, const char *const *extra,
                           const char *const *rm_extra, json_t **out, struct ts_err *err);
void ts_object_meta_headers(struct ts_http_resp *resp, json_t *meta, bool owner);
void ts_object_cors(struct ts_object_req *s, json_t *cmeta);
/* The account's metadata (pool-owned, {} when the account has none). */
int ts_object_account_meta(struct ts_object_svc *svc, struct ts_pool *pool, const char *acct, json_t **out);

/* ts_object_api_obj.c */
int ts_object_object(struct ts_object_req *s, struct ts_err *err);
/* Writes a blob from a reader of the given pieces... (used by copy and extract) */
/* ts_object_bulk.c */
int ts_object_bulk_delete(struct ts_object_req *s, struct ts_err *err);
int ts_object_extract(struct ts_object_req *s, struct ts_err *err);
int ts_object_formpost(struct ts_object_req *s, struct ts_err *err);
/* Stores data from read() as acct/cont/name (plain object); used by extract and formpost. */
int ts_object_put_from(struct ts_object_svc *svc, const char *acct, const char *cont, const char *name,
                       const char *content_type, ssize_t (*read)(void *ctx, void *buf, size_t len), void *ctx,
                       char etag_out[33], struct ts_err *err);

#endif
