/*
 * ts_compute_api.h: what the compute-api files share: image service access, the server
 * view, visibility checks, quota messages. Not for other modules.
 */
#ifndef TS_COMPUTE_API_H
#define TS_COMPUTE_API_H

#include "compute/ts_compute_int.h"

#define JS(o, k) json_string_value(json_object_get((o), (k)))
#define JI(o, k) json_integer_value(json_object_get((o), (k)))

/* Base URL of the image service ([compute] image_url or [image] port), NULL if not enabled. */
const char *ts_compute_image_url(struct ts_compute_svc *svc, struct ts_pool *pool);
/* GET /v2/images/{id} with the caller's token; 400-style errors as Nova gives them. */
int ts_compute_image_get(struct ts_compute_svc *svc, struct ts_http_req *req, const char *image_id, json_t **out,
                         struct ts_err *err);
/* The bus context of a request: token, user, project, request id, image url. */
json_t *ts_compute_context(struct ts_http_req *req, struct ts_compute_svc *svc);
/* Loads an instance the caller may see (404 otherwise). */
int ts_compute_inst_visible(struct ts_http_req *req, struct ts_compute_svc *svc, const char *id, json_t **out,
                            struct ts_err *err);
/* Flavor snapshot for instances.flavor; 400 "Flavor X could not be found." */
int ts_compute_flavor_snapshot(struct ts_compute_svc *svc, struct ts_http_req *req, const char *flavor_ref,
                               json_t **out, struct ts_err *err);
json_t *ts_compute_server_view(struct ts_http_req *req, int mv, const json_t *inst, json_t *meta, json_t *tags,
                               const char *host_status);
json_t *ts_compute_host_statuses(struct ts_compute_svc *svc);
/* Renders {"server": view} of one instance with status. */
int ts_compute_show_one(struct ts_http_req *req, struct ts_http_resp *resp, int mv, const char *uuid, int status,
                        const char *admin_pass, struct ts_err *err);
/* The PUT (update) or rebuild response: before 2.75 Nova leaves out the extended attributes
 * (OS-EXT-*, OS-SRV-USG, AZ, config_drive, security_groups, volumes, host_status, key_name
 * until 2.54 for rebuild) and the address extensions; rebuild shows user_data from 2.57. */
int ts_compute_show_changed(struct ts_http_req *req, struct ts_http_resp *resp, int mv, const char *uuid, int status,
                            const char *admin_pass, bool rebuild, struct ts_err *err);
int ts_compute_check_metadata(const json_t *md, int64_t limit, struct ts_err *err);
int ts_compute_quota_error(struct ts_err *err, const char *res, int64_t req, int64_t used, int64_t lim);
bool ts_compute_host_up(struct ts_compute_svc *svc, const char *host);
void ts_compute_local_delete(struct ts_compute_svc *svc, const char *uuid);
/* Refreshes inst's nw_info from the network API (caller's token) when it has ports, and stores it. */
void ts_compute_refresh_nw(struct ts_http_req *req, struct ts_compute_svc *svc, json_t *inst);
/* Server actions of ts_compute_api_ext.c: addFloatingIp, removeFloatingIp, addSecurityGroup,
 * removeSecurityGroup. Returns 1 if name is not one of them. */
int ts_compute_ext_action(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_compute_svc *svc,
                          json_t *inst, const char *name, json_t *arg, struct ts_err *err);

#endif
