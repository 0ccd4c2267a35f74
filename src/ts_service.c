/*
 * ts_service.c: what every service does the same way when it starts: config defaults,
 * "is this service enabled", and its HTTP server with the shared token validator.
 */
#include <string.h>

#include "ts_service.h"

void ts_service_conf_default(struct ts_conf *conf, const char *section, const char *key, const char *value)
{
    if (!ts_conf_get(conf, section, key, NULL)) ts_conf_set(conf, section, key, value);
}

bool ts_service_enabled(const struct ts_conf *conf, const char *name)
{
    const char *list = ts_conf_get(conf, "DEFAULT", "enabled_services", NULL);
    if (!list) return true; /* no list: every built-in service runs */
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        while (*p == ',' || *p == ' ') p++;
        const char *e = p;
        while (*e && *e != ',' && *e != ' ') e++;
        if ((size_t)(e - p) == n && !strncmp(p, name, n)) return true;
        p = e;
    }
    return false;
}

int ts_service_http_start(struct ts_service_env *env, const struct ts_service *def, const struct ts_http_route *routes,
                          enum ts_fault_style style, int default_workers, void *svc, struct ts_http_server **out,
                          struct ts_err *err)
{
    char *www = ts_asprintf("Keystone uri=\"%s\"", env->identity_url ? env->identity_url : "");
    struct ts_http_server_opts opts = {
        .name = def->name,
        .bind = env->bind ? env->bind : "127.0.0.1",
        .port = (int)ts_conf_get_int(env->conf, def->name, "port", def->default_port),
        .threads = (int)ts_conf_get_int(env->conf, def->name, "workers", default_workers),
        .max_body_bytes = (size_t)ts_conf_get_int(env->conf, def->name, "max_request_body_size", 1 << 20),
        .fault_style = style,
        .routes = routes,
        .svc = svc,
        .validate = env->authn ? ts_http_authn_validate : NULL,
        .validate_ctx = env->authn,
        .www_authenticate = www,
        .conn_memory_limit = (size_t)ts_conf_get_int(env->conf, def->name, "connection_memory_limit", 64 * 1024),
    };
    int rc = ts_http_server_start(&opts, out, err);
    free(www);
    if (rc == 0) ts_info(def->name, "%s service listening on port %d", def->name, ts_http_server_port(*out));
    return rc;
}
