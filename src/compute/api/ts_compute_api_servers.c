/*
 * ts_compute_api_servers.c: the servers resource of compute-api: create (validation,
 * quota under one transaction, then a cast to the scheduler), list/detail with Nova's
 * filters and paging (a constant number of SQL statements per request), show, update,
 * delete, and Nova's server view for every microversion we serve.
 */
#include "compute/api/ts_compute_api.h"

#include <openssl/evp.h>
#include <regex.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/ts_auth.h"
#include "json/ts_json.h"

/* ---- helpers shared with the other api files ------------------------------------- */

static bool enabled(const struct ts_conf *conf, const char *name)
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

const char *ts_compute_image_url(struct ts_compute_svc *svc, struct ts_pool *pool)
{
    const char *u = ts_conf_get(svc->env->conf, "compute", "image_url", NULL);
    if (u && *u) return u;
    if (!enabled(svc->env->conf, "image")) return NULL;
    return ts_pool_printf(pool, "http://%s:%lld", ts_conf_get(svc->env->conf, "DEFAULT", "public_host", "127.0.0.1"),
                          (long long)ts_conf_get_int(svc->env->conf, "image", "port", 9292));
}

json_t *ts_compute_context(struct ts_http_req *req, struct ts_compute_svc *svc)
{
    const struct ts_auth *a = req->auth;
    json_t *c = json_pack("{s:s, s:s, s:s, s:s, s:b}", "token", a->token, "user_id", a->user_id, "project_id",
                          a->project_id, "request_id", req->request_id ? req->request_id : "", "is_admin",
                          a->is_admin);
    ts_json_set_str(c, "image_url", ts_compute_image_url(svc, req->pool));
    return c;
}

int ts_compute_inst_visible(struct ts_http_req *req, struct ts_compute_svc *svc, const char *id, json_t **out,
                            struct ts_err *err)
{
    json_t *inst = NULL;
    if (!id || strlen(id) > 64) return ts_err_set(err, TS_ENOTFOUND, "Instance %s could not be found.", id ? id : "");
    int rc = ts_compute_inst_load(svc->db, id, &inst, err);
    if (rc) return rc;
    if (json_integer_value(json_object_get(inst, "deleted")) ||
        (!req->auth->is_admin && !ts_streq(JS(inst, "project_id"), req->auth->project_id))) {
        json_decref(inst);
        return ts_err_set(err, TS_ENOTFOUND, "Instance %s could not be found.", id);
    }
    *out = inst;
    return 0;
}

int ts_compute_image_get(struct ts_compute_svc *svc, struct ts_http_req *req, const char *image_id, json_t **out,
                         struct ts_err *err)
{
    const char *base = ts_compute_image_url(svc, req->pool);
    if (!base) return ts_err_set(err, TS_EINVAL, "Image %s could not be found. (the image service is not enabled)",
                                 image_id);
    if (!ts_uuid_valid(image_id)) return ts_err_set(err, TS_EINVAL, "Image %s could not be found.", image_id);
    char *url = ts_asprintf("%s/v2/images/%s", base, image_id);
    char *tok = ts_asprintf("X-Auth-Token: %s", req->auth->token);
    const char *hdrs[] = {tok, "Accept: application/json", NULL};
    struct ts_http_client_resp r = {0};
    struct ts_err e2 = {0};
    int rc = ts_http_client_request("GET", url, hdrs, NULL, 0, 30000, &r, &e2);
    free(url);
    free(tok);
    if (rc) return ts_err_set(err, TS_EINVAL, "Image %s could not be found. (image service unavailable: %s)",
                              image_id, e2.msg);
    if (r.status == 404 || r.status == 403) {
        rc = ts_err_set(err, TS_EINVAL, "Image %s could not be found.", image_id);
    } else if (r.status != 200) {
        rc = ts_err_set(err, TS_EINVAL, "Image %s could not be found. (image service answered %d)", image_id,
                        r.status);
    } else {
        json_t *j = json_loadb(r.body ? r.body : "", r.body_len, 0, NULL);
        if (!j) rc = ts_err_set(err, TS_EIO, "bad answer from the image service");
        else *out = j;
    }
    ts_http_client_resp_free(&r);
    return rc;
}

/* Loads a flavor as the snapshot stored in instances.flavor; checks access for non-admins. */
int ts_compute_flavor_snapshot(struct ts_compute_svc *svc, struct ts_http_req *req, const char *flavor_ref,
                               json_t **out, struct ts_err *err)
{
    const char *id = flavor_ref;
    const char *slash = strrchr(flavor_ref, '/');
    if (slash) id = slash + 1;
    struct ts_db_res *res = NULL, *specs = NULL;
    int rc = ts_db_exec(svc->db,
                        "SELECT flavorid, name, vcpus, memory_mb, root_gb, ephemeral_gb, swap, rxtx_factor, is_public, "
                        "description, (SELECT COUNT(*) FROM flavor_projects p WHERE p.flavorid = flavors.flavorid AND "
                        "p.project_id = ?) FROM flavors WHERE flavorid = ? AND disabled = 0",
                        TS_DB_ARGS(TS_DB_S(req->auth->project_id), TS_DB_S(id)), &res, err);
    if (rc) return rc;
    if (res->nrows == 0 ||
        (!req->auth->is_admin && ts_db_res_int(res, 0, 8, 1) == 0 && ts_db_res_int(res, 0, 10, 0) == 0)) {
        ts_db_res_free(res);
        return ts_err_set(err, TS_EINVAL, "Flavor %s could not be found.", id);
    }
    rc = ts_db_exec(svc->db, "SELECT key, value FROM flavor_extra_specs WHERE flavorid = ?", TS_DB_ARGS(TS_DB_S(id)),
                    &specs, err);
    if (rc) {
        ts_db_res_free(res);
        return rc;
    }
    json_t *es = json_object();
    for (int i = 0; i < specs->nrows; i++) ts_json_set_str(es, ts_db_res_get(specs, i, 0), ts_db_res_get(specs, i, 1));
    json_t *f = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:f, s:o}", "flavorid", ts_db_res_get(res, 0, 0),
                          "name", ts_db_res_get(res, 0, 1), "vcpus", (json_int_t)ts_db_res_int(res, 0, 2, 0),
                          "memory_mb", (json_int_t)ts_db_res_int(res, 0, 3, 0), "root_gb",
                          (json_int_t)ts_db_res_int(res, 0, 4, 0), "ephemeral_gb",
                          (json_int_t)ts_db_res_int(res, 0, 5, 0), "swap", (json_int_t)ts_db_res_int(res, 0, 6, 0),
                          "rxtx_factor", strtod(ts_db_res_get(res, 0, 7) ? ts_db_res_get(res, 0, 7) : "1", NULL),
                          "extra_specs", es);
    ts_json_set_str(f, "description", ts_db_res_get(res, 0, 9));
    ts_db_res_free(res);
    ts_db_res_free(specs);
    *out = f;
    return 0;
}

/* ---- the server view ------------------------------------------------------------- */

static json_t *link_pair(const char *base, const char *what, const char *id)
{
    char *self = ts_asprintf("%s/v2.1/%s/%s", base, what, id);
    char *bm = ts_asprintf("%s/%s/%s", base, what, id);
    json_t *l = json_pack("[{s:s, s:s}, {s:s, s:s}]", "rel", "self", "href", self, "rel", "bookmark", "href", bm);
    free(self);
    free(bm);
    return l;
}

static void set_time(json_t *o, const char *key, json_t *t, bool us)
{
    char buf[32];
    if (!json_is_number(t)) {
        json_object_set_new(o, key, json_null());
        return;
    }
    if (us) ts_compute_iso_us(json_number_value(t), buf);
    else ts_compute_iso(json_number_value(t), buf);
    json_object_set_new(o, key, json_string(buf));
}

static void host_id(const char *project, const char *host, char out[57])
{
    out[0] = 0;
    if (!host || !*host) return;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    char *s = ts_asprintf("%s%s", project ? project : "", host);
    EVP_Digest(s, strlen(s), md, &n, EVP_sha224(), NULL);
    free(s);
    ts_hex(md, n, out);
}

json_t *ts_compute_server_view(struct ts_http_req *req, int mv, const json_t *inst, json_t *meta, json_t *tags,
                               const char *host_status)
{
    const char *base = ts_compute_base(req);
    bool admin = req->auth->is_admin;
    const char *uuid = JS(inst, "uuid");
    const char *vm = JS(inst, "vm_state"), *task = JS(inst, "task_state");
    json_t *s = json_object();
    char hid[57];
    json_object_set_new(s, "id", json_string(uuid));
    json_object_set_new(s, "name", json_string(JS(inst, "display_name") ? JS(inst, "display_name") : ""));
    json_object_set_new(s, "status", json_string(ts_compute_status(vm, task)));
    json_object_set_new(s, "tenant_id", json_string(JS(inst, "project_id")));
    json_object_set_new(s, "user_id", json_string(JS(inst, "user_id")));
    json_object_set_new(s, "metadata", meta ? json_incref(meta) : json_object());
    host_id(JS(inst, "project_id"), JS(inst, "host"), hid);
    json_object_set_new(s, "hostId", json_string(hid));
    const char *img = JS(inst, "image_ref");
    if (img && *img) {
        char *bm = ts_asprintf("%s/images/%s", base, img);
        json_object_set_new(s, "image", json_pack("{s:s, s:[{s:s, s:s}]}", "id", img, "links", "rel", "bookmark",
                                                  "href", bm));
        free(bm);
    } else {
        json_object_set_new(s, "image", json_string(""));
    }
    json_t *fl = json_object_get(inst, "flavor");
    if (mv >= 47) {
        json_t *f = json_pack("{s:I, s:I, s:I, s:I, s:I, s:s}", "vcpus", (json_int_t)JI(fl, "vcpus"), "ram",
                              (json_int_t)JI(fl, "memory_mb"), "disk", (json_int_t)JI(fl, "root_gb"), "ephemeral",
                              (json_int_t)JI(fl, "ephemeral_gb"), "swap", (json_int_t)JI(fl, "swap"),
                              "original_name", JS(fl, "name") ? JS(fl, "name") : "");
        json_t *es = json_object_get(fl, "extra_specs");
        json_object_set_new(f, "extra_specs", es ? json_deep_copy(es) : json_object());
        json_object_set_new(s, "flavor", f);
    } else {
        const char *fid = JS(inst, "flavor_id") ? JS(inst, "flavor_id") : "";
        char *bm = ts_asprintf("%s/flavors/%s", base, fid);
        json_object_set_new(s, "flavor",
                            json_pack("{s:s, s:[{s:s, s:s}]}", "id", fid, "links", "rel", "bookmark", "href", bm));
        free(bm);
    }
    set_time(s, "created", json_object_get(inst, "created_at"), false);
    set_time(s, "updated", json_object_get(inst, "updated_at"), false);
    json_object_set_new(s, "addresses", ts_compute_net_addresses(json_object_get(inst, "nw_info")));
    json_object_set_new(s, "accessIPv4", json_string(JS(inst, "access_ip_v4") ? JS(inst, "access_ip_v4") : ""));
    json_object_set_new(s, "accessIPv6", json_string(JS(inst, "access_ip_v6") ? JS(inst, "access_ip_v6") : ""));
    json_object_set_new(s, "links", link_pair(base, "servers", uuid));
    json_object_set_new(s, "OS-DCF:diskConfig", json_string("MANUAL"));
    json_object_set_new(s, "progress", json_integer(0));
    json_object_set_new(s, "OS-EXT-AZ:availability_zone",
                        json_string(JS(inst, "availability_zone") ? JS(inst, "availability_zone") : ""));
    json_object_set_new(s, "config_drive", json_string(JS(inst, "config_drive") ? JS(inst, "config_drive") : ""));
    ts_json_set_str(s, "key_name", JS(inst, "key_name"));
    set_time(s, "OS-SRV-USG:launched_at", json_object_get(inst, "launched_at"), true);
    set_time(s, "OS-SRV-USG:terminated_at", json_object_get(inst, "terminated_at"), true);
    if (admin) {
        char iname[128];
        ts_compute_instance_name(req->svc ? ((struct ts_compute_svc *)req->svc)->env->conf : NULL,
                                 (long long)JI(inst, "id"), iname, sizeof(iname));
        ts_json_set_str(s, "OS-EXT-SRV-ATTR:host", JS(inst, "host"));
        json_object_set_new(s, "OS-EXT-SRV-ATTR:instance_name", json_string(iname));
        ts_json_set_str(s, "OS-EXT-SRV-ATTR:hypervisor_hostname", JS(inst, "node"));
        if (mv >= 3) {
            ts_json_set_str(s, "OS-EXT-SRV-ATTR:reservation_id", JS(inst, "reservation_id"));
            json_object_set_new(s, "OS-EXT-SRV-ATTR:launch_index", json_integer(JI(inst, "launch_index")));
            ts_json_set_str(s, "OS-EXT-SRV-ATTR:hostname", JS(inst, "hostname"));
            json_object_set_new(s, "OS-EXT-SRV-ATTR:kernel_id", json_string(""));
            json_object_set_new(s, "OS-EXT-SRV-ATTR:ramdisk_id", json_string(""));
            json_object_set_new(s, "OS-EXT-SRV-ATTR:root_device_name", json_string("/dev/vda"));
            ts_json_set_str(s, "OS-EXT-SRV-ATTR:user_data", JS(inst, "user_data"));
        }
    } else if (mv >= 90) {
        ts_json_set_str(s, "OS-EXT-SRV-ATTR:hostname", JS(inst, "hostname"));
    }
    ts_json_set_str(s, "OS-EXT-STS:task_state", task);
    json_object_set_new(s, "OS-EXT-STS:vm_state", json_string(vm ? vm : ""));
    json_object_set_new(s, "OS-EXT-STS:power_state", json_integer(JI(inst, "power_state")));
    json_t *vols = json_array();
    json_t *bdm = json_object_get(inst, "bdm");
    size_t i;
    json_t *b;
    json_array_foreach(bdm, i, b) {
        const char *vid = JS(b, "volume_id");
        if (vid && ts_streq(JS(b, "destination_type"), "volume")) {
            json_t *v = json_pack("{s:s}", "id", vid);
            if (mv >= 3) json_object_set_new(v, "delete_on_termination", json_boolean(json_is_true(
                                                     json_object_get(b, "delete_on_termination"))));
            json_array_append_new(vols, v);
        }
    }
    json_object_set_new(s, "os-extended-volumes:volumes_attached", vols);
    json_t *sgs = json_object_get(inst, "security_groups");
    json_object_set_new(s, "security_groups", json_is_array(sgs) ? json_deep_copy(sgs)
                                                                 : json_pack("[{s:s}]", "name", "default"));
    json_t *fault = json_object_get(inst, "fault");
    if (json_is_object(fault) && (ts_streq(vm, "error") || ts_streq(vm, "deleted"))) {
        json_t *f = json_pack("{s:I, s:s}", "code", (json_int_t)JI(fault, "code"), "message",
                              JS(fault, "message") ? JS(fault, "message") : "");
        set_time(f, "created", json_object_get(fault, "created"), false);
        if (admin && JS(fault, "details")) ts_json_set_str(f, "details", JS(fault, "details"));
        json_object_set_new(s, "fault", f);
    }
    if (mv >= 9) json_object_set_new(s, "locked", json_boolean(JI(inst, "locked") != 0));
    if (mv >= 73) ts_json_set_str(s, "locked_reason", JS(inst, "locked_reason"));
    if (mv >= 16 && admin) json_object_set_new(s, "host_status", json_string(host_status ? host_status : ""));
    if (mv >= 19) ts_json_set_str(s, "description", JS(inst, "description"));
    if (mv >= 26) json_object_set_new(s, "tags", tags ? json_incref(tags) : json_array());
    if (mv >= 63) json_object_set_new(s, "trusted_image_certificates", json_null());
    if (mv >= 71) {
        const char *g = JS(inst, "server_group");
        json_object_set_new(s, "server_groups", g ? json_pack("[s]", g) : json_array());
    }
    return s;
}

/* host_status of every compute host: {"host": "UP"|"DOWN"|"MAINTENANCE"}. */
json_t *ts_compute_host_statuses(struct ts_compute_svc *svc)
{
    json_t *o = json_object();
    struct ts_db_res *res = NULL;
    if (ts_db_exec(svc->db,
                   "SELECT host, disabled, forced_down, last_seen_up FROM services WHERE binary_name = 'nova-compute'",
                   TS_DB_NOARGS, &res, NULL) == 0) {
        for (int i = 0; i < res->nrows; i++) {
            const char *st;
            bool up = ts_compute_is_up(strtod(ts_db_res_get(res, i, 3) ? ts_db_res_get(res, i, 3) : "0", NULL),
                                       svc->service_down_time, ts_db_res_int(res, i, 2, 0) != 0);
            if (!up) st = "DOWN";
            else if (ts_db_res_int(res, i, 1, 0)) st = "MAINTENANCE";
            else st = "UP";
            json_object_set_new(o, ts_db_res_get(res, i, 0), json_string(st));
        }
    }
    ts_db_res_free(res);
    return o;
}

static const char *status_of_host(json_t *statuses, const json_t *inst)
{
    const char *h = JS(inst, "host");
    if (!h) return "";
    const char *s = json_string_value(json_object_get(statuses, h));
    return s ? s : "UNKNOWN";
}

/* Metadata and tags of a set of instances: two statements. */
static int load_meta_tags(struct ts_compute_svc *svc, json_t *insts, json_t **meta, json_t **tags,
                          struct ts_err *err)
{
    *meta = json_object();
    *tags = json_object();
    size_t n = json_array_size(insts);
    if (n == 0) return 0;
    struct ts_buf in;
    ts_buf_init(&in, 0);
    struct ts_db_val *args = ts_calloc(n, sizeof(*args));
    for (size_t i = 0; i < n; i++) {
        ts_buf_appends(&in, i ? ",?" : "?");
        args[i] = TS_DB_S(JS(json_array_get(insts, i), "uuid"));
    }
    char *q1 = ts_asprintf("SELECT instance_uuid, key, value FROM instance_metadata WHERE instance_uuid IN (%s)",
                           ts_buf_cstr(&in));
    char *q2 = ts_asprintf("SELECT instance_uuid, tag FROM instance_tags WHERE instance_uuid IN (%s) ORDER BY tag",
                           ts_buf_cstr(&in));
    struct ts_db_res *r1 = NULL, *r2 = NULL;
    int rc = ts_db_exec(svc->db, q1, args, (int)n, &r1, err);
    if (!rc) rc = ts_db_exec(svc->db, q2, args, (int)n, &r2, err);
    if (!rc) {
        for (int i = 0; i < r1->nrows; i++) {
            const char *u = ts_db_res_get(r1, i, 0);
            json_t *m = json_object_get(*meta, u);
            if (!m) {
                m = json_object();
                json_object_set_new(*meta, u, m);
            }
            ts_json_set_str(m, ts_db_res_get(r1, i, 1), ts_db_res_get(r1, i, 2));
        }
        for (int i = 0; i < r2->nrows; i++) {
            const char *u = ts_db_res_get(r2, i, 0);
            json_t *t = json_object_get(*tags, u);
            if (!t) {
                t = json_array();
                json_object_set_new(*tags, u, t);
            }
            json_array_append_new(t, json_string(ts_db_res_get(r2, i, 1)));
        }
    }
    ts_db_res_free(r1);
    ts_db_res_free(r2);
    free(q1);
    free(q2);
    free(args);
    ts_buf_free(&in);
    return rc;
}

static void trim_view(json_t *v, int mv, bool rebuild, const json_t *inst)
{
    if (rebuild && mv >= 57) ts_json_set_str(v, "user_data", JS(inst, "user_data"));
    /* Nova's update and rebuild views never carry the extended user_data */
    json_object_del(v, "OS-EXT-SRV-ATTR:user_data");
    if (mv >= 75) return;
    static const char *const prefixes[] = {"OS-EXT-SRV-ATTR:", "OS-EXT-STS:", "OS-SRV-USG:", "OS-EXT-AZ:",
                                           "os-extended-volumes:", NULL};
    static const char *const keys[] = {"config_drive", "host_status", "security_groups", NULL};
    const char *k;
    json_t *x;
    void *tmp;
    json_object_foreach_safe(v, tmp, k, x) {
        bool drop = false;
        for (int i = 0; prefixes[i]; i++)
            if (ts_startswith(k, prefixes[i])) drop = true;
        for (int i = 0; keys[i]; i++)
            if (!strcmp(k, keys[i])) drop = true;
        if (!strcmp(k, "key_name") && !(rebuild && mv >= 54)) drop = true;
        if (drop) json_object_del(v, k);
    }
    json_t *addrs = json_object_get(v, "addresses");
    json_object_foreach(addrs, k, x) {
        size_t i;
        json_t *a;
        json_array_foreach(x, i, a) {
            json_object_del(a, "OS-EXT-IPS:type");
            json_object_del(a, "OS-EXT-IPS-MAC:mac_addr");
        }
    }
}

static int show_one(struct ts_http_req *req, struct ts_http_resp *resp, int mv, const char *uuid, int status,
                    const char *admin_pass, int changed, struct ts_err *err);

int ts_compute_show_changed(struct ts_http_req *req, struct ts_http_resp *resp, int mv, const char *uuid, int status,
                            const char *admin_pass, bool rebuild, struct ts_err *err)
{
    return show_one(req, resp, mv, uuid, status, admin_pass, rebuild ? 2 : 1, err);
}

int ts_compute_show_one(struct ts_http_req *req, struct ts_http_resp *resp, int mv, const char *uuid, int status,
                        const char *admin_pass, struct ts_err *err)
{
    return show_one(req, resp, mv, uuid, status, admin_pass, 0, err);
}

/* changed: 0 = GET, 1 = update, 2 = rebuild (see trim_view) */
static int show_one(struct ts_http_req *req, struct ts_http_resp *resp, int mv, const char *uuid, int status,
                    const char *admin_pass, int changed, struct ts_err *err)
{
    struct ts_compute_svc *svc = req->svc;
    json_t *inst = NULL, *meta = NULL, *tags = NULL, *hs = NULL;
    int rc = ts_compute_inst_visible(req, svc, uuid, &inst, err);
    if (rc) return rc;
    ts_compute_refresh_nw(req, svc, inst);
    json_t *one = json_pack("[O]", inst);
    rc = load_meta_tags(svc, one, &meta, &tags, err);
    if (!rc) {
        hs = ts_compute_host_statuses(svc);
        json_t *v = ts_compute_server_view(req, mv, inst, json_object_get(meta, uuid), json_object_get(tags, uuid),
                                           status_of_host(hs, inst));
        if (changed) trim_view(v, mv, changed == 2, inst);
        if (admin_pass) json_object_set_new(v, "adminPass", json_string(admin_pass));
        ts_http_resp_json(resp, status, json_pack("{s:o}", "server", v));
    }
    json_decref(one);
    json_decref(inst);
    json_decref(meta);
    json_decref(tags);
    json_decref(hs);
    return rc;
}

TS_COMPUTE_HANDLER(servers_show)
{
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    return ts_compute_show_one(req, resp, mv, ts_http_param(req, "id"), 200, NULL, err);
}

/* ---- list -------------------------------------------------------------------------- */

struct where {
    struct ts_buf sql;
    struct ts_db_val args[64];
    int n;
};

static void w_add(struct where *w, const char *clause, struct ts_db_val v, bool has_arg)
{
    ts_buf_printf(&w->sql, " AND %s", clause);
    if (has_arg && w->n < 64) w->args[w->n++] = v;
}

static int status_states(const char *st, const char **vm, const char **task)
{
    static const struct { const char *status, *vm, *task; } map[] = {
        {"ACTIVE", "active", NULL},       {"BUILD", "building", NULL},     {"SHUTOFF", "stopped", NULL},
        {"PAUSED", "paused", NULL},       {"SUSPENDED", "suspended", NULL}, {"ERROR", "error", NULL},
        {"DELETED", "deleted", NULL},     {"VERIFY_RESIZE", "resized", NULL}, {"SOFT_DELETED", "soft-delete", NULL},
        {"SHELVED", "shelved", NULL},     {"SHELVED_OFFLOADED", "shelved_offloaded", NULL},
        {"REBOOT", "active", "rebooting"}, {"HARD_REBOOT", "active", "rebooting_hard"},
        {"REBUILD", "active", "rebuilding"}, {"RESIZE", "active", "resize_prep"}, {"RESCUE", "rescued", NULL},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (!strcasecmp(map[i].status, st)) {
            *vm = map[i].vm;
            *task = map[i].task;
            return 0;
        }
    }
    return -1;
}

static bool truthy(const char *v)
{
    bool b = false;
    if (!v) return false;
    if (!*v) return true;   /* ?all_tenants (no value) counts as true in Nova */
    if (ts_parse_bool(v, &b) == 0) return b;
    return true;
}

static int list_common(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err, bool detail)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    const struct ts_auth *a = req->auth;
    bool admin = a->is_admin;
    struct where w = {0};
    ts_buf_init(&w.sql, 0);
    json_t *insts = json_array(), *meta = NULL, *tags = NULL, *hs = NULL;
    struct ts_db_res *res = NULL;
    regex_t re;
    bool have_re = false;
    char *tmp_free[8] = {0};
    int ntmp = 0;

    ts_buf_appends(&w.sql, "SELECT " TS_COMPUTE_INST_COLS " FROM instances WHERE 1 = 1");
    bool all = admin && truthy(ts_http_query(req, "all_tenants"));
    const char *proj = ts_http_query(req, "project_id");
    if (!proj) proj = ts_http_query(req, "tenant_id");
    if (!admin || !all) {
        if (admin && proj) w_add(&w, "project_id = ?", TS_DB_S(proj), true);
        else w_add(&w, "project_id = ?", TS_DB_S(a->project_id), true);
    } else if (proj) {
        w_add(&w, "project_id = ?", TS_DB_S(proj), true);
    }
    const char *cs = ts_http_query(req, "changes-since");
    const char *cb = mv >= 66 ? ts_http_query(req, "changes-before") : NULL;
    const char *del = ts_http_query(req, "deleted");
    double t;
    if (cs) {
        if (ts_time_parse(cs, &t) < 0) {
            rc = ts_err_set(err, TS_EINVAL, "Invalid input for query parameters changes-since. Value: %s. "
                            "'%s' is not a 'date-time'", cs, cs);
            goto out;
        }
        w_add(&w, "updated_at >= ?", TS_DB_D(t), true);
    }
    if (cb) {
        if (ts_time_parse(cb, &t) < 0) {
            rc = ts_err_set(err, TS_EINVAL, "Invalid input for query parameters changes-before. Value: %s.", cb);
            goto out;
        }
        w_add(&w, "updated_at <= ?", TS_DB_D(t), true);
    }
    if (admin && del && truthy(del)) w_add(&w, "deleted = 1", TS_DB_NULL, false);
    else if (!cs && !cb) w_add(&w, "deleted = 0", TS_DB_NULL, false);
    const char **vals = NULL;
    int nst = ts_http_query_all(req, "status", &vals);
    if (nst > 0) {
        struct ts_buf b;
        ts_buf_init(&b, 0);
        ts_buf_appends(&b, "(1 = 0");
        for (int i = 0; i < nst && i < 16; i++) {
            const char *vm, *task;
            if (status_states(vals[i], &vm, &task) < 0) continue;
            if (task) {
                ts_buf_appends(&b, " OR (vm_state = ? AND task_state = ?)");
                w.args[w.n++] = TS_DB_S(vm);
                w.args[w.n++] = TS_DB_S(task);
            } else {
                ts_buf_appends(&b, " OR vm_state = ?");
                w.args[w.n++] = TS_DB_S(vm);
            }
            if (!strcmp(vm, "deleted")) {
                /* status=DELETED implies deleted rows */
                ts_buf_appends(&b, " OR deleted = 1");
            }
        }
        ts_buf_appends(&b, ")");
        ts_buf_printf(&w.sql, " AND %s", ts_buf_cstr(&b));
        ts_buf_free(&b);
    }
    const char *v;
    if ((v = ts_http_query(req, "image"))) {
        const char *sl = strrchr(v, '/');
        w_add(&w, "image_ref = ?", TS_DB_S(sl ? sl + 1 : v), true);
    }
    if ((v = ts_http_query(req, "flavor"))) {
        const char *sl = strrchr(v, '/');
        w_add(&w, "flavor_id = ?", TS_DB_S(sl ? sl + 1 : v), true);
    }
    if (admin || mv >= 83) {
        if ((v = ts_http_query(req, "availability_zone"))) w_add(&w, "availability_zone = ?", TS_DB_S(v), true);
        if ((v = ts_http_query(req, "key_name"))) w_add(&w, "key_name = ?", TS_DB_S(v), true);
        if ((v = ts_http_query(req, "user_id"))) w_add(&w, "user_id = ?", TS_DB_S(v), true);
        if ((v = ts_http_query(req, "created_at"))) {
            if (ts_time_parse(v, &t) == 0) w_add(&w, "created_at >= ?", TS_DB_D(t), true);
        }
    }
    if (admin) {
        if ((v = ts_http_query(req, "host"))) w_add(&w, "host = ?", TS_DB_S(v), true);
        if ((v = ts_http_query(req, "node"))) w_add(&w, "node = ?", TS_DB_S(v), true);
    }
    if ((v = ts_http_query(req, "reservation_id"))) w_add(&w, "reservation_id = ?", TS_DB_S(v), true);
    if ((v = ts_http_query(req, "uuid"))) w_add(&w, "uuid = ?", TS_DB_S(v), true);
    if (mv >= 73 && (v = ts_http_query(req, "locked"))) {
        bool b = false;
        if (ts_parse_bool(v, &b) < 0) {
            rc = ts_err_set(err, TS_EINVAL, "Invalid input for query parameters locked. Value: %s.", v);
            goto out;
        }
        w_add(&w, b ? "locked = 1" : "locked = 0", TS_DB_NULL, false);
    }
    if (mv >= 26) {
        static const char *const tq[] = {"tags", "tags-any", "not-tags", "not-tags-any"};
        for (int k = 0; k < 4; k++) {
            const char *tv = ts_http_query(req, tq[k]);
            if (!tv || ntmp >= 8) continue;
            char *copy = ts_strdup(tv);
            tmp_free[ntmp++] = copy;
            struct ts_buf b;
            ts_buf_init(&b, 0);
            int cnt = 0;
            char *save = NULL;
            for (char *tok = strtok_r(copy, ",", &save); tok && w.n < 60; tok = strtok_r(NULL, ",", &save)) {
                if (k == 0 || k == 2)
                    ts_buf_printf(&b, "%sEXISTS (SELECT 1 FROM instance_tags g WHERE g.instance_uuid = instances.uuid "
                                  "AND g.tag = ?)", cnt ? " AND " : "");
                else
                    ts_buf_printf(&b, "%sEXISTS (SELECT 1 FROM instance_tags g WHERE g.instance_uuid = instances.uuid "
                                  "AND g.tag = ?)", cnt ? " OR " : "");
                w.args[w.n++] = TS_DB_S(tok);
                cnt++;
            }
            if (cnt) ts_buf_printf(&w.sql, " AND %s(%s)", k >= 2 ? "NOT " : "", ts_buf_cstr(&b));
            ts_buf_free(&b);
        }
    }
    /* sorting */
    const char *sk = ts_http_query(req, "sort_key"), *sd = ts_http_query(req, "sort_dir");
    static const char *const sort_ok[] = {"created_at", "display_name", "updated_at", "launched_at", "vm_state",
                                          "task_state", "power_state", "host", "uuid", "availability_zone",
                                          "key_name", "project_id", "user_id", "hostname", NULL};
    const char *col = "created_at";
    if (sk) {
        bool ok = false;
        for (int i = 0; sort_ok[i]; i++)
            if (!strcmp(sort_ok[i], sk)) ok = true;
        if (!ok) {
            rc = ts_err_set(err, TS_EINVAL, "Invalid input for query parameters sort_key. Value: %s.", sk);
            goto out;
        }
        col = sk;
    }
    bool asc = sd && !strcasecmp(sd, "asc");
    if (sd && !asc && strcasecmp(sd, "desc")) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input for query parameters sort_dir. Value: %s.", sd);
        goto out;
    }
    ts_buf_printf(&w.sql, " ORDER BY %s %s, id %s", col, asc ? "ASC" : "DESC", asc ? "ASC" : "DESC");

    int64_t limit = 1000, max_limit = ts_conf_get_int(svc->env->conf, "compute", "max_limit", 1000);
    bool limit_given = false;
    if ((v = ts_http_query(req, "limit"))) {
        if (ts_parse_int64(v, &limit) < 0 || limit < 0) {
            rc = ts_err_set(err, TS_EINVAL, "Invalid input for query parameters limit. Value: %s. '%s' does not match "
                            "'^[0-9]*$'", v, v);
            goto out;
        }
        limit_given = true;
    }
    if (limit > max_limit) limit = max_limit;
    const char *marker = ts_http_query(req, "marker");
    const char *name = ts_http_query(req, "name");
    if (name) {
        if (regcomp(&re, name, REG_EXTENDED | REG_NOSUB) != 0) {
            rc = ts_err_set(err, TS_EINVAL, "Invalid regular expression for name: %s", name);
            goto out;
        }
        have_re = true;
    }
    rc = ts_db_exec(svc->db, ts_buf_cstr(&w.sql), w.args, w.n, &res, err);
    if (rc) goto out;
    bool past_marker = marker == NULL;
    bool more = false;
    for (int r = 0; r < res->nrows; r++) {
        const char *u = ts_db_res_get(res, r, 1);
        if (!past_marker) {
            if (ts_streq(u, marker)) past_marker = true;
            continue;
        }
        if (have_re) {
            const char *dn = ts_db_res_get(res, r, 4);
            if (regexec(&re, dn ? dn : "", 0, NULL, 0) != 0) continue;
        }
        if ((int64_t)json_array_size(insts) >= limit) {
            more = true;
            break;
        }
        json_array_append_new(insts, ts_compute_inst_row(res, r));
    }
    if (!past_marker) {
        rc = ts_err_set(err, TS_EINVAL, "marker [%s] not found", marker);
        goto out;
    }
    json_t *arr = json_array();
    const char *base = ts_compute_base(req);
    if (detail) {
        rc = load_meta_tags(svc, insts, &meta, &tags, err);
        if (rc) {
            json_decref(arr);
            goto out;
        }
        hs = ts_compute_host_statuses(svc);
    }
    size_t i;
    json_t *inst;
    json_array_foreach(insts, i, inst) {
        const char *u = JS(inst, "uuid");
        if (detail) {
            json_array_append_new(arr, ts_compute_server_view(req, mv, inst, json_object_get(meta, u),
                                                              json_object_get(tags, u), status_of_host(hs, inst)));
        } else {
            json_array_append_new(arr, json_pack("{s:s, s:s, s:o}", "id", u, "name",
                                                 JS(inst, "display_name") ? JS(inst, "display_name") : "", "links",
                                                 link_pair(base, "servers", u)));
        }
    }
    json_t *body = json_pack("{s:o}", "servers", arr);
    size_t cnt = json_array_size(insts);
    if (cnt > 0 && ((limit_given && (int64_t)cnt == limit) || more)) {
        const char *last = JS(json_array_get(insts, cnt - 1), "uuid");
        char *href = ts_asprintf("%s/v2.1/servers%s?limit=%lld&marker=%s", base, detail ? "/detail" : "",
                                 (long long)limit, last);
        json_object_set_new(body, "servers_links", json_pack("[{s:s, s:s}]", "rel", "next", "href", href));
        free(href);
    }
    ts_http_resp_json(resp, 200, body);
out:
    if (have_re) regfree(&re);
    for (int k = 0; k < ntmp; k++) free(tmp_free[k]);
    ts_db_res_free(res);
    ts_buf_free(&w.sql);
    json_decref(insts);
    json_decref(meta);
    json_decref(tags);
    json_decref(hs);
    return rc;
}

TS_COMPUTE_HANDLER(servers_list) { return list_common(req, resp, err, false); }
TS_COMPUTE_HANDLER(servers_detail) { return list_common(req, resp, err, true); }

/* ---- create ------------------------------------------------------------------------ */

static int check_name(const json_t *v, const char *field, bool required, struct ts_err *err)
{
    if (!v) {
        if (required) return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute server. Value: {}. "
                                        "'%s' is a required property", field);
        return 0;
    }
    const char *s = json_string_value(v);
    size_t n = s ? strlen(s) : 0;
    if (!s || n < 1 || n > 255 || s[0] == ' ' || s[n - 1] == ' ' || !ts_utf8_valid(s, n))
        return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute %s. Value: %s.", field,
                          s ? s : "(not a string)");
    return 0;
}

int ts_compute_check_metadata(const json_t *md, int64_t limit, struct ts_err *err)
{
    if (!json_is_object(md)) return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute metadata. "
                                               "Value must be an object.");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)md, k, v) {
        size_t kl = strlen(k);
        if (kl < 1 || kl > 255)
            return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute metadata. Value: %s. "
                              "Metadata property key must be 1-255 characters.", k);
        if (!json_is_string(v) || strlen(json_string_value(v)) > 255)
            return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute metadata. Value: %s. "
                              "Metadata property value must be a string of at most 255 characters.", k);
    }
    if (limit >= 0 && (int64_t)json_object_size(md) > limit)
        return ts_err_set_full(err, TS_EQUOTA, 403, NULL, "Quota exceeded for metadata_items: Requested %zu, but "
                               "already used 0 of %lld metadata_items", json_object_size(md), (long long)limit);
    return 0;
}

static int get_count(const json_t *v, const char *field, int64_t *out, struct ts_err *err)
{
    if (!v) return 0;
    if (json_is_integer(v)) *out = json_integer_value(v);
    else if (!json_is_string(v) || ts_parse_int64(json_string_value(v), out) < 0)
        return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute %s.", field);
    if (*out < 1) return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute %s. Value: %lld. "
                                    "%lld is less than the minimum of 1", field, (long long)*out, (long long)*out);
    return 0;
}

static void random_pass(char out[13])
{
    static const char set[] = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    unsigned char r[12];
    ts_random(r, sizeof(r));
    for (int i = 0; i < 12; i++) out[i] = set[r[i] % (sizeof(set) - 1)];
    out[12] = 0;
}

static void sanitize_hostname(const char *name, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = name; *p && o + 1 < cap && o < 63; p++) {
        char c = *p;
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') out[o++] = c;
        else if (c >= 'A' && c <= 'Z') out[o++] = (char)(c - 'A' + 'a');
        else if (c == ' ' || c == '_' || c == '.') out[o++] = '-';
    }
    while (o && out[o - 1] == '-') o--;
    out[o] = 0;
    if (!o) snprintf(out, cap, "server");
}

/* Usage of a project in one transaction (instances, cores, ram). */
static int project_usage(struct ts_db_conn *tx, const char *project, int64_t used[3], struct ts_err *err)
{
    struct ts_db_res *res = NULL;
    int rc = ts_db_tx_exec(tx,
                           "SELECT COUNT(*), COALESCE(SUM(vcpus), 0), COALESCE(SUM(memory_mb), 0) FROM instances "
                           "WHERE project_id = ? AND deleted = 0",
                           TS_DB_ARGS(TS_DB_S(project)), &res, err);
    if (rc) return rc;
    for (int i = 0; i < 3; i++) used[i] = ts_db_res_int(res, 0, i, 0);
    ts_db_res_free(res);
    return 0;
}

int ts_compute_quota_error(struct ts_err *err, const char *res, int64_t req, int64_t used, int64_t lim)
{
    return ts_err_set_full(err, TS_EQUOTA, 403, NULL,
                           "Quota exceeded for %s: Requested %lld, but already used %lld of %lld %s", res,
                           (long long)req, (long long)used, (long long)lim, res);
}

/* An accessIPv4/accessIPv6 value checked and written the way Nova stores it (netaddr's
 * compact text for IPv6, "::babe:dc0c:1602"); "" stays "". *out is a pool string. */
static int access_ip_norm(struct ts_http_req *req, const json_t *v, const char *field, const char **out,
                          struct ts_err *err)
{
    const char *s = json_string_value(v);
    bool v6 = !strcmp(field, "accessIPv6");
    unsigned char bin[16];
    char txt[INET6_ADDRSTRLEN];
    if (!s) return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute %s.", field);
    if (!*s) {
        *out = "";
        return 0;
    }
    if (inet_pton(v6 ? AF_INET6 : AF_INET, s, bin) != 1 || !inet_ntop(v6 ? AF_INET6 : AF_INET, bin, txt, sizeof(txt)))
        return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute %s. Value: %s. '%s' is not a '%s'", field,
                          s, s, v6 ? "ipv6" : "ipv4");
    *out = ts_pool_strdup(req->pool, txt);
    return 0;
}

TS_COMPUTE_HANDLER(servers_create)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    if ((rc = ts_compute_check_writer(req, err))) return rc;
    const struct ts_auth *a = req->auth;
    json_t *body = NULL, *srv = NULL, *flavor = NULL, *image = NULL, *created = json_array(), *resolved = NULL;
    struct ts_db_res *res = NULL;
    struct ts_db_conn *tx = NULL;
    char *flavor_s = NULL, *bdm_s = NULL, *nets_s = NULL, *sgs_s = NULL, *spec_s = NULL;
    unsigned char *ud_raw = NULL;
    rc = ts_http_json_body(req, &body, err);
    if (rc) goto out;
    srv = json_object_get(body, "server");
    if (!json_is_object(srv)) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute server. Value: None. 'server' is a "
                        "required property");
        goto out;
    }
    if ((rc = check_name(json_object_get(srv, "name"), "name", true, err))) goto out;
    const char *name = JS(srv, "name");
    json_t *fref = json_object_get(srv, "flavorRef");
    char fbuf[64];
    if (json_is_integer(fref)) {
        snprintf(fbuf, sizeof(fbuf), "%lld", (long long)json_integer_value(fref));
    } else if (json_is_string(fref) && *json_string_value(fref)) {
        snprintf(fbuf, sizeof(fbuf), "%s", json_string_value(fref));
    } else {
        rc = ts_err_set(err, TS_EINVAL, fref ? "Invalid input for field/attribute flavorRef." :
                        "Invalid input for field/attribute server. 'flavorRef' is a required property");
        goto out;
    }
    json_t *bdm = json_object_get(srv, "block_device_mapping_v2");
    if (!bdm) bdm = json_object_get(srv, "block_device_mapping");
    if (bdm && !json_is_array(bdm)) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute block_device_mapping_v2.");
        goto out;
    }
    bool boot_volume = false;
    size_t bi;
    json_t *b;
    json_array_foreach(bdm, bi, b) {
        if (!json_is_object(b)) {
            rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute block_device_mapping_v2.");
            goto out;
        }
        /* Nova's block_device_mapping_v2 schema: the enums of source and destination */
        const char *st = JS(b, "source_type"), *dt = JS(b, "destination_type");
        if ((json_object_get(b, "source_type") && !(ts_streq(st, "volume") || ts_streq(st, "image") ||
                                                   ts_streq(st, "snapshot") || ts_streq(st, "blank"))) ||
            (json_object_get(b, "destination_type") && !(ts_streq(dt, "local") || ts_streq(dt, "volume")))) {
            rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute %s.",
                            json_object_get(b, "source_type") && !ts_streq(st, "volume") && !ts_streq(st, "image") &&
                            !ts_streq(st, "snapshot") && !ts_streq(st, "blank") ? "source_type" : "destination_type");
            goto out;
        }
        json_t *bx = json_object_get(b, "boot_index");
        if ((json_is_integer(bx) && json_integer_value(bx) == 0) || ts_streq(json_string_value(bx), "0"))
            boot_volume = ts_streq(JS(b, "destination_type"), "volume") || !JS(b, "destination_type");
    }
    json_t *iref = json_object_get(srv, "imageRef");
    const char *image_id = NULL;
    if (iref && !json_is_string(iref)) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute imageRef.");
        goto out;
    }
    if (iref && *json_string_value(iref)) {
        image_id = json_string_value(iref);
        const char *sl = strrchr(image_id, '/');
        if (sl) image_id = sl + 1;
    } else if (!boot_volume) {
        rc = ts_err_set(err, TS_EINVAL, "Missing imageRef attribute");
        goto out;
    }
    json_t *nets = json_object_get(srv, "networks");
    if (mv >= 37 && !nets) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute server. 'networks' is a required property");
        goto out;
    }
    if (nets && !json_is_array(nets) && !ts_streq(json_string_value(nets), "auto") &&
        !ts_streq(json_string_value(nets), "none")) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute networks.");
        goto out;
    }
    json_t *md = json_object_get(srv, "metadata");
    if (md && (rc = ts_compute_check_metadata(md, ts_compute_quota_limit(svc, a->project_id, "metadata_items"), err)))
        goto out;
    const char *user_data = NULL;
    json_t *udj = json_object_get(srv, "user_data");
    if (udj && !json_is_null(udj)) {
        size_t udl = 0;
        user_data = json_string_value(udj);
        if (!user_data || strlen(user_data) > 65535 ||
            ts_b64_decode(user_data, strlen(user_data), &ud_raw, &udl) < 0) {
            rc = ts_err_set(err, TS_EINVAL, "User data needs to be valid base 64.");
            goto out;
        }
    }
    int64_t min_count = 1, max_count = 0;
    if ((rc = get_count(json_object_get(srv, "min_count"), "min_count", &min_count, err))) goto out;
    if ((rc = get_count(json_object_get(srv, "max_count"), "max_count", &max_count, err))) goto out;
    if (!max_count) max_count = min_count;
    if (max_count < min_count) {
        rc = ts_err_set(err, TS_EINVAL, "min_count must be <= max_count");
        goto out;
    }
    if (max_count > 1000) max_count = 1000;
    json_t *desc = json_object_get(srv, "description");
    if (desc && (mv < 19 || (!json_is_null(desc) && (!json_is_string(desc) ||
                                                    strlen(json_string_value(desc)) > 255)))) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute description.");
        goto out;
    }
    const char *access_ip[2] = {NULL, NULL};
    for (int fam = 0; fam < 2; fam++) {
        json_t *aj = json_object_get(srv, fam ? "accessIPv6" : "accessIPv4");
        if (!aj || json_is_null(aj)) continue;
        if ((rc = access_ip_norm(req, aj, fam ? "accessIPv6" : "accessIPv4", &access_ip[fam], err))) goto out;
    }
    json_t *sgs = json_object_get(srv, "security_groups");
    if (sgs && !json_is_array(sgs)) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute security_groups.");
        goto out;
    }
    json_t *tagsj = mv >= 52 ? json_object_get(srv, "tags") : NULL;
    if (tagsj && (!json_is_array(tagsj) || json_array_size(tagsj) > 50)) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute tags.");
        goto out;
    }
    const char *az = JS(srv, "availability_zone");
    const char *force_host = NULL;
    char azbuf[256] = "";
    if (az) {
        snprintf(azbuf, sizeof(azbuf), "%s", az);
        char *colon = strchr(azbuf, ':');
        if (colon) {
            *colon = 0;
            if (a->is_admin && colon[1]) force_host = ts_pool_strdup(req->pool, colon + 1);
        }
        az = azbuf[0] ? azbuf : NULL;
        if (az && strcmp(az, "nova")) {
            rc = ts_db_exec(svc->db, "SELECT 1 FROM services WHERE binary_name = 'nova-compute' AND availability_zone = ? "
                            "UNION SELECT 1 FROM aggregates g JOIN aggregate_hosts h ON h.aggregate_id = g.id WHERE "
                            "g.availability_zone = ?", TS_DB_ARGS(TS_DB_S(az), TS_DB_S(az)), &res, err);
            if (rc) goto out;
            bool found = res->nrows > 0;
            ts_db_res_free(res);
            res = NULL;
            if (!found) {
                rc = ts_err_set(err, TS_EINVAL, "The requested availability zone is not available");
                goto out;
            }
        }
    }
    /* flavor, key, group, image */
    rc = ts_compute_flavor_snapshot(svc, req, fbuf, &flavor, err);
    if (rc) goto out;
    const char *key_name = JS(srv, "key_name");
    const char *key_data = NULL;
    if (key_name) {
        rc = ts_db_exec(svc->db, "SELECT public_key FROM keypairs WHERE user_id = ? AND name = ?",
                        TS_DB_ARGS(TS_DB_S(a->user_id), TS_DB_S(key_name)), &res, err);
        if (rc) goto out;
        if (res->nrows == 0) {
            rc = ts_err_set(err, TS_EINVAL, "Invalid key_name provided.");
            goto out;
        }
        key_data = ts_pool_strdup(req->pool, ts_db_res_get(res, 0, 0));
        ts_db_res_free(res);
        res = NULL;
    }
    json_t *hints = json_object_get(body, "os:scheduler_hints");
    if (!hints) hints = json_object_get(body, "OS-SCH-HNT:scheduler_hints");
    const char *group = JS(hints, "group");
    const char *group_policy = NULL;
    if (group) {
        rc = ts_db_exec(svc->db, "SELECT policy, project_id FROM server_groups WHERE uuid = ?",
                        TS_DB_ARGS(TS_DB_S(group)), &res, err);
        if (rc) goto out;
        if (res->nrows == 0 || (!a->is_admin && !ts_streq(ts_db_res_get(res, 0, 1), a->project_id))) {
            rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute group. Value: %s.", group);
            goto out;
        }
        group_policy = ts_pool_strdup(req->pool, ts_db_res_get(res, 0, 0));
        ts_db_res_free(res);
        res = NULL;
    }
    if (image_id) {
        rc = ts_compute_image_get(svc, req, image_id, &image, err);
        if (rc) goto out;
        if (!ts_streq(JS(image, "status"), "active")) {
            rc = ts_err_set(err, TS_EINVAL, "Image %s is not active.", image_id);
            goto out;
        }
        if (JI(image, "min_ram") > JI(flavor, "memory_mb")) {
            rc = ts_err_set(err, TS_EINVAL, "Flavor's memory is too small for requested image.");
            goto out;
        }
        if (JI(flavor, "root_gb") > 0 && JI(image, "min_disk") > JI(flavor, "root_gb")) {
            rc = ts_err_set(err, TS_EINVAL, "Flavor's disk is too small for requested image.");
            goto out;
        }
    }

    /* networks made concrete (ports and networks checked with the caller's token) */
    if (!nets && mv < 37)
        rc = ts_compute_net_resolve_default(svc->env, a->token, a->project_id, a->is_admin, &resolved, err);
    else
        rc = ts_compute_net_resolve(svc->env, a->token, a->project_id, nets, max_count, &resolved, err);
    if (rc) goto out;
    /* security groups by name or id must exist (Nova: SecurityGroupNotFound, 400) */
    char nbase[512];
    if (json_array_size(sgs) && ts_compute_ext_url(svc->env, "network", nbase, sizeof(nbase))) {
        size_t gi;
        json_t *g;
        json_array_foreach(sgs, gi, g) {
            const char *gname = JS(g, "name");
            if (!gname) continue;
            char gid[64];
            rc = ts_compute_net_sg_id(svc->env, a->token, gname, gid, sizeof(gid), NULL, 0, err);
            if (rc == -TS_ENOTFOUND) rc = ts_err_set(err, TS_EINVAL, "Security group %s not found.", gname);
            if (rc) goto out;
        }
    }
    /* a root volume must be bootable (Nova: InvalidBDMVolumeNotBootable) */
    json_array_foreach(bdm, bi, b) {
        json_t *bx = json_object_get(b, "boot_index");
        if (!((json_is_integer(bx) && json_integer_value(bx) == 0) || ts_streq(json_string_value(bx), "0")) ||
            !ts_streq(JS(b, "source_type"), "volume") || !JS(b, "uuid"))
            continue;
        json_t *vol = NULL;
        rc = ts_compute_vol_get(svc->env, a->token, a->project_id, JS(b, "uuid"), &vol, err);
        if (rc == -TS_ENOTFOUND) rc = ts_err_set(err, TS_EINVAL, "Volume %s could not be found.", JS(b, "uuid"));
        if (rc) goto out;
        json_t *bt = json_object_get(vol, "bootable");
        bool bootable = json_is_true(bt) || ts_streq(json_string_value(bt), "true");
        json_decref(vol);
        if (!bootable) {
            rc = ts_err_set(err, TS_EINVAL, "Block Device %s is not bootable.", JS(b, "uuid"));
            goto out;
        }
    }

    /* the request spec the scheduler works from */
    json_t *spec = json_pack("{s:I, s:I, s:I, s:i, s:[]}", "vcpus", (json_int_t)JI(flavor, "vcpus"), "memory_mb",
                             (json_int_t)JI(flavor, "memory_mb"), "root_gb",
                             (json_int_t)(JI(flavor, "root_gb") + JI(flavor, "ephemeral_gb")), "num_attempts", 0,
                             "ignore_hosts");
    ts_json_set_str(spec, "availability_zone", az);
    ts_json_set_str(spec, "force_host", force_host);
    ts_json_set_str(spec, "group", group);
    ts_json_set_str(spec, "group_policy", group_policy);
    spec_s = ts_json_dump(spec);
    json_decref(spec);
    flavor_s = ts_json_dump(flavor);
    bdm_s = bdm ? ts_json_dump(bdm) : NULL;
    nets_s = json_array_size(resolved) ? ts_json_dump(resolved) : NULL;
    if (sgs) sgs_s = ts_json_dump(sgs);
    else sgs_s = ts_strdup("[{\"name\": \"default\"}]");
    char resv[16];
    {
        unsigned char r[4];
        char hex[9];
        ts_random(r, 4);
        ts_hex(r, 4, hex);
        snprintf(resv, sizeof(resv), "r-%s", hex);
    }
    const char *config_drive = NULL;
    json_t *cd = json_object_get(srv, "config_drive");
    if (json_is_true(cd) || ts_streq(json_string_value(cd), "true") || ts_streq(json_string_value(cd), "True"))
        config_drive = "True";

    /* quota + insert under one write transaction */
    int64_t lim[3] = {ts_compute_quota_limit(svc, a->project_id, "instances"),
                      ts_compute_quota_limit(svc, a->project_id, "cores"),
                      ts_compute_quota_limit(svc, a->project_id, "ram")};
    int64_t per[3] = {1, JI(flavor, "vcpus"), JI(flavor, "memory_mb")};
    static const char *const qnames[3] = {"instances", "cores", "ram"};
    int64_t group_lim = group ? ts_compute_quota_limit(svc, a->project_id, "server_group_members") : -1;
    rc = ts_db_begin(svc->db, &tx, err);
    if (rc) goto out;
    int64_t used[3];
    rc = project_usage(tx, a->project_id, used, err);
    if (rc) goto out;
    int64_t allowed = max_count;
    for (int q = 0; q < 3; q++) {
        if (lim[q] < 0 || per[q] == 0) continue;
        int64_t can = (lim[q] - used[q]) / per[q];
        if (can < 0) can = 0;
        if (can < allowed) allowed = can;
    }
    if (allowed < min_count) {
        for (int q = 0; q < 3; q++) {
            if (lim[q] >= 0 && used[q] + per[q] * min_count > lim[q]) {
                rc = ts_compute_quota_error(err, qnames[q], per[q] * min_count, used[q], lim[q]);
                goto out;
            }
        }
        rc = ts_compute_quota_error(err, "instances", min_count, used[0], lim[0]);
        goto out;
    }
    if (group && group_lim >= 0) {
        rc = ts_db_tx_exec(tx, "SELECT COUNT(*) FROM server_group_members WHERE group_uuid = ?",
                           TS_DB_ARGS(TS_DB_S(group)), &res, err);
        if (rc) goto out;
        int64_t members = ts_db_res_int(res, 0, 0, 0);
        ts_db_res_free(res);
        res = NULL;
        if (members + min_count > group_lim) {
            rc = ts_err_set_full(err, TS_EQUOTA, 403, NULL, "Quota exceeded, too many servers in group");
            goto out;
        }
        if (members + allowed > group_lim) allowed = group_lim - members;
    }
    double now = ts_now();
    for (int64_t k = 0; k < allowed; k++) {
        char uuid[TS_UUID_LEN + 1], hn[80];
        ts_uuid(uuid);
        char *dname = allowed > 1 ? ts_asprintf("%s-%lld", name, (long long)k + 1) : ts_strdup(name);
        const char *hostname_req = mv >= 90 ? JS(srv, "hostname") : NULL;
        sanitize_hostname(hostname_req ? hostname_req : dname, hn, sizeof(hn));
        rc = ts_db_tx_exec(
            tx,
            "INSERT INTO instances (uuid, project_id, user_id, display_name, description, hostname, image_ref, "
            "flavor_id, flavor, vcpus, memory_mb, root_gb, vm_state, task_state, power_state, availability_zone, "
            "key_name, key_data, user_data, config_drive, access_ip_v4, access_ip_v6, reservation_id, launch_index, "
            "bdm, networks, security_groups, server_group, request_spec, created_at, updated_at) VALUES (?, ?, ?, ?, "
            "?, ?, ?, ?, ?, ?, ?, ?, 'building', 'scheduling', 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            TS_DB_ARGS(TS_DB_S(uuid), TS_DB_S(a->project_id), TS_DB_S(a->user_id), TS_DB_S(dname),
                       TS_DB_S(json_string_value(desc)), TS_DB_S(hn), TS_DB_S(image_id ? image_id : ""),
                       TS_DB_S(JS(flavor, "flavorid")), TS_DB_S(flavor_s), TS_DB_I(JI(flavor, "vcpus")),
                       TS_DB_I(JI(flavor, "memory_mb")), TS_DB_I(JI(flavor, "root_gb")), TS_DB_S(az),
                       TS_DB_S(key_name), TS_DB_S(key_data), TS_DB_S(user_data), TS_DB_S(config_drive),
                       TS_DB_S(access_ip[0]), TS_DB_S(access_ip[1]), TS_DB_S(resv), TS_DB_I(k),
                       TS_DB_S(bdm_s), TS_DB_S(nets_s), TS_DB_S(sgs_s), TS_DB_S(group), TS_DB_S(spec_s),
                       TS_DB_D(now), TS_DB_D(now)),
            NULL, err);
        free(dname);
        if (rc) goto out;
        const char *mk;
        json_t *mval;
        json_object_foreach(md, mk, mval) {
            rc = ts_db_tx_exec(tx, "INSERT INTO instance_metadata (instance_uuid, key, value) VALUES (?, ?, ?)",
                               TS_DB_ARGS(TS_DB_S(uuid), TS_DB_S(mk), TS_DB_S(json_string_value(mval))), NULL, err);
            if (rc) goto out;
        }
        size_t ti;
        json_t *tv;
        json_array_foreach(tagsj, ti, tv) {
            if (!json_is_string(tv)) continue;
            rc = ts_db_tx_exec(tx, "INSERT INTO instance_tags (instance_uuid, tag) VALUES (?, ?) ON CONFLICT DO NOTHING",
                               TS_DB_ARGS(TS_DB_S(uuid), TS_DB_S(json_string_value(tv))), NULL, err);
            if (rc) goto out;
        }
        if (group) {
            rc = ts_db_tx_exec(tx, "INSERT INTO server_group_members (group_uuid, instance_uuid) VALUES (?, ?)",
                               TS_DB_ARGS(TS_DB_S(group), TS_DB_S(uuid)), NULL, err);
            if (rc) goto out;
        }
        rc = ts_db_tx_exec(tx,
                           "INSERT INTO instance_actions (instance_uuid, action, request_id, user_id, project_id, "
                           "start_time, updated_at) VALUES (?, 'create', ?, ?, ?, ?, ?)",
                           TS_DB_ARGS(TS_DB_S(uuid), TS_DB_S(req->request_id ? req->request_id : ""),
                                      TS_DB_S(a->user_id), TS_DB_S(a->project_id), TS_DB_D(now), TS_DB_D(now)),
                           NULL, err);
        if (rc) goto out;
        json_array_append_new(created, json_string(uuid));
    }
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc) goto out;

    /* hand over to the scheduler */
    size_t ci;
    json_t *cu;
    json_array_foreach(created, ci, cu) {
        json_t *inst = NULL;
        if (ts_compute_inst_load(svc->db, json_string_value(cu), &inst, NULL) == 0) {
            ts_compute_notify(svc->env->bus, svc->publisher, "compute.instance.create.start", inst);
            json_decref(inst);
        }
        struct ts_err e2 = {0};
        json_t *args = json_pack("{s:O, s:o}", "instance_uuid", cu, "context", ts_compute_context(req, svc));
        if (ts_bus_cast(svc->env->bus, "scheduler", "select_and_build", args, &e2) < 0) {
            ts_warn("compute", "cannot reach the scheduler for %s: %s", json_string_value(cu), e2.msg);
            json_t *vals = json_pack("{s:s, s:n, s:{s:i, s:s, s:f}}", "vm_state", "error", "task_state", "fault",
                                     "code", 500, "message", "No valid host was found. The scheduler is not running.",
                                     "created", ts_now());
            ts_compute_inst_update(svc->db, json_string_value(cu), vals, NULL, NULL, NULL);
            json_decref(vals);
        }
    }
    const char *first = json_string_value(json_array_get(created, 0));
    if (json_is_true(json_object_get(srv, "return_reservation_id"))) {
        ts_http_resp_json(resp, 202, json_pack("{s:s}", "reservation_id", resv));
    } else {
        char pass[13];
        const char *ap = JS(srv, "adminPass");
        if (!ap) {
            random_pass(pass);
            ap = pass;
        }
        const char *base = ts_compute_base(req);
        json_t *sv = json_pack("{s:s, s:o, s:s, s:s}", "id", first, "links", link_pair(base, "servers", first),
                               "OS-DCF:diskConfig", "MANUAL", "adminPass", ap);
        json_object_set_new(sv, "security_groups", json_loads(sgs_s, 0, NULL));
        ts_http_resp_headerf(resp, "Location", "%s/v2.1/servers/%s", base, first);
        ts_http_resp_json(resp, 202, json_pack("{s:o}", "server", sv));
    }
out:
    if (tx) ts_db_rollback(tx);
    ts_db_res_free(res);
    json_decref(flavor);
    json_decref(image);
    json_decref(created);
    json_decref(resolved);
    free(flavor_s);
    free(bdm_s);
    free(nets_s);
    free(sgs_s);
    free(spec_s);
    free(ud_raw);
    return rc;
}

/* ---- update / delete ---------------------------------------------------------------- */

TS_COMPUTE_HANDLER(servers_update)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    if ((rc = ts_compute_check_writer(req, err))) return rc;
    const char *id = ts_http_param(req, "id");
    json_t *body = NULL, *inst = NULL, *vals = json_object();
    rc = ts_compute_inst_visible(req, svc, id, &inst, err);
    if (rc) goto out;
    rc = ts_http_json_body(req, &body, err);
    if (rc) goto out;
    json_t *s = json_object_get(body, "server");
    if (!json_is_object(s)) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute server.");
        goto out;
    }
    const char *k;
    json_t *v;
    json_object_foreach(s, k, v) {
        if (!strcmp(k, "name")) {
            if ((rc = check_name(v, "name", true, err))) goto out;
            json_object_set(vals, "display_name", v);
        } else if (!strcmp(k, "description") && mv >= 19) {
            if (!json_is_null(v) && (!json_is_string(v) || strlen(json_string_value(v)) > 255)) {
                rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute description.");
                goto out;
            }
            json_object_set(vals, "description", v);
        } else if (!strcmp(k, "accessIPv4") || !strcmp(k, "accessIPv6")) {
            const char *norm = NULL;
            if ((rc = access_ip_norm(req, v, k, &norm, err))) goto out;
            json_object_set_new(vals, !strcmp(k, "accessIPv4") ? "access_ip_v4" : "access_ip_v6", json_string(norm));
        } else if (!strcmp(k, "hostname") && mv >= 90) {
            if ((rc = check_name(v, "hostname", true, err))) goto out;
            json_object_set(vals, "hostname", v);
        } else if (!strcmp(k, "OS-DCF:diskConfig")) {
            continue;
        } else {
            rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute server. Additional properties are not "
                            "allowed ('%s' was unexpected)", k);
            goto out;
        }
    }
    if (json_object_size(vals)) {
        rc = ts_compute_inst_update(svc->db, id, vals, NULL, NULL, err);
        if (rc) goto out;
    }
    rc = ts_compute_show_changed(req, resp, mv, id, 200, NULL, false, err);
out:
    json_decref(inst);
    json_decref(vals);
    return rc;
}

/* Is the compute service of host up? */
bool ts_compute_host_up(struct ts_compute_svc *svc, const char *host)
{
    if (!host) return false;
    struct ts_db_res *res = NULL;
    bool up = false;
    if (ts_db_exec(svc->db,
                   "SELECT last_seen_up, forced_down FROM services WHERE host = ? AND binary_name = 'nova-compute'",
                   TS_DB_ARGS(TS_DB_S(host)), &res, NULL) == 0 &&
        res->nrows > 0)
        up = ts_compute_is_up(strtod(ts_db_res_get(res, 0, 0) ? ts_db_res_get(res, 0, 0) : "0", NULL),
                              svc->service_down_time, ts_db_res_int(res, 0, 1, 0) != 0);
    ts_db_res_free(res);
    return up;
}

void ts_compute_local_delete(struct ts_compute_svc *svc, const char *uuid)
{
    json_t *inst = NULL;
    if (ts_compute_inst_load(svc->db, uuid, &inst, NULL) == 0) {
        ts_compute_notify(svc->env->bus, svc->publisher, "compute.instance.delete.start", inst);
        /* no agent to do it: release volumes and ports here (service token) */
        ts_compute_vol_cleanup(svc->env, NULL, inst);
        ts_compute_net_deallocate(svc->env, uuid, json_object_get(inst, "nw_info"));
    }
    json_decref(inst);
    inst = NULL;
    ts_compute_inst_destroy(svc->db, uuid, NULL);
    if (ts_compute_inst_load(svc->db, uuid, &inst, NULL) == 0)
        ts_compute_notify(svc->env->bus, svc->publisher, "compute.instance.delete.end", inst);
    json_decref(inst);
}

TS_COMPUTE_HANDLER(servers_delete)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    if ((rc = ts_compute_check_writer(req, err))) return rc;
    const char *id = ts_http_param(req, "id");
    json_t *inst = NULL;
    rc = ts_compute_inst_visible(req, svc, id, &inst, err);
    if (rc) return rc;
    if (JI(inst, "locked") && !req->auth->is_admin) {
        json_decref(inst);
        return ts_err_set(err, TS_ECONFLICT, "Instance %s is locked", id);
    }
    const char *host = JS(inst, "host");
    ts_compute_action_start(svc->db, id, "delete", req->request_id, req->auth->user_id, req->auth->project_id);
    if (!host || !ts_compute_host_up(svc, host)) {
        ts_compute_local_delete(svc, id);
    } else {
        json_t *vals = json_pack("{s:s}", "task_state", "deleting");
        rc = ts_compute_inst_update(svc->db, id, vals, NULL, NULL, err);
        json_decref(vals);
        if (!rc) {
            char *topic = ts_asprintf("compute.%s", host);
            json_t *args = json_pack("{s:s, s:o}", "instance_uuid", id, "context", ts_compute_context(req, svc));
            if (ts_bus_cast(svc->env->bus, topic, "terminate_instance", args, NULL) < 0)
                ts_compute_local_delete(svc, id);
            free(topic);
        }
    }
    json_decref(inst);
    if (!rc) ts_http_resp_json(resp, 204, NULL);
    return rc;
}
