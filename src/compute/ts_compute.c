/*
 * ts_compute.c: the compute service's life cycle (init: defaults, database and
 * migrations; start: HTTP server, scheduler, conductor, optional in-process agent; stop),
 * its route table, version documents, microversion negotiation, and the helpers the
 * api, scheduler, conductor and agent share: instance rows as JSON, instance updates,
 * Nova's status mapping, the instance action log and notifications.
 */
#include "compute/ts_compute_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/ts_json.h"

static const struct ts_db_migration migrations[] = {
    {1,
     "CREATE TABLE instances ("
     " id INTEGER PRIMARY KEY AUTOINCREMENT, uuid TEXT NOT NULL UNIQUE, project_id TEXT NOT NULL,"
     " user_id TEXT NOT NULL, display_name TEXT, description TEXT, hostname TEXT, image_ref TEXT,"
     " flavor_id TEXT, flavor TEXT, old_flavor TEXT, vcpus BIGINT NOT NULL DEFAULT 0,"
     " memory_mb BIGINT NOT NULL DEFAULT 0, root_gb BIGINT NOT NULL DEFAULT 0, vm_state TEXT NOT NULL,"
     " task_state TEXT, power_state BIGINT NOT NULL DEFAULT 0, host TEXT, node TEXT, availability_zone TEXT,"
     " key_name TEXT, key_data TEXT, user_data TEXT, config_drive TEXT, access_ip_v4 TEXT, access_ip_v6 TEXT,"
     " reservation_id TEXT, launch_index BIGINT NOT NULL DEFAULT 0, locked BIGINT NOT NULL DEFAULT 0,"
     " locked_reason TEXT, bdm TEXT, networks TEXT, security_groups TEXT, server_group TEXT, request_spec TEXT,"
     " fault TEXT, created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION,"
     " launched_at DOUBLE PRECISION, terminated_at DOUBLE PRECISION, deleted BIGINT NOT NULL DEFAULT 0,"
     " deleted_at DOUBLE PRECISION, old_vm_state TEXT);"
     "CREATE INDEX instances_project_idx ON instances (project_id, deleted);"
     "CREATE INDEX instances_host_idx ON instances (host, deleted);"
     "CREATE INDEX instances_created_idx ON instances (created_at);"
     "CREATE TABLE instance_metadata (instance_uuid TEXT NOT NULL, key TEXT NOT NULL, value TEXT,"
     " PRIMARY KEY (instance_uuid, key));"
     "CREATE TABLE instance_tags (instance_uuid TEXT NOT NULL, tag TEXT NOT NULL, PRIMARY KEY (instance_uuid, tag));"
     "CREATE TABLE instance_actions (id INTEGER PRIMARY KEY AUTOINCREMENT, instance_uuid TEXT NOT NULL,"
     " action TEXT NOT NULL, request_id TEXT NOT NULL, user_id TEXT, project_id TEXT,"
     " start_time DOUBLE PRECISION NOT NULL, finish_time DOUBLE PRECISION, message TEXT,"
     " updated_at DOUBLE PRECISION);"
     "CREATE INDEX instance_actions_uuid_idx ON instance_actions (instance_uuid, request_id);"
     "CREATE TABLE instance_action_events (id INTEGER PRIMARY KEY AUTOINCREMENT, action_id BIGINT NOT NULL,"
     " event TEXT NOT NULL, start_time DOUBLE PRECISION, finish_time DOUBLE PRECISION, result TEXT, host TEXT,"
     " traceback TEXT);"
     "CREATE INDEX instance_action_events_idx ON instance_action_events (action_id);"
     "CREATE TABLE flavors (id INTEGER PRIMARY KEY AUTOINCREMENT, flavorid TEXT NOT NULL UNIQUE,"
     " name TEXT NOT NULL UNIQUE, vcpus BIGINT NOT NULL, memory_mb BIGINT NOT NULL, root_gb BIGINT NOT NULL,"
     " ephemeral_gb BIGINT NOT NULL DEFAULT 0, swap BIGINT NOT NULL DEFAULT 0,"
     " rxtx_factor DOUBLE PRECISION NOT NULL DEFAULT 1.0, is_public BIGINT NOT NULL DEFAULT 1,"
     " disabled BIGINT NOT NULL DEFAULT 0, description TEXT, created_at DOUBLE PRECISION);"
     "CREATE TABLE flavor_extra_specs (flavorid TEXT NOT NULL, key TEXT NOT NULL, value TEXT,"
     " PRIMARY KEY (flavorid, key));"
     "CREATE TABLE flavor_projects (flavorid TEXT NOT NULL, project_id TEXT NOT NULL,"
     " PRIMARY KEY (flavorid, project_id));"
     "CREATE TABLE keypairs (id INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL, name TEXT NOT NULL,"
     " fingerprint TEXT, public_key TEXT, type TEXT NOT NULL DEFAULT 'ssh', created_at DOUBLE PRECISION,"
     " UNIQUE (user_id, name));"
     "CREATE TABLE server_groups (id INTEGER PRIMARY KEY AUTOINCREMENT, uuid TEXT NOT NULL UNIQUE, name TEXT,"
     " policy TEXT NOT NULL, rules TEXT, project_id TEXT, user_id TEXT, created_at DOUBLE PRECISION);"
     "CREATE TABLE server_group_members (group_uuid TEXT NOT NULL, instance_uuid TEXT NOT NULL,"
     " PRIMARY KEY (group_uuid, instance_uuid));"
     "CREATE INDEX server_group_members_inst_idx ON server_group_members (instance_uuid);"
     "CREATE TABLE quotas (project_id TEXT NOT NULL, resource TEXT NOT NULL, hard_limit BIGINT NOT NULL,"
     " PRIMARY KEY (project_id, resource));"
     "CREATE TABLE services (id INTEGER PRIMARY KEY AUTOINCREMENT, uuid TEXT NOT NULL UNIQUE, host TEXT NOT NULL,"
     " binary_name TEXT NOT NULL, topic TEXT, availability_zone TEXT, disabled BIGINT NOT NULL DEFAULT 0,"
     " disabled_reason TEXT, forced_down BIGINT NOT NULL DEFAULT 0, last_seen_up DOUBLE PRECISION,"
     " report_count BIGINT NOT NULL DEFAULT 0, created_at DOUBLE PRECISION, updated_at DOUBLE PRECISION,"
     " UNIQUE (host, binary_name));"
     "CREATE TABLE compute_nodes (id INTEGER PRIMARY KEY AUTOINCREMENT, uuid TEXT NOT NULL UNIQUE,"
     " host TEXT NOT NULL UNIQUE, hypervisor_hostname TEXT, hypervisor_type TEXT,"
     " hypervisor_version BIGINT, vcpus BIGINT NOT NULL DEFAULT 0, memory_mb BIGINT NOT NULL DEFAULT 0,"
     " local_gb BIGINT NOT NULL DEFAULT 0, cpu_info TEXT, host_ip TEXT, created_at DOUBLE PRECISION,"
     " updated_at DOUBLE PRECISION);"
     "CREATE TABLE allocations (consumer TEXT PRIMARY KEY, host TEXT NOT NULL, vcpus BIGINT NOT NULL,"
     " memory_mb BIGINT NOT NULL, disk_gb BIGINT NOT NULL, created_at DOUBLE PRECISION);"
     "CREATE INDEX allocations_host_idx ON allocations (host)"},
    {2, "ALTER TABLE instances ADD COLUMN nw_info TEXT;"},
    /* the resize in progress: {"id", "source", "dest", "status"}; its old allocation is held by
     * the consumer "<uuid>-migration" until confirm or revert */
    {3, "ALTER TABLE instances ADD COLUMN migration TEXT;"},
    /* host aggregates; an aggregate's availability_zone is its hosts' zone */
    {4, "CREATE TABLE aggregates (id INTEGER PRIMARY KEY AUTOINCREMENT, uuid TEXT NOT NULL UNIQUE,"
        " name TEXT NOT NULL UNIQUE, availability_zone TEXT, created_at DOUBLE PRECISION,"
        " updated_at DOUBLE PRECISION);"
        "CREATE TABLE aggregate_hosts (aggregate_id BIGINT NOT NULL, host TEXT NOT NULL,"
        " PRIMARY KEY (aggregate_id, host));"
        "CREATE INDEX aggregate_hosts_host_idx ON aggregate_hosts (host);"
        "CREATE TABLE aggregate_metadata (aggregate_id BIGINT NOT NULL, key TEXT NOT NULL, value TEXT,"
        " PRIMARY KEY (aggregate_id, key));"},
    /* migration records (resizes), listed by /os-migrations */
    {5, "CREATE TABLE migrations (id INTEGER PRIMARY KEY AUTOINCREMENT, uuid TEXT NOT NULL UNIQUE,"
        " instance_uuid TEXT NOT NULL, project_id TEXT, user_id TEXT, source_compute TEXT, dest_compute TEXT,"
        " status TEXT NOT NULL, migration_type TEXT NOT NULL DEFAULT 'resize', created_at DOUBLE PRECISION NOT NULL,"
        " updated_at DOUBLE PRECISION);"
        "CREATE INDEX migrations_instance_idx ON migrations (instance_uuid);"},
    /* Nova's instance system_metadata; holds the guest's password as password_0..3 */
    {6, "CREATE TABLE instance_system_metadata (instance_uuid TEXT NOT NULL, key TEXT NOT NULL, value TEXT,"
        " PRIMARY KEY (instance_uuid, key));"},
};

/* ---- microversions ----------------------------------------------------------------- */

static int parse_version(const char *s, int *minor)
{
    while (*s == ' ') s++;
    if (!strncasecmp(s, "latest", 6)) {
        *minor = TS_COMPUTE_MV_MAX;
        return 0;
    }
    char *end;
    long maj = strtol(s, &end, 10);
    if (end == s || *end != '.') return -1;
    const char *p = end + 1;
    long min = strtol(p, &end, 10);
    if (end == p) return -1;
    while (*end == ' ') end++;
    if (*end && *end != ',') return -1;
    if (maj != 2) return -2;
    if (min < 0 || min > 100000) return -2;
    *minor = (int)min;
    return 0;
}

int ts_compute_begin(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err, int *mv)
{
    int v = TS_COMPUTE_MV_MIN;
    const char *raw = NULL;
    const char *h = ts_http_header(req, "OpenStack-API-Version");
    if (h) {
        /* "compute 2.47" possibly among other services: "volume 3.5, compute 2.47" */
        const char *p = h;
        while (p && *p) {
            while (*p == ' ' || *p == ',') p++;
            if (!strncasecmp(p, "compute ", 8)) {
                raw = p + 8;
                break;
            }
            p = strchr(p, ',');
        }
    }
    if (!raw) raw = ts_http_header(req, "X-OpenStack-Nova-API-Version");
    ts_http_resp_header(resp, "Vary", "OpenStack-API-Version, X-OpenStack-Nova-API-Version");
    /* Nova answers with its request id under this name too (Tempest's instance-action tests read it) */
    if (req->request_id) ts_http_resp_header(resp, "X-Compute-Request-Id", req->request_id);
    if (raw) {
        int rc = parse_version(raw, &v);
        if (rc == -1) {
            ts_http_resp_header(resp, "OpenStack-API-Version", "compute 2.1");
            ts_http_resp_header(resp, "X-OpenStack-Nova-API-Version", "2.1");
            return ts_err_set(err, TS_EINVAL, "API Version String %s is of invalid format. Must be of format "
                              "MajorNum.MinorNum.", raw);
        }
        if (rc == -2 || v < TS_COMPUTE_MV_MIN || v > TS_COMPUTE_MV_MAX) {
            ts_http_resp_header(resp, "OpenStack-API-Version", "compute 2.1");
            ts_http_resp_header(resp, "X-OpenStack-Nova-API-Version", "2.1");
            return ts_err_set(err, TS_ENOTACCEPT, "Version %s is not supported by the API. Minimum is 2.%d and "
                              "maximum is 2.%d.", raw, TS_COMPUTE_MV_MIN, TS_COMPUTE_MV_MAX);
        }
    }
    ts_http_resp_headerf(resp, "OpenStack-API-Version", "compute 2.%d", v);
    ts_http_resp_headerf(resp, "X-OpenStack-Nova-API-Version", "2.%d", v);
    *mv = v;
    return 0;
}

const char *ts_compute_base(struct ts_http_req *req)
{
    const char *host = ts_http_header(req, "Host");
    const char *proto = ts_http_header(req, "X-Forwarded-Proto");
    return ts_pool_printf(req->pool, "%s://%s", proto ? proto : "http", host ? host : "127.0.0.1:8774");
}

void ts_compute_iso(double t, char out[32]) { ts_time_iso(t, 0, out); }

void ts_compute_iso_us(double t, char out[32])
{
    ts_time_iso(t, 6, out);
    size_t n = strlen(out);
    if (n && out[n - 1] == 'Z') out[n - 1] = 0;
}

int ts_compute_check_writer(struct ts_http_req *req, struct ts_err *err)
{
    if (req->auth->is_reader_only)
        return ts_err_set(err, TS_EFORBIDDEN, "Policy doesn't allow this action to be performed.");
    return 0;
}

int ts_compute_check_admin(struct ts_http_req *req, struct ts_err *err)
{
    if (!req->auth->is_admin) return ts_err_set(err, TS_EFORBIDDEN, "Policy doesn't allow this action to be performed.");
    return 0;
}

struct ts_db_val ts_compute_json_val(json_t *v, char **tmp)
{
    *tmp = NULL;
    if (!v || json_is_null(v)) return TS_DB_NULL;
    if (json_is_string(v)) return TS_DB_S(json_string_value(v));
    if (json_is_integer(v)) return TS_DB_I(json_integer_value(v));
    if (json_is_real(v)) return TS_DB_D(json_real_value(v));
    if (json_is_boolean(v)) return TS_DB_B(json_is_true(v));
    *tmp = ts_json_dump(v);
    return TS_DB_S(*tmp);
}

/* ---- version documents ------------------------------------------------------------ */

static json_t *version_v21(struct ts_http_req *req, bool full)
{
    const char *base = ts_compute_base(req);
    char ver[16];
    snprintf(ver, sizeof(ver), "2.%d", TS_COMPUTE_MV_MAX);
    json_t *links = json_pack("[{s:s, s:s}]", "rel", "self", "href", ts_pool_printf(req->pool, "%s/v2.1/", base));
    json_t *v = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "id", "v2.1", "status", "CURRENT", "version", ver,
                          "min_version", "2.1", "updated", "2013-07-23T11:33:21Z", "links", links);
    if (full) {
        json_array_append_new(links, json_pack("{s:s, s:s, s:s}", "rel", "describedby", "type", "text/html", "href",
                                               "http://docs.openstack.org/"));
        json_object_set_new(v, "media-types",
                            json_pack("[{s:s, s:s}]", "base", "application/json", "type",
                                      "application/vnd.openstack.compute+json;version=2.1"));
    }
    return v;
}

static int h_versions(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)err;
    ts_http_resp_json(resp, 200, json_pack("{s:[o]}", "versions", version_v21(req, false)));
    return 0;
}

static int h_version(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "version", version_v21(req, true)));
    return 0;
}


#define V "/v2.1"
static const struct ts_http_route routes[] = {
    {"GET", "/", h_versions, TS_ROUTE_PUBLIC},
    {"GET", V, h_version, TS_ROUTE_PUBLIC},
    {"POST", V "/servers", ts_compute_h_servers_create, 0},
    {"GET", V "/servers", ts_compute_h_servers_list, 0},
    {"GET", V "/servers/detail", ts_compute_h_servers_detail, 0},
    {"GET", V "/servers/{id}", ts_compute_h_servers_show, 0},
    {"PUT", V "/servers/{id}", ts_compute_h_servers_update, 0},
    {"DELETE", V "/servers/{id}", ts_compute_h_servers_delete, 0},
    {"POST", V "/servers/{id}/action", ts_compute_h_servers_action, 0},
    {"GET", V "/servers/{id}/metadata", ts_compute_h_server_metadata_list, 0},
    {"POST", V "/servers/{id}/metadata", ts_compute_h_server_metadata_set, 0},
    {"PUT", V "/servers/{id}/metadata", ts_compute_h_server_metadata_replace, 0},
    {"GET", V "/servers/{id}/metadata/{key}", ts_compute_h_server_metadata_show, 0},
    {"PUT", V "/servers/{id}/metadata/{key}", ts_compute_h_server_metadata_put, 0},
    {"DELETE", V "/servers/{id}/metadata/{key}", ts_compute_h_server_metadata_delete, 0},
    {"GET", V "/servers/{id}/tags", ts_compute_h_server_tags_list, 0},
    {"PUT", V "/servers/{id}/tags", ts_compute_h_server_tags_replace, 0},
    {"DELETE", V "/servers/{id}/tags", ts_compute_h_server_tags_clear, 0},
    {"GET", V "/servers/{id}/tags/{tag}", ts_compute_h_server_tag_check, 0},
    {"PUT", V "/servers/{id}/tags/{tag}", ts_compute_h_server_tag_add, 0},
    {"DELETE", V "/servers/{id}/tags/{tag}", ts_compute_h_server_tag_delete, 0},
    {"GET", V "/servers/{id}/os-server-password", ts_compute_h_server_password_show, 0},
    {"DELETE", V "/servers/{id}/os-server-password", ts_compute_h_server_password_clear, 0},
    {"POST", V "/servers/{id}/os-server-password", ts_compute_h_server_password_set, 0},
    {"GET", V "/servers/{id}/os-instance-actions", ts_compute_h_server_actions_list, 0},
    {"GET", V "/servers/{id}/os-instance-actions/{req_id}", ts_compute_h_server_action_show, 0},
    {"GET", V "/servers/{id}/os-interface", ts_compute_h_interfaces_list, 0},
    {"POST", V "/servers/{id}/os-interface", ts_compute_h_interface_create, 0},
    {"GET", V "/servers/{id}/os-interface/{port_id}", ts_compute_h_interface_show, 0},
    {"DELETE", V "/servers/{id}/os-interface/{port_id}", ts_compute_h_interface_delete, 0},
    {"GET", V "/servers/{id}/os-volume_attachments", ts_compute_h_vol_attachments_list, 0},
    {"POST", V "/servers/{id}/os-volume_attachments", ts_compute_h_vol_attachment_create, 0},
    {"GET", V "/servers/{id}/os-volume_attachments/{volume_id}", ts_compute_h_vol_attachment_show, 0},
    {"DELETE", V "/servers/{id}/os-volume_attachments/{volume_id}", ts_compute_h_vol_attachment_delete, 0},
    {"POST", V "/os-server-external-events", ts_compute_h_external_events, 0},
    {"GET", V "/os-security-groups", ts_compute_h_sec_groups_list, 0},
    {"GET", V "/os-security-groups/{sg_id}", ts_compute_h_sec_group_show, 0},
    {"GET", V "/flavors", ts_compute_h_flavors_list, 0},
    {"GET", V "/flavors/detail", ts_compute_h_flavors_detail, 0},
    {"POST", V "/flavors", ts_compute_h_flavors_create, 0},
    {"GET", V "/flavors/{id}", ts_compute_h_flavors_show, 0},
    {"PUT", V "/flavors/{id}", ts_compute_h_flavors_update, 0},
    {"DELETE", V "/flavors/{id}", ts_compute_h_flavors_delete, 0},
    {"POST", V "/flavors/{id}/action", ts_compute_h_flavors_action, 0},
    {"GET", V "/flavors/{id}/os-flavor-access", ts_compute_h_flavor_access_list, 0},
    {"GET", V "/flavors/{id}/os-extra_specs", ts_compute_h_flavor_specs_list, 0},
    {"POST", V "/flavors/{id}/os-extra_specs", ts_compute_h_flavor_specs_create, 0},
    {"GET", V "/flavors/{id}/os-extra_specs/{key}", ts_compute_h_flavor_spec_show, 0},
    {"PUT", V "/flavors/{id}/os-extra_specs/{key}", ts_compute_h_flavor_spec_put, 0},
    {"DELETE", V "/flavors/{id}/os-extra_specs/{key}", ts_compute_h_flavor_spec_delete, 0},
    {"GET", V "/os-keypairs", ts_compute_h_keypairs_list, 0},
    {"POST", V "/os-keypairs", ts_compute_h_keypairs_create, 0},
    {"GET", V "/os-keypairs/{name}", ts_compute_h_keypairs_show, 0},
    {"DELETE", V "/os-keypairs/{name}", ts_compute_h_keypairs_delete, 0},
    {"GET", V "/os-quota-sets/{project}", ts_compute_h_quotas_show, 0},
    {"GET", V "/os-quota-sets/{project}/detail", ts_compute_h_quotas_detail, 0},
    {"GET", V "/os-quota-sets/{project}/defaults", ts_compute_h_quotas_defaults, 0},
    {"PUT", V "/os-quota-sets/{project}", ts_compute_h_quotas_update, 0},
    {"DELETE", V "/os-quota-sets/{project}", ts_compute_h_quotas_delete, 0},
    {"GET", V "/os-quota-class-sets/{name}", ts_compute_h_quota_class_show, 0},
    {"GET", V "/limits", ts_compute_h_limits, 0},
    {"GET", V "/os-services", ts_compute_h_services_list, 0},
    {"PUT", V "/os-services/{id}", ts_compute_h_services_update, 0},
    {"PUT", V "/os-services/disable", ts_compute_h_services_legacy, 0},
    {"PUT", V "/os-services/enable", ts_compute_h_services_legacy, 0},
    {"PUT", V "/os-services/disable-log-reason", ts_compute_h_services_legacy, 0},
    {"PUT", V "/os-services/force-down", ts_compute_h_services_legacy, 0},
    {"DELETE", V "/os-services/{id}", ts_compute_h_services_delete, 0},
    {"GET", V "/os-hypervisors", ts_compute_h_hypervisors_list, 0},
    {"GET", V "/os-hypervisors/detail", ts_compute_h_hypervisors_detail, 0},
    {"GET", V "/os-hypervisors/statistics", ts_compute_h_hypervisors_stats, 0},
    {"GET", V "/os-hypervisors/{id}", ts_compute_h_hypervisors_show, 0},
    {"GET", V "/os-hypervisors/{id}/search", ts_compute_h_hypervisors_search, 0},
    {"GET", V "/os-hypervisors/{id}/uptime", ts_compute_h_hypervisors_uptime, 0},
    {"GET", V "/os-hypervisors/{id}/servers", ts_compute_h_hypervisors_servers, 0},
    {"GET", V "/os-aggregates", ts_compute_h_aggregates_list, 0},
    {"POST", V "/os-aggregates", ts_compute_h_aggregates_create, 0},
    {"GET", V "/os-aggregates/{id}", ts_compute_h_aggregates_show, 0},
    {"PUT", V "/os-aggregates/{id}", ts_compute_h_aggregates_update, 0},
    {"DELETE", V "/os-aggregates/{id}", ts_compute_h_aggregates_delete, 0},
    {"POST", V "/os-aggregates/{id}/action", ts_compute_h_aggregates_action, 0},
    {"GET", V "/os-migrations", ts_compute_h_migrations_list, 0},
    {"GET", V "/os-hosts", ts_compute_h_hosts_list, 0},
    {"GET", V "/os-hosts/{host}", ts_compute_h_hosts_show, 0},
    {"PUT", V "/os-hosts/{host}", ts_compute_h_hosts_update, 0},
    {"GET", V "/os-hosts/{host}/startup", ts_compute_h_hosts_power, 0},
    {"GET", V "/os-hosts/{host}/shutdown", ts_compute_h_hosts_power, 0},
    {"GET", V "/os-hosts/{host}/reboot", ts_compute_h_hosts_power, 0},
    {"GET", V "/os-availability-zone", ts_compute_h_az_list, 0},
    {"GET", V "/os-availability-zone/detail", ts_compute_h_az_detail, 0},
    {"GET", V "/os-simple-tenant-usage", ts_compute_h_usage_list, 0},
    {"GET", V "/os-simple-tenant-usage/{project}", ts_compute_h_usage_show, 0},
    {"GET", V "/os-server-groups", ts_compute_h_groups_list, 0},
    {"POST", V "/os-server-groups", ts_compute_h_groups_create, 0},
    {"GET", V "/os-server-groups/{id}", ts_compute_h_groups_show, 0},
    {"DELETE", V "/os-server-groups/{id}", ts_compute_h_groups_delete, 0},
    {NULL, NULL, NULL, 0},
};
#undef V

/* ---- instances as JSON ------------------------------------------------------------ */

static const char *const json_cols[] = {"flavor", "old_flavor", "bdm", "networks", "security_groups",
                                        "request_spec", "fault", "nw_info", "migration", NULL};
static const char *const int_cols[] = {"id", "vcpus", "memory_mb", "root_gb", "power_state", "launch_index",
                                       "locked", "deleted", NULL};
static const char *const dbl_cols[] = {"created_at", "updated_at", "launched_at", "terminated_at", "deleted_at",
                                       NULL};

static bool in_list(const char *const *l, const char *s)
{
    for (int i = 0; l[i]; i++)
        if (!strcmp(l[i], s)) return true;
    return false;
}

json_t *ts_compute_inst_row(const struct ts_db_res *res, int r)
{
    json_t *o = json_object();
    for (int c = 0; c < res->ncols; c++) {
        const char *name = res->cols[c];
        const char *v = ts_db_res_get(res, r, c);
        if (!v) {
            json_object_set_new(o, name, json_null());
        } else if (in_list(int_cols, name)) {
            int64_t i = 0;
            ts_parse_int64(v, &i);
            json_object_set_new(o, name, json_integer(i));
        } else if (in_list(dbl_cols, name)) {
            json_object_set_new(o, name, json_real(strtod(v, NULL)));
        } else if (in_list(json_cols, name)) {
            json_t *j = json_loads(v, JSON_DECODE_ANY, NULL);
            json_object_set_new(o, name, j ? j : json_null());
        } else {
            json_object_set_new(o, name, json_string(v));
        }
    }
    return o;
}

int ts_compute_inst_load(struct ts_db *db, const char *uuid, json_t **out, struct ts_err *err)
{
    struct ts_db_res *res = NULL;
    int rc = ts_db_exec(db, "SELECT " TS_COMPUTE_INST_COLS " FROM instances WHERE uuid = ?", TS_DB_ARGS(TS_DB_S(uuid)),
                        &res, err);
    if (rc) return rc;
    if (res->nrows == 0) rc = ts_err_set(err, TS_ENOTFOUND, "Instance %s could not be found.", uuid);
    else *out = ts_compute_inst_row(res, 0);
    ts_db_res_free(res);
    return rc;
}

static bool valid_col(const char *k)
{
    static const char *const ok[] = {
        "display_name", "description", "hostname", "image_ref", "flavor_id", "flavor", "old_flavor", "vcpus",
        "memory_mb", "root_gb", "vm_state", "task_state", "power_state", "host", "node", "availability_zone",
        "key_name", "key_data", "user_data", "access_ip_v4", "access_ip_v6", "locked", "locked_reason", "bdm",
        "networks", "security_groups", "request_spec", "fault", "launched_at", "terminated_at", "old_vm_state",
        "nw_info", "migration", NULL};
    return in_list(ok, k);
}

int ts_compute_inst_update(struct ts_db *db, const char *uuid, json_t *values, const char *expect_task,
                           json_t **out, struct ts_err *err)
{
    struct ts_buf sql;
    ts_buf_init(&sql, 0);
    struct ts_db_val args[64];
    char *tmps[64] = {0};
    int n = 0, rc = 0;
    const char *k;
    json_t *v;
    ts_buf_appends(&sql, "UPDATE instances SET updated_at = ?");
    args[n++] = TS_DB_D(ts_now());
    json_object_foreach(values, k, v) {
        if (!valid_col(k) || n >= 60) {
            rc = ts_err_set(err, TS_EINVAL, "bad instance column %s", k);
            goto out;
        }
        ts_buf_printf(&sql, ", %s = ?", k);
        args[n] = ts_compute_json_val(v, &tmps[n]);
        n++;
    }
    ts_buf_appends(&sql, " WHERE uuid = ? AND deleted = 0");
    args[n++] = TS_DB_S(uuid);
    if (expect_task && !*expect_task) {
        ts_buf_appends(&sql, " AND task_state IS NULL");
    } else if (expect_task) {
        ts_buf_appends(&sql, " AND task_state = ?");
        args[n++] = TS_DB_S(expect_task);
    }
    struct ts_db_res *res = NULL;
    rc = ts_db_exec(db, ts_buf_cstr(&sql), args, n, &res, err);
    if (rc) goto out;
    int64_t changes = res->changes;
    ts_db_res_free(res);
    if (changes == 0) {
        json_t *cur = NULL;
        rc = ts_compute_inst_load(db, uuid, &cur, err);
        if (rc) goto out;
        const char *ts = json_string_value(json_object_get(cur, "task_state"));
        if (json_integer_value(json_object_get(cur, "deleted")))
            rc = ts_err_set(err, TS_ENOTFOUND, "Instance %s could not be found.", uuid);
        else
            rc = ts_err_set(err, TS_ECONFLICT, "Conflict updating instance %s. Expected: {'task_state': [%s]}. "
                            "Actual: {'task_state': %s}", uuid, expect_task ? expect_task : "", ts ? ts : "None");
        json_decref(cur);
        goto out;
    }
    if (out) rc = ts_compute_inst_load(db, uuid, out, err);
out:
    for (int i = 0; i < n; i++) free(tmps[i]);
    ts_buf_free(&sql);
    return rc;
}

int ts_compute_inst_destroy(struct ts_db *db, const char *uuid, struct ts_err *err)
{
    struct ts_db_conn *tx = NULL;
    double now = ts_now();
    int rc = ts_db_begin(db, &tx, err);
    if (rc) return rc;
    rc = ts_db_tx_exec(tx,
                       "UPDATE instances SET deleted = 1, deleted_at = ?, terminated_at = ?, updated_at = ?, "
                       "vm_state = 'deleted', task_state = NULL, power_state = 0 WHERE uuid = ?",
                       TS_DB_ARGS(TS_DB_D(now), TS_DB_D(now), TS_DB_D(now), TS_DB_S(uuid)), NULL, err);
    char mig[64];
    snprintf(mig, sizeof(mig), "%s-migration", uuid);
    if (!rc)
        rc = ts_db_tx_exec(tx, "DELETE FROM allocations WHERE consumer IN (?, ?)", TS_DB_ARGS(TS_DB_S(uuid), TS_DB_S(mig)),
                           NULL, err);
    if (!rc) ts_compute_sched_changed();
    if (!rc)
        rc = ts_db_tx_exec(tx, "DELETE FROM instance_tags WHERE instance_uuid = ?", TS_DB_ARGS(TS_DB_S(uuid)), NULL,
                           err);
    if (!rc)
        rc = ts_db_tx_exec(tx, "DELETE FROM server_group_members WHERE instance_uuid = ?", TS_DB_ARGS(TS_DB_S(uuid)),
                           NULL, err);
    if (rc) {
        ts_db_rollback(tx);
        return rc;
    }
    return ts_db_commit(tx, err);
}

void ts_compute_migration_set(struct ts_db *db, const char *mig_uuid, const char *status, const char *dest)
{
    if (!mig_uuid || !status) return;
    ts_db_exec(db, "UPDATE migrations SET status = ?, dest_compute = COALESCE(?, dest_compute), updated_at = ? WHERE "
               "uuid = ?", TS_DB_ARGS(TS_DB_S(status), TS_DB_S(dest), TS_DB_D(ts_now()), TS_DB_S(mig_uuid)), NULL,
               NULL);
}

const char *ts_compute_status(const char *vm, const char *task)
{
    if (!vm) return "UNKNOWN";
    task = task ? task : "";
    if (!strcmp(vm, "building")) return "BUILD";
    if (!strcmp(vm, "active")) {
        if (!strcmp(task, "rebooting") || !strcmp(task, "reboot_pending") || !strcmp(task, "reboot_started"))
            return "REBOOT";
        if (!strncmp(task, "rebooting_hard", 14) || !strcmp(task, "reboot_pending_hard") ||
            !strcmp(task, "reboot_started_hard"))
            return "HARD_REBOOT";
        if (!strcmp(task, "rebuilding") || !strcmp(task, "rebuild_block_device_mapping") ||
            !strcmp(task, "rebuild_spawning"))
            return "REBUILD";
        if (!strncmp(task, "resize_", 7)) return "RESIZE";
        if (!strcmp(task, "migrating")) return "MIGRATING";
        return "ACTIVE";
    }
    if (!strcmp(vm, "stopped")) {
        if (!strncmp(task, "resize_", 7)) return "RESIZE";
        if (!strcmp(task, "rebuilding") || !strcmp(task, "rebuild_spawning")) return "REBUILD";
        return "SHUTOFF";
    }
    if (!strcmp(vm, "paused")) return "PAUSED";
    if (!strcmp(vm, "suspended")) return "SUSPENDED";
    if (!strcmp(vm, "resized")) return !strcmp(task, "resize_reverting") ? "REVERT_RESIZE" : "VERIFY_RESIZE";
    if (!strcmp(vm, "error")) return !strcmp(task, "rebuilding") ? "REBUILD" : "ERROR";
    if (!strcmp(vm, "deleted")) return "DELETED";
    if (!strcmp(vm, "soft-delete")) return "SOFT_DELETED";
    if (!strcmp(vm, "shelved")) return "SHELVED";
    if (!strcmp(vm, "shelved_offloaded")) return "SHELVED_OFFLOADED";
    if (!strcmp(vm, "rescued")) return "RESCUE";
    return "UNKNOWN";
}

void ts_compute_action_start(struct ts_db *db, const char *uuid, const char *action, const char *request_id,
                             const char *user_id, const char *project_id)
{
    double now = ts_now();
    ts_db_exec(db,
               "INSERT INTO instance_actions (instance_uuid, action, request_id, user_id, project_id, start_time, "
               "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
               TS_DB_ARGS(TS_DB_S(uuid), TS_DB_S(action), TS_DB_S(request_id ? request_id : ""), TS_DB_S(user_id),
                          TS_DB_S(project_id), TS_DB_D(now), TS_DB_D(now)),
               NULL, NULL);
}

void ts_compute_action_event(struct ts_db *db, const char *uuid, const char *request_id, const char *event,
                             const char *host, bool ok, const char *message)
{
    if (!request_id || !*request_id) return;
    struct ts_db_res *res = NULL;
    double now = ts_now();
    if (ts_db_exec(db, "SELECT id FROM instance_actions WHERE instance_uuid = ? AND request_id = ? ORDER BY id DESC",
                   TS_DB_ARGS(TS_DB_S(uuid), TS_DB_S(request_id)), &res, NULL) == 0 &&
        res->nrows > 0) {
        int64_t id = ts_db_res_int(res, 0, 0, 0);
        ts_db_exec(db,
                   "INSERT INTO instance_action_events (action_id, event, start_time, finish_time, result, host, "
                   "traceback) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   TS_DB_ARGS(TS_DB_I(id), TS_DB_S(event), TS_DB_D(now), TS_DB_D(now),
                              TS_DB_S(ok ? "Success" : "Error"), TS_DB_S(host), TS_DB_S(ok ? NULL : message)),
                   NULL, NULL);
        ts_db_exec(db, "UPDATE instance_actions SET finish_time = ?, updated_at = ?, message = ? WHERE id = ?",
                   TS_DB_ARGS(TS_DB_D(now), TS_DB_D(now), TS_DB_S(ok ? NULL : "Error"), TS_DB_I(id)), NULL, NULL);
    }
    ts_db_res_free(res);
}

void ts_compute_notify(struct ts_bus *bus, const char *publisher, const char *event, const json_t *inst)
{
    if (!bus || !inst) return;
    json_t *fl = json_object_get(inst, "flavor");
    char t[32];
    json_t *p = json_object();
    const char *uuid = json_string_value(json_object_get(inst, "uuid"));
    json_object_set_new(p, "instance_id", json_string(uuid ? uuid : ""));
    ts_json_set_str(p, "tenant_id", json_string_value(json_object_get(inst, "project_id")));
    ts_json_set_str(p, "user_id", json_string_value(json_object_get(inst, "user_id")));
    ts_json_set_str(p, "display_name", json_string_value(json_object_get(inst, "display_name")));
    ts_json_set_str(p, "hostname", json_string_value(json_object_get(inst, "hostname")));
    ts_json_set_str(p, "host", json_string_value(json_object_get(inst, "host")));
    ts_json_set_str(p, "node", json_string_value(json_object_get(inst, "node")));
    ts_json_set_str(p, "availability_zone", json_string_value(json_object_get(inst, "availability_zone")));
    ts_json_set_str(p, "state", json_string_value(json_object_get(inst, "vm_state")));
    ts_json_set_str(p, "state_description", json_string_value(json_object_get(inst, "task_state")));
    const char *img = json_string_value(json_object_get(inst, "image_ref"));
    ts_json_set_str(p, "image_ref_url", img);
    json_object_set_new(p, "instance_type", json_string(json_string_value(json_object_get(fl, "name")) ?
                                                        json_string_value(json_object_get(fl, "name")) : ""));
    json_object_set_new(p, "instance_type_id", json_string(json_string_value(json_object_get(fl, "flavorid")) ?
                                                           json_string_value(json_object_get(fl, "flavorid")) : ""));
    json_object_set_new(p, "instance_flavor_id", json_string(json_string_value(json_object_get(fl, "flavorid")) ?
                                                             json_string_value(json_object_get(fl, "flavorid")) : ""));
    json_object_set_new(p, "flavor", fl ? json_deep_copy(fl) : json_object());
    json_object_set_new(p, "memory_mb", json_integer(json_integer_value(json_object_get(inst, "memory_mb"))));
    json_object_set_new(p, "vcpus", json_integer(json_integer_value(json_object_get(inst, "vcpus"))));
    json_object_set_new(p, "root_gb", json_integer(json_integer_value(json_object_get(inst, "root_gb"))));
    json_object_set_new(p, "disk_gb", json_integer(json_integer_value(json_object_get(inst, "root_gb"))));
    json_object_set_new(p, "ephemeral_gb", json_integer(json_integer_value(json_object_get(fl, "ephemeral"))));
    static const char *const times[][2] = {{"created_at", "created_at"},
                                           {"launched_at", "launched_at"},
                                           {"terminated_at", "terminated_at"},
                                           {"deleted_at", "deleted_at"}};
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        json_t *tv = json_object_get(inst, times[i][0]);
        if (json_is_number(tv)) {
            ts_time_iso(json_number_value(tv), 6, t);
            json_object_set_new(p, times[i][1], json_string(t));
        } else {
            json_object_set_new(p, times[i][1], json_string(""));
        }
    }
    json_object_set_new(p, "metadata", json_object());
    json_t *fault = json_object_get(inst, "fault");
    if (json_is_object(fault)) ts_json_set_str(p, "message", json_string_value(json_object_get(fault, "message")));
    ts_bus_notify(bus, publisher, event, "INFO", p);
}

static bool render_instance_name(const char *tpl, long long id, char *out, size_t cap)
{
    size_t o = 0;
    int conversions = 0;
    for (const char *p = tpl; *p; p++) {
        char piece[64];
        if (*p != '%') {
            piece[0] = *p;
            piece[1] = 0;
        } else if (p[1] == '%') {
            piece[0] = '%';
            piece[1] = 0;
            p++;
        } else {
            const char *q = p + 1;
            bool zero = *q == '0';
            if (zero) q++;
            int width = 0;
            while (*q >= '0' && *q <= '9' && width < 100) width = width * 10 + (*q++ - '0');
            if (width >= 32 || (*q != 'x' && *q != 'd' && *q != 'u') || ++conversions > 1) return false;
            char num[32];
            if (*q == 'x') snprintf(num, sizeof(num), "%llx", (unsigned long long)id);
            else snprintf(num, sizeof(num), "%lld", id);
            size_t nl = strlen(num), pad = (size_t)width > nl ? (size_t)width - nl : 0;
            memset(piece, zero ? '0' : ' ', pad);
            memcpy(piece + pad, num, nl + 1);
            p = q;
        }
        size_t l = strlen(piece);
        if (o + l >= cap) return false;
        memcpy(out + o, piece, l + 1);
        o += l;
    }
    return conversions == 1;
}

void ts_compute_instance_name(const struct ts_conf *conf, long long id, char *out, size_t cap)
{
    const char *tpl = conf ? ts_conf_get(conf, "compute", "instance_name_template", NULL) : NULL;
    if (!tpl || !render_instance_name(tpl, id, out, cap)) render_instance_name("instance-%08x", id, out, cap);
}

bool ts_compute_is_up(double last_seen, double down_time, bool forced_down)
{
    if (forced_down) return false;
    return last_seen > 0 && ts_now() - last_seen <= down_time;
}

const char *const ts_compute_quota_resources[] = {
    "instances", "cores", "ram", "key_pairs", "server_groups", "server_group_members", "metadata_items",
    "injected_files", "injected_file_content_bytes", "injected_file_path_bytes", NULL};

int64_t ts_compute_quota_default(const struct ts_conf *conf, const char *resource)
{
    static const struct { const char *name; int64_t def; } defs[] = {
        {"instances", 10}, {"cores", 20}, {"ram", 51200}, {"key_pairs", 100}, {"server_groups", 10},
        {"server_group_members", 10}, {"metadata_items", 128}, {"injected_files", 5},
        {"injected_file_content_bytes", 10240}, {"injected_file_path_bytes", 255}};
    for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++) {
        if (!strcmp(defs[i].name, resource)) {
            char key[64];
            snprintf(key, sizeof(key), "quota_%s", resource);
            return ts_conf_get_int(conf, "compute", key, defs[i].def);
        }
    }
    return -1;
}

int64_t ts_compute_quota_limit(struct ts_compute_svc *svc, const char *project, const char *resource)
{
    struct ts_db_res *res = NULL;
    int64_t v = ts_compute_quota_default(svc->env->conf, resource);
    if (ts_db_exec(svc->db, "SELECT hard_limit FROM quotas WHERE project_id = ? AND resource = ?",
                   TS_DB_ARGS(TS_DB_S(project), TS_DB_S(resource)), &res, NULL) == 0 &&
        res->nrows > 0)
        v = ts_db_res_int(res, 0, 0, v);
    ts_db_res_free(res);
    return v;
}

void ts_compute_service_heartbeat(struct ts_db *db, const char *host, const char *binary, const char *topic,
                                  const char *zone)
{
    char uuid[TS_UUID_LEN + 1];
    ts_uuid(uuid);
    double now = ts_now();
    ts_db_exec(db,
               "INSERT INTO services (uuid, host, binary_name, topic, availability_zone, last_seen_up, report_count, "
               "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?) ON CONFLICT (host, binary_name) DO UPDATE SET "
               "last_seen_up = excluded.last_seen_up, updated_at = excluded.updated_at, "
               "availability_zone = excluded.availability_zone, report_count = services.report_count + 1",
               TS_DB_ARGS(TS_DB_S(uuid), TS_DB_S(host), TS_DB_S(binary), TS_DB_S(topic), TS_DB_S(zone), TS_DB_D(now),
                          TS_DB_D(now), TS_DB_D(now)),
               NULL, NULL);
}

/* ---- life cycle ------------------------------------------------------------------- */

static void conf_default(struct ts_conf *conf, const char *key, const char *value)
{
    if (!ts_conf_get(conf, "compute", key, NULL)) ts_conf_set(conf, "compute", key, value);
}

static int compute_init(struct ts_service_env *env, struct ts_err *err)
{
    char *s = ts_asprintf("%d", ts_compute_service.default_port);
    conf_default(env->conf, "port", s);
    free(s);
    s = ts_asprintf("sqlite:///%s/compute.db", env->data_dir);
    conf_default(env->conf, "connection", s);
    free(s);
    struct ts_db *db = NULL;
    int rc = ts_db_open(ts_conf_get(env->conf, "compute", "connection", NULL), &db, err);
    if (rc) return rc;
    rc = ts_db_migrate(db, migrations, sizeof(migrations) / sizeof(migrations[0]), err);
    ts_db_close(db);
    return rc;
}

static void *heartbeat_main(void *arg)
{
    struct ts_compute_svc *svc = arg;
    const char *host = svc->env->host ? svc->env->host : "localhost";
    pthread_mutex_lock(&svc->lock);
    while (!svc->stopping) {
        pthread_mutex_unlock(&svc->lock);
        if (svc->scheduler_up) ts_compute_service_heartbeat(svc->db, host, "nova-scheduler", "scheduler", "internal");
        if (svc->conductor_up) ts_compute_service_heartbeat(svc->db, host, "nova-conductor", "conductor", "internal");
        pthread_mutex_lock(&svc->lock);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 10;
        if (!svc->stopping) pthread_cond_timedwait(&svc->cond, &svc->lock, &ts);
    }
    pthread_mutex_unlock(&svc->lock);
    return NULL;
}

static void compute_stop(void *state)
{
    struct ts_compute_svc *svc = state;
    if (!svc) return;
    ts_http_server_stop(svc->http);
    ts_compute_agent_stop(svc->agent);
    if (svc->env && svc->env->bus) {
        if (svc->scheduler_up) ts_bus_unserve(svc->env->bus, "scheduler");
        if (svc->conductor_up) ts_bus_unserve(svc->env->bus, "conductor");
    }
    pthread_mutex_lock(&svc->lock);
    svc->stopping = true;
    pthread_cond_broadcast(&svc->cond);
    pthread_mutex_unlock(&svc->lock);
    if (svc->hb_started) pthread_join(svc->hb_thread, NULL);
    ts_db_close(svc->db);
    pthread_mutex_destroy(&svc->lock);
    pthread_cond_destroy(&svc->cond);
    free(svc);
}

static int compute_start(struct ts_service_env *env, void **state, struct ts_err *err)
{
    struct ts_compute_svc *svc = ts_calloc(1, sizeof(*svc));
    pthread_mutex_init(&svc->lock, NULL);
    pthread_cond_init(&svc->cond, NULL);
    svc->env = env;
    snprintf(svc->publisher, sizeof(svc->publisher), "compute.%s", env->host ? env->host : "localhost");
    int rc = compute_init(env, err);
    if (rc) goto out;
    svc->service_down_time = ts_conf_get_double(env->conf, "compute", "service_down_time", 60.0);
    svc->cpu_ratio = ts_conf_get_double(env->conf, "compute", "cpu_allocation_ratio", 16.0);
    svc->ram_ratio = ts_conf_get_double(env->conf, "compute", "ram_allocation_ratio", 1.5);
    svc->disk_ratio = ts_conf_get_double(env->conf, "compute", "disk_allocation_ratio", 1.0);
    svc->max_attempts = (int)ts_conf_get_int(env->conf, "compute", "max_attempts", 3);
    rc = ts_db_open(ts_conf_get(env->conf, "compute", "connection", NULL), &svc->db, err);
    if (rc) goto out;
    if (ts_conf_get_bool(env->conf, "compute", "run_scheduler", true)) {
        rc = ts_compute_scheduler_start(svc, err);
        if (rc) goto out;
        svc->scheduler_up = true;
    }
    if (ts_conf_get_bool(env->conf, "compute", "run_conductor", true)) {
        rc = ts_compute_conductor_start(svc, err);
        if (rc) goto out;
        svc->conductor_up = true;
    }
    if (pthread_create(&svc->hb_thread, NULL, heartbeat_main, svc) == 0) svc->hb_started = true;

    rc = ts_service_http_start(env, &ts_compute_service, routes, TS_FAULT_NOVA, 16, svc, &svc->http, err);
    if (rc) goto out;
    if (ts_conf_get_bool(env->conf, "compute", "run_agent", true)) {
        rc = ts_compute_agent_start(env, NULL, &svc->agent, err);
        if (rc) goto out;
    }
    *state = svc;
out:
    if (rc) compute_stop(svc);
    return rc;
}

const struct ts_service ts_compute_service = {
    .name = "compute",
    .type = "compute",
    .catalog_name = "nova",
    .default_port = 8774,
    .catalog_path = "/v2.1",
    .init = compute_init,
    .start = compute_start,
    .stop = compute_stop,
};
