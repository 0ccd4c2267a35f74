/*
 * ts_compute_api_ext.c: the compute API where it meets networking and block storage:
 * os-server-external-events (network-vif-plugged from the network agent, cast to the
 * instance's compute host), os-interface (port hotplug), os-volume_attachments (volume
 * hotplug through Cinder's attachments API), the addFloatingIp/removeFloatingIp and
 * addSecurityGroup/removeSecurityGroup actions, and the refresh of the VIF cache behind
 * "addresses".
 */
#include "compute/api/ts_compute_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/ts_json.h"

#define HOTPLUG_TIMEOUT_MS 330000

/* Re-sets err with a new code and a message around its current one. */
static int rewrap(struct ts_err *err, int code, const char *prefix, const char *suffix)
{
    char msg[sizeof(err->msg)];
    snprintf(msg, sizeof(msg), "%s", err->msg);
    return ts_err_set(err, code, "%s%s%s", prefix, msg, suffix);
}

void ts_compute_refresh_nw(struct ts_http_req *req, struct ts_compute_svc *svc, json_t *inst)
{
    json_t *old = json_object_get(inst, "nw_info");
    if (!json_is_array(old) || !json_array_size(old) || JS(inst, "task_state")) return;
    json_t *cur = NULL;
    struct ts_err e = {0};
    if (ts_compute_net_refresh(svc->env, req->auth->token, JS(inst, "uuid"), old, &cur, &e) < 0) return;
    if (!json_equal(cur, old)) {
        json_t *vals = json_pack("{s:O}", "nw_info", cur);
        ts_compute_inst_update(svc->db, JS(inst, "uuid"), vals, NULL, NULL, NULL);
        json_decref(vals);
    }
    json_object_set_new(inst, "nw_info", cur);
}

/* Bus call to the instance's host; maps an unreachable host to 409 as Nova does. */
static int host_call(struct ts_http_req *req, struct ts_compute_svc *svc, const json_t *inst, const char *method,
                     json_t *args, json_t **reply, struct ts_err *err)
{
    const char *host = JS(inst, "host");
    if (!host || ts_streq(JS(inst, "vm_state"), "building") || JS(inst, "task_state")) {
        json_decref(args);
        return ts_err_set(err, TS_ECONFLICT, "Cannot '%s' instance %s while it is in vm_state %s", method,
                          JS(inst, "uuid"), JS(inst, "vm_state") ? JS(inst, "vm_state") : "None");
    }
    json_object_set_new(args, "instance_uuid", json_string(JS(inst, "uuid")));
    json_object_set_new(args, "context", ts_compute_context(req, svc));
    char *topic = ts_asprintf("compute.%s", host);
    int rc = ts_bus_call(svc->env->bus, topic, method, args, HOTPLUG_TIMEOUT_MS, reply, err);
    free(topic);
    /* A handler's own timeout (no network-vif-plugged in time, a libvirt job timeout) comes back
     * with the same codes as an unreachable host: "unavailable" only when the host's heartbeat
     * says so, the agent's own message otherwise. */
    if ((rc == -TS_ETIMEDOUT || rc == -TS_EUNAVAIL) && !ts_compute_host_up(svc, host))
        return ts_err_set(err, TS_ECONFLICT, "Compute service of %s is unavailable at this time.", host);
    return rc;
}

static int begin(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err, bool write, int *mv,
                 json_t **inst)
{
    int rc = ts_compute_begin(req, resp, err, mv);
    if (rc) return rc;
    if (write && (rc = ts_compute_check_writer(req, err))) return rc;
    return ts_compute_inst_visible(req, req->svc, ts_http_param(req, "id"), inst, err);
}

/* ---- os-server-external-events ---------------------------------------------------------- */

TS_COMPUTE_HANDLER(external_events)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    if ((rc = ts_compute_check_admin(req, err))) return rc;
    json_t *body = NULL;
    rc = ts_http_json_body(req, &body, err);
    if (rc) return rc;
    json_t *evs = json_object_get(body, "events");
    if (!json_is_array(evs) || !json_array_size(evs))
        return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute events.");
    static const char *const names[] = {"network-changed", "network-vif-plugged", "network-vif-unplugged",
                                        "network-vif-deleted", "volume-extended", "power-update",
                                        "accelerator-request-bound", "volume-reimaged", NULL};
    json_t *out = json_array();
    int ok = 0, bad = 0;
    size_t i;
    json_t *e;
    json_array_foreach(evs, i, e) {
        const char *name = JS(e, "name"), *uuid = JS(e, "server_uuid"), *status = JS(e, "status");
        bool known = false;
        for (int k = 0; name && names[k]; k++) known |= !strcmp(names[k], name);
        if (!known || !uuid || (status && !ts_streq(status, "completed") && !ts_streq(status, "failed") &&
                                !ts_streq(status, "in-progress"))) {
            json_decref(out);
            return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute name.");
        }
        json_t *r = json_deep_copy(e);
        if (!status) json_object_set_new(r, "status", json_string("completed"));
        json_t *inst = NULL;
        int code = 200;
        if (!ts_uuid_valid(uuid) || ts_compute_inst_load(svc->db, uuid, &inst, NULL) < 0 ||
            JI(inst, "deleted")) {
            code = 404;
        } else if (!JS(inst, "host")) {
            code = 422;
        } else {
            char *topic = ts_asprintf("compute_events.%s", JS(inst, "host"));
            json_t *args = json_pack("{s:s, s:[O]}", "instance_uuid", uuid, "events", r);
            if (ts_bus_cast(svc->env->bus, topic, "external_instance_event", args, NULL) < 0) code = 422;
            free(topic);
        }
        json_decref(inst);
        json_object_set_new(r, "code", json_integer(code));
        if (code == 200) ok++;
        else bad++;
        json_array_append_new(out, r);
    }
    ts_http_resp_json(resp, !bad ? 200 : ok ? 207 : 404, json_pack("{s:o}", "events", out));
    return 0;
}

/* ---- os-interface -------------------------------------------------------------------------- */

static json_t *iface_view(const json_t *port)
{
    json_t *f = json_array();
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(port, "fixed_ips"), i, x)
        json_array_append_new(f, json_pack("{s:s?, s:s?}", "subnet_id", JS(x, "subnet_id"), "ip_address",
                                           JS(x, "ip_address")));
    return json_pack("{s:s?, s:o, s:s?, s:s?, s:s?}", "port_state", JS(port, "status") ? JS(port, "status") : "DOWN",
                     "fixed_ips", f, "port_id", JS(port, "id") ? JS(port, "id") : JS(port, "port_id"), "net_id",
                     JS(port, "network_id"), "mac_addr", JS(port, "mac_address") ? JS(port, "mac_address")
                                                                                 : JS(port, "mac"));
}

static int ports_of(struct ts_http_req *req, struct ts_compute_svc *svc, const char *uuid, json_t **ports,
                    struct ts_err *err)
{
    char *path = ts_asprintf("/v2.0/ports?device_id=%s", uuid);
    int st = 0;
    json_t *o = NULL;
    int rc = ts_compute_ext_call(svc->env, "network", req->auth->token, "GET", path, NULL, NULL, &st, &o, err);
    free(path);
    if (!rc && st != 200) rc = ts_err_set(err, TS_EIO, "%s", ts_compute_ext_msg(o, "network service error"));
    if (rc) {
        json_decref(o);
        return rc;
    }
    *ports = json_incref(json_object_get(o, "ports"));
    json_decref(o);
    if (!*ports) *ports = json_array();
    return 0;
}

TS_COMPUTE_HANDLER(interfaces_list)
{
    int mv;
    json_t *inst = NULL, *ports = NULL;
    int rc = begin(req, resp, err, false, &mv, &inst);
    if (rc) return rc;
    rc = ports_of(req, req->svc, JS(inst, "uuid"), &ports, err);
    if (!rc) {
        json_t *arr = json_array();
        size_t i;
        json_t *p;
        json_array_foreach(ports, i, p) json_array_append_new(arr, iface_view(p));
        ts_http_resp_json(resp, 200, json_pack("{s:o}", "interfaceAttachments", arr));
    }
    json_decref(ports);
    json_decref(inst);
    return rc;
}

TS_COMPUTE_HANDLER(interface_show)
{
    int mv;
    json_t *inst = NULL, *ports = NULL;
    int rc = begin(req, resp, err, false, &mv, &inst);
    if (rc) return rc;
    const char *pid = ts_http_param(req, "port_id");
    rc = ports_of(req, req->svc, JS(inst, "uuid"), &ports, err);
    if (!rc) {
        rc = ts_err_set(err, TS_ENOTFOUND, "Network interface %s could not be found.", pid ? pid : "");
        size_t i;
        json_t *p;
        json_array_foreach(ports, i, p) if (ts_streq(JS(p, "id"), pid)) {
            ts_http_resp_json(resp, 200, json_pack("{s:o}", "interfaceAttachment", iface_view(p)));
            rc = 0;
        }
    }
    json_decref(ports);
    json_decref(inst);
    return rc;
}

TS_COMPUTE_HANDLER(interface_create)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    json_t *inst = NULL, *body = NULL, *reply = NULL, *resolved = NULL;
    int rc = begin(req, resp, err, true, &mv, &inst);
    if (rc) return rc;
    rc = ts_http_json_body(req, &body, err);
    if (rc) goto out;
    json_t *ia = json_object_get(body, "interfaceAttachment");
    if (ia && !json_is_object(ia)) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute interfaceAttachment.");
        goto out;
    }
    const char *port = JS(ia, "port_id"), *net = JS(ia, "net_id");
    const char *fip = JS(json_array_get(json_object_get(ia, "fixed_ips"), 0), "ip_address");
    if (port && net) {
        rc = ts_err_set(err, TS_EINVAL, "Must not input both network_id and port_id");
        goto out;
    }
    json_t *want;
    if (port) want = json_pack("[{s:s}]", "port", port);
    else if (net) want = json_pack("[{s:s, s:s?}]", "uuid", net, "fixed_ip", fip);
    else want = json_string("auto");
    rc = ts_compute_net_resolve(svc->env, req->auth->token, JS(inst, "project_id"), want, 1, &resolved, err);
    json_decref(want);
    if (rc == -TS_ECONFLICT && port) rc = ts_err_set(err, TS_ECONFLICT, "Port %s is still in use.", port);
    if (rc) goto out;
    if (!json_array_size(resolved)) {
        rc = ts_err_set(err, TS_EINVAL, "No network to attach the interface to");
        goto out;
    }
    rc = host_call(req, svc, inst, "attach_interface", json_pack("{s:O}", "request", json_array_get(resolved, 0)),
                   &reply, err);
    if (rc == -TS_EINVAL || rc == -TS_EIO || rc == -TS_ETIMEDOUT || rc == -TS_EUNAVAIL)
        rc = rewrap(err, TS_EINVAL, "Failed to attach network adapter device: ", "");
    if (rc) goto out;
    ts_compute_action_start(svc->db, JS(inst, "uuid"), "attach_interface", req->request_id, req->auth->user_id,
                            req->auth->project_id);
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "interfaceAttachment", iface_view(reply)));
out:
    json_decref(reply);
    json_decref(resolved);
    json_decref(inst);
    return rc;
}

TS_COMPUTE_HANDLER(interface_delete)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    json_t *inst = NULL, *ports = NULL, *reply = NULL;
    int rc = begin(req, resp, err, true, &mv, &inst);
    if (rc) return rc;
    const char *pid = ts_http_param(req, "port_id");
    rc = ports_of(req, svc, JS(inst, "uuid"), &ports, err);
    if (rc) goto out;
    bool found = false;
    size_t i;
    json_t *p;
    json_array_foreach(ports, i, p) found |= ts_streq(JS(p, "id"), pid);
    if (!found) {
        rc = ts_err_set(err, TS_ENOTFOUND, "Port %s is not attached", pid ? pid : "");
        goto out;
    }
    rc = host_call(req, svc, inst, "detach_interface", json_pack("{s:s}", "port_id", pid), &reply, err);
    if (rc) goto out;
    ts_compute_action_start(svc->db, JS(inst, "uuid"), "detach_interface", req->request_id, req->auth->user_id,
                            req->auth->project_id);
    ts_http_resp_json(resp, 202, NULL);
out:
    json_decref(reply);
    json_decref(ports);
    json_decref(inst);
    return rc;
}

/* ---- os-volume_attachments ----------------------------------------------------------------- */

static json_t *vatt_view(int mv, const char *server, const json_t *b)
{
    const char *vid = JS(b, "volume_id");
    json_t *v = json_pack("{s:s, s:s, s:s?}", "serverId", server, "volumeId", vid, "device", JS(b, "device_name"));
    if (mv < 89) json_object_set_new(v, "id", json_string(vid));
    if (mv >= 70) ts_json_set_str(v, "tag", JS(b, "tag"));
    if (mv >= 79) json_object_set_new(v, "delete_on_termination",
                                      json_boolean(json_is_true(json_object_get(b, "delete_on_termination"))));
    if (mv >= 89) {
        ts_json_set_str(v, "attachment_id", JS(b, "attachment_id"));
        ts_json_set_str(v, "bdm_uuid", JS(b, "attachment_id"));
    }
    return v;
}

static bool is_volume(const json_t *b)
{
    return JS(b, "volume_id") && ts_streq(JS(b, "destination_type"), "volume");
}

TS_COMPUTE_HANDLER(vol_attachments_list)
{
    int mv;
    json_t *inst = NULL;
    int rc = begin(req, resp, err, false, &mv, &inst);
    if (rc) return rc;
    json_t *arr = json_array();
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(inst, "bdm"), i, b) if (is_volume(b))
        json_array_append_new(arr, vatt_view(mv, JS(inst, "uuid"), b));
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "volumeAttachments", arr));
    json_decref(inst);
    return 0;
}

TS_COMPUTE_HANDLER(vol_attachment_show)
{
    int mv;
    json_t *inst = NULL;
    int rc = begin(req, resp, err, false, &mv, &inst);
    if (rc) return rc;
    const char *vid = ts_http_param(req, "volume_id");
    rc = ts_err_set(err, TS_ENOTFOUND, "Instance %s is not attached to volume %s.", JS(inst, "uuid"), vid ? vid : "");
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(inst, "bdm"), i, b) if (is_volume(b) && ts_streq(JS(b, "volume_id"), vid)) {
        ts_http_resp_json(resp, 200, json_pack("{s:o}", "volumeAttachment", vatt_view(mv, JS(inst, "uuid"), b)));
        rc = 0;
    }
    json_decref(inst);
    return rc;
}

TS_COMPUTE_HANDLER(vol_attachment_create)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    json_t *inst = NULL, *body = NULL, *vol = NULL, *reply = NULL, *args = NULL;
    char att[37] = "";
    int rc = begin(req, resp, err, true, &mv, &inst);
    if (rc) return rc;
    rc = ts_http_json_body(req, &body, err);
    if (rc) goto out;
    json_t *va = json_object_get(body, "volumeAttachment");
    const char *vid = JS(va, "volumeId");
    if (!json_is_object(va) || !vid) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute volumeAttachment. 'volumeId' is a "
                        "required property");
        goto out;
    }
    json_t *dev = json_object_get(va, "device");
    if (dev && !json_is_null(dev) && !json_is_string(dev)) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute device.");
        goto out;
    }
    static const char *const ok_states[] = {"active", "paused", "stopped", "suspended", NULL};
    bool ok = false;
    for (int k = 0; ok_states[k]; k++) ok |= ts_streq(JS(inst, "vm_state"), ok_states[k]);
    if (!ok || JS(inst, "task_state")) {
        rc = ts_err_set(err, TS_ECONFLICT, "Cannot 'attach_volume' instance %s while it is in vm_state %s",
                        JS(inst, "uuid"), JS(inst, "vm_state") ? JS(inst, "vm_state") : "None");
        goto out;
    }
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(inst, "bdm"), i, b) if (is_volume(b) && ts_streq(JS(b, "volume_id"), vid)) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid volume: volume %s already attached", vid);
        goto out;
    }
    rc = ts_compute_vol_get(svc->env, req->auth->token, JS(inst, "project_id"), vid, &vol, err);
    if (rc == -TS_EUNAVAIL) rc = ts_err_set(err, TS_EINVAL, "The volume service is not available");
    if (rc) goto out;
    if (!ts_streq(JS(vol, "status"), "available")) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid volume: volume '%s' status must be 'available'. Currently in '%s'",
                        vid, JS(vol, "status") ? JS(vol, "status") : "");
        goto out;
    }
    rc = ts_compute_vol_reserve(svc->env, req->auth->token, JS(inst, "project_id"), vid, JS(inst, "uuid"), att, err);
    if (rc) {
        if (rc != -TS_EFORBIDDEN && rc != -TS_EQUOTA) rc = rewrap(err, TS_EINVAL, "Invalid volume: ", "");
        goto out;
    }
    args = json_pack("{s:s, s:s, s:s?, s:b}", "volume_id", vid, "attachment_id", att, "device",
                             json_string_value(dev), "delete_on_termination",
                             mv >= 79 && json_is_true(json_object_get(va, "delete_on_termination")));
    if (mv >= 49 && JS(va, "tag")) ts_json_set_str(args, "tag", JS(va, "tag"));
    rc = host_call(req, svc, inst, "attach_volume", json_incref(args), &reply, err);
    if (rc) {
        struct ts_err e2 = {0};
        ts_compute_vol_unreserve(svc->env, req->auth->token, JS(inst, "project_id"), att, &e2);
        if (rc != -TS_ECONFLICT) rc = rewrap(err, TS_EINVAL, "Failed to attach volume: ", "");
        goto out;
    }
    ts_compute_action_start(svc->db, JS(inst, "uuid"), "attach_volume", req->request_id, req->auth->user_id,
                            req->auth->project_id);
    json_t *bv = json_pack("{s:s, s:s, s:s?, s:s}", "volume_id", vid, "destination_type", "volume", "device_name",
                           JS(reply, "device"), "attachment_id", att);
    json_object_set(bv, "delete_on_termination", json_object_get(args, "delete_on_termination"));
    if (JS(args, "tag")) ts_json_set_str(bv, "tag", JS(args, "tag"));
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "volumeAttachment", vatt_view(mv, JS(inst, "uuid"), bv)));
    json_decref(bv);
out:
    json_decref(args);
    json_decref(reply);
    json_decref(vol);
    json_decref(inst);
    return rc;
}

TS_COMPUTE_HANDLER(vol_attachment_delete)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    json_t *inst = NULL, *reply = NULL;
    int rc = begin(req, resp, err, true, &mv, &inst);
    if (rc) return rc;
    const char *vid = ts_http_param(req, "volume_id");
    json_t *found = NULL;
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(inst, "bdm"), i, b) if (is_volume(b) && ts_streq(JS(b, "volume_id"), vid))
        found = b;
    if (!found) {
        rc = ts_err_set(err, TS_ENOTFOUND, "Instance %s is not attached to volume %s.", JS(inst, "uuid"),
                        vid ? vid : "");
        goto out;
    }
    json_t *bx = json_object_get(found, "boot_index");
    if ((json_is_integer(bx) && json_integer_value(bx) == 0) || ts_streq(json_string_value(bx), "0")) {
        rc = ts_err_set(err, TS_EINVAL, "Cannot detach a root device volume");
        goto out;
    }
    rc = host_call(req, svc, inst, "detach_volume", json_pack("{s:s}", "volume_id", vid), &reply, err);
    if (rc) goto out;
    ts_compute_action_start(svc->db, JS(inst, "uuid"), "detach_volume", req->request_id, req->auth->user_id,
                            req->auth->project_id);
    ts_http_resp_json(resp, 202, NULL);
out:
    json_decref(reply);
    json_decref(inst);
    return rc;
}

/* ---- os-security-groups (the proxy to the network API, up to 2.35) -------------------------- */

static json_t *sg_view(const json_t *g)
{
    return json_pack("{s:s?, s:s?, s:s, s:s?, s:[]}", "id", JS(g, "id"), "name", JS(g, "name"), "description",
                     JS(g, "description") ? JS(g, "description") : "", "tenant_id", JS(g, "project_id"), "rules");
}

TS_COMPUTE_HANDLER(sec_groups_list)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    if (mv > 35) return ts_err_set(err, TS_ENOTFOUND, "The resource could not be found.");
    int st = 0;
    json_t *o = NULL;
    rc = ts_compute_ext_call(svc->env, "network", req->auth->token, "GET", "/v2.0/security-groups", NULL, NULL, &st,
                             &o, err);
    if (rc || st != 200) {
        json_decref(o);
        return ts_err_set(err, TS_EINVAL, "The network service is not available");
    }
    json_t *arr = json_array();
    size_t i;
    json_t *g;
    json_array_foreach(json_object_get(o, "security_groups"), i, g) json_array_append_new(arr, sg_view(g));
    json_decref(o);
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "security_groups", arr));
    return 0;
}

TS_COMPUTE_HANDLER(sec_group_show)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    const char *id = ts_http_param(req, "sg_id");
    if (mv > 35 || !id || !ts_uuid_valid(id))
        return ts_err_set(err, TS_ENOTFOUND, "Security group %s not found.", id ? id : "");
    char *path = ts_asprintf("/v2.0/security-groups/%s", id);
    int st = 0;
    json_t *o = NULL;
    rc = ts_compute_ext_call(svc->env, "network", req->auth->token, "GET", path, NULL, NULL, &st, &o, err);
    free(path);
    if (rc || st != 200) {
        json_decref(o);
        return ts_err_set(err, TS_ENOTFOUND, "Security group %s not found.", id);
    }
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "security_group", sg_view(json_object_get(o, "security_group"))));
    json_decref(o);
    return 0;
}

/* ---- actions ------------------------------------------------------------------------------- */

static int net_req(struct ts_http_req *req, struct ts_compute_svc *svc, const char *method, const char *path,
                   json_t *body, json_t **out, struct ts_err *err)
{
    int st = 0;
    json_t *o = NULL;
    int rc = ts_compute_ext_call(svc->env, "network", req->auth->token, method, path, body, NULL, &st, &o, err);
    json_decref(body);
    if (rc) return ts_err_set(err, TS_EINVAL, "The network service is not available");
    if (st >= 300) {
        rc = ts_err_set(err, st == 404 ? TS_ENOTFOUND : st == 409 ? TS_ECONFLICT : TS_EINVAL, "%s",
                        ts_compute_ext_msg(o, "network service error"));
        json_decref(o);
        return rc;
    }
    if (out) *out = o;
    else json_decref(o);
    return 0;
}

static int find_fip(struct ts_http_req *req, struct ts_compute_svc *svc, const char *addr, json_t **fip,
                    struct ts_err *err)
{
    if (!addr || !*addr || strlen(addr) > 64 || strspn(addr, "0123456789.:abcdefABCDEF") != strlen(addr))
        return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute address.");
    char *path = ts_asprintf("/v2.0/floatingips?floating_ip_address=%s", addr);
    json_t *o = NULL;
    int rc = net_req(req, svc, "GET", path, NULL, &o, err);
    free(path);
    if (rc) return rc;
    json_t *f = json_array_get(json_object_get(o, "floatingips"), 0);
    if (!f) rc = ts_err_set(err, TS_ENOTFOUND, "Floating IP not found for address %s.", addr);
    else *fip = json_incref(f);
    json_decref(o);
    return rc;
}

static int a_add_fip(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_compute_svc *svc, json_t *inst,
                     json_t *arg, struct ts_err *err)
{
    json_t *fip = NULL, *ports = NULL;
    const char *fixed = JS(arg, "fixed_address");
    int rc = find_fip(req, svc, JS(arg, "address"), &fip, err);
    if (rc) goto out;
    rc = ports_of(req, svc, JS(inst, "uuid"), &ports, err);
    if (rc) goto out;
    const char *pid = NULL, *ip = NULL;
    size_t i, j;
    json_t *p, *f;
    json_array_foreach(ports, i, p) json_array_foreach(json_object_get(p, "fixed_ips"), j, f) {
        const char *a = JS(f, "ip_address");
        if (pid || !a || strchr(a, ':')) continue;
        if (!fixed || ts_streq(fixed, a)) {
            pid = JS(p, "id");
            ip = a;
        }
    }
    if (!pid) {
        rc = fixed ? ts_err_set(err, TS_EINVAL, "Specified fixed address not assigned to instance")
                   : ts_err_set(err, TS_EINVAL, "Instance network is not ready yet");
        goto out;
    }
    char *path = ts_asprintf("/v2.0/floatingips/%s", JS(fip, "id"));
    rc = net_req(req, svc, "PUT", path, json_pack("{s:{s:s, s:s}}", "floatingip", "port_id", pid, "fixed_ip_address",
                                                  ip), NULL, err);
    free(path);
    if (rc) {
        rc = rewrap(err, TS_EINVAL, "Unable to associate floating IP: ", "");
        goto out;
    }
    ts_compute_refresh_nw(req, svc, inst);
    ts_http_resp_json(resp, 202, NULL);
out:
    json_decref(fip);
    json_decref(ports);
    return rc;
}

static int a_remove_fip(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_compute_svc *svc, json_t *inst,
                        json_t *arg, struct ts_err *err)
{
    json_t *fip = NULL, *ports = NULL;
    int rc = find_fip(req, svc, JS(arg, "address"), &fip, err);
    if (rc) goto out;
    rc = ports_of(req, svc, JS(inst, "uuid"), &ports, err);
    if (rc) goto out;
    bool ours = false;
    size_t i;
    json_t *p;
    json_array_foreach(ports, i, p) ours |= JS(fip, "port_id") && ts_streq(JS(p, "id"), JS(fip, "port_id"));
    if (!ours) {
        rc = ts_err_set(err, TS_ECONFLICT, "Floating IP %s is not associated with instance %s.", JS(arg, "address"),
                        JS(inst, "uuid"));
        goto out;
    }
    char *path = ts_asprintf("/v2.0/floatingips/%s", JS(fip, "id"));
    rc = net_req(req, svc, "PUT", path, json_pack("{s:{s:n}}", "floatingip", "port_id"), NULL, err);
    free(path);
    if (rc) goto out;
    ts_compute_refresh_nw(req, svc, inst);
    ts_http_resp_json(resp, 202, NULL);
out:
    json_decref(fip);
    json_decref(ports);
    return rc;
}

static int a_security_group(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_compute_svc *svc,
                            json_t *inst, json_t *arg, bool add, struct ts_err *err)
{
    const char *name = JS(arg, "name");
    json_t *ports = NULL, *sgs = NULL;
    if (!name || !*name) return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute name.");
    char id[64], sgname[256];
    int rc = ts_compute_net_sg_id(svc->env, req->auth->token, name, id, sizeof(id), sgname, sizeof(sgname), err);
    if (rc == -TS_ENOTFOUND)
        return ts_err_set(err, TS_ENOTFOUND, "Security group %s not found for project %s.", name,
                          req->auth->project_id);
    if (rc) return rewrap(err, TS_EINVAL, "", "");
    rc = ports_of(req, svc, JS(inst, "uuid"), &ports, err);
    if (rc) goto out;
    bool had = false;
    size_t i, j;
    json_t *p, *g;
    json_array_foreach(ports, i, p) {
        json_t *cur = json_object_get(p, "security_groups");
        json_t *nl = json_array();
        bool has = false;
        json_array_foreach(cur, j, g) {
            if (ts_streq(json_string_value(g), id)) has = true;
            else json_array_append(nl, g);
        }
        had |= has;
        if (add) json_array_append_new(nl, json_string(id));
        if (has == add) {
            json_decref(nl);
            continue;
        }
        char *path = ts_asprintf("/v2.0/ports/%s", JS(p, "id"));
        rc = net_req(req, svc, "PUT", path, json_pack("{s:{s:o}}", "port", "security_groups", nl), NULL, err);
        free(path);
        if (rc) goto out;
    }
    /* the instance's list of names */
    sgs = json_is_array(json_object_get(inst, "security_groups")) ? json_deep_copy(json_object_get(inst,
                                                                                                    "security_groups"))
                                                                  : json_array();
    ssize_t at = -1;
    json_array_foreach(sgs, i, g) if (ts_streq(JS(g, "name"), name) || ts_streq(JS(g, "name"), id) ||
                                      ts_streq(JS(g, "name"), sgname)) at = (ssize_t)i;
    if (!add && at < 0 && !had) {
        rc = ts_err_set(err, TS_ENOTFOUND, "Security group %s not associated with the instance %s", name,
                        JS(inst, "uuid"));
        goto out;
    }
    if (add && at < 0) json_array_append_new(sgs, json_pack("{s:s}", "name", sgname[0] ? sgname : name));
    if (!add && at >= 0) json_array_remove(sgs, (size_t)at);
    json_t *vals = json_pack("{s:O}", "security_groups", sgs);
    ts_compute_inst_update(svc->db, JS(inst, "uuid"), vals, NULL, NULL, NULL);
    json_decref(vals);
    ts_http_resp_json(resp, 202, NULL);
out:
    json_decref(ports);
    json_decref(sgs);
    return rc;
}

int ts_compute_ext_action(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_compute_svc *svc,
                          json_t *inst, const char *name, json_t *arg, struct ts_err *err)
{
    if (!strcmp(name, "addFloatingIp")) return a_add_fip(req, resp, svc, inst, arg, err);
    if (!strcmp(name, "removeFloatingIp")) return a_remove_fip(req, resp, svc, inst, arg, err);
    if (!strcmp(name, "addSecurityGroup")) return a_security_group(req, resp, svc, inst, arg, true, err);
    if (!strcmp(name, "removeSecurityGroup")) return a_security_group(req, resp, svc, inst, arg, false, err);
    return 1;
}
