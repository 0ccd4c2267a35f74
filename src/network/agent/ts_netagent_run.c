/*
 * ts_netagent_run.c: how the agent is driven. In the cloud (ts_netagent_start): a thread
 * that reconciles every few seconds and when the network API fans out a "network_agent"
 * event, reading the desired state from the Neutron API with a service token, asking the
 * compute API for instance metadata, and reporting plugged VIFs (port ACTIVE +
 * network-vif-plugged). For tests (ts_netagent_apply_main): the same reconcile from a
 * JSON file, with no API at all.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json/ts_json.h"
#include "network/agent/ts_netagent.h"
#include "network/agent/ts_netagent_int.h"

#define HTTP_TIMEOUT_MS 10000

/* ---- the cloud mode --------------------------------------------------------------- */

struct runner {
    struct ts_netagent *agent;
    struct ts_service_env *env;
    char network_url[256], compute_url[256], identity_url[256];
    char user[256], password[256], project[256];
    pthread_mutex_t tok_mu;
    char token[2048];
    double token_at;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool stop, kicked, started, cleanup_on_stop;
    double interval;
    char host[256];
    struct runner *next;
};

/* Bus subscriptions cannot be withdrawn, so the handler finds live agents here. */
static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static struct runner *registry;

static void kick(struct runner *r)
{
    pthread_mutex_lock(&r->mu);
    r->kicked = true;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->mu);
}

static int on_bus(void *ctx, const char *method, json_t *args, json_t **reply, struct ts_err *err)
{
    (void)ctx;
    (void)reply;
    (void)err;
    ts_debug("netagent", "bus event %s port %s", method ? method : "", ts_json_str(args, "port_id", ""));
    pthread_mutex_lock(&registry_mu);
    for (struct runner *r = registry; r; r = r->next)
        kick(r);
    pthread_mutex_unlock(&registry_mu);
    return 0;
}

static void service_url(struct ts_service_env *env, const char *svc, int def_port, char *out, size_t len)
{
    const char *u = ts_conf_get(env->conf, svc, "url", NULL);
    if (u) {
        snprintf(out, len, "%s", u);
    } else {
        const char *bind =
            env->bind && *env->bind && !ts_streq(env->bind, "0.0.0.0") ? env->bind : "127.0.0.1";
        snprintf(out, len, "http://%s:%lld", bind,
                 (long long)ts_conf_get_int(env->conf, svc, "port", def_port));
    }
    size_t l = strlen(out);
    while (l && out[l - 1] == '/')
        out[--l] = 0;
}

static int get_token(struct runner *r, char *out, size_t len, bool renew)
{
    int rc = -TS_EUNAVAIL;
    pthread_mutex_lock(&r->tok_mu);
    if (!renew && r->token[0] && ts_mono() - r->token_at < 1800) {
        snprintf(out, len, "%s", r->token);
        pthread_mutex_unlock(&r->tok_mu);
        return 0;
    }
    json_t *body =
        json_pack("{s:{s:{s:[s],s:{s:{s:s,s:{s:s},s:s}}},s:{s:{s:s,s:{s:s}}}}}", "auth", "identity",
                  "methods", "password", "password", "user", "name", r->user, "domain", "id", "default",
                  "password", r->password, "scope", "project", "name", r->project, "domain", "id", "default");
    char *text = json_dumps(body, JSON_COMPACT);
    char *url = ts_asprintf("%s/v3/auth/tokens", r->identity_url);
    const char *hdr[] = {"Content-Type: application/json", NULL};
    struct ts_http_client_resp resp = {0};
    if (ts_http_client_request("POST", url, hdr, text, strlen(text), HTTP_TIMEOUT_MS, &resp, NULL) == 0 &&
        resp.status == 201) {
        char *tok = ts_http_client_resp_header(&resp, "X-Subject-Token");
        if (tok) {
            snprintf(r->token, sizeof(r->token), "%s", tok);
            r->token_at = ts_mono();
            snprintf(out, len, "%s", tok);
            rc = 0;
        }
        free(tok);
    } else {
        ts_warn("netagent", "service token from %s failed (status %d)", url, resp.status);
    }
    ts_http_client_resp_free(&resp);
    json_decref(body);
    free(text);
    free(url);
    pthread_mutex_unlock(&r->tok_mu);
    return rc;
}

/* An authenticated JSON request; *out gets the parsed body of a 2xx answer. */
static int api(struct runner *r, const char *method, const char *url, const json_t *body,
               const char *microversion, json_t **out)
{
    char tok[2048];
    int status = 0;
    if (out) *out = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (get_token(r, tok, sizeof(tok), attempt > 0) < 0) return -TS_EUNAVAIL;
        char *th = ts_asprintf("X-Auth-Token: %s", tok);
        char *mv1 = microversion ? ts_asprintf("X-OpenStack-Nova-API-Version: %s", microversion) : NULL;
        char *mv2 = microversion ? ts_asprintf("OpenStack-API-Version: compute %s", microversion) : NULL;
        const char *hdr[] = {th,  "Content-Type: application/json", "Accept: application/json", mv1, mv2,
                             NULL};
        char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
        struct ts_http_client_resp resp = {0};
        int rc = ts_http_client_request(method, url, hdr, text, text ? strlen(text) : 0, HTTP_TIMEOUT_MS,
                                        &resp, NULL);
        status = resp.status;
        if (rc == 0 && status >= 200 && status < 300 && out && resp.body)
            ts_json_parse(resp.body, resp.body_len, out, NULL);
        ts_http_client_resp_free(&resp);
        free(text);
        free(th);
        free(mv1);
        free(mv2);
        if (rc < 0) return rc;
        if (status != 401) break;
    }
    if (status < 200 || status >= 300) {
        ts_debug("netagent", "%s %s -> %d", method, url, status);
        return status == 404 ? -TS_ENOTFOUND : -TS_EIO;
    }
    return 0;
}

/* Neutron's DHCP agent makes the network:dhcp port of each network with a DHCP subnet (and
 * gives it an address on every such subnet); so do we, through the API. Returns true when
 * it changed a port (the state is then read again). */
static bool ensure_dhcp_ports(struct runner *r, json_t *state)
{
    size_t i, k;
    json_t *net, *sn, *p;
    bool changed = false;
    json_array_foreach(json_object_get(state, "networks"), i, net) {
        const char *nid = ts_json_str(net, "id", NULL);
        if (!nid) continue;
        json_t *want = json_array();
        json_array_foreach(json_object_get(state, "subnets"), k, sn) {
            /* IPv4 DHCP subnets and the IPv6 ones dnsmasq serves (DHCPv6 stateful/stateless) */
            bool v4 = ts_json_int(sn, "ip_version", 4) == 4 && ts_json_bool(sn, "enable_dhcp", true);
            if (ts_streq(ts_json_str(sn, "network_id", NULL), nid) && (v4 || ts_netagent_dhcp6_subnet(sn)) &&
                ts_json_str(sn, "id", NULL))
                json_array_append_new(want, json_string(ts_json_str(sn, "id", NULL)));
        }
        if (!json_array_size(want)) {
            json_decref(want);
            continue;
        }
        json_t *dp = NULL;
        json_array_foreach(json_object_get(state, "ports"), k, p) {
            if (ts_streq(ts_json_str(p, "network_id", NULL), nid) &&
                ts_streq(ts_json_str(p, "device_owner", NULL), "network:dhcp"))
                dp = p;
        }
        json_t *ips = json_array(), *sid;
        size_t n_have = 0;
        if (dp) json_array_extend(ips, json_object_get(dp, "fixed_ips"));
        json_array_foreach(want, k, sid) {
            bool have = false;
            size_t m;
            json_t *f;
            json_array_foreach(json_object_get(dp, "fixed_ips"), m, f) have |=
                ts_streq(ts_json_str(f, "subnet_id", NULL), json_string_value(sid));
            if (have)
                n_have++;
            else
                json_array_append_new(ips, json_pack("{s:O}", "subnet_id", sid));
        }
        if (!dp) {
            char *url = ts_asprintf("%s/v2.0/ports", r->network_url);
            char *dev = ts_asprintf("dhcp-%s", nid);
            json_t *body = json_pack("{s:{s:s,s:s,s:s,s:s,s:O,s:b}}", "port", "network_id", nid,
                                     "device_owner", "network:dhcp", "device_id", dev, "binding:host_id",
                                     r->host, "fixed_ips", ips, "admin_state_up", 1);
            const char *proj = ts_json_str(net, "project_id", ts_json_str(net, "tenant_id", NULL));
            if (proj && *proj) ts_json_set_str(json_object_get(body, "port"), "project_id", proj);
            if (api(r, "POST", url, body, NULL, NULL) == 0)
                changed = true;
            else
                ts_warn("netagent", "cannot create the DHCP port of network %s", nid);
            json_decref(body);
            free(dev);
            free(url);
        } else if (n_have < json_array_size(want)) {
            char *url = ts_asprintf("%s/v2.0/ports/%s", r->network_url, ts_json_str(dp, "id", ""));
            json_t *body = json_pack("{s:{s:O}}", "port", "fixed_ips", ips);
            if (api(r, "PUT", url, body, NULL, NULL) == 0) changed = true;
            json_decref(body);
            free(url);
        }
        json_decref(ips);
        json_decref(want);
    }
    return changed;
}

static json_t *fetch_lists(struct runner *r);

static json_t *fetch_state_api(void *ctx)
{
    struct runner *r = ctx;
    json_t *state = fetch_lists(r);
    if (state && ensure_dhcp_ports(r, state)) {
        json_decref(state);
        state = fetch_lists(r);
    }
    return state;
}

static json_t *fetch_lists(struct runner *r)
{
    static const char *const kinds[][2] = {
        {"networks", "networks"}, {"subnets", "subnets"},         {"ports", "ports"},
        {"routers", "routers"},   {"floatingips", "floatingips"}, {"security-groups", "security_groups"}};
    json_t *state = json_object();
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        char *url = ts_asprintf("%s/v2.0/%s", r->network_url, kinds[i][0]);
        json_t *doc = NULL;
        int rc = api(r, "GET", url, NULL, NULL, &doc);
        free(url);
        json_t *list = json_object_get(doc, kinds[i][1]);
        if (rc < 0 || !json_is_array(list)) {
            json_decref(doc);
            json_decref(state);
            return NULL; /* never reconcile from a partial picture */
        }
        json_object_set(state, kinds[i][1], list);
        json_decref(doc);
    }
    /* security groups listed without rules: ask for them */
    size_t i;
    json_t *sg;
    bool need_rules = false;
    json_array_foreach(json_object_get(state, "security_groups"), i, sg) need_rules |=
        !json_object_get(sg, "security_group_rules");
    if (need_rules) {
        char *url = ts_asprintf("%s/v2.0/security-group-rules", r->network_url);
        json_t *doc = NULL;
        if (api(r, "GET", url, NULL, NULL, &doc) == 0) {
            json_array_foreach(json_object_get(state, "security_groups"), i, sg) {
                json_t *rules = json_array(), *rule;
                size_t k;
                json_array_foreach(json_object_get(doc, "security_group_rules"), k, rule) {
                    if (ts_streq(ts_json_str(rule, "security_group_id", NULL), ts_json_str(sg, "id", "")))
                        json_array_append(rules, rule);
                }
                json_object_set_new(sg, "security_group_rules", rules);
            }
        }
        json_decref(doc);
        free(url);
    }
    return state;
}

static json_t *fetch_instance_api(void *ctx, const char *device_id)
{
    struct runner *r = ctx;
    json_t *doc = NULL, *out = NULL;
    for (const char *c = device_id; *c; c++)
        if (!(*c == '-' || (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f'))) return NULL;
    char *url = ts_asprintf("%s/v2.1/servers/%s", r->compute_url, device_id);
    if (api(r, "GET", url, NULL, "2.10", &doc) < 0) goto out;
    json_t *s = json_object_get(doc, "server");
    if (!json_is_object(s)) goto out;
    out = json_object();
    ts_json_set_str(out, "uuid", ts_json_str(s, "id", ""));
    ts_json_set_str(out, "name", ts_json_str(s, "name", ""));
    ts_json_set_str(out, "hostname", ts_json_str(s, "OS-EXT-SRV-ATTR:hostname", ts_json_str(s, "name", "")));
    ts_json_set_str(out, "instance_name", ts_json_str(s, "OS-EXT-SRV-ATTR:instance_name", ""));
    ts_json_set_str(out, "availability_zone", ts_json_str(s, "OS-EXT-AZ:availability_zone", "nova"));
    ts_json_set_str(out, "project_id", ts_json_str(s, "tenant_id", ts_json_str(s, "project_id", "")));
    const char *ud = ts_json_str(s, "OS-EXT-SRV-ATTR:user_data", NULL);
    if (ud) ts_json_set_str(out, "user_data", ud);
    json_t *img = json_object_get(s, "image");
    if (json_is_object(img)) ts_json_set_str(out, "image_id", ts_json_str(img, "id", ""));
    json_t *fl = json_object_get(s, "flavor");
    ts_json_set_str(out, "flavor", ts_json_str(fl, "original_name", ts_json_str(fl, "id", "")));
    json_t *sgs = json_array(), *g;
    size_t i;
    json_array_foreach(json_object_get(s, "security_groups"), i, g) {
        if (ts_json_str(g, "name", NULL)) json_array_append_new(sgs, json_string(ts_json_str(g, "name", "")));
    }
    json_object_set_new(out, "security_groups", sgs);
    json_t *md = json_object_get(s, "metadata");
    if (json_is_object(md)) {
        json_object_set(out, "metadata", md);
    } else {
        char *murl = ts_asprintf("%s/metadata", url);
        json_t *mdoc = NULL;
        if (api(r, "GET", murl, NULL, "2.10", &mdoc) == 0 &&
            json_is_object(json_object_get(mdoc, "metadata")))
            json_object_set(out, "metadata", json_object_get(mdoc, "metadata"));
        json_decref(mdoc);
        free(murl);
    }
    const char *kn = ts_json_str(s, "key_name", NULL);
    if (kn && *kn) {
        ts_json_set_str(out, "key_name", kn);
        struct ts_pool *pool = ts_pool_new();
        char *kurl = ts_pool_printf(pool, "%s/v2.1/os-keypairs/%s?user_id=%s", r->compute_url,
                                    ts_url_encode(pool, kn, false),
                                    ts_url_encode(pool, ts_json_str(s, "user_id", ""), false));
        json_t *kdoc = NULL;
        if (api(r, "GET", kurl, NULL, "2.10", &kdoc) == 0) {
            const char *pk = ts_json_str(json_object_get(kdoc, "keypair"), "public_key", NULL);
            if (pk) ts_json_set_str(out, "public_key", pk);
        }
        json_decref(kdoc);
        ts_pool_free(pool);
    }
out:
    free(url);
    json_decref(doc);
    return out;
}

/* The instance password through compute's os-server-password (GET, and the admin-only
 * POST that stores it once). An HTTP status for the guest. */
static int password_api(void *ctx, const char *device_id, const char *set, char **got)
{
    struct runner *r = ctx;
    for (const char *c = device_id; *c; c++)
        if (!(*c == '-' || (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f'))) return 404;
    char tok[2048];
    int status = 500;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (get_token(r, tok, sizeof(tok), attempt > 0) < 0) return 500;
        char *url = ts_asprintf("%s/v2.1/servers/%s/os-server-password", r->compute_url, device_id);
        char *th = ts_asprintf("X-Auth-Token: %s", tok);
        const char *hdr[] = {th, "Content-Type: application/json", "Accept: application/json", NULL};
        json_t *body = set ? json_pack("{s:s}", "password", set) : NULL;
        char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
        struct ts_http_client_resp resp = {0};
        int rc = ts_http_client_request(set ? "POST" : "GET", url, hdr, text, text ? strlen(text) : 0,
                                        HTTP_TIMEOUT_MS, &resp, NULL);
        status = rc < 0 ? 500 : resp.status;
        if (!set && status == 200 && got) {
            json_t *doc = NULL;
            if (resp.body && ts_json_parse(resp.body, resp.body_len, &doc, NULL) == 0 &&
                ts_json_str(doc, "password", NULL))
                *got = ts_strdup(ts_json_str(doc, "password", ""));
            else
                status = 500;
            json_decref(doc);
        }
        ts_http_client_resp_free(&resp);
        json_decref(body);
        free(text);
        free(th);
        free(url);
        if (status != 401) break;
    }
    if (set && status == 204) status = 200;
    if (status != 200 && status != 400 && status != 404 && status != 409) {
        ts_warn("netagent", "instance password of %s: compute answered %d", device_id, status);
        status = 500;
    }
    return status;
}

static void vif_plugged_api(void *ctx, const json_t *port)
{
    struct runner *r = ctx;
    const char *id = ts_json_str(port, "id", ""), *dev = ts_json_str(port, "device_id", "");
    /* Neutron's agents report through RPC; the API is our RPC here. */
    if (!ts_streq(ts_json_str(port, "status", ""), "ACTIVE")) {
        char *url = ts_asprintf("%s/v2.0/ports/%s", r->network_url, id);
        json_t *body = json_pack("{s:{s:s}}", "port", "status", "ACTIVE");
        if (api(r, "PUT", url, body, NULL, NULL) < 0) ts_warn("netagent", "could not set port %s ACTIVE", id);
        json_decref(body);
        free(url);
    }
    if (*dev) {
        char *url = ts_asprintf("%s/v2.1/os-server-external-events", r->compute_url);
        json_t *body = json_pack("{s:[{s:s,s:s,s:s,s:s}]}", "events", "name", "network-vif-plugged",
                                 "server_uuid", dev, "tag", id, "status", "completed");
        if (api(r, "POST", url, body, NULL, NULL) < 0)
            ts_warn("netagent", "network-vif-plugged for %s (server %s) not delivered", id, dev);
        json_decref(body);
        free(url);
    }
}

static void *runner_loop(void *arg)
{
    struct runner *r = arg;
    for (;;) {
        ts_netagent_reconcile(r->agent);
        pthread_mutex_lock(&r->mu);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double until = (double)ts.tv_sec + ts.tv_nsec / 1e9 + r->interval;
        ts.tv_sec = (time_t)until;
        ts.tv_nsec = (long)((until - (double)ts.tv_sec) * 1e9);
        while (!r->stop && !r->kicked)
            if (pthread_cond_timedwait(&r->cond, &r->mu, &ts) == ETIMEDOUT) break;
        bool stop = r->stop;
        r->kicked = false;
        pthread_mutex_unlock(&r->mu);
        if (stop) break;
    }
    return NULL;
}

int ts_netagent_start(struct ts_service_env *env, const char *host, void **state, struct ts_err *err)
{
    if (!env || !state || !env->data_dir) return ts_err_set(err, TS_EINVAL, "netagent: no environment");
    if (geteuid() != 0)
        return ts_err_set(err, TS_EFORBIDDEN,
                          "netagent: the network data plane needs root (namespaces, bridges, "
                          "iptables); not started");
    struct runner *r = ts_calloc(1, sizeof(*r));
    r->env = env;
    pthread_mutex_init(&r->tok_mu, NULL);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cond, NULL);
    service_url(env, "network", 9696, r->network_url, sizeof(r->network_url));
    service_url(env, "compute", 8774, r->compute_url, sizeof(r->compute_url));
    snprintf(r->identity_url, sizeof(r->identity_url), "%s",
             env->identity_url ? env->identity_url : "http://127.0.0.1:5000");
    snprintf(r->user, sizeof(r->user), "%s",
             ts_conf_get(env->conf, "service_credentials", "username", "tinystack"));
    snprintf(r->password, sizeof(r->password), "%s",
             ts_conf_get(env->conf, "service_credentials", "password", ""));
    snprintf(r->project, sizeof(r->project), "%s",
             ts_conf_get(env->conf, "service_credentials", "project_name", "service"));
    r->interval = ts_conf_get_double(env->conf, "network", "agent_interval", 5.0);
    r->cleanup_on_stop = ts_conf_get_bool(env->conf, "network", "agent_cleanup_on_stop", false);
    snprintf(r->host, sizeof(r->host), "%s", host ? host : env->host ? env->host : "localhost");
    if (r->interval < 0.5) r->interval = 0.5;
    struct ts_netagent_opts o = {
        .data_dir = env->data_dir,
        .host = r->host,
        .external_bridge_interface = ts_conf_get(env->conf, "network", "external_bridge_interface", NULL),
        .meta_port = (int)ts_conf_get_int(env->conf, "network", "metadata_proxy_port", 9697),
        .serve_metadata = ts_conf_get_bool(env->conf, "network", "enable_metadata_proxy", true),
        .fetch_state = fetch_state_api,
        .fetch_instance = fetch_instance_api,
        .vif_plugged = vif_plugged_api,
        .password = password_api,
        .ctx = r,
    };
    r->agent = ts_netagent_new(&o, err);
    if (!r->agent) goto fail;
    if (pthread_create(&r->thread, NULL, runner_loop, r) != 0) {
        ts_err_set(err, TS_EIO, "netagent: cannot start its thread");
        goto fail;
    }
    r->started = true;
    pthread_mutex_lock(&registry_mu);
    static bool subscribed;
    if (env->bus && !subscribed) {
        if (ts_bus_subscribe(env->bus, "network_agent", on_bus, NULL, NULL) == 0)
            subscribed = true;
        else
            ts_warn("netagent", "cannot subscribe to network_agent events: polling only");
    }
    r->next = registry;
    registry = r;
    pthread_mutex_unlock(&registry_mu);
    ts_info("netagent", "network agent for host %s (network API %s)", o.host, r->network_url);
    *state = r;
    return 0;
fail:
    ts_netagent_free(r->agent);
    pthread_mutex_destroy(&r->tok_mu);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cond);
    free(r);
    return -TS_EIO;
}

void ts_netagent_stop(void *state)
{
    struct runner *r = state;
    if (!r) return;
    pthread_mutex_lock(&registry_mu);
    for (struct runner **p = &registry; *p; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            break;
        }
    pthread_mutex_unlock(&registry_mu);
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->mu);
    if (r->started) pthread_join(r->thread, NULL);
    /* test clouds whose data dir is about to go: leave nothing on the host */
    if (r->cleanup_on_stop) ts_netagent_teardown(r->agent);
    ts_netagent_free(r->agent);
    pthread_mutex_destroy(&r->tok_mu);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cond);
    free(r);
}

int ts_netagent_sync(void *state)
{
    struct runner *r = state;
    return r ? ts_netagent_reconcile(r->agent) : -TS_EINVAL;
}

/* ---- the file mode (tests) ------------------------------------------------------------ */

struct filesrc {
    const char *path;
    pthread_mutex_t mu;
    json_t *servers;
    long long generation; /* "generation" of the last state read, echoed in the marker */
};

static json_t *fetch_state_file(void *ctx)
{
    struct filesrc *f = ctx;
    char *text = NULL;
    size_t len;
    json_t *doc = NULL;
    if (ts_file_read(f->path, 256u << 20, &text, &len) < 0 || ts_json_parse(text, len, &doc, NULL) < 0 ||
        !json_is_object(doc)) {
        ts_warn("netagent", "cannot read desired state from %s", f->path);
        free(text);
        json_decref(doc);
        return NULL;
    }
    free(text);
    pthread_mutex_lock(&f->mu);
    json_decref(f->servers);
    f->servers = json_incref(json_object_get(doc, "servers"));
    f->generation = (long long)ts_json_int(doc, "generation", 0);
    pthread_mutex_unlock(&f->mu);
    return doc;
}

static json_t *fetch_instance_file(void *ctx, const char *device_id)
{
    struct filesrc *f = ctx;
    pthread_mutex_lock(&f->mu);
    json_t *s = json_object_get(f->servers, device_id);
    json_t *out = json_is_object(s) ? json_deep_copy(s) : NULL;
    pthread_mutex_unlock(&f->mu);
    if (out && !json_object_get(out, "uuid")) ts_json_set_str(out, "uuid", device_id);
    return out;
}

static volatile sig_atomic_t apply_stop;
static void on_signal(int sig)
{
    (void)sig;
    apply_stop = 1;
}

/* "<ok|failed> <generation>": tells a test which state file version is in place. */
static void mark(const char *path, int rc, struct filesrc *f)
{
    pthread_mutex_lock(&f->mu);
    char *s = ts_asprintf("%s %lld\n", rc == 0 ? "ok" : "failed", f->generation);
    pthread_mutex_unlock(&f->mu);
    ts_file_write_atomic(path, s, strlen(s), 0644);
    free(s);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: tinystack netagent-apply --state FILE --data DIR [--host H] [--once] [--interval S]\n");
}

int ts_netagent_apply_main(int argc, char **argv)
{
    const char *state = NULL, *data = NULL, *host = NULL;
    bool once = false;
    double interval = 5.0;
    char hn[256] = "localhost";
    for (int i = 1; i < argc; i++) {
        if (ts_streq(argv[i], "--state") && i + 1 < argc)
            state = argv[++i];
        else if (ts_streq(argv[i], "--data") && i + 1 < argc)
            data = argv[++i];
        else if (ts_streq(argv[i], "--host") && i + 1 < argc)
            host = argv[++i];
        else if (ts_streq(argv[i], "--interval") && i + 1 < argc)
            interval = atof(argv[++i]);
        else if (ts_streq(argv[i], "--once"))
            once = true;
        else {
            usage();
            return 2;
        }
    }
    if (!state || !data) {
        usage();
        return 2;
    }
    if (!host) {
        gethostname(hn, sizeof(hn) - 1);
        host = hn;
    }
    if (interval < 0.2) interval = 0.2;
    struct filesrc f = {.path = state};
    pthread_mutex_init(&f.mu, NULL);
    struct ts_netagent_opts o = {.data_dir = data,
                                 .host = host,
                                 .meta_port = 9697,
                                 .serve_metadata = !once,
                                 .fetch_state = fetch_state_file,
                                 .fetch_instance = fetch_instance_file,
                                 .ctx = &f};
    struct ts_err err = {0};
    struct ts_netagent *a = ts_netagent_new(&o, &err);
    if (!a) {
        fprintf(stderr, "netagent-apply: %s\n", err.msg);
        return 1;
    }
    int rc = ts_netagent_reconcile(a);
    if (!once) {
        struct sigaction sa = {.sa_handler = on_signal};
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        char *ready = ts_asprintf("%s/network-agent/applied", data);
        mark(ready, rc, &f);
        struct stat st0 = {0}, st;
        stat(state, &st0);
        double next = ts_mono() + interval;
        while (!apply_stop) {
            usleep(100000);
            bool changed = stat(state, &st) == 0 &&
                           (st.st_mtim.tv_sec != st0.st_mtim.tv_sec ||
                            st.st_mtim.tv_nsec != st0.st_mtim.tv_nsec || st.st_size != st0.st_size);
            if (!changed && ts_mono() < next) continue;
            st0 = st;
            rc = ts_netagent_reconcile(a);
            mark(ready, rc, &f);
            next = ts_mono() + interval;
        }
        free(ready);
    }
    ts_netagent_free(a);
    json_decref(f.servers);
    pthread_mutex_destroy(&f.mu);
    return rc == 0 ? 0 : 1;
}
