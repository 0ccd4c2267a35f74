/*
 * ts_compute_api_actions.c: POST /servers/{id}/action (stop, start, reboot, pause,
 * unpause, suspend, resume, rebuild, resize, confirmResize, revertResize, createImage,
 * createBackup, os-resetState,
 * os-getConsoleOutput, lock, unlock), server metadata, server tags and the instance
 * action log. State checks follow Nova's check_instance_state; the work is cast to the
 * instance's agent ("compute.<host>") after the task_state is set.
 */
#include "compute/api/ts_compute_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/ts_json.h"

static bool state_in(const char *s, const char *const *list)
{
    for (int i = 0; list[i]; i++)
        if (ts_streq(s, list[i])) return true;
    return false;
}

static int invalid_state(struct ts_err *err, const char *action, const char *uuid, const char *attr,
                         const char *state)
{
    return ts_err_set(err, TS_ECONFLICT, "Cannot '%s' instance %s while it is in %s %s", action, uuid, attr,
                      state ? state : "None");
}

/* Checks vm_state and (unless any_task) that task_state is NULL. */
static int check_state(const json_t *inst, const char *action, const char *const *vm_ok, bool any_task,
                       struct ts_err *err)
{
    const char *uuid = JS(inst, "uuid");
    const char *vm = JS(inst, "vm_state"), *task = JS(inst, "task_state");
    if (vm_ok && !state_in(vm, vm_ok)) return invalid_state(err, action, uuid, "vm_state", vm);
    if (!any_task && task) return invalid_state(err, action, uuid, "task_state", task);
    return 0;
}

/* Sets task_state (atomically requiring the current one to be NULL) and casts method. */
static int start_op(struct ts_http_req *req, struct ts_compute_svc *svc, const json_t *inst, const char *action,
                    const char *task, const char *method, json_t *extra, json_t *more_vals, bool any_task,
                    struct ts_err *err)
{
    const char *uuid = JS(inst, "uuid");
    const char *host = JS(inst, "host");
    int rc = 0;
    if (!host) {
        rc = invalid_state(err, action, uuid, "vm_state", JS(inst, "vm_state"));
        goto out;
    }
    json_t *vals = more_vals ? json_incref(more_vals) : json_object();
    json_object_set_new(vals, "task_state", json_string(task));
    rc = ts_compute_inst_update(svc->db, uuid, vals, any_task ? NULL : "", NULL, err);
    json_decref(vals);
    if (rc == -TS_ECONFLICT) {
        rc = invalid_state(err, action, uuid, "task_state", "busy");
        goto out;
    }
    if (rc) goto out;
    ts_compute_action_start(svc->db, uuid, action, req->request_id, req->auth->user_id, req->auth->project_id);
    json_t *args = extra ? json_incref(extra) : json_object();
    json_object_set_new(args, "instance_uuid", json_string(uuid));
    json_object_set_new(args, "context", ts_compute_context(req, svc));
    char *topic = ts_asprintf("compute.%s", host);
    struct ts_err e2 = {0};
    if (ts_bus_cast(svc->env->bus, topic, method, args, &e2) < 0) {
        json_t *back = json_pack("{s:n}", "task_state");
        ts_compute_inst_update(svc->db, uuid, back, NULL, NULL, NULL);
        json_decref(back);
        rc = ts_err_set(err, TS_ECONFLICT, "Compute service of %s is unavailable at this time.", host);
    }
    free(topic);
out:
    return rc;
}

static int a_simple(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_compute_svc *svc, json_t *inst,
                    const char *name, struct ts_err *err)
{
    static const struct {
        const char *action, *label, *task, *method;
        const char *vm[4];
    } ops[] = {
        {"os-stop", "stop", "powering-off", "stop_instance", {"active", "error", NULL}},
        {"os-start", "start", "powering-on", "start_instance", {"stopped", NULL}},
        {"pause", "pause", "pausing", "pause_instance", {"active", NULL}},
        {"unpause", "unpause", "unpausing", "unpause_instance", {"paused", NULL}},
        {"suspend", "suspend", "suspending", "suspend_instance", {"active", NULL}},
        {"resume", "resume", "resuming", "resume_instance", {"suspended", NULL}},
    };
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        if (strcmp(ops[i].action, name)) continue;
        int rc = check_state(inst, ops[i].label, ops[i].vm, false, err);
        if (rc) return rc;
        rc = start_op(req, svc, inst, ops[i].label, ops[i].task, ops[i].method, NULL, NULL, false, err);
        if (!rc) ts_http_resp_json(resp, 202, NULL);
        return rc;
    }
    return ts_err_set(err, TS_EINVAL, "There is no such action: %s", name);
}

static int a_reboot(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_compute_svc *svc, json_t *inst,
                    json_t *arg, struct ts_err *err)
{
    const char *type = JS(arg, "type");
    if (!json_is_object(arg) || !type || (strcasecmp(type, "HARD") && strcasecmp(type, "SOFT")))
        return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute type. Value: %s. 'type' must be one "
                          "of HARD, SOFT", type ? type : "None");
    bool hard = !strcasecmp(type, "HARD");
    static const char *const soft_ok[] = {"active", NULL};
    static const char *const hard_ok[] = {"active", "stopped", "paused", "suspended", "error", NULL};
    const char *task = JS(inst, "task_state");
    int rc = check_state(inst, "reboot", hard ? hard_ok : soft_ok, true, err);
    if (rc) return rc;
    if (task && !(hard && (!strncmp(task, "reboot", 6)))) return invalid_state(err, "reboot", JS(inst, "uuid"),
                                                                                "task_state", task);
    json_t *extra = json_pack("{s:b}", "hard", hard);
    rc = start_op(req, svc, inst, "reboot", hard ? "rebooting_hard" : "rebooting", "reboot_instance", extra, NULL,
                  hard, err);
    json_decref(extra);
    if (!rc) ts_http_resp_json(resp, 202, NULL);
    return rc;
}

static int a_rebuild(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_compute_svc *svc, int mv,
                     json_t *inst, json_t *arg, struct ts_err *err)
{
    static const char *const ok[] = {"active", "stopped", "error", NULL};
    int rc = check_state(inst, "rebuild", ok, false, err);
    if (rc) return rc;
    const char *iref = JS(arg, "imageRef");
    if (!json_is_object(arg) || !iref || !*iref)
        return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute rebuild. 'imageRef' is a required "
                          "property");
    const char *sl = strrchr(iref, '/');
    if (sl) iref = sl + 1;
    json_t *image = NULL, *vals = json_object();
    rc = ts_compute_image_get(svc, req, iref, &image, err);
    if (rc) goto out;
    if (!ts_streq(JS(image, "status"), "active")) {
        rc = ts_err_set(err, TS_EINVAL, "Image %s is not active.", iref);
        goto out;
    }
    json_object_set_new(vals, "image_ref", json_string(iref));
    json_t *n = json_object_get(arg, "name");
    if (n) {
        if (!json_is_string(n) || !*json_string_value(n) || strlen(json_string_value(n)) > 255) {
            rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute name.");
            goto out;
        }
        json_object_set(vals, "display_name", n);
    }
    json_t *d = json_object_get(arg, "description");
    if (d && mv >= 19) json_object_set(vals, "description", d);
    json_t *md = json_object_get(arg, "metadata");
    if (md) {
        rc = ts_compute_check_metadata(md, ts_compute_quota_limit(svc, JS(inst, "project_id"), "metadata_items"), err);
        if (rc) goto out;
    }
    const char *uuid = JS(inst, "uuid");
    rc = start_op(req, svc, inst, "rebuild", "rebuilding", "rebuild_instance", NULL, vals, false, err);
    if (rc) goto out;
    if (md) {
        ts_db_exec(svc->db, "DELETE FROM instance_metadata WHERE instance_uuid = ?", TS_DB_ARGS(TS_DB_S(uuid)), NULL,
                   NULL);
        const char *k;
        json_t *v;
        json_object_foreach(md, k, v) ts_db_exec(svc->db, "INSERT INTO instance_metadata (instance_uuid, key, value) "
                                                 "VALUES (?, ?, ?)", TS_DB_ARGS(TS_DB_S(uuid), TS_DB_S(k),
                                                 TS_DB_S(json_string_value(v))), NULL, NULL);
    }
    const char *pass = JS(arg, "adminPass");
    rc = ts_compute_show_changed(req, resp, mv, uuid, 202, pass ? pass : "rebuilt-pass", true, err);
out:
    json_decref(image);
    json_decref(vals);
    return rc;
}

static int a_resize(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_compute_svc *svc, json_t *inst,
                    json_t *arg, struct ts_err *err)
{
    static const char *const ok[] = {"active", "stopped", NULL};
    int rc = check_state(inst, "resize", ok, false, err);
    if (rc) return rc;
    json_t *fr = json_object_get(arg, "flavorRef");
    char fbuf[64];
    if (json_is_integer(fr)) snprintf(fbuf, sizeof(fbuf), "%lld", (long long)json_integer_value(fr));
    else if (json_is_string(fr) && *json_string_value(fr)) snprintf(fbuf, sizeof(fbuf), "%s", json_string_value(fr));
    else return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute resize. 'flavorRef' is a required "
                           "property");
    json_t *fl = NULL;
    rc = ts_compute_flavor_snapshot(svc, req, fbuf, &fl, err);
    if (rc) return rc;
    if (ts_streq(JS(fl, "flavorid"), JS(inst, "flavor_id"))) {
        json_decref(fl);
        return ts_err_set(err, TS_EINVAL, "When resizing, instances must change flavor!");
    }
    const char *proj = JS(inst, "project_id");
    int64_t dc = JI(fl, "vcpus") - JI(inst, "vcpus"), dr = JI(fl, "memory_mb") - JI(inst, "memory_mb");
    struct ts_db_res *res = NULL;
    if ((dc > 0 || dr > 0) &&
        ts_db_exec(svc->db, "SELECT COALESCE(SUM(vcpus), 0), COALESCE(SUM(memory_mb), 0) FROM instances WHERE "
                   "project_id = ? AND deleted = 0", TS_DB_ARGS(TS_DB_S(proj)), &res, err) == 0) {
        int64_t uc = ts_db_res_int(res, 0, 0, 0), ur = ts_db_res_int(res, 0, 1, 0);
        ts_db_res_free(res);
        int64_t lc = ts_compute_quota_limit(svc, proj, "cores"), lr = ts_compute_quota_limit(svc, proj, "ram");
        if (dc > 0 && lc >= 0 && uc + dc > lc) rc = ts_compute_quota_error(err, "cores", dc, uc, lc);
        else if (dr > 0 && lr >= 0 && ur + dr > lr) rc = ts_compute_quota_error(err, "ram", dr, ur, lr);
        if (rc) {
            json_decref(fl);
            return rc;
        }
    }
    /* Nova's API refuses a zero-disk flavor for an image-backed server with a disk */
    const char *img = JS(inst, "image_ref");
    if (JI(fl, "root_gb") == 0 && JI(inst, "root_gb") != 0 && img && *img) {
        json_decref(fl);
        return ts_err_set(err, TS_EINVAL, "Server disk was unable to be resized because: Resize to zero disk flavor "
                          "is not allowed.");
    }
    const char *uuid = JS(inst, "uuid");
    if (!JS(inst, "host")) {
        json_decref(fl);
        return invalid_state(err, "resize", uuid, "vm_state", JS(inst, "vm_state"));
    }
    /* the scheduler picks the destination (Nova: conductor + scheduler), then the source
     * host's agent powers the guest off and the destination finishes */
    json_t *vals = json_pack("{s:s, s:s}", "old_vm_state", JS(inst, "vm_state"), "task_state", "resize_prep");
    rc = ts_compute_inst_update(svc->db, uuid, vals, "", NULL, err);
    json_decref(vals);
    if (rc == -TS_ECONFLICT) rc = invalid_state(err, "resize", uuid, "task_state", "busy");
    if (rc) {
        json_decref(fl);
        return rc;
    }
    ts_compute_action_start(svc->db, uuid, "resize", req->request_id, req->auth->user_id, req->auth->project_id);
    char mig[TS_UUID_LEN + 1];
    ts_uuid(mig);
    ts_db_exec(svc->db, "INSERT INTO migrations (uuid, instance_uuid, project_id, user_id, source_compute, status, "
               "migration_type, created_at) VALUES (?, ?, ?, ?, ?, 'pre-migrating', 'resize', ?)",
               TS_DB_ARGS(TS_DB_S(mig), TS_DB_S(uuid), TS_DB_S(JS(inst, "project_id")), TS_DB_S(JS(inst, "user_id")),
                          TS_DB_S(JS(inst, "host")), TS_DB_D(ts_now())),
               NULL, NULL);
    json_t *args = json_pack("{s:s, s:O, s:s, s:o}", "instance_uuid", uuid, "new_flavor", fl, "migration_id", mig,
                             "context", ts_compute_context(req, svc));
    json_decref(fl);
    struct ts_err e2 = {0};
    if (ts_bus_cast(svc->env->bus, "scheduler", "select_for_resize", args, &e2) < 0) {
        json_t *back = json_pack("{s:n, s:n}", "task_state", "old_vm_state");
        ts_compute_inst_update(svc->db, uuid, back, NULL, NULL, NULL);
        json_decref(back);
        ts_compute_migration_set(svc->db, mig, "error", NULL);
        return ts_err_set(err, TS_ECONFLICT, "The scheduler is unavailable at this time.");
    }
    ts_http_resp_json(resp, 202, NULL);
    return 0;
}

static int a_confirm_resize(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_compute_svc *svc,
                            json_t *inst, struct ts_err *err)
{
    static const char *const ok[] = {"resized", NULL};
    int rc = check_state(inst, "confirmResize", ok, false, err);
    if (rc) return rc;
    const char *old = JS(inst, "old_vm_state"), *uuid = JS(inst, "uuid");
    json_t *mig = json_object_get(inst, "migration");
    const char *source = JS(mig, "source") ? JS(mig, "source") : JS(inst, "host");
    json_t *vals = json_pack("{s:s, s:n, s:n, s:n}", "vm_state", ts_streq(old, "stopped") ? "stopped" : "active",
                             "old_flavor", "old_vm_state", "migration");
    rc = ts_compute_inst_update(svc->db, uuid, vals, "", NULL, err);
    json_decref(vals);
    if (rc == -TS_ECONFLICT) rc = invalid_state(err, "confirmResize", uuid, "task_state", "busy");
    if (rc) return rc;
    ts_compute_migration_set(svc->db, JS(mig, "id"), "confirmed", NULL);
    /* the old flavor's allocation (held by the migration) is released now */
    char consumer[64];
    snprintf(consumer, sizeof(consumer), "%s-migration", uuid);
    ts_db_exec(svc->db, "DELETE FROM allocations WHERE consumer = ?", TS_DB_ARGS(TS_DB_S(consumer)), NULL, NULL);
    ts_compute_sched_changed();
    ts_compute_action_start(svc->db, uuid, "confirmResize", req->request_id, req->auth->user_id,
                            req->auth->project_id);
    if (source) {
        /* the source drops the old disk (and the old guest when the new one runs elsewhere) */
        char *topic = ts_asprintf("compute.%s", source);
        json_t *args = json_pack("{s:s, s:s?, s:o}", "instance_uuid", uuid, "dest", JS(inst, "host"), "context",
                                 ts_compute_context(req, svc));
        struct ts_err e2 = {0};
        if (ts_bus_cast(svc->env->bus, topic, "confirm_resize", args, &e2) < 0)
            ts_warn("compute", "confirm resize of %s: %s unreachable (%s); its old disk stays", uuid, source, e2.msg);
        free(topic);
    }
    ts_http_resp_json(resp, 204, NULL);
    return 0;
}

static int a_revert_resize(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_compute_svc *svc,
                           json_t *inst, struct ts_err *err)
{
    static const char *const ok[] = {"resized", NULL};
    int rc = check_state(inst, "revertResize", ok, false, err);
    if (rc) return rc;
    rc = start_op(req, svc, inst, "revertResize", "resize_reverting", "revert_resize", NULL, NULL, false, err);
    if (!rc) ts_compute_migration_set(svc->db, JS(json_object_get(inst, "migration"), "id"), "reverting", NULL);
    if (!rc) ts_http_resp_json(resp, 202, NULL);
    return rc;
}

/* createImage, and createBackup when backup_type is set (the agent then keeps the newest
 * `rotation` backups of that type). */
static int a_create_image(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_compute_svc *svc, int mv,
                          json_t *inst, json_t *arg, const char *backup_type, int64_t rotation, struct ts_err *err)
{
    static const char *const ok[] = {"active", "stopped", "paused", "suspended", NULL};
    static const char *const backup_ok[] = {"active", "stopped", NULL};
    const char *action = backup_type ? "createBackup" : "createImage";
    int rc = check_state(inst, action, backup_type ? backup_ok : ok, false, err);
    if (rc) return rc;
    const char *name = JS(arg, "name");
    if (!json_is_object(arg) || !name || !*name || strlen(name) > 255)
        return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute %s. 'name' is a required "
                          "property", action);
    json_t *md = json_object_get(arg, "metadata");
    if (md && (rc = ts_compute_check_metadata(md, 128, err))) return rc;
    const char *base = ts_compute_image_url(svc, req->pool);
    if (!base) return ts_err_set(err, TS_EINVAL, "The image service is not enabled");
    /* the image record, as Nova creates it for a snapshot */
    json_t *img = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "name", name, "disk_format", "qcow2",
                            "container_format", "bare", "visibility", "private", "instance_uuid", JS(inst, "uuid"),
                            "image_type", backup_type ? "backup" : "snapshot", "user_id", req->auth->user_id);
    if (backup_type) ts_json_set_str(img, "backup_type", backup_type);
    const char *bref = JS(inst, "image_ref");
    if (bref && *bref) json_object_set_new(img, "base_image_ref", json_string(bref));
    const char *k;
    json_t *v;
    json_object_foreach(md, k, v) {
        if (strcmp(k, "name") && strcmp(k, "visibility") && json_is_string(v)) json_object_set(img, k, v);
    }
    char *body = ts_json_dump(img);
    json_decref(img);
    char *url = ts_asprintf("%s/v2/images", base);
    char *tok = ts_asprintf("X-Auth-Token: %s", req->auth->token);
    const char *hdrs[] = {tok, "Content-Type: application/json", "Accept: application/json", NULL};
    struct ts_http_client_resp r = {0};
    struct ts_err e2 = {0};
    rc = ts_http_client_request("POST", url, hdrs, body, strlen(body), 30000, &r, &e2);
    free(body);
    free(url);
    free(tok);
    if (rc) return ts_err_set(err, TS_EUNAVAIL, "image service unavailable: %s", e2.msg);
    json_t *created = r.status == 201 ? json_loadb(r.body ? r.body : "", r.body_len, 0, NULL) : NULL;
    if (!created || !JS(created, "id")) {
        if (r.status == 413 || r.status == 403)
            rc = ts_err_set_full(err, TS_EQUOTA, 403, NULL, "Quota exceeded for images");
        else
            rc = ts_err_set(err, TS_EINVAL, "the image service refused the snapshot (%d)", r.status);
        ts_http_client_resp_free(&r);
        json_decref(created);
        return rc;
    }
    ts_http_client_resp_free(&r);
    const char *image_id = ts_pool_strdup(req->pool, JS(created, "id"));
    json_decref(created);
    json_t *extra = json_pack("{s:s}", "image_id", image_id);
    if (backup_type) {
        ts_json_set_str(extra, "backup_type", backup_type);
        json_object_set_new(extra, "rotation", json_integer(rotation));
    }
    rc = start_op(req, svc, inst, action, backup_type ? "image_backup" : "image_snapshot", "snapshot_instance", extra,
                  NULL, false, err);
    json_decref(extra);
    if (rc) return rc;
    if (mv >= 45) {
        ts_http_resp_json(resp, 202, json_pack("{s:s}", "image_id", image_id));
    } else {
        ts_http_resp_headerf(resp, "Location", "%s/v2/images/%s", base, image_id);
        ts_http_resp_json(resp, 202, NULL);
    }
    return 0;
}

static int a_create_backup(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_compute_svc *svc, int mv,
                           json_t *inst, json_t *arg, struct ts_err *err)
{
    if (!json_is_object(arg))
        return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute createBackup. Value: %s. is not of type "
                          "'object'", "None");
    static const char *const req_keys[] = {"name", "backup_type", "rotation"};
    for (size_t i = 0; i < 3; i++)
        if (!json_object_get(arg, req_keys[i]))
            return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute createBackup. '%s' is a required "
                              "property", req_keys[i]);
    const char *type = JS(arg, "backup_type");
    if (!type || !*type) return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute backup_type.");
    json_t *rj = json_object_get(arg, "rotation");
    int64_t rotation = -1;
    if (json_is_integer(rj)) rotation = json_integer_value(rj);
    else if (json_is_string(rj) && ts_parse_int64(json_string_value(rj), &rotation) < 0) rotation = -1;
    if (rotation < 0) return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute rotation.");
    return a_create_image(req, resp, svc, mv, inst, arg, type, rotation, err);
}

/* os-resetState (admin): vm_state to active or error, task_state cleared, nothing else. */
static int a_reset_state(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_compute_svc *svc, json_t *inst,
                         json_t *arg, struct ts_err *err)
{
    int rc = ts_compute_check_admin(req, err);
    if (rc) return rc;
    json_t *st = json_object_get(arg, "state");
    if (!json_is_object(arg) || !st)
        return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute os-resetState. 'state' is a required "
                          "property");
    const char *state = json_string_value(st);
    if (!state || (strcmp(state, "active") && strcmp(state, "error"))) {
        char *v = json_dumps(st, JSON_ENCODE_ANY);
        rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute state. Value: %s. %s is not one of "
                        "['active', 'error']", v ? v : "", v ? v : "");
        free(v);
        return rc;
    }
    json_t *vals = json_pack("{s:s, s:n}", "vm_state", state, "task_state");
    rc = ts_compute_inst_update(svc->db, JS(inst, "uuid"), vals, NULL, NULL, err);
    json_decref(vals);
    if (rc) return rc;
    ts_http_resp_json(resp, 202, NULL);
    return 0;
}

static int a_console(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_compute_svc *svc, json_t *inst,
                     json_t *arg, struct ts_err *err)
{
    (void)req;
    int64_t length = -1;
    json_t *l = json_object_get(arg, "length");
    if (l && !json_is_null(l)) {
        if (json_is_integer(l)) length = json_integer_value(l);
        else if (!json_is_string(l) || ts_parse_int64(json_string_value(l), &length) < 0)
            return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute length.");
        if (length < -1) return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute length.");
    }
    const char *host = JS(inst, "host");
    if (!host || ts_streq(JS(inst, "vm_state"), "building"))
        return ts_err_set(err, TS_ECONFLICT, "Instance %s is not ready", JS(inst, "uuid"));
    char *topic = ts_asprintf("compute.%s", host);
    json_t *reply = NULL;
    int rc = ts_bus_call(svc->env->bus, topic, "get_console_output",
                         json_pack("{s:s, s:I}", "instance_uuid", JS(inst, "uuid"), "length", (json_int_t)length),
                         30000, &reply, err);
    free(topic);
    if (rc == -TS_ETIMEDOUT || rc == -TS_EUNAVAIL)
        return ts_err_set(err, TS_ECONFLICT, "Compute service of %s is unavailable at this time.", host);
    if (rc) return rc;
    const char *out = JS(reply, "output");
    ts_http_resp_json(resp, 200, json_pack("{s:s}", "output", out ? out : ""));
    json_decref(reply);
    return 0;
}

static int a_lock(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_compute_svc *svc, int mv,
                  json_t *inst, json_t *arg, bool lock, struct ts_err *err)
{
    json_t *vals = json_pack("{s:b}", "locked", lock);
    if (lock && mv >= 73 && JS(arg, "locked_reason")) json_object_set(vals, "locked_reason",
                                                                       json_object_get(arg, "locked_reason"));
    if (!lock) json_object_set_new(vals, "locked_reason", json_null());
    int rc = ts_compute_inst_update(svc->db, JS(inst, "uuid"), vals, NULL, NULL, err);
    json_decref(vals);
    if (rc) return rc;
    ts_compute_action_start(svc->db, JS(inst, "uuid"), lock ? "lock" : "unlock", req->request_id, req->auth->user_id,
                            req->auth->project_id);
    ts_http_resp_json(resp, 202, NULL);
    return 0;
}

TS_COMPUTE_HANDLER(servers_action)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    if ((rc = ts_compute_check_writer(req, err))) return rc;
    json_t *body = NULL, *inst = NULL;
    rc = ts_http_json_body(req, &body, err);
    if (rc) return rc;
    if (!json_is_object(body) || json_object_size(body) != 1) {
        return ts_err_set(err, TS_EINVAL, "Malformed request body");
    }
    const char *name = NULL;
    json_t *arg = NULL;
    {
        void *it = json_object_iter(body);
        name = json_object_iter_key(it);
        arg = json_object_iter_value(it);
    }
    rc = ts_compute_inst_visible(req, svc, ts_http_param(req, "id"), &inst, err);
    if (rc) goto out;
    bool is_lock = !strcmp(name, "lock") || !strcmp(name, "unlock");
    if (JI(inst, "locked") && !req->auth->is_admin && !is_lock && strcmp(name, "os-getConsoleOutput")) {
        rc = ts_err_set(err, TS_ECONFLICT, "Instance %s is locked", JS(inst, "uuid"));
        goto out;
    }
    if (!strcmp(name, "reboot")) rc = a_reboot(req, resp, svc, inst, arg, err);
    else if (!strcmp(name, "rebuild")) rc = a_rebuild(req, resp, svc, mv, inst, arg, err);
    else if (!strcmp(name, "resize")) rc = a_resize(req, resp, svc, inst, arg, err);
    else if (!strcmp(name, "confirmResize")) rc = a_confirm_resize(req, resp, svc, inst, err);
    else if (!strcmp(name, "revertResize")) rc = a_revert_resize(req, resp, svc, inst, err);
    else if (!strcmp(name, "createImage")) rc = a_create_image(req, resp, svc, mv, inst, arg, NULL, 0, err);
    else if (!strcmp(name, "createBackup")) rc = a_create_backup(req, resp, svc, mv, inst, arg, err);
    else if (!strcmp(name, "os-resetState")) rc = a_reset_state(req, resp, svc, inst, arg, err);
    else if (!strcmp(name, "os-getConsoleOutput")) rc = a_console(req, resp, svc, inst, arg, err);
    else if (!strcmp(name, "lock")) rc = a_lock(req, resp, svc, mv, inst, arg, true, err);
    else if (!strcmp(name, "unlock")) rc = a_lock(req, resp, svc, mv, inst, arg, false, err);
    else if ((rc = ts_compute_ext_action(req, resp, svc, inst, name, arg, err)) == 1) rc = a_simple(req, resp, svc, inst, name, err);
out:
    json_decref(inst);
    return rc;
}

/* ---- metadata ------------------------------------------------------------------------ */

static int meta_load(struct ts_compute_svc *svc, const char *uuid, json_t **out, struct ts_err *err)
{
    struct ts_db_res *res = NULL;
    int rc = ts_db_exec(svc->db, "SELECT key, value FROM instance_metadata WHERE instance_uuid = ?",
                        TS_DB_ARGS(TS_DB_S(uuid)), &res, err);
    if (rc) return rc;
    json_t *m = json_object();
    for (int i = 0; i < res->nrows; i++) ts_json_set_str(m, ts_db_res_get(res, i, 0), ts_db_res_get(res, i, 1));
    ts_db_res_free(res);
    *out = m;
    return 0;
}

/* Common start: version, instance visible, writer for writes. */
static int meta_begin(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err, bool write,
                      json_t **inst, int *mv)
{
    int rc = ts_compute_begin(req, resp, err, mv);
    if (rc) return rc;
    if (write && (rc = ts_compute_check_writer(req, err))) return rc;
    return ts_compute_inst_visible(req, req->svc, ts_http_param(req, "id"), inst, err);
}

TS_COMPUTE_HANDLER(server_metadata_list)
{
    json_t *inst = NULL, *m = NULL;
    int mv;
    int rc = meta_begin(req, resp, err, false, &inst, &mv);
    if (rc) return rc;
    rc = meta_load(req->svc, JS(inst, "uuid"), &m, err);
    if (!rc) ts_http_resp_json(resp, 200, json_pack("{s:o}", "metadata", m));
    json_decref(inst);
    return rc;
}

static int meta_write(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err, bool replace)
{
    struct ts_compute_svc *svc = req->svc;
    json_t *inst = NULL, *body = NULL, *cur = NULL;
    int mv;
    int rc = meta_begin(req, resp, err, true, &inst, &mv);
    if (rc) return rc;
    const char *uuid = JS(inst, "uuid");
    rc = ts_http_json_body(req, &body, err);
    if (rc) goto out;
    json_t *md = json_object_get(body, "metadata");
    if (!json_is_object(md)) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute metadata. 'metadata' is a required "
                        "property");
        goto out;
    }
    rc = meta_load(svc, uuid, &cur, err);
    if (rc) goto out;
    if (replace) json_object_clear(cur);
    json_object_update(cur, md);
    rc = ts_compute_check_metadata(cur, ts_compute_quota_limit(svc, JS(inst, "project_id"), "metadata_items"), err);
    if (rc) goto out;
    struct ts_db_conn *tx = NULL;
    rc = ts_db_begin(svc->db, &tx, err);
    if (rc) goto out;
    if (replace) rc = ts_db_tx_exec(tx, "DELETE FROM instance_metadata WHERE instance_uuid = ?",
                                    TS_DB_ARGS(TS_DB_S(uuid)), NULL, err);
    const char *k;
    json_t *v;
    json_object_foreach(md, k, v) {
        if (rc) break;
        rc = ts_db_tx_exec(tx, "INSERT INTO instance_metadata (instance_uuid, key, value) VALUES (?, ?, ?) "
                           "ON CONFLICT (instance_uuid, key) DO UPDATE SET value = excluded.value",
                           TS_DB_ARGS(TS_DB_S(uuid), TS_DB_S(k), TS_DB_S(json_string_value(v))), NULL, err);
    }
    if (rc) {
        ts_db_rollback(tx);
        goto out;
    }
    rc = ts_db_commit(tx, err);
    if (rc) goto out;
    ts_http_resp_json(resp, 200, json_pack("{s:O}", "metadata", cur));
out:
    json_decref(inst);
    json_decref(cur);
    return rc;
}

TS_COMPUTE_HANDLER(server_metadata_set) { return meta_write(req, resp, err, false); }
TS_COMPUTE_HANDLER(server_metadata_replace) { return meta_write(req, resp, err, true); }

TS_COMPUTE_HANDLER(server_metadata_show)
{
    json_t *inst = NULL, *m = NULL;
    int mv;
    int rc = meta_begin(req, resp, err, false, &inst, &mv);
    if (rc) return rc;
    rc = meta_load(req->svc, JS(inst, "uuid"), &m, err);
    if (!rc) {
        const char *key = ts_http_param(req, "key");
        json_t *v = json_object_get(m, key);
        if (!v) rc = ts_err_set(err, TS_ENOTFOUND, "Metadata item was not found");
        else ts_http_resp_json(resp, 200, json_pack("{s:{s:O}}", "meta", key, v));
    }
    json_decref(m);
    json_decref(inst);
    return rc;
}

TS_COMPUTE_HANDLER(server_metadata_put)
{
    struct ts_compute_svc *svc = req->svc;
    json_t *inst = NULL, *body = NULL, *cur = NULL;
    int mv;
    int rc = meta_begin(req, resp, err, true, &inst, &mv);
    if (rc) return rc;
    const char *key = ts_http_param(req, "key");
    rc = ts_http_json_body(req, &body, err);
    if (rc) goto out;
    json_t *meta = json_object_get(body, "meta");
    if (!json_is_object(meta) || json_object_size(meta) != 1) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute meta.");
        goto out;
    }
    if (!json_object_get(meta, key)) {
        rc = ts_err_set(err, TS_EINVAL, "Request body and URI mismatch");
        goto out;
    }
    rc = meta_load(svc, JS(inst, "uuid"), &cur, err);
    if (rc) goto out;
    json_object_update(cur, meta);
    rc = ts_compute_check_metadata(cur, ts_compute_quota_limit(svc, JS(inst, "project_id"), "metadata_items"), err);
    if (rc) goto out;
    rc = ts_db_exec(svc->db, "INSERT INTO instance_metadata (instance_uuid, key, value) VALUES (?, ?, ?) "
                    "ON CONFLICT (instance_uuid, key) DO UPDATE SET value = excluded.value",
                    TS_DB_ARGS(TS_DB_S(JS(inst, "uuid")), TS_DB_S(key), TS_DB_S(JS(meta, key))), NULL, err);
    if (!rc) ts_http_resp_json(resp, 200, json_pack("{s:O}", "meta", meta));
out:
    json_decref(inst);
    json_decref(cur);
    return rc;
}

TS_COMPUTE_HANDLER(server_metadata_delete)
{
    json_t *inst = NULL;
    int mv;
    int rc = meta_begin(req, resp, err, true, &inst, &mv);
    if (rc) return rc;
    struct ts_db_res *res = NULL;
    rc = ts_db_exec(((struct ts_compute_svc *)req->svc)->db,
                    "DELETE FROM instance_metadata WHERE instance_uuid = ? AND key = ?",
                    TS_DB_ARGS(TS_DB_S(JS(inst, "uuid")), TS_DB_S(ts_http_param(req, "key"))), &res, err);
    if (!rc && res->changes == 0) rc = ts_err_set(err, TS_ENOTFOUND, "Metadata item was not found");
    if (!rc) ts_http_resp_json(resp, 204, NULL);
    ts_db_res_free(res);
    json_decref(inst);
    return rc;
}

/* ---- tags (2.26) --------------------------------------------------------------------- */

static int tags_begin(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err, bool write,
                      json_t **inst)
{
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    if (mv < 26) return ts_err_set(err, TS_ENOTFOUND, "The resource could not be found.");
    if (write && (rc = ts_compute_check_writer(req, err))) return rc;
    return ts_compute_inst_visible(req, req->svc, ts_http_param(req, "id"), inst, err);
}

static int valid_tag(const char *t, struct ts_err *err)
{
    size_t n = t ? strlen(t) : 0;
    if (!t || n < 1 || n > 60 || strchr(t, ',') || strchr(t, '/'))
        return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute tag. Value: %s.", t ? t : "None");
    return 0;
}

static json_t *tags_load(struct ts_compute_svc *svc, const char *uuid)
{
    struct ts_db_res *res = NULL;
    json_t *a = json_array();
    if (ts_db_exec(svc->db, "SELECT tag FROM instance_tags WHERE instance_uuid = ? ORDER BY tag",
                   TS_DB_ARGS(TS_DB_S(uuid)), &res, NULL) == 0)
        for (int i = 0; i < res->nrows; i++) json_array_append_new(a, json_string(ts_db_res_get(res, i, 0)));
    ts_db_res_free(res);
    return a;
}

TS_COMPUTE_HANDLER(server_tags_list)
{
    json_t *inst = NULL;
    int rc = tags_begin(req, resp, err, false, &inst);
    if (rc) return rc;
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "tags", tags_load(req->svc, JS(inst, "uuid"))));
    json_decref(inst);
    return 0;
}

TS_COMPUTE_HANDLER(server_tags_replace)
{
    struct ts_compute_svc *svc = req->svc;
    json_t *inst = NULL, *body = NULL;
    int rc = tags_begin(req, resp, err, true, &inst);
    if (rc) return rc;
    const char *uuid = JS(inst, "uuid");
    rc = ts_http_json_body(req, &body, err);
    if (rc) goto out;
    json_t *tags = json_object_get(body, "tags");
    if (!json_is_array(tags)) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute tags.");
        goto out;
    }
    if (json_array_size(tags) > 50) {
        rc = ts_err_set(err, TS_EINVAL, "The number of tags exceeded the per-server limit 50");
        goto out;
    }
    size_t i;
    json_t *t;
    json_array_foreach(tags, i, t) if ((rc = valid_tag(json_string_value(t), err))) goto out;
    struct ts_db_conn *tx = NULL;
    rc = ts_db_begin(svc->db, &tx, err);
    if (rc) goto out;
    rc = ts_db_tx_exec(tx, "DELETE FROM instance_tags WHERE instance_uuid = ?", TS_DB_ARGS(TS_DB_S(uuid)), NULL, err);
    json_array_foreach(tags, i, t) {
        if (rc) break;
        rc = ts_db_tx_exec(tx, "INSERT INTO instance_tags (instance_uuid, tag) VALUES (?, ?) ON CONFLICT DO NOTHING",
                           TS_DB_ARGS(TS_DB_S(uuid), TS_DB_S(json_string_value(t))), NULL, err);
    }
    if (rc) {
        ts_db_rollback(tx);
        goto out;
    }
    rc = ts_db_commit(tx, err);
    if (!rc) ts_http_resp_json(resp, 200, json_pack("{s:o}", "tags", tags_load(svc, uuid)));
out:
    json_decref(inst);
    return rc;
}

TS_COMPUTE_HANDLER(server_tags_clear)
{
    json_t *inst = NULL;
    int rc = tags_begin(req, resp, err, true, &inst);
    if (rc) return rc;
    rc = ts_db_exec(((struct ts_compute_svc *)req->svc)->db, "DELETE FROM instance_tags WHERE instance_uuid = ?",
                    TS_DB_ARGS(TS_DB_S(JS(inst, "uuid"))), NULL, err);
    if (!rc) ts_http_resp_json(resp, 204, NULL);
    json_decref(inst);
    return rc;
}

TS_COMPUTE_HANDLER(server_tag_check)
{
    json_t *inst = NULL;
    int rc = tags_begin(req, resp, err, false, &inst);
    if (rc) return rc;
    struct ts_db_res *res = NULL;
    const char *tag = ts_http_param(req, "tag");
    rc = ts_db_exec(((struct ts_compute_svc *)req->svc)->db,
                    "SELECT 1 FROM instance_tags WHERE instance_uuid = ? AND tag = ?",
                    TS_DB_ARGS(TS_DB_S(JS(inst, "uuid")), TS_DB_S(tag)), &res, err);
    if (!rc && res->nrows == 0) rc = ts_err_set(err, TS_ENOTFOUND, "Tag '%s' on instance %s could not be found.", tag,
                                                JS(inst, "uuid"));
    if (!rc) ts_http_resp_json(resp, 204, NULL);
    ts_db_res_free(res);
    json_decref(inst);
    return rc;
}

TS_COMPUTE_HANDLER(server_tag_add)
{
    struct ts_compute_svc *svc = req->svc;
    json_t *inst = NULL;
    int rc = tags_begin(req, resp, err, true, &inst);
    if (rc) return rc;
    const char *tag = ts_http_param(req, "tag");
    const char *uuid = JS(inst, "uuid");
    struct ts_db_res *res = NULL;
    if ((rc = valid_tag(tag, err))) goto out;
    rc = ts_db_exec(svc->db, "SELECT tag FROM instance_tags WHERE instance_uuid = ?", TS_DB_ARGS(TS_DB_S(uuid)), &res,
                    err);
    if (rc) goto out;
    bool exists = false;
    for (int i = 0; i < res->nrows; i++)
        if (ts_streq(ts_db_res_get(res, i, 0), tag)) exists = true;
    if (exists) {
        ts_http_resp_json(resp, 204, NULL);
        goto out;
    }
    if (res->nrows >= 50) {
        rc = ts_err_set(err, TS_EINVAL, "The number of tags exceeded the per-server limit 50");
        goto out;
    }
    rc = ts_db_exec(svc->db, "INSERT INTO instance_tags (instance_uuid, tag) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    TS_DB_ARGS(TS_DB_S(uuid), TS_DB_S(tag)), NULL, err);
    if (rc) goto out;
    ts_http_resp_headerf(resp, "Location", "%s/v2.1/servers/%s/tags/%s", ts_compute_base(req), uuid,
                         ts_url_encode(req->pool, tag, false));
    ts_http_resp_json(resp, 201, NULL);
out:
    ts_db_res_free(res);
    json_decref(inst);
    return rc;
}

TS_COMPUTE_HANDLER(server_tag_delete)
{
    json_t *inst = NULL;
    int rc = tags_begin(req, resp, err, true, &inst);
    if (rc) return rc;
    struct ts_db_res *res = NULL;
    const char *tag = ts_http_param(req, "tag");
    rc = ts_db_exec(((struct ts_compute_svc *)req->svc)->db,
                    "DELETE FROM instance_tags WHERE instance_uuid = ? AND tag = ?",
                    TS_DB_ARGS(TS_DB_S(JS(inst, "uuid")), TS_DB_S(tag)), &res, err);
    if (!rc && res->changes == 0)
        rc = ts_err_set(err, TS_ENOTFOUND, "Tag '%s' on instance %s could not be found.", tag, JS(inst, "uuid"));
    if (!rc) ts_http_resp_json(resp, 204, NULL);
    ts_db_res_free(res);
    json_decref(inst);
    return rc;
}

/* ---- instance actions ----------------------------------------------------------------- */

static json_t *action_view(const struct ts_db_res *res, int r, int mv)
{
    char t[32];
    json_t *a = json_pack("{s:s, s:s, s:s}", "action", ts_db_res_get(res, r, 1), "instance_uuid",
                          ts_db_res_get(res, r, 0), "request_id", ts_db_res_get(res, r, 2));
    ts_json_set_str(a, "user_id", ts_db_res_get(res, r, 3));
    ts_json_set_str(a, "project_id", ts_db_res_get(res, r, 4));
    ts_compute_iso_us(strtod(ts_db_res_get(res, r, 5) ? ts_db_res_get(res, r, 5) : "0", NULL), t);
    json_object_set_new(a, "start_time", json_string(t));
    ts_json_set_str(a, "message", ts_db_res_get(res, r, 7));
    if (mv >= 58) {
        ts_compute_iso_us(strtod(ts_db_res_get(res, r, 8) ? ts_db_res_get(res, r, 8) : "0", NULL), t);
        json_object_set_new(a, "updated_at", json_string(t));
    }
    return a;
}

#define ACTION_COLS "instance_uuid, action, request_id, user_id, project_id, start_time, finish_time, message, " \
                    "updated_at, id"

static int actions_instance(struct ts_http_req *req, struct ts_compute_svc *svc, const char *id, struct ts_err *err)
{
    /* deleted instances still show their actions (Nova reads them with read_deleted) */
    json_t *inst = NULL;
    int rc = ts_compute_inst_load(svc->db, id ? id : "", &inst, err);
    if (rc) return ts_err_set(err, TS_ENOTFOUND, "Instance %s could not be found.", id ? id : "");
    if (!req->auth->is_admin && !ts_streq(JS(inst, "project_id"), req->auth->project_id))
        rc = ts_err_set(err, TS_ENOTFOUND, "Instance %s could not be found.", id);
    json_decref(inst);
    return rc;
}

TS_COMPUTE_HANDLER(server_actions_list)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    const char *id = ts_http_param(req, "id");
    if ((rc = actions_instance(req, svc, id, err))) return rc;
    struct ts_db_res *res = NULL;
    rc = ts_db_exec(svc->db, "SELECT " ACTION_COLS " FROM instance_actions WHERE instance_uuid = ? ORDER BY id DESC",
                    TS_DB_ARGS(TS_DB_S(id)), &res, err);
    if (rc) return rc;
    json_t *arr = json_array();
    for (int i = 0; i < res->nrows; i++) json_array_append_new(arr, action_view(res, i, mv));
    ts_db_res_free(res);
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "instanceActions", arr));
    return 0;
}

TS_COMPUTE_HANDLER(server_action_show)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    const char *id = ts_http_param(req, "id"), *rid = ts_http_param(req, "req_id");
    if ((rc = actions_instance(req, svc, id, err))) return rc;
    struct ts_db_res *res = NULL, *ev = NULL;
    rc = ts_db_exec(svc->db, "SELECT " ACTION_COLS " FROM instance_actions WHERE instance_uuid = ? AND request_id = ? "
                    "ORDER BY id DESC", TS_DB_ARGS(TS_DB_S(id), TS_DB_S(rid)), &res, err);
    if (rc) return rc;
    if (res->nrows == 0) {
        ts_db_res_free(res);
        return ts_err_set(err, TS_ENOTFOUND, "Action %s on instance %s could not be found.", rid, id);
    }
    json_t *a = action_view(res, 0, mv);
    rc = ts_db_exec(svc->db, "SELECT event, start_time, finish_time, result, host, traceback FROM "
                    "instance_action_events WHERE action_id = ? ORDER BY id",
                    TS_DB_ARGS(TS_DB_I(ts_db_res_int(res, 0, 9, 0))), &ev, err);
    ts_db_res_free(res);
    if (rc) {
        json_decref(a);
        return rc;
    }
    json_t *events = json_array();
    bool admin = req->auth->is_admin;
    for (int i = 0; i < ev->nrows; i++) {
        char t1[32], t2[32];
        ts_compute_iso_us(strtod(ts_db_res_get(ev, i, 1) ? ts_db_res_get(ev, i, 1) : "0", NULL), t1);
        ts_compute_iso_us(strtod(ts_db_res_get(ev, i, 2) ? ts_db_res_get(ev, i, 2) : "0", NULL), t2);
        json_t *e = json_pack("{s:s, s:s, s:s}", "event", ts_db_res_get(ev, i, 0), "start_time", t1, "finish_time", t2);
        ts_json_set_str(e, "result", ts_db_res_get(ev, i, 3));
        if (admin) ts_json_set_str(e, "traceback", ts_db_res_get(ev, i, 5));
        if (mv >= 62) {
            if (admin) ts_json_set_str(e, "host", ts_db_res_get(ev, i, 4));
            json_object_set_new(e, "hostId", json_string(""));
        }
        if (mv >= 84) ts_json_set_str(e, "details", NULL);
        json_array_append_new(events, e);
    }
    ts_db_res_free(ev);
    if (mv >= 51 || admin) json_object_set_new(a, "events", events);
    else json_decref(events);
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "instanceAction", a));
    return 0;
}
