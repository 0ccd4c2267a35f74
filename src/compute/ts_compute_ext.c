/*
 * ts_compute_ext.c: compute's calls to the other services, as Nova's network and volume
 * APIs make them: ports created with the user's token and bound to the chosen host with the
 * service token (binding:host_id is admin-only), port release and unbinding, the VIF
 * cache behind "addresses", security group names, and Cinder's attachments API (reserve,
 * connect with a connector, complete, delete) plus volume create/wait/delete for boot
 * from volume. Used by the API (validation, show, actions) and the agent (build, delete).
 */
#include "compute/ts_compute_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json/ts_json.h"

#define JS(o, k) json_string_value(json_object_get((o), (k)))
#define HTTP_TIMEOUT_MS 30000

/* ---- plumbing ------------------------------------------------------------------------ */

static bool svc_enabled(const struct ts_conf *conf, const char *name)
{
    const char *list = ts_conf_get(conf, "DEFAULT", "enabled_services", "");
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

const char *ts_compute_ext_url(const struct ts_service_env *env, const char *svc, char *buf, size_t cap)
{
    char key[64];
    snprintf(key, sizeof(key), "%s_url", svc);
    const char *u = ts_conf_get(env->conf, "compute", key, NULL);
    if (!u || !*u) u = ts_conf_get(env->conf, svc, "url", NULL);
    if (u && *u) {
        snprintf(buf, cap, "%s", u);
    } else {
        if (!svc_enabled(env->conf, svc)) return NULL;
        int def = !strcmp(svc, "network") ? 9696 : !strcmp(svc, "volume") ? 8776 : 0;
        const char *bind = env->bind && *env->bind && !ts_streq(env->bind, "0.0.0.0") ? env->bind : "127.0.0.1";
        snprintf(buf, cap, "http://%s:%lld", bind, (long long)ts_conf_get_int(env->conf, svc, "port", def));
    }
    size_t l = strlen(buf);
    while (l && buf[l - 1] == '/') buf[--l] = 0;
    return buf;
}

static pthread_mutex_t tok_mu = PTHREAD_MUTEX_INITIALIZER;
static char tok_cache[4096], tok_key[1024];
static double tok_at;

static int service_token(const struct ts_service_env *env, char *out, size_t cap, bool renew, struct ts_err *err)
{
    const char *user = ts_conf_get(env->conf, "service_credentials", "username", "tinystack");
    const char *pw = ts_conf_get(env->conf, "service_credentials", "password", "");
    const char *proj = ts_conf_get(env->conf, "service_credentials", "project_name", "service");
    const char *idu = env->identity_url ? env->identity_url : "http://127.0.0.1:5000";
    char key[1024];
    snprintf(key, sizeof(key), "%s|%s|%s", idu, user, proj);
    int rc = 0;
    pthread_mutex_lock(&tok_mu);
    if (!renew && tok_cache[0] && !strcmp(key, tok_key) && ts_mono() - tok_at < 1800) {
        snprintf(out, cap, "%s", tok_cache);
        goto out;
    }
    json_t *body = json_pack("{s:{s:{s:[s],s:{s:{s:s,s:{s:s},s:s}}},s:{s:{s:s,s:{s:s}}}}}", "auth", "identity",
                             "methods", "password", "password", "user", "name", user, "domain", "id", "default",
                             "password", pw, "scope", "project", "name", proj, "domain", "id", "default");
    char *text = ts_json_dump(body);
    json_decref(body);
    char *url = ts_asprintf("%s/v3/auth/tokens", idu);
    const char *hdr[] = {"Content-Type: application/json", NULL};
    struct ts_http_client_resp r = {0};
    rc = ts_http_client_request("POST", url, hdr, text, strlen(text), HTTP_TIMEOUT_MS, &r, err);
    if (!rc) {
        char *t = r.status == 201 ? ts_http_client_resp_header(&r, "X-Subject-Token") : NULL;
        if (t && strlen(t) < sizeof(tok_cache)) {
            snprintf(tok_cache, sizeof(tok_cache), "%s", t);
            snprintf(tok_key, sizeof(tok_key), "%s", key);
            tok_at = ts_mono();
            snprintf(out, cap, "%s", t);
        } else {
            rc = ts_err_set(err, TS_EUNAVAIL, "no service token from %s (status %d)", url, r.status);
        }
        free(t);
    }
    ts_http_client_resp_free(&r);
    free(text);
    free(url);
out:
    pthread_mutex_unlock(&tok_mu);
    return rc;
}

int ts_compute_ext_call(const struct ts_service_env *env, const char *svc, const char *token, const char *method,
                        const char *path, const json_t *body, const char *hdr, int *status, json_t **out,
                        struct ts_err *err)
{
    char base[512];
    if (out) *out = NULL;
    *status = 0;
    if (!ts_compute_ext_url(env, svc, base, sizeof(base)))
        return ts_err_set(err, TS_EUNAVAIL, "the %s service is not enabled", svc);
    char *url = ts_asprintf("%s%s", base, path);
    char *text = body ? ts_json_dump(body) : NULL;
    int rc = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        char stok[4096];
        const char *t = token;
        if (!t) {
            rc = service_token(env, stok, sizeof(stok), attempt > 0, err);
            if (rc) break;
            t = stok;
        }
        char *th = ts_asprintf("X-Auth-Token: %s", t);
        const char *hdrs[] = {th, "Content-Type: application/json", "Accept: application/json", hdr, NULL};
        struct ts_http_client_resp r = {0};
        rc = ts_http_client_request(method, url, hdrs, text, text ? strlen(text) : 0, HTTP_TIMEOUT_MS, &r, err);
        free(th);
        if (rc) {
            ts_http_client_resp_free(&r);
            break;
        }
        *status = r.status;
        if (r.status == 401 && !token && attempt == 0) {
            ts_http_client_resp_free(&r);
            continue;
        }
        if (out && r.body && r.body_len) *out = json_loadb(r.body, r.body_len, 0, NULL);
        ts_http_client_resp_free(&r);
        break;
    }
    if (!rc && *status >= 400)
        ts_debug("compute", "%s %s%s -> %d", method, svc, path, *status);
    free(url);
    free(text);
    return rc;
}

const char *ts_compute_ext_msg(const json_t *body, const char *def)
{
    const char *m = JS(json_object_get(body, "NeutronError"), "message");
    if (!m && json_is_object(body)) {
        /* Cinder: {"badRequest": {"message": ...}} and friends */
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)body, k, v) {
            if (json_is_object(v) && JS(v, "message")) {
                m = JS(v, "message");
                break;
            }
        }
    }
    return m ? m : def;
}

/* GET/PUT/... on the network API; 2xx -> 0 with *out. Other statuses map to TS errors. */
static int net_call(const struct ts_service_env *env, const char *token, const char *method, const char *path,
                    const json_t *body, json_t **out, struct ts_err *err)
{
    int st = 0;
    json_t *o = NULL;
    int rc = ts_compute_ext_call(env, "network", token, method, path, body, NULL, &st, &o, err);
    if (rc) return rc;
    if (st >= 200 && st < 300) {
        if (out) *out = o;
        else json_decref(o);
        return 0;
    }
    int code = st == 404 ? TS_ENOTFOUND : st == 409 ? TS_ECONFLICT : st == 403 ? TS_EFORBIDDEN
             : st == 400 ? TS_EINVAL : TS_EIO;
    rc = ts_err_set(err, code, "%s", ts_compute_ext_msg(o, "network service error"));
    json_decref(o);
    return rc;
}

/* ---- networks ---------------------------------------------------------------------- */

static bool valid_id(const char *s)
{
    if (!s || !*s || strlen(s) > 64) return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '-'))
            return false;
    return true;
}

int ts_compute_net_resolve_default(const struct ts_service_env *env, const char *token, const char *project,
                                   bool is_admin, json_t **out, struct ts_err *err)
{
    char base[512];
    json_t *o = NULL;
    *out = json_array();
    if (!ts_compute_ext_url(env, "network", base, sizeof(base))) return 0;
    /* Nova's _get_available_networks without auto_allocate: the project's own non-shared
     * networks plus every shared one, external ones included */
    int rc = net_call(env, token, "GET", "/v2.0/networks", NULL, &o, err);
    if (rc) goto fail;
    const json_t *pick = NULL;
    int found = 0;
    size_t i;
    json_t *n;
    json_array_foreach(json_object_get(o, "networks"), i, n) {
        bool shared = json_is_true(json_object_get(n, "shared"));
        if (shared || ts_streq(JS(n, "project_id"), project)) {
            pick = n;
            found++;
        }
    }
    if (found > 1) {
        rc = ts_err_set(err, TS_ECONFLICT, "Multiple possible networks found, use a Network ID to be more specific.");
        goto fail;
    }
    if (pick && json_is_true(json_object_get(pick, "router:external")) &&
        !json_is_true(json_object_get(pick, "shared")) && !is_admin) {
        rc = ts_err_set(err, TS_EFORBIDDEN, "It is not allowed to create an interface on external network %s",
                        JS(pick, "id"));
        goto fail;
    }
    if (pick) json_array_append_new(*out, json_pack("{s:s}", "uuid", JS(pick, "id")));
    json_decref(o);
    return 0;
fail:
    json_decref(o);
    json_decref(*out);
    *out = NULL;
    return rc;
}

int ts_compute_net_resolve(const struct ts_service_env *env, const char *token, const char *project,
                           const json_t *requested, int64_t max_count, json_t **out, struct ts_err *err)
{
    char base[512];
    *out = json_array();
    if (!requested || json_is_null(requested) || ts_streq(json_string_value(requested), "none")) return 0;
    bool have_net = ts_compute_ext_url(env, "network", base, sizeof(base)) != NULL;
    int rc = 0;
    json_t *o = NULL;
    if (ts_streq(json_string_value(requested), "auto")) {
        if (!have_net) goto no_auto;
        rc = net_call(env, token, "GET", "/v2.0/networks", NULL, &o, err);
        if (rc) goto fail;
        const char *own = NULL, *shared = NULL;
        int n_own = 0, n_shared = 0;
        size_t i;
        json_t *n;
        json_array_foreach(json_object_get(o, "networks"), i, n) {
            if (json_is_true(json_object_get(n, "router:external"))) continue;
            if (ts_streq(JS(n, "project_id"), project) && !json_is_true(json_object_get(n, "shared"))) {
                own = JS(n, "id");
                n_own++;
            } else if (json_is_true(json_object_get(n, "shared"))) {
                shared = JS(n, "id");
                n_shared++;
            }
        }
        const char *pick = n_own == 1 ? own : n_own == 0 && n_shared == 1 ? shared : NULL;
        if (!pick && (n_own > 1 || (n_own == 0 && n_shared > 1))) {
            rc = ts_err_set(err, TS_ECONFLICT, "Multiple possible networks found, use a Network ID to be more "
                            "specific.");
            goto fail;
        }
        if (!pick) goto no_auto;
        json_array_append_new(*out, json_pack("{s:s}", "uuid", pick));
        json_decref(o);
        return 0;
    no_auto:
        rc = ts_err_set(err, TS_EINVAL, "Unable to automatically allocate a network for project %s", project);
        goto fail;
    }
    if (!json_is_array(requested)) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute networks.");
        goto fail;
    }
    size_t i;
    json_t *r;
    json_array_foreach(requested, i, r) {
        if (!json_is_object(r)) {
            rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute networks.");
            goto fail;
        }
        const char *net = JS(r, "uuid"), *port = JS(r, "port"), *fip = JS(r, "fixed_ip");
        if ((net && *net && !valid_id(net)) || (port && *port && !valid_id(port)) ||
            (!(net && *net) && !(port && *port))) {
            rc = ts_err_set(err, TS_EINVAL, "Bad networks format: network uuid is not in proper format (%s)",
                            net ? net : port ? port : "");
            goto fail;
        }
        if (!have_net) {
            rc = ts_err_set(err, TS_EINVAL, "Network %s could not be found. (the network service is not enabled)",
                            net && *net ? net : port);
            goto fail;
        }
        char *path = NULL;
        if (port && *port) {
            if (max_count > 1) {
                rc = ts_err_set(err, TS_EINVAL, "Unable to launch multiple instances with a single configured port "
                                "ID. Please launch your instance one by one with different ports.");
                goto fail;
            }
            path = ts_asprintf("/v2.0/ports/%s", port);
            rc = net_call(env, token, "GET", path, NULL, &o, err);
            free(path);
            if (rc == -TS_ENOTFOUND) rc = ts_err_set(err, TS_EINVAL, "Port %s could not be found.", port);
            if (rc) goto fail;
            const char *dev = JS(json_object_get(o, "port"), "device_id");
            if (dev && *dev) {
                rc = ts_err_set(err, TS_ECONFLICT, "Port %s is still in use.", port);
                goto fail;
            }
            json_decref(o);
            o = NULL;
            json_array_append_new(*out, json_pack("{s:s}", "port", port));
        } else {
            path = ts_asprintf("/v2.0/networks/%s", net);
            rc = net_call(env, token, "GET", path, NULL, &o, err);
            free(path);
            if (rc == -TS_ENOTFOUND) rc = ts_err_set(err, TS_EINVAL, "Network %s could not be found.", net);
            if (rc) goto fail;
            json_decref(o);
            o = NULL;
            json_t *e = json_pack("{s:s}", "uuid", net);
            if (fip) ts_json_set_str(e, "fixed_ip", fip);
            json_array_append_new(*out, e);
        }
    }
    return 0;
fail:
    json_decref(o);
    json_decref(*out);
    *out = NULL;
    return rc;
}

int ts_compute_net_sg_id(const struct ts_service_env *env, const char *token, const char *name, char *out,
                         size_t cap, char *name_out, size_t name_cap, struct ts_err *err)
{
    if (name_out && name_cap) name_out[0] = 0;
    json_t *o = NULL;
    struct ts_pool *pool = ts_pool_new();
    int rc = net_call(env, token, "GET", "/v2.0/security-groups?fields=id&fields=name&fields=project_id", NULL, &o,
                      err);
    if (rc) goto out;
    rc = -TS_ENOTFOUND;
    size_t i;
    json_t *g;
    json_array_foreach(json_object_get(o, "security_groups"), i, g) {
        if (ts_streq(JS(g, "id"), name) || ts_streq(JS(g, "name"), name)) {
            snprintf(out, cap, "%s", JS(g, "id"));
            if (name_out && name_cap) snprintf(name_out, name_cap, "%s", JS(g, "name") ? JS(g, "name") : "");
            rc = 0;
            if (ts_streq(JS(g, "id"), name)) break;
        }
    }
    if (rc) ts_err_set(err, TS_ENOTFOUND, "Security group %s not found.", name);
out:
    json_decref(o);
    ts_pool_free(pool);
    return rc;
}

/* A VIF from a port (and the network's name and MTU). */
static json_t *vif_of(const json_t *port, const json_t *net, bool created)
{
    json_t *ips = json_array();
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(port, "fixed_ips"), i, f) {
        const char *a = JS(f, "ip_address");
        if (a) json_array_append_new(ips, json_pack("{s:s, s:i, s:s}", "addr", a, "version", strchr(a, ':') ? 6 : 4,
                                                    "type", "fixed"));
    }
    json_t *v = json_pack("{s:s?, s:s?, s:s?, s:s?, s:I, s:b, s:O, s:o, s:s?}", "port_id", JS(port, "id"),
                          "network_id", JS(port, "network_id"), "network_name", net ? JS(net, "name") : NULL,
                          "mac", JS(port, "mac_address"), "mtu",
                          (json_int_t)json_integer_value(json_object_get(net, "mtu")), "created", created,
                          "fixed_ips", json_object_get(port, "fixed_ips") ? json_object_get(port, "fixed_ips")
                                                                           : json_array(),
                          "ips", ips, "status", JS(port, "status"));
    return v;
}

int ts_compute_net_port_setup(const struct ts_service_env *env, const char *token, const json_t *inst,
                              const char *host, const json_t *req, json_t **vif, struct ts_err *err)
{
    const char *uuid = JS(inst, "uuid");
    const char *az = JS(inst, "availability_zone");
    char owner[300];
    snprintf(owner, sizeof(owner), "compute:%s", az && *az ? az : "nova");
    const char *port_id = JS(req, "port"), *net_id = JS(req, "uuid");
    json_t *o = NULL, *net = NULL, *b = NULL;
    char *path = NULL;
    bool created = false;
    int rc = 0;
    char pid[64] = "";
    if (port_id && *port_id) {
        if (!valid_id(port_id)) return ts_err_set(err, TS_EINVAL, "bad port id");
        path = ts_asprintf("/v2.0/ports/%s", port_id);
        rc = net_call(env, token, "GET", path, NULL, &o, err);
        if (rc) goto out;
        const char *dev = JS(json_object_get(o, "port"), "device_id");
        if (dev && *dev && !ts_streq(dev, uuid)) {
            rc = ts_err_set(err, TS_ECONFLICT, "Port %s is still in use.", port_id);
            goto out;
        }
        json_decref(o);
        o = NULL;
        b = json_pack("{s:{s:s, s:s}}", "port", "device_id", uuid, "device_owner", owner);
        rc = net_call(env, token, "PUT", path, b, &o, err);
        if (rc) goto out;
        snprintf(pid, sizeof(pid), "%s", port_id);
    } else {
        if (!valid_id(net_id)) return ts_err_set(err, TS_EINVAL, "bad network id");
        json_t *p = json_pack("{s:s, s:s, s:s}", "network_id", net_id, "device_id", uuid, "device_owner", owner);
        if (JS(req, "fixed_ip")) json_object_set_new(p, "fixed_ips", json_pack("[{s:s}]", "ip_address",
                                                                                JS(req, "fixed_ip")));
        json_t *sgs = json_object_get(inst, "security_groups");
        bool only_default = json_array_size(sgs) == 1 && ts_streq(JS(json_array_get(sgs, 0), "name"), "default");
        if (json_is_array(sgs) && !only_default) {
            json_t *ids = json_array();
            size_t i;
            json_t *g;
            json_array_foreach(sgs, i, g) {
                char id[64];
                const char *nm = JS(g, "name");
                if (!nm) continue;
                rc = ts_compute_net_sg_id(env, token, nm, id, sizeof(id), NULL, 0, err);
                if (rc) {
                    json_decref(ids);
                    json_decref(p);
                    goto out;
                }
                json_array_append_new(ids, json_string(id));
            }
            json_object_set_new(p, "security_groups", ids);
        }
        b = json_pack("{s:o}", "port", p);
        rc = net_call(env, token, "POST", "/v2.0/ports", b, &o, err);
        if (rc) goto out;
        created = true;
        snprintf(pid, sizeof(pid), "%s", JS(json_object_get(o, "port"), "id") ? JS(json_object_get(o, "port"), "id")
                                                                              : "");
        path = ts_asprintf("/v2.0/ports/%s", pid);
    }
    /* bind to the host (admin-only attribute: the service token) as Nova's compute manager does */
    json_decref(b);
    b = json_pack("{s:{s:s}}", "port", "binding:host_id", host);
    json_decref(o);
    o = NULL;
    rc = net_call(env, NULL, "PUT", path, b, &o, err);
    if (rc) goto undo;
    json_t *port = json_object_get(o, "port");
    char *npath = ts_asprintf("/v2.0/networks/%s", JS(port, "network_id") ? JS(port, "network_id") : "");
    if (net_call(env, NULL, "GET", npath, NULL, &net, NULL) < 0) net = NULL;
    free(npath);
    *vif = vif_of(port, json_object_get(net, "network"), created);
    goto out;
undo:
    if (pid[0]) ts_compute_net_port_release(env, pid, created);
out:
    json_decref(o);
    json_decref(b);
    json_decref(net);
    free(path);
    return rc;
}

void ts_compute_net_port_release(const struct ts_service_env *env, const char *port_id, bool created)
{
    if (!valid_id(port_id)) return;
    char *path = ts_asprintf("/v2.0/ports/%s", port_id);
    struct ts_err err = {0};
    int rc;
    if (created) {
        rc = net_call(env, NULL, "DELETE", path, NULL, NULL, &err);
    } else {
        json_t *b = json_pack("{s:{s:s, s:s, s:s}}", "port", "device_id", "", "device_owner", "", "binding:host_id",
                              "");
        rc = net_call(env, NULL, "PUT", path, b, NULL, &err);
        json_decref(b);
    }
    if (rc && rc != -TS_ENOTFOUND) ts_warn("compute", "release of port %s: %s", port_id, err.msg);
    free(path);
}

void ts_compute_net_deallocate(const struct ts_service_env *env, const char *uuid, const json_t *nw_info)
{
    char base[512];
    if (!ts_compute_ext_url(env, "network", base, sizeof(base)) || !valid_id(uuid)) return;
    size_t i;
    json_t *v;
    json_array_foreach(nw_info, i, v) ts_compute_net_port_release(env, JS(v, "port_id"),
                                                                   json_is_true(json_object_get(v, "created")));
    /* ports the cache did not know (a crash between create and cache update): Nova deletes the
     * ports it made; without a record, only those owned by compute with our device_id are unbound */
    char *path = ts_asprintf("/v2.0/ports?device_id=%s", uuid);
    json_t *o = NULL;
    if (net_call(env, NULL, "GET", path, NULL, &o, NULL) == 0) {
        json_array_foreach(json_object_get(o, "ports"), i, v) {
            if (!ts_startswith(JS(v, "device_owner") ? JS(v, "device_owner") : "", "compute:")) continue;
            ts_compute_net_port_release(env, JS(v, "id"), false);
        }
    }
    json_decref(o);
    free(path);
}

int ts_compute_net_refresh(const struct ts_service_env *env, const char *token, const char *uuid, const json_t *old,
                           json_t **out, struct ts_err *err)
{
    if (!valid_id(uuid)) return ts_err_set(err, TS_EINVAL, "bad instance id");
    json_t *ports = NULL, *fips = NULL, *nets = NULL;
    struct ts_pool *pool = ts_pool_new();
    char *path = ts_asprintf("/v2.0/ports?device_id=%s", uuid);
    int rc = net_call(env, token, "GET", path, NULL, &ports, err);
    free(path);
    if (rc) goto out;
    json_t *res = json_array();
    struct ts_buf q;
    ts_buf_init(&q, 0);
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(ports, "ports"), i, p) ts_buf_printf(&q, "&id=%s", JS(p, "network_id"));
    if (q.len) {
        char *np = ts_asprintf("/v2.0/networks?fields=id&fields=name&fields=mtu%s", ts_buf_cstr(&q));
        if (net_call(env, token, "GET", np, NULL, &nets, NULL) < 0) nets = NULL;
        free(np);
        ts_buf_reset(&q);
        json_array_foreach(json_object_get(ports, "ports"), i, p) ts_buf_printf(&q, "&port_id=%s", JS(p, "id"));
        char *fp = ts_asprintf("/v2.0/floatingips?%s", ts_buf_cstr(&q) + 1);
        if (net_call(env, token, "GET", fp, NULL, &fips, NULL) < 0) fips = NULL;
        free(fp);
    }
    ts_buf_free(&q);
    json_array_foreach(json_object_get(ports, "ports"), i, p) {
        const char *pid = JS(p, "id");
        json_t *net = NULL, *n;
        size_t j;
        json_array_foreach(json_object_get(nets, "networks"), j, n) if (ts_streq(JS(n, "id"), JS(p, "network_id")))
            net = n;
        bool created = false;
        json_t *ov;
        json_array_foreach(old, j, ov) if (ts_streq(JS(ov, "port_id"), pid)) created =
            json_is_true(json_object_get(ov, "created"));
        json_t *v = vif_of(p, net, created);
        json_t *f;
        json_array_foreach(json_object_get(fips, "floatingips"), j, f) {
            if (!ts_streq(JS(f, "port_id"), pid) || !JS(f, "floating_ip_address")) continue;
            json_array_append_new(json_object_get(v, "ips"),
                                  json_pack("{s:s, s:i, s:s}", "addr", JS(f, "floating_ip_address"), "version", 4,
                                            "type", "floating"));
        }
        json_array_append_new(res, v);
    }
    *out = res;
out:
    json_decref(ports);
    json_decref(fips);
    json_decref(nets);
    ts_pool_free(pool);
    return rc;
}

json_t *ts_compute_net_addresses(const json_t *nw_info)
{
    json_t *a = json_object();
    size_t i, j;
    json_t *v, *ip;
    json_array_foreach(nw_info, i, v) {
        const char *name = JS(v, "network_name");
        if (!name || !*name) name = JS(v, "network_id");
        if (!name) continue;
        json_t *list = json_object_get(a, name);
        if (!list) {
            list = json_array();
            json_object_set_new(a, name, list);
        }
        json_array_foreach(json_object_get(v, "ips"), j, ip) {
            json_array_append_new(list, json_pack("{s:I, s:s?, s:s?, s:s?}", "version",
                                                  (json_int_t)json_integer_value(json_object_get(ip, "version")),
                                                  "addr", JS(ip, "addr"), "OS-EXT-IPS:type", JS(ip, "type"),
                                                  "OS-EXT-IPS-MAC:mac_addr", JS(v, "mac")));
        }
    }
    return a;
}

/* ---- block storage ----------------------------------------------------------------------- */

#define VOL_MV "OpenStack-API-Version: volume 3.44"

static int vol_call(const struct ts_service_env *env, const char *token, const char *method, const char *path,
                    const json_t *body, json_t **out, struct ts_err *err)
{
    int st = 0;
    json_t *o = NULL;
    int rc = ts_compute_ext_call(env, "volume", token, method, path, body, VOL_MV, &st, &o, err);
    if (rc) return rc;
    if (st >= 200 && st < 300) {
        if (out) *out = o;
        else json_decref(o);
        return 0;
    }
    int code = st == 404 ? TS_ENOTFOUND : st == 409 ? TS_ECONFLICT : st == 403 ? TS_EFORBIDDEN
             : st == 400 ? TS_EINVAL : st == 413 ? TS_EQUOTA : TS_EIO;
    rc = ts_err_set(err, code, "%s", ts_compute_ext_msg(o, "volume service error"));
    json_decref(o);
    return rc;
}

int ts_compute_vol_get(const struct ts_service_env *env, const char *token, const char *project, const char *vol_id,
                       json_t **out, struct ts_err *err)
{
    if (!valid_id(vol_id) || !valid_id(project))
        return ts_err_set(err, TS_ENOTFOUND, "Volume %s could not be found.", vol_id ? vol_id : "");
    char *path = ts_asprintf("/v3/%s/volumes/%s", project, vol_id);
    json_t *o = NULL;
    int rc = vol_call(env, token, "GET", path, NULL, &o, err);
    free(path);
    if (rc == -TS_ENOTFOUND) return ts_err_set(err, TS_ENOTFOUND, "Volume %s could not be found.", vol_id);
    if (rc) return rc;
    *out = json_incref(json_object_get(o, "volume"));
    json_decref(o);
    if (!*out) return ts_err_set(err, TS_EIO, "bad answer from the volume service");
    return 0;
}

int ts_compute_vol_reserve(const struct ts_service_env *env, const char *token, const char *project,
                           const char *vol_id, const char *inst_uuid, char *att_id, struct ts_err *err)
{
    if (!valid_id(project)) return ts_err_set(err, TS_EINVAL, "bad project");
    char *path = ts_asprintf("/v3/%s/attachments", project);
    json_t *b = json_pack("{s:{s:s, s:s}}", "attachment", "volume_uuid", vol_id, "instance_uuid", inst_uuid);
    json_t *o = NULL;
    int rc = vol_call(env, token, "POST", path, b, &o, err);
    if (!rc) {
        const char *id = JS(json_object_get(o, "attachment"), "id");
        if (!id || strlen(id) > 36) rc = ts_err_set(err, TS_EIO, "no attachment id from the volume service");
        else snprintf(att_id, 37, "%s", id);
    }
    json_decref(o);
    json_decref(b);
    free(path);
    return rc;
}

int ts_compute_vol_connect(const struct ts_service_env *env, const char *token, const char *project,
                           const char *att_id, const char *host, char *dpath, size_t cap, char *format, size_t fcap,
                           struct ts_err *err)
{
    if (!valid_id(project) || !valid_id(att_id)) return ts_err_set(err, TS_EINVAL, "bad attachment");
    char *path = ts_asprintf("/v3/%s/attachments/%s", project, att_id);
    json_t *b = json_pack("{s:{s:{s:s, s:s, s:s, s:b}}}", "attachment", "connector", "host", host, "platform",
                          "x86_64", "os_type", "linux", "multipath", false);
    json_t *o = NULL;
    int rc = vol_call(env, token, "PUT", path, b, &o, err);
    if (!rc) {
        json_t *ci = json_object_get(json_object_get(o, "attachment"), "connection_info");
        json_t *d = json_object_get(ci, "data");
        if (!d) d = ci;
        const char *p = JS(d, "device_path") ? JS(d, "device_path") : JS(d, "path");
        if (!p || p[0] != '/') rc = ts_err_set(err, TS_EIO, "the volume service gave no device path");
        else snprintf(dpath, cap, "%s", p);
        snprintf(format, fcap, "%s", ts_streq(JS(d, "format"), "qcow2") ? "qcow2" : "raw");
    }
    json_decref(o);
    json_decref(b);
    free(path);
    return rc;
}

int ts_compute_vol_complete(const struct ts_service_env *env, const char *token, const char *project,
                            const char *att_id, struct ts_err *err)
{
    if (!valid_id(project) || !valid_id(att_id)) return ts_err_set(err, TS_EINVAL, "bad attachment");
    char *path = ts_asprintf("/v3/%s/attachments/%s/action", project, att_id);
    json_t *b = json_pack("{s:n}", "os-complete");
    int rc = vol_call(env, token, "POST", path, b, NULL, err);
    json_decref(b);
    free(path);
    return rc;
}

int ts_compute_vol_unreserve(const struct ts_service_env *env, const char *token, const char *project,
                             const char *att_id, struct ts_err *err)
{
    if (!valid_id(project) || !valid_id(att_id)) return ts_err_set(err, TS_EINVAL, "bad attachment");
    char *path = ts_asprintf("/v3/%s/attachments/%s", project, att_id);
    int rc = vol_call(env, token, "DELETE", path, NULL, NULL, err);
    if (rc && rc != -TS_ENOTFOUND && token) rc = vol_call(env, NULL, "DELETE", path, NULL, NULL, err);
    if (rc == -TS_ENOTFOUND) rc = 0;
    free(path);
    return rc;
}

int ts_compute_vol_create_wait(const struct ts_service_env *env, const char *token, const char *project, int64_t size_gb,
                               const char *image_id, const char *name, int timeout_s, char *vol_id,
                               struct ts_err *err)
{
    if (!valid_id(project)) return ts_err_set(err, TS_EINVAL, "bad project");
    char *path = ts_asprintf("/v3/%s/volumes", project);
    json_t *v = json_pack("{s:I, s:s}", "size", (json_int_t)(size_gb > 0 ? size_gb : 1), "name", name ? name : "");
    if (image_id) ts_json_set_str(v, "imageRef", image_id);
    json_t *b = json_pack("{s:o}", "volume", v), *o = NULL;
    int rc = vol_call(env, token, "POST", path, b, &o, err);
    json_decref(b);
    free(path);
    if (rc) return rc;
    const char *id = JS(json_object_get(o, "volume"), "id");
    if (!id || !valid_id(id) || strlen(id) > 36) {
        json_decref(o);
        return ts_err_set(err, TS_EIO, "no volume id from the volume service");
    }
    snprintf(vol_id, 37, "%s", id);
    json_decref(o);
    double until = ts_mono() + timeout_s;
    for (;;) {
        json_t *vol = NULL;
        rc = ts_compute_vol_get(env, token, project, vol_id, &vol, err);
        const char *st = rc ? NULL : JS(vol, "status");
        bool avail = ts_streq(st, "available"), bad = st && (ts_streq(st, "error") || ts_streq(st, "deleting"));
        json_decref(vol);
        if (avail) return 0;
        if (bad) return ts_err_set(err, TS_EIO, "Volume %s did not finish being created (status %s)", vol_id, "error");
        if (ts_mono() > until)
            return ts_err_set(err, TS_ETIMEDOUT, "Volume %s did not finish being created even after we waited %d "
                              "seconds", vol_id, timeout_s);
        usleep(300 * 1000);
    }
}

int ts_compute_vol_delete(const struct ts_service_env *env, const char *token, const char *project,
                          const char *vol_id, struct ts_err *err)
{
    if (!valid_id(project) || !valid_id(vol_id)) return ts_err_set(err, TS_EINVAL, "bad volume");
    char *path = ts_asprintf("/v3/%s/volumes/%s", project, vol_id);
    int rc = vol_call(env, token, "DELETE", path, NULL, NULL, err);
    if (rc && rc != -TS_ENOTFOUND && token) rc = vol_call(env, NULL, "DELETE", path, NULL, NULL, err);
    free(path);
    return rc == -TS_ENOTFOUND ? 0 : rc;
}

void ts_compute_vol_cleanup(const struct ts_service_env *env, const char *token, const json_t *inst)
{
    const char *project = JS(inst, "project_id");
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(inst, "bdm"), i, b) {
        const char *vid = JS(b, "volume_id"), *att = JS(b, "attachment_id");
        if (!vid) continue;
        struct ts_err err = {0};
        if (att && ts_compute_vol_unreserve(env, token, project, att, &err) < 0)
            ts_warn("compute", "detach of volume %s: %s", vid, err.msg);
        if (json_is_true(json_object_get(b, "delete_on_termination")) &&
            ts_compute_vol_delete(env, token, project, vid, &err) < 0)
            ts_warn("compute", "delete of volume %s: %s", vid, err.msg);
    }
}
