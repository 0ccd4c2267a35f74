/*
 * identity_int.h: private to src/identity. The service state, the table-driven CRUD
 * engine most Keystone resources share (identity_crud.c), token issue/validate
 * (identity_auth.c), role resolution (identity_roles.c) and policy (identity_policy.c).
 */
#ifndef TS_IDENTITY_INT_H
#define TS_IDENTITY_INT_H

#include <jansson.h>
#include <pthread.h>

#include "auth/ts_auth.h"
#include "bus/ts_bus.h"
#include "db/ts_db.h"
#include "http/ts_http.h"
#include "identity/ts_identity.h"

#define ID_DEFAULT_DOMAIN "default"
#define ID_NULL_DOMAIN "<<null>>" /* roles without a domain, as Keystone stores them */

struct ident {
    struct ts_db *db;
    struct ts_conf *conf;
    struct ts_bus *bus;
    struct ts_http_server *srv;
    char *base_url;               /* "http://127.0.0.1:5000" */
    char *region;
    char *key_dir;
    pthread_rwlock_t keys_lock;   /* keys reloaded when the repository changes */
    struct ts_fernet_keys *keys;
    double keys_loaded_at;
    int token_ttl;                /* seconds */
    int lockout_attempts;         /* 0 = off */
    int lockout_duration;         /* seconds */
    int bcrypt_rounds;
    int list_limit;               /* 0 = none */
    /* Validation cache (identity_auth.c): token -> what it grants, valid while gen is
     * unchanged (every write bumps it, see id_changed) and for at most cache_seconds. */
    pthread_mutex_t vc_lock;
    struct vc_entry **vc;
    int vc_count;
    unsigned long gen;            /* atomic (__atomic builtins) */
    int cache_seconds;            /* 0 = no cache */
};

/* Marks the database as changed: cached validations are recomputed. Any thread. */
void id_changed(struct ident *id);
/* Frees the validation cache. */
void id_vc_free(struct ident *id);

/* ---- the CRUD engine ----------------------------------------------------------------- */
enum col_kind { COL_STR, COL_BOOL, COL_INT };
struct col {
    const char *name;
    enum col_kind kind;
    bool required;     /* on create */
    bool readonly;     /* not settable by update */
    int max_len;       /* strings: 0 = 255 */
    bool nullable;
};

struct rdef;
/* Hook called before writes: may edit obj (the row as JSON), reject with a TS_E code. */
typedef int (*rdef_hook_fn)(struct ident *id, struct ts_http_req *req, const struct rdef *d, json_t *obj,
                            json_t *old, struct ts_err *err);
struct rdef {
    const char *singular, *plural, *table;
    const struct col *cols;      /* first column is "id" */
    bool extra;                  /* unknown attributes kept in column "extra" (JSON) */
    const char *const *filters;  /* query filters mapping to columns */
    const char *policy;          /* "user" -> identity:get_user, ... */
    rdef_hook_fn before_create;  /* after validation, before INSERT */
    rdef_hook_fn before_update;
    rdef_hook_fn before_delete;  /* obj is the current row */
    rdef_hook_fn after_delete;   /* cascade clean-up */
    /* Shapes a row for output (drop secrets, add links are done by the engine). */
    void (*render)(struct ident *id, const struct rdef *d, json_t *obj);
    /* Policy: 0 if the caller may do action ("get","list","create","update","delete") on obj
     * (NULL for list/create). Default: admin only for writes, admin for reads. */
    int (*authorize)(struct ident *id, struct ts_http_req *req, const char *action, const json_t *obj,
                     struct ts_err *err);
    /* For lists: extra WHERE added for non-admins, or a post filter. */
    bool (*visible)(struct ident *id, struct ts_http_req *req, const json_t *obj);
    /* Non-admins may list (their own rows, as visible() decides) instead of a 403. */
    bool owner_list;
    /* Listing without ?<scope_col>= shows only rows whose scope_col is scope_default
     * (GET /v3/roles lists global roles unless ?domain_id= asks for a domain's). */
    const char *scope_col, *scope_default;
};

/* Row r of a SELECT * of d's table as JSON (extra merged, internal columns dropped). */
json_t *crud_row_json(const struct rdef *d, const struct ts_db_res *res, int r);
/* Loads one row as JSON (caller decref), -TS_ENOTFOUND if absent. */
int crud_load(struct ident *id, const struct rdef *d, const char *key, json_t **out, struct ts_err *err);
/* Handlers parametrised by the route: req->svc is the ident; the rdef is found by the
 * first path segment after /v3 (users, projects, ...). */
int crud_list(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int crud_get(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int crud_create(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int crud_update(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int crud_delete(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
const struct rdef *crud_find(const char *plural);
/* Renders a row for output with its links. Steals nothing; returns a new reference. */
json_t *crud_render(struct ident *id, const struct rdef *d, const json_t *row);
/* The rdefs (identity_resources.c). */
extern const struct rdef *const id_rdefs[];

/* ---- policy (identity_policy.c) --------------------------------------------------------- */
int id_forbid(struct ts_err *err, const char *rule);
int id_require_admin(struct ts_http_req *req, const char *rule, struct ts_err *err);
bool id_is_admin(const struct ts_http_req *req);

/* ---- roles (identity_roles.c) -------------------------------------------------------------- */
/* Effective roles of a user on a project / domain / the system (groups, inherited from the
 * domain and parent projects, implied roles). Returns a JSON array [{"id","name"}] (new ref)
 * that may be empty. */
json_t *id_effective_roles(struct ident *id, const char *user_id, const char *scope_type, const char *target_id,
                           struct ts_err *err);
/* Expands role ids with implied roles; returns array of {"id","name","domain_id"} (new ref). */
json_t *id_expand_implied(struct ident *id, json_t *role_ids);

/* ---- tokens and revocation (identity_auth.c) ------------------------------------------------ */
/* The direct validator for this service's own HTTP server. */
int id_validate(void *ctx, const char *token, struct ts_auth *out, struct ts_err *err);
/* Records a revocation event and tells other services (bus fanout). Any of the fields may be NULL. */
void id_revoke(struct ident *id, const char *audit_id, const char *user_id, const char *project_id);
int id_auth_tokens_post(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int id_auth_tokens_get(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int id_auth_tokens_delete(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int id_auth_catalog(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int id_auth_projects(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int id_auth_domains(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int id_auth_system(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
/* The catalog JSON for a project (NULL = unscoped: endpoints needing a project dropped). */
json_t *id_catalog(struct ident *id, const char *project_id);

/* ---- other handlers --------------------------------------------------------------------- */
int id_user_projects(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int id_user_groups(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int id_user_password(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int id_group_users(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int id_group_member(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int id_grant(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int id_grants_list(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int id_role_assignments(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int id_implied_role(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int id_implied_roles_list(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int id_role_inferences(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int id_project_tags(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int id_appcred_create(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int id_appcred_list(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int id_appcred_get(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int id_appcred_delete(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int id_domain_config(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int id_domain_config_default(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int id_trust_create(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int id_trust_list(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int id_trust_one(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int id_trust_roles(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int id_ec2_create(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int id_ec2_list(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int id_ec2_one(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
/* The application credential id a (valid) token was issued for, "" if none. */
void id_token_app_cred(struct ident *id, const char *token, char out[65]);
/* Checks an application credential secret; fills user/project/roles JSON (new refs). */
int id_appcred_authenticate(struct ident *id, const json_t *ac, char *user_id, size_t uid_len, char *project_id,
                            size_t pid_len, char *app_cred_id, json_t **roles, struct ts_err *err);

/* ---- small helpers (identity_util.c) ------------------------------------------------------ */
/* Runs a query returning rows (args as TS_DB_ARGS); logs and maps errors. */
int id_q(struct ident *id, const char *sql, const struct ts_db_val *args, int nargs, struct ts_db_res **res,
         struct ts_err *err);
/* Row r of res as a JSON object (ints/bools by the given kinds, NULL cells as null). */
json_t *id_row_json(const struct ts_db_res *res, int r);
/* {"self": base/v3/<path>} */
json_t *id_links(struct ident *id, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* {"self": ..., "previous": null, "next": null} for collections */
json_t *id_collection_links(struct ident *id, struct ts_http_req *req);
/* Publishes identity.<resource>.<operation> (CADF-ish basic notification). */
void id_notify(struct ident *id, const char *resource, const char *operation, const char *resource_id);
/* Current time as Keystone renders it ("2026-11-25T19:20:00.000000Z"). */
void id_now_iso(char out[32]);

#endif
