/*
 * ts_compute_int.h: what the compute service's parts share (api, scheduler, conductor,
 * agent): the service state, instance rows as JSON, state helpers, notifications.
 * Not for other modules.
 */
#ifndef TS_COMPUTE_INT_H
#define TS_COMPUTE_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>

#include "compute/ts_compute.h"
#include "db/ts_db.h"
#include "http/ts_http.h"

#define TS_COMPUTE_MV_MIN 1    /* 2.1 */
#define TS_COMPUTE_MV_MAX 90   /* 2.90 */

struct ts_compute_svc {
    struct ts_service_env *env;
    struct ts_db *db;
    struct ts_http_server *http;
    struct ts_compute_agent *agent;       /* in-process agent or NULL */
    char publisher[300];                  /* "compute.<host>" for notifications */
    double service_down_time;             /* seconds */
    double cpu_ratio, ram_ratio, disk_ratio;
    int max_attempts;
    pthread_t hb_thread;
    bool hb_started;
    pthread_mutex_t lock;                 /* guards stopping */
    pthread_cond_t cond;
    bool stopping;
    bool scheduler_up, conductor_up;
};

/* ---- microversions and request helpers (ts_compute.c) ---- */
/* Parses the requested microversion (2.x -> x), sets the version response headers.
 * -TS_ENOTACCEPT for versions out of range, -TS_EINVAL for malformed ones. */
int ts_compute_begin(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err, int *mv);
/* "http://host:port" from the Host header (pool string). */
const char *ts_compute_base(struct ts_http_req *req);
/* ISO time "2024-01-01T00:00:00Z" or with microseconds and no Z (launched_at style). */
void ts_compute_iso(double t, char out[32]);
void ts_compute_iso_us(double t, char out[32]);
/* Returns -TS_EFORBIDDEN when the caller is a reader only, else 0. */
int ts_compute_check_writer(struct ts_http_req *req, struct ts_err *err);
int ts_compute_check_admin(struct ts_http_req *req, struct ts_err *err);
/* Binds a JSON scalar as a db value; objects/arrays are dumped into *tmp (caller frees). */
struct ts_db_val ts_compute_json_val(json_t *v, char **tmp);

/* ---- instances ---- */
#define TS_COMPUTE_INST_COLS                                                                                    \
    "id, uuid, project_id, user_id, display_name, description, hostname, image_ref, flavor_id, flavor, "         \
    "old_flavor, vcpus, memory_mb, root_gb, vm_state, task_state, power_state, host, node, availability_zone, " \
    "key_name, key_data, user_data, config_drive, access_ip_v4, access_ip_v6, reservation_id, launch_index, "    \
    "locked, locked_reason, bdm, networks, security_groups, server_group, request_spec, fault, created_at, "     \
    "updated_at, launched_at, terminated_at, deleted, deleted_at, old_vm_state, nw_info, migration"
/* Row r of res (TS_COMPUTE_INST_COLS) as a JSON object keyed by column (json columns parsed). */
json_t *ts_compute_inst_row(const struct ts_db_res *res, int r);
/* Loads an instance (deleted ones too) by uuid; -TS_ENOTFOUND if absent. Caller decrefs. */
int ts_compute_inst_load(struct ts_db *db, const char *uuid, json_t **out, struct ts_err *err);
/* Updates columns of an instance from values (keys = column names). expect_task: NULL = no
 * check; "" = task_state must be NULL; else must equal (-TS_ECONFLICT otherwise). *out (may be
 * NULL) gets the updated row. */
int ts_compute_inst_update(struct ts_db *db, const char *uuid, json_t *values, const char *expect_task,
                           json_t **out, struct ts_err *err);
/* Marks an instance deleted, drops its allocation, metadata, tags and group membership. */
int ts_compute_inst_destroy(struct ts_db *db, const char *uuid, struct ts_err *err);
/* Sets the status (and the destination when dest is not NULL) of migration record mig_uuid;
 * errors are ignored (the record is informational). */
void ts_compute_migration_set(struct ts_db *db, const char *mig_uuid, const char *status, const char *dest);
/* Nova's server status for vm_state/task_state. */
const char *ts_compute_status(const char *vm_state, const char *task_state);
/* Instance action log. */
void ts_compute_action_start(struct ts_db *db, const char *uuid, const char *action, const char *request_id,
                             const char *user_id, const char *project_id);
void ts_compute_action_event(struct ts_db *db, const char *uuid, const char *request_id, const char *event,
                             const char *host, bool ok, const char *message);
/* compute.instance.* notification with a Nova-like payload from an instance row. */
void ts_compute_notify(struct ts_bus *bus, const char *publisher, const char *event, const json_t *inst);
/* true if a service last seen at last_seen (epoch s) counts as up. */
bool ts_compute_is_up(double last_seen, double down_time, bool forced_down);
/* The libvirt domain name of instance <id> from [compute] instance_name_template (Nova's option,
 * default "instance-%08x"): the template may hold one conversion, %x, %d or %u with an optional
 * zero flag and width (e.g. "%08x"), and %% for a literal percent; anything else falls back to
 * the default so a bad setting never reaches a format function. */
void ts_compute_instance_name(const struct ts_conf *conf, long long id, char *out, size_t cap);
/* Quota limit of a project for a resource (project override or default). */
int64_t ts_compute_quota_limit(struct ts_compute_svc *svc, const char *project, const char *resource);
int64_t ts_compute_quota_default(const struct ts_conf *conf, const char *resource);
extern const char *const ts_compute_quota_resources[];


/* ---- other services: network and block storage (ts_compute_ext.c) ---- */
/* Base URL of service svc ("network", "volume"): [svc] url, else http://<bind>:<[svc] port>; NULL (and
 * buf untouched) when the service is not enabled in this cloud. */
const char *ts_compute_ext_url(const struct ts_service_env *env, const char *svc, char *buf, size_t cap);
/* JSON request to svc at path. token NULL = the service token ([service_credentials], cached).
 * hdr: one extra header or NULL. Returns 0 when an answer came (*status set, *out = parsed body or
 * NULL), <0 when the service could not be reached. */
int ts_compute_ext_call(const struct ts_service_env *env, const char *svc, const char *token, const char *method,
                        const char *path, const json_t *body, const char *hdr, int *status, json_t **out,
                        struct ts_err *err);
/* The error message of a Neutron/Cinder error body, or def. */
const char *ts_compute_ext_msg(const json_t *body, const char *def);

/* Networking as Nova's neutron API does it. A VIF (element of instances.nw_info):
 * {port_id, network_id, network_name, mac, mtu, created, fixed_ips:[{subnet_id, ip_address}],
 *  ips:[{addr, version, type: fixed|floating}]}. */
/* API side: the requested networks (array / "auto" / "none" / NULL) checked and made concrete:
 * [{"uuid": net[, "fixed_ip"]} | {"port": id}]. 400/409 errors as Nova gives them. */
int ts_compute_net_resolve(const struct ts_service_env *env, const char *token, const char *project,
                           const json_t *requested, int64_t max_count, json_t **out, struct ts_err *err);
/* API side, a request before 2.37 without "networks": the one network the project may use
 * (its own non-shared ones and the shared ones) as [{"uuid"}], [] when there is none (no NIC);
 * 409 "Multiple possible networks found..." when several, 403 for an external network of
 * another project unless is_admin. */
int ts_compute_net_resolve_default(const struct ts_service_env *env, const char *token, const char *project,
                                   bool is_admin, json_t **out, struct ts_err *err);
/* Creates (or claims) one port for the instance and binds it to host. req: {"uuid"[, "fixed_ip"]} or
 * {"port"}. sg_names: the instance's security_groups ([{name}]) or NULL. *vif gets the VIF. */
int ts_compute_net_port_setup(const struct ts_service_env *env, const char *token, const json_t *inst,
                              const char *host, const json_t *req, json_t **vif, struct ts_err *err);
/* Deletes a port compute made (created) or unbinds a user's port. Service token. */
void ts_compute_net_port_release(const struct ts_service_env *env, const char *port_id, bool created);
/* Releases every port of the instance: those in nw_info with created deleted, the others unbound;
 * ports still naming the instance as device_id are found through the API too. */
void ts_compute_net_deallocate(const struct ts_service_env *env, const char *uuid, const json_t *nw_info);
/* Current VIFs from the network API (ports of device_id uuid, their floating IPs, network names);
 * created flags are kept from old. token NULL = service token. */
int ts_compute_net_refresh(const struct ts_service_env *env, const char *token, const char *uuid, const json_t *old,
                           json_t **out, struct ts_err *err);
/* Nova's "addresses" object from nw_info. */
json_t *ts_compute_net_addresses(const json_t *nw_info);
/* Security group name or id -> id (and its name, if name_out) visible to token; -TS_ENOTFOUND if none. */
int ts_compute_net_sg_id(const struct ts_service_env *env, const char *token, const char *name, char *out,
                         size_t cap, char *name_out, size_t name_cap, struct ts_err *err);

/* Block storage through Cinder's attachments API (3.44). */
/* Volume of the project (GET); *out the volume object. 404 -> -TS_ENOTFOUND. */
int ts_compute_vol_get(const struct ts_service_env *env, const char *token, const char *project, const char *vol_id,
                       json_t **out, struct ts_err *err);
/* POST /attachments without connector (volume reserved); *att_id (37 bytes). */
int ts_compute_vol_reserve(const struct ts_service_env *env, const char *token, const char *project,
                           const char *vol_id, const char *inst_uuid, char *att_id, struct ts_err *err);
/* PUT the connector (host) -> connection_info; then os-complete. *path gets the device path. */
int ts_compute_vol_connect(const struct ts_service_env *env, const char *token, const char *project,
                           const char *att_id, const char *host, char *path, size_t cap, char *format, size_t fcap,
                           struct ts_err *err);
int ts_compute_vol_complete(const struct ts_service_env *env, const char *token, const char *project,
                            const char *att_id, struct ts_err *err);
/* DELETE the attachment (token first, then the service token). */
int ts_compute_vol_unreserve(const struct ts_service_env *env, const char *token, const char *project,
                             const char *att_id, struct ts_err *err);
/* Creates a volume (from image_id when not NULL) and waits up to timeout_s for available. */
int ts_compute_vol_create_wait(const struct ts_service_env *env, const char *token, const char *project, int64_t size_gb,
                               const char *image_id, const char *name, int timeout_s, char *vol_id,
                               struct ts_err *err);
int ts_compute_vol_delete(const struct ts_service_env *env, const char *token, const char *project,
                          const char *vol_id, struct ts_err *err);
/* Releases the volumes of a deleted instance: attachments deleted, delete_on_termination volumes deleted. */
void ts_compute_vol_cleanup(const struct ts_service_env *env, const char *token, const json_t *inst);

/* ---- parts ---- */
int ts_compute_scheduler_start(struct ts_compute_svc *svc, struct ts_err *err);
/* The scheduler keeps its host table (inventory, service state, allocation sums) in memory.
 * Call ts_compute_sched_changed() after writing services, compute_nodes or allocations
 * (the next decision reloads the table); heartbeats and inventory reports of nova-compute
 * hosts go through ts_compute_sched_seen / ts_compute_sched_node instead. */
void ts_compute_sched_changed(void);
void ts_compute_sched_seen(const char *host, const char *zone, double when);
void ts_compute_sched_node(const char *host, int64_t vcpus, int64_t mem, int64_t disk);
int ts_compute_conductor_start(struct ts_compute_svc *svc, struct ts_err *err);
/* Report service liveness for non-agent binaries ("nova-scheduler", ...). */
void ts_compute_service_heartbeat(struct ts_db *db, const char *host, const char *binary, const char *topic,
                                  const char *zone);

/* ---- handlers ---- */
#define TS_COMPUTE_HANDLER(name) int ts_compute_h_##name(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
TS_COMPUTE_HANDLER(servers_create);
TS_COMPUTE_HANDLER(servers_list);
TS_COMPUTE_HANDLER(servers_detail);
TS_COMPUTE_HANDLER(servers_show);
TS_COMPUTE_HANDLER(servers_update);
TS_COMPUTE_HANDLER(servers_delete);
TS_COMPUTE_HANDLER(servers_action);
TS_COMPUTE_HANDLER(server_metadata_list);
TS_COMPUTE_HANDLER(server_password_show);
TS_COMPUTE_HANDLER(server_password_clear);
TS_COMPUTE_HANDLER(server_password_set);
TS_COMPUTE_HANDLER(server_metadata_set);
TS_COMPUTE_HANDLER(server_metadata_replace);
TS_COMPUTE_HANDLER(server_metadata_show);
TS_COMPUTE_HANDLER(server_metadata_put);
TS_COMPUTE_HANDLER(server_metadata_delete);
TS_COMPUTE_HANDLER(server_tags_list);
TS_COMPUTE_HANDLER(server_tags_replace);
TS_COMPUTE_HANDLER(server_tags_clear);
TS_COMPUTE_HANDLER(server_tag_check);
TS_COMPUTE_HANDLER(server_tag_add);
TS_COMPUTE_HANDLER(server_tag_delete);
TS_COMPUTE_HANDLER(server_actions_list);
TS_COMPUTE_HANDLER(server_action_show);
TS_COMPUTE_HANDLER(flavors_list);
TS_COMPUTE_HANDLER(flavors_detail);
TS_COMPUTE_HANDLER(flavors_show);
TS_COMPUTE_HANDLER(flavors_create);
TS_COMPUTE_HANDLER(flavors_update);
TS_COMPUTE_HANDLER(flavors_delete);
TS_COMPUTE_HANDLER(flavors_action);
TS_COMPUTE_HANDLER(flavor_access_list);
TS_COMPUTE_HANDLER(flavor_specs_list);
TS_COMPUTE_HANDLER(flavor_specs_create);
TS_COMPUTE_HANDLER(flavor_spec_show);
TS_COMPUTE_HANDLER(flavor_spec_put);
TS_COMPUTE_HANDLER(flavor_spec_delete);
TS_COMPUTE_HANDLER(keypairs_list);
TS_COMPUTE_HANDLER(keypairs_create);
TS_COMPUTE_HANDLER(keypairs_show);
TS_COMPUTE_HANDLER(keypairs_delete);
TS_COMPUTE_HANDLER(quotas_show);
TS_COMPUTE_HANDLER(quotas_detail);
TS_COMPUTE_HANDLER(quotas_defaults);
TS_COMPUTE_HANDLER(quotas_update);
TS_COMPUTE_HANDLER(quotas_delete);
TS_COMPUTE_HANDLER(quota_class_show);
TS_COMPUTE_HANDLER(limits);
TS_COMPUTE_HANDLER(services_list);
TS_COMPUTE_HANDLER(services_update);
TS_COMPUTE_HANDLER(services_legacy);
TS_COMPUTE_HANDLER(services_delete);
TS_COMPUTE_HANDLER(hypervisors_list);
TS_COMPUTE_HANDLER(hypervisors_detail);
TS_COMPUTE_HANDLER(hypervisors_show);
TS_COMPUTE_HANDLER(hypervisors_uptime);
TS_COMPUTE_HANDLER(hypervisors_stats);
TS_COMPUTE_HANDLER(hypervisors_search);
TS_COMPUTE_HANDLER(hypervisors_servers);
TS_COMPUTE_HANDLER(aggregates_list);
TS_COMPUTE_HANDLER(aggregates_create);
TS_COMPUTE_HANDLER(aggregates_show);
TS_COMPUTE_HANDLER(aggregates_update);
TS_COMPUTE_HANDLER(aggregates_delete);
TS_COMPUTE_HANDLER(aggregates_action);
TS_COMPUTE_HANDLER(migrations_list);
TS_COMPUTE_HANDLER(hosts_list);
TS_COMPUTE_HANDLER(hosts_show);
TS_COMPUTE_HANDLER(hosts_update);
TS_COMPUTE_HANDLER(hosts_power);
TS_COMPUTE_HANDLER(az_list);
TS_COMPUTE_HANDLER(az_detail);
TS_COMPUTE_HANDLER(usage_list);
TS_COMPUTE_HANDLER(usage_show);
TS_COMPUTE_HANDLER(groups_list);
TS_COMPUTE_HANDLER(groups_create);
TS_COMPUTE_HANDLER(groups_show);
TS_COMPUTE_HANDLER(groups_delete);
TS_COMPUTE_HANDLER(external_events);
TS_COMPUTE_HANDLER(sec_groups_list);
TS_COMPUTE_HANDLER(sec_group_show);
TS_COMPUTE_HANDLER(interfaces_list);
TS_COMPUTE_HANDLER(interface_show);
TS_COMPUTE_HANDLER(interface_create);
TS_COMPUTE_HANDLER(interface_delete);
TS_COMPUTE_HANDLER(vol_attachments_list);
TS_COMPUTE_HANDLER(vol_attachment_show);
TS_COMPUTE_HANDLER(vol_attachment_create);
TS_COMPUTE_HANDLER(vol_attachment_delete);

#endif
