/*
 * ts_service.h: what `tinystack serve` knows about a service. Each service module exports
 * one const struct ts_service; main.c lists them. A service gets its environment (config,
 * data dir, bus, identity URL) and starts its HTTP server(s) and bus consumers.
 */
#ifndef TS_SERVICE_H
#define TS_SERVICE_H

#include "bus/ts_bus.h"
#include "conf/ts_conf.h"
#include "core/ts_core.h"
#include "http/ts_http.h"

struct ts_service_env {
    struct ts_conf *conf;        /* the whole tinystack.conf */
    const char *data_dir;        /* absolute */
    struct ts_bus *bus;
    const char *host;            /* this host's name ([DEFAULT] host) */
    const char *identity_url;    /* "http://127.0.0.1:5000" */
    const char *bind;            /* listen address */
    struct ts_http_authn *authn; /* shared token validator (NULL inside identity) */
};

struct ts_service {
    const char *name;            /* config section and "enabled_services" name: identity, image, ... */
    const char *type;            /* catalog type: identity, image, compute, network, volumev3, object-store */
    const char *catalog_name;    /* keystone, glance, nova, neutron, cinderv3, swift */
    int default_port;
    /* URL path appended to http://host:port for the catalog, with %(project_id)s / AUTH_%(project_id)s
     * markers as Keystone stores them ("/v3", "/v2.1", "/v3/%(project_id)s", "/v1/AUTH_%(project_id)s"). */
    const char *catalog_path;
    /* Creates the service's database and tables (idempotent), writes defaults into conf. */
    int (*init)(struct ts_service_env *env, struct ts_err *err);
    /* Starts serving; *state is the service's to keep. */
    int (*start)(struct ts_service_env *env, void **state, struct ts_err *err);
    void (*stop)(void *state);
};

/* Sets [section] key to value when the config does not have it yet. */
void ts_service_conf_default(struct ts_conf *conf, const char *section, const char *key, const char *value);
/* true if name is in [DEFAULT] enabled_services (or when there is no such list). */
bool ts_service_enabled(const struct ts_conf *conf, const char *name);
/* Starts a service's HTTP server as every service does: bind from env, [<name>] port
 * (default def->default_port), [<name>] workers (default default_workers),
 * [<name>] max_request_body_size (1 MiB), [<name>] connection_memory_limit (64 KiB: the
 * HTTP library's memory per connection, uploads are read in about half of it), the shared token validator (env->authn) and
 * Keystone's WWW-Authenticate. Logs the port. */
int ts_service_http_start(struct ts_service_env *env, const struct ts_service *def, const struct ts_http_route *routes,
                          enum ts_fault_style style, int default_workers, void *svc, struct ts_http_server **out,
                          struct ts_err *err);

#endif
