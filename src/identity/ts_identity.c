/*
 * ts_identity.c: the identity service (Keystone v3): schema, routes, version discovery,
 * service start/stop and the bootstrap that `tinystack init` runs.
 */
#include <stdio.h>
#include <string.h>

#include "identity/identity_int.h"
#include "json/ts_json.h"

static const struct ts_db_migration migrations[] = {
    {1, "CREATE TABLE domains (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, description TEXT, "
        "  enabled BIGINT NOT NULL DEFAULT 1, extra TEXT);"
        "CREATE TABLE projects (id TEXT PRIMARY KEY, name TEXT NOT NULL, domain_id TEXT NOT NULL, parent_id TEXT, "
        "  description TEXT, enabled BIGINT NOT NULL DEFAULT 1, is_domain BIGINT NOT NULL DEFAULT 0, extra TEXT, "
        "  UNIQUE (domain_id, name));"
        "CREATE INDEX projects_parent ON projects (parent_id);"
        "CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT NOT NULL, domain_id TEXT NOT NULL, password TEXT, "
        "  enabled BIGINT NOT NULL DEFAULT 1, default_project_id TEXT, description TEXT, extra TEXT, "
        "  failed_auth_count BIGINT NOT NULL DEFAULT 0, failed_auth_at DOUBLE PRECISION, created_at TEXT, "
        "  UNIQUE (domain_id, name));"
        "CREATE TABLE groups_ (id TEXT PRIMARY KEY, name TEXT NOT NULL, domain_id TEXT NOT NULL, description TEXT, "
        "  extra TEXT, UNIQUE (domain_id, name));"
        "CREATE TABLE user_groups (user_id TEXT NOT NULL, group_id TEXT NOT NULL, PRIMARY KEY (user_id, group_id));"
        "CREATE INDEX user_groups_group ON user_groups (group_id);"
        "CREATE TABLE roles (id TEXT PRIMARY KEY, name TEXT NOT NULL, domain_id TEXT NOT NULL, description TEXT, "
        "  extra TEXT, UNIQUE (name, domain_id));"
        "CREATE TABLE implied_roles (prior_role_id TEXT NOT NULL, implied_role_id TEXT NOT NULL, "
        "  PRIMARY KEY (prior_role_id, implied_role_id));"
        "CREATE TABLE assignments (type TEXT NOT NULL, actor_id TEXT NOT NULL, target_id TEXT NOT NULL, "
        "  role_id TEXT NOT NULL, inherited BIGINT NOT NULL DEFAULT 0, "
        "  PRIMARY KEY (type, actor_id, target_id, role_id, inherited));"
        "CREATE INDEX assignments_actor ON assignments (actor_id);"
        "CREATE INDEX assignments_target ON assignments (target_id);"
        "CREATE TABLE services (id TEXT PRIMARY KEY, type TEXT NOT NULL, name TEXT, description TEXT, "
        "  enabled BIGINT NOT NULL DEFAULT 1, extra TEXT);"
        "CREATE TABLE endpoints (id TEXT PRIMARY KEY, service_id TEXT NOT NULL, interface TEXT NOT NULL, "
        "  url TEXT NOT NULL, region_id TEXT, enabled BIGINT NOT NULL DEFAULT 1, extra TEXT);"
        "CREATE TABLE regions (id TEXT PRIMARY KEY, description TEXT, parent_region_id TEXT, extra TEXT);"
        "CREATE TABLE revocations (id TEXT PRIMARY KEY, audit_id TEXT, user_id TEXT, project_id TEXT, "
        "  issued_before DOUBLE PRECISION NOT NULL, revoked_at DOUBLE PRECISION NOT NULL);"
        "CREATE INDEX revocations_audit ON revocations (audit_id);"
        "CREATE INDEX revocations_user ON revocations (user_id);"
        "CREATE INDEX revocations_project ON revocations (project_id);"
        "CREATE TABLE app_creds (id TEXT PRIMARY KEY, name TEXT NOT NULL, secret_hash TEXT NOT NULL, "
        "  description TEXT, user_id TEXT NOT NULL, project_id TEXT NOT NULL, expires_at TEXT, "
        "  unrestricted BIGINT NOT NULL DEFAULT 0, roles TEXT NOT NULL, created_at TEXT, UNIQUE (user_id, name));"
        "CREATE TABLE credentials (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, project_id TEXT, type TEXT NOT NULL, "
        "  blob TEXT NOT NULL, extra TEXT);"
        "CREATE TABLE policies (id TEXT PRIMARY KEY, type TEXT NOT NULL, blob TEXT NOT NULL, extra TEXT)"},
    {2, "CREATE TABLE endpoint_groups (id TEXT PRIMARY KEY, name TEXT NOT NULL, description TEXT, extra TEXT);"
        "CREATE TABLE consumers (id TEXT PRIMARY KEY, description TEXT, extra TEXT)"},
    {3, "CREATE TABLE trusts (id TEXT PRIMARY KEY, trustor_user_id TEXT NOT NULL, trustee_user_id TEXT NOT NULL, "
        "  project_id TEXT, impersonation BIGINT NOT NULL DEFAULT 0, expires_at TEXT, remaining_uses BIGINT, "
        "  roles TEXT NOT NULL, created_at TEXT);"
        "CREATE INDEX trusts_trustor ON trusts (trustor_user_id);"
        "CREATE INDEX trusts_trustee ON trusts (trustee_user_id)"},
    {4, "CREATE TABLE domain_configs (domain_id TEXT PRIMARY KEY, config TEXT NOT NULL)"},
};

/* ---- version discovery -------------------------------------------------------------------- */
static json_t *version_v3(struct ident *id)
{
    char *href = ts_asprintf("%s/v3/", id->base_url);
    json_t *v = json_pack("{s:s,s:s,s:s,s:[{s:s,s:s}],s:[{s:s,s:s}]}", "id", "v3.14", "status", "stable", "updated",
                          "2020-04-07T00:00:00Z", "links", "rel", "self", "href", href, "media-types", "base",
                          "application/json", "type", "application/vnd.openstack.identity-v3+json");
    free(href);
    return v;
}

static int h_versions(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)err;
    struct ident *id = req->svc;
    ts_http_resp_json(resp, 300, json_pack("{s:{s:[o]}}", "versions", "values", version_v3(id)));
    return 0;
}

static int h_v3(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)err;
    struct ident *id = req->svc;
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "version", version_v3(id)));
    return 0;
}

/* ---- writes invalidate cached validations ------------------------------------------------ */
/* Every handler that may change what a token grants runs through W(): the generation is
 * bumped after the write, so a validation computed before it is never served again. */
#define WRAP(fn)                                                                                 \
    static int fn##_w(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)   \
    {                                                                                            \
        int rc = fn(req, resp, err);                                                             \
        if (strcmp(req->method, "GET") && strcmp(req->method, "HEAD")) id_changed(req->svc);     \
        return rc;                                                                               \
    }
WRAP(crud_create)
WRAP(crud_update)
WRAP(crud_delete)
WRAP(id_auth_tokens_delete)
WRAP(id_user_password)
WRAP(id_group_member)
WRAP(id_grant)
WRAP(id_implied_role)
WRAP(id_project_tags)
WRAP(id_appcred_delete)
#define W(fn) fn##_w

/* ---- routes --------------------------------------------------------------------------------- */
#define CRUD(path)                                                                          \
    {"GET", "/v3/" path, crud_list, 0}, {"POST", "/v3/" path, W(crud_create), 0},             \
        {"GET", "/v3/" path "/{id}", crud_get, 0}, {"PATCH", "/v3/" path "/{id}", W(crud_update), 0}, \
        {"DELETE", "/v3/" path "/{id}", W(crud_delete), 0}

#define GRANT(prefix)                                                                                      \
    {"PUT", prefix "/roles/{role}", W(id_grant), 0}, {"HEAD", prefix "/roles/{role}", id_grant, 0},     \
        {"GET", prefix "/roles/{role}", id_grant, 0}, {"DELETE", prefix "/roles/{role}", W(id_grant), 0},     \
        {"GET", prefix "/roles", id_grants_list, 0}

static const struct ts_http_route routes[] = {
    {"GET", "/", h_versions, TS_ROUTE_PUBLIC},
    {"GET", "/v3", h_v3, TS_ROUTE_PUBLIC},
    {"POST", "/v3/auth/tokens", id_auth_tokens_post, TS_ROUTE_PUBLIC},
    {"GET", "/v3/auth/tokens", id_auth_tokens_get, 0},
    {"HEAD", "/v3/auth/tokens", id_auth_tokens_get, 0},
    {"DELETE", "/v3/auth/tokens", W(id_auth_tokens_delete), 0},
    {"GET", "/v3/auth/catalog", id_auth_catalog, 0},
    {"GET", "/v3/auth/projects", id_auth_projects, 0},
    {"GET", "/v3/auth/domains", id_auth_domains, 0},
    {"GET", "/v3/auth/system", id_auth_system, 0},
    CRUD("domains"),
    CRUD("projects"),
    CRUD("users"),
    CRUD("groups"),
    CRUD("roles"),
    CRUD("services"),
    CRUD("endpoints"),
    CRUD("regions"),
    CRUD("credentials"),
    CRUD("policies"),
    CRUD("OS-EP-FILTER/endpoint_groups"),
    CRUD("OS-OAUTH1/consumers"),
    {"PUT", "/v3/regions/{id}", W(crud_create), 0},
    {"GET", "/v3/users/{id}/projects", id_user_projects, 0},
    {"GET", "/v3/users/{id}/groups", id_user_groups, 0},
    {"POST", "/v3/users/{id}/password", W(id_user_password), TS_ROUTE_OPTIONAL_AUTH},
    {"GET", "/v3/groups/{id}/users", id_group_users, 0},
    {"PUT", "/v3/groups/{id}/users/{user}", W(id_group_member), 0},
    {"HEAD", "/v3/groups/{id}/users/{user}", W(id_group_member), 0},
    {"GET", "/v3/groups/{id}/users/{user}", W(id_group_member), 0},
    {"DELETE", "/v3/groups/{id}/users/{user}", W(id_group_member), 0},
    GRANT("/v3/projects/{target}/users/{actor}"),
    GRANT("/v3/projects/{target}/groups/{actor}"),
    GRANT("/v3/domains/{target}/users/{actor}"),
    GRANT("/v3/domains/{target}/groups/{actor}"),
    GRANT("/v3/system/users/{actor}"),
    GRANT("/v3/system/groups/{actor}"),
    {"PUT", "/v3/OS-INHERIT/{ttype}/{target}/{atype}/{actor}/roles/{role}/inherited_to_projects", W(id_grant), 0},
    {"HEAD", "/v3/OS-INHERIT/{ttype}/{target}/{atype}/{actor}/roles/{role}/inherited_to_projects", W(id_grant), 0},
    {"GET", "/v3/OS-INHERIT/{ttype}/{target}/{atype}/{actor}/roles/{role}/inherited_to_projects", W(id_grant), 0},
    {"DELETE", "/v3/OS-INHERIT/{ttype}/{target}/{atype}/{actor}/roles/{role}/inherited_to_projects", W(id_grant), 0},
    {"GET", "/v3/OS-INHERIT/{ttype}/{target}/{atype}/{actor}/roles/inherited_to_projects", id_grants_list, 0},
    {"GET", "/v3/role_assignments", id_role_assignments, 0},
    {"GET", "/v3/roles/{id}/implies", id_implied_roles_list, 0},
    {"PUT", "/v3/roles/{id}/implies/{implied}", W(id_implied_role), 0},
    {"GET", "/v3/roles/{id}/implies/{implied}", W(id_implied_role), 0},
    {"HEAD", "/v3/roles/{id}/implies/{implied}", W(id_implied_role), 0},
    {"DELETE", "/v3/roles/{id}/implies/{implied}", W(id_implied_role), 0},
    {"GET", "/v3/role_inferences", id_role_inferences, 0},
    {"GET", "/v3/projects/{id}/tags", W(id_project_tags), 0},
    {"PUT", "/v3/projects/{id}/tags", W(id_project_tags), 0},
    {"DELETE", "/v3/projects/{id}/tags", W(id_project_tags), 0},
    {"GET", "/v3/projects/{id}/tags/{tag}", W(id_project_tags), 0},
    {"HEAD", "/v3/projects/{id}/tags/{tag}", W(id_project_tags), 0},
    {"PUT", "/v3/projects/{id}/tags/{tag}", W(id_project_tags), 0},
    {"DELETE", "/v3/projects/{id}/tags/{tag}", W(id_project_tags), 0},
    {"POST", "/v3/users/{id}/application_credentials", id_appcred_create, 0},
    {"GET", "/v3/users/{id}/application_credentials", id_appcred_list, 0},
    {"GET", "/v3/users/{id}/application_credentials/{cred}", id_appcred_get, 0},
    {"DELETE", "/v3/users/{id}/application_credentials/{cred}", W(id_appcred_delete), 0},
    {"GET", "/v3/domains/{id}/config", id_domain_config, 0},
    {"HEAD", "/v3/domains/{id}/config", id_domain_config, 0},
    {"PUT", "/v3/domains/{id}/config", id_domain_config, 0},
    {"PATCH", "/v3/domains/{id}/config", id_domain_config, 0},
    {"DELETE", "/v3/domains/{id}/config", id_domain_config, 0},
    {"GET", "/v3/domains/config/default", id_domain_config_default, 0},
    {"GET", "/v3/domains/{id}/config/{group}", id_domain_config, 0},
    {"HEAD", "/v3/domains/{id}/config/{group}", id_domain_config, 0},
    {"PATCH", "/v3/domains/{id}/config/{group}", id_domain_config, 0},
    {"DELETE", "/v3/domains/{id}/config/{group}", id_domain_config, 0},
    {"GET", "/v3/domains/config/{group}/default", id_domain_config_default, 0},
    {"GET", "/v3/domains/{id}/config/{group}/{option}", id_domain_config, 0},
    {"HEAD", "/v3/domains/{id}/config/{group}/{option}", id_domain_config, 0},
    {"PATCH", "/v3/domains/{id}/config/{group}/{option}", id_domain_config, 0},
    {"DELETE", "/v3/domains/{id}/config/{group}/{option}", id_domain_config, 0},
    {"GET", "/v3/domains/config/{group}/{option}/default", id_domain_config_default, 0},
    {"POST", "/v3/OS-TRUST/trusts", id_trust_create, 0},
    {"GET", "/v3/OS-TRUST/trusts", id_trust_list, 0},
    {"GET", "/v3/OS-TRUST/trusts/{id}", id_trust_one, 0},
    {"DELETE", "/v3/OS-TRUST/trusts/{id}", id_trust_one, 0},
    {"GET", "/v3/OS-TRUST/trusts/{id}/roles", id_trust_roles, 0},
    {"GET", "/v3/OS-TRUST/trusts/{id}/roles/{role}", id_trust_roles, 0},
    {"HEAD", "/v3/OS-TRUST/trusts/{id}/roles/{role}", id_trust_roles, 0},
    {"POST", "/v3/users/{id}/credentials/OS-EC2", id_ec2_create, 0},
    {"GET", "/v3/users/{id}/credentials/OS-EC2", id_ec2_list, 0},
    {"GET", "/v3/users/{id}/credentials/OS-EC2/{access}", id_ec2_one, 0},
    {"DELETE", "/v3/users/{id}/credentials/OS-EC2/{access}", id_ec2_one, 0},
    {NULL, NULL, NULL, 0},
};

/* ---- service --------------------------------------------------------------------------------- */
static int open_db(struct ts_service_env *env, struct ts_db **db, struct ts_err *err)
{
    const char *url = ts_conf_get(env->conf, "identity", "connection", NULL);
    int rc = ts_db_open(url, db, err);
    if (rc < 0) return rc;
    rc = ts_db_migrate(*db, migrations, sizeof(migrations) / sizeof(migrations[0]), err);
    if (rc < 0) {
        ts_db_close(*db);
        *db = NULL;
    }
    return rc;
}

static int identity_init(struct ts_service_env *env, struct ts_err *err)
{
    if (!ts_conf_get(env->conf, "identity", "port", NULL)) ts_conf_set(env->conf, "identity", "port", "5000");
    if (!ts_conf_get(env->conf, "identity", "connection", NULL)) {
        char *url = ts_asprintf("sqlite://%s/identity.db", env->data_dir);
        ts_conf_set(env->conf, "identity", "connection", url);
        free(url);
    }
    struct ts_db *db = NULL;
    int rc = open_db(env, &db, err);
    ts_db_close(db);
    return rc;
}

static struct ident *ident_new(struct ts_service_env *env, struct ts_err *err)
{
    struct ident *id = ts_calloc(1, sizeof(*id));
    pthread_rwlock_init(&id->keys_lock, NULL);
    id->conf = env->conf;
    id->bus = env->bus;
    const char *host = ts_conf_get(env->conf, "DEFAULT", "public_host", "127.0.0.1");
    id->base_url = ts_asprintf("http://%s:%lld", host, (long long)ts_conf_get_int(env->conf, "identity", "port", 5000));
    id->region = ts_strdup(ts_conf_get(env->conf, "DEFAULT", "region", "RegionOne"));
    char *kd = ts_asprintf("%s/fernet-keys", env->data_dir);
    id->key_dir = ts_strdup(ts_conf_get(env->conf, "identity", "key_repository", kd));
    free(kd);
    id->token_ttl = (int)ts_conf_get_int(env->conf, "identity", "token_expiration", 3600);
    id->lockout_attempts = (int)ts_conf_get_int(env->conf, "identity", "lockout_failure_attempts", 0);
    id->lockout_duration = (int)ts_conf_get_int(env->conf, "identity", "lockout_duration", 1800);
    id->bcrypt_rounds = (int)ts_conf_get_int(env->conf, "identity", "password_hash_rounds", 12);
    id->cache_seconds = (int)ts_conf_get_int(env->conf, "identity", "validation_cache_seconds", 10);
    pthread_mutex_init(&id->vc_lock, NULL);
    if (open_db(env, &id->db, err) < 0) {
        pthread_mutex_destroy(&id->vc_lock);
        free(id->base_url);
        free(id->region);
        free(id->key_dir);
        free(id);
        return NULL;
    }
    return id;
}

static void ident_free(struct ident *id)
{
    if (!id) return;
    ts_db_close(id->db);
    ts_fernet_keys_free(id->keys);
    pthread_rwlock_destroy(&id->keys_lock);
    id_vc_free(id);
    pthread_mutex_destroy(&id->vc_lock);
    free(id->base_url);
    free(id->region);
    free(id->key_dir);
    free(id);
}

static int identity_start(struct ts_service_env *env, void **state, struct ts_err *err)
{
    struct ident *id = ident_new(env, err);
    if (!id) return -err->code;
    char *www = ts_asprintf("Keystone uri=\"%s\"", id->base_url);
    struct ts_http_server_opts o = {
        .name = "identity",
        .bind = env->bind,
        .port = (int)ts_conf_get_int(env->conf, "identity", "port", 5000),
        .threads = (int)ts_conf_get_int(env->conf, "identity", "workers", 4),
        .max_body_bytes = (size_t)ts_conf_get_int(env->conf, "identity", "max_request_body_size", 114688),
        .fault_style = TS_FAULT_KEYSTONE,
        .routes = routes,
        .svc = id,
        .validate = id_validate,
        .validate_ctx = id,
        .www_authenticate = www,
    };
    int rc = ts_http_server_start(&o, &id->srv, err);
    free(www);
    if (rc < 0) {
        ident_free(id);
        return rc;
    }
    *state = id;
    return 0;
}

static void identity_stop(void *state)
{
    struct ident *id = state;
    if (!id) return;
    ts_http_server_stop(id->srv);
    ident_free(id);
}

const struct ts_service ts_identity_service = {
    .name = "identity",
    .type = "identity",
    .catalog_name = "keystone",
    .default_port = 5000,
    .catalog_path = "",
    .init = identity_init,
    .start = identity_start,
    .stop = identity_stop,
};

/* ---- bootstrap (keystone-manage bootstrap) ------------------------------------------------------ */
static int ensure(struct ident *id, const char *sql, const struct ts_db_val *args, int nargs, struct ts_err *err)
{
    int rc = ts_db_exec(id->db, sql, args, nargs, NULL, err);
    return rc == -TS_ECONFLICT ? 0 : rc;
}

/* Returns the id of the named row, creating it with a new id when missing. */
static int ensure_named(struct ident *id, const char *select_sql, const struct ts_db_val *sel_args, int nsel,
                        const char *insert_sql, struct ts_db_val *ins_args, int nins, char out[65],
                        struct ts_err *err)
{
    struct ts_db_res *res = NULL;
    int rc = ts_db_exec(id->db, select_sql, sel_args, nsel, &res, err);
    if (rc < 0) return rc;
    if (res->nrows) {
        snprintf(out, 65, "%s", ts_db_res_get(res, 0, 0));
        ts_db_res_free(res);
        return 1;
    }
    ts_db_res_free(res);
    ts_uuid_hex(out);
    ins_args[0] = TS_DB_S(out);
    rc = ts_db_exec(id->db, insert_sql, ins_args, nins, NULL, err);
    return rc < 0 ? rc : 0;
}

static int ensure_user(struct ident *id, const char *name, const char *password, const char *project_id,
                       char out[65], struct ts_err *err)
{
    char *hash = ts_password_hash(password, id->bcrypt_rounds);
    struct ts_db_val ins[] = {TS_DB_NULL, TS_DB_S(name), TS_DB_S(hash), TS_DB_S(project_id)};
    int rc = ensure_named(id, "SELECT id FROM users WHERE name = ? AND domain_id = 'default'",
                          TS_DB_ARGS(TS_DB_S(name)),
                          "INSERT INTO users (id, name, domain_id, password, enabled, default_project_id, extra) "
                          "VALUES (?, ?, 'default', ?, 1, ?, '{}')",
                          ins, 4, out, err);
    if (rc == 1) /* exists: the configured password wins */
        rc = ts_db_exec(id->db, "UPDATE users SET password = ?, enabled = 1 WHERE id = ?",
                        TS_DB_ARGS(TS_DB_S(hash), TS_DB_S(out)), NULL, err);
    free(hash);
    return rc < 0 ? rc : 0;
}

static int ensure_project(struct ident *id, const char *name, const char *desc, char out[65], struct ts_err *err)
{
    struct ts_db_val ins[] = {TS_DB_NULL, TS_DB_S(name), TS_DB_S(desc)};
    int rc = ensure_named(id, "SELECT id FROM projects WHERE name = ? AND domain_id = 'default'",
                          TS_DB_ARGS(TS_DB_S(name)),
                          "INSERT INTO projects (id, name, domain_id, parent_id, description, enabled, is_domain, extra) "
                          "VALUES (?, ?, 'default', 'default', ?, 1, 0, '{\"tags\":[]}')",
                          ins, 3, out, err);
    return rc < 0 ? rc : 0;
}

static int ensure_role(struct ident *id, const char *name, char out[65], struct ts_err *err)
{
    struct ts_db_val ins[] = {TS_DB_NULL, TS_DB_S(name)};
    int rc = ensure_named(id, "SELECT id FROM roles WHERE name = ? AND domain_id = '<<null>>'", TS_DB_ARGS(TS_DB_S(name)),
                          "INSERT INTO roles (id, name, domain_id, extra) VALUES (?, ?, '<<null>>', '{}')", ins, 2, out,
                          err);
    return rc < 0 ? rc : 0;
}

static int grant(struct ident *id, const char *type, const char *actor, const char *target, const char *role,
                 struct ts_err *err)
{
    return ensure(id, "INSERT INTO assignments (type, actor_id, target_id, role_id, inherited) VALUES (?, ?, ?, ?, 0)",
                  TS_DB_ARGS(TS_DB_S(type), TS_DB_S(actor), TS_DB_S(target), TS_DB_S(role)), err);
}

int ts_identity_bootstrap(struct ts_service_env *env, const char *admin_password, const char *service_password,
                          const struct ts_identity_catalog_entry *catalog, int n_catalog, struct ts_err *err)
{
    struct ident *id = ident_new(env, err);
    if (!id) return -err->code;
    char admin_p[65], service_p[65], admin_u[65], service_u[65], r_admin[65], r_member[65], r_reader[65],
        r_service[65];
    int rc = ensure(id,
                    "INSERT INTO domains (id, name, description, enabled, extra) VALUES "
                    "('default', 'Default', 'The default domain', 1, '{}')",
                    TS_DB_NOARGS, err);
    if (rc < 0) goto out;
    if ((rc = ensure_project(id, "admin", "Bootstrap project for initializing the cloud.", admin_p, err)) < 0) goto out;
    if ((rc = ensure_project(id, "service", "Project for the services' own users.", service_p, err)) < 0) goto out;
    if ((rc = ensure_role(id, "admin", r_admin, err)) < 0) goto out;
    if ((rc = ensure_role(id, "member", r_member, err)) < 0) goto out;
    if ((rc = ensure_role(id, "reader", r_reader, err)) < 0) goto out;
    if ((rc = ensure_role(id, "service", r_service, err)) < 0) goto out;
    if ((rc = ensure(id, "INSERT INTO implied_roles (prior_role_id, implied_role_id) VALUES (?, ?)",
                     TS_DB_ARGS(TS_DB_S(r_admin), TS_DB_S(r_member)), err)) < 0)
        goto out;
    if ((rc = ensure(id, "INSERT INTO implied_roles (prior_role_id, implied_role_id) VALUES (?, ?)",
                     TS_DB_ARGS(TS_DB_S(r_member), TS_DB_S(r_reader)), err)) < 0)
        goto out;
    if ((rc = ensure_user(id, "admin", admin_password, admin_p, admin_u, err)) < 0) goto out;
    if ((rc = ensure_user(id, "tinystack", service_password, service_p, service_u, err)) < 0) goto out;
    if ((rc = grant(id, "UserProject", admin_u, admin_p, r_admin, err)) < 0) goto out;
    if ((rc = grant(id, "UserSystem", admin_u, "system", r_admin, err)) < 0) goto out;
    if ((rc = grant(id, "UserProject", service_u, service_p, r_admin, err)) < 0) goto out;
    if ((rc = grant(id, "UserProject", service_u, service_p, r_service, err)) < 0) goto out;
    if ((rc = ensure(id, "INSERT INTO regions (id, description, extra) VALUES (?, '', '{}')",
                     TS_DB_ARGS(TS_DB_S(id->region)), err)) < 0)
        goto out;
    for (int i = 0; i < n_catalog; i++) {
        char sid[65];
        struct ts_db_val ins[] = {TS_DB_NULL, TS_DB_S(catalog[i].type), TS_DB_S(catalog[i].name)};
        rc = ensure_named(id, "SELECT id FROM services WHERE type = ?", TS_DB_ARGS(TS_DB_S(catalog[i].type)),
                          "INSERT INTO services (id, type, name, enabled, extra) VALUES (?, ?, ?, 1, '{}')", ins, 3, sid,
                          err);
        if (rc < 0) goto out;
        const char *itfs[] = {"public", "internal", "admin"};
        for (int j = 0; j < 3; j++) {
            char eid[65];
            struct ts_db_val eins[] = {TS_DB_NULL, TS_DB_S(sid), TS_DB_S(itfs[j]), TS_DB_S(catalog[i].url),
                                       TS_DB_S(id->region)};
            rc = ensure_named(id, "SELECT id FROM endpoints WHERE service_id = ? AND interface = ?",
                              TS_DB_ARGS(TS_DB_S(sid), TS_DB_S(itfs[j])),
                              "INSERT INTO endpoints (id, service_id, interface, url, region_id, enabled, extra) "
                              "VALUES (?, ?, ?, ?, ?, 1, '{}')",
                              eins, 5, eid, err);
            if (rc < 0) goto out;
            if (rc == 1 && (rc = ts_db_exec(id->db, "UPDATE endpoints SET url = ? WHERE id = ?",
                                            TS_DB_ARGS(TS_DB_S(catalog[i].url), TS_DB_S(eid)), NULL, err)) < 0)
                goto out;
        }
    }
    rc = 0;
out:
    ident_free(id);
    return rc;
}
