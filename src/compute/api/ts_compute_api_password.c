/*
 * ts_compute_api_password.c: the instance password, as Nova keeps it. The guest posts its
 * (encrypted, base64) password once to the metadata service; the network agent's metadata
 * proxy hands it to us here; the owner reads it with GET /servers/{id}/os-server-password
 * and clears it with DELETE. Stored like Nova's system_metadata: rows password_0..3 of at
 * most 255 characters each in instance_system_metadata.
 *
 * POST /servers/{id}/os-server-password {"password": "..."} is tinystack's internal call
 * for the metadata proxy (admin only; Nova's metadata service writes its DB directly):
 * 204 stored, 409 when one is already set, 400 when over 256 bytes.
 */
#include "compute/api/ts_compute_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/ts_json.h"

#define PW_CHUNKS 4
#define PW_CHUNK_LEN 255
#define PW_MAX 256 /* Nova's metadata password MAX_SIZE */

static int pw_load(struct ts_compute_svc *svc, const char *uuid, char **out, struct ts_err *err)
{
    struct ts_db_res *res = NULL;
    int rc = ts_db_exec(svc->db,
                        "SELECT value FROM instance_system_metadata WHERE instance_uuid = ? AND key IN "
                        "('password_0', 'password_1', 'password_2', 'password_3') ORDER BY key",
                        TS_DB_ARGS(TS_DB_S(uuid)), &res, err);
    if (rc) return rc;
    struct ts_buf b;
    ts_buf_init(&b, 4096);
    for (int i = 0; i < res->nrows; i++) {
        const char *v = ts_db_res_get(res, i, 0);
        if (v) ts_buf_appends(&b, v);
    }
    ts_buf_cstr(&b);
    *out = b.data ? ts_buf_steal(&b, NULL) : ts_strdup("");
    ts_db_res_free(res);
    return 0;
}

static int pw_begin(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err, bool write,
                    json_t **inst)
{
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    if (write && (rc = ts_compute_check_writer(req, err))) return rc;
    return ts_compute_inst_visible(req, req->svc, ts_http_param(req, "id"), inst, err);
}

TS_COMPUTE_HANDLER(server_password_show)
{
    json_t *inst = NULL;
    char *pw = NULL;
    int rc = pw_begin(req, resp, err, false, &inst);
    if (rc) return rc;
    rc = pw_load(req->svc, JS(inst, "uuid"), &pw, err);
    if (!rc) ts_http_resp_json(resp, 200, json_pack("{s:s}", "password", pw));
    free(pw);
    json_decref(inst);
    return rc;
}

TS_COMPUTE_HANDLER(server_password_clear)
{
    json_t *inst = NULL;
    int rc = pw_begin(req, resp, err, true, &inst);
    if (rc) return rc;
    struct ts_compute_svc *svc = req->svc;
    rc = ts_db_exec(svc->db, "DELETE FROM instance_system_metadata WHERE instance_uuid = ? AND key LIKE 'password_%'",
                    TS_DB_ARGS(TS_DB_S(JS(inst, "uuid"))), NULL, err);
    if (!rc) ts_http_resp_json(resp, 204, NULL);
    json_decref(inst);
    return rc;
}

TS_COMPUTE_HANDLER(server_password_set)
{
    struct ts_compute_svc *svc = req->svc;
    json_t *inst = NULL, *body = NULL;
    struct ts_db_conn *tx = NULL;
    struct ts_db_res *res = NULL;
    int rc = pw_begin(req, resp, err, false, &inst);
    if (rc) return rc;
    if ((rc = ts_compute_check_admin(req, err))) goto out;
    if ((rc = ts_http_json_body(req, &body, err))) goto out;
    const char *pw = ts_json_str(body, "password", NULL);
    if (!pw) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute password. 'password' is a required "
                        "property");
        goto out;
    }
    size_t len = strlen(pw);
    if (len > PW_MAX) {
        rc = ts_err_set(err, TS_EINVAL, "Request is too large.");
        goto out;
    }
    const char *uuid = JS(inst, "uuid");
    if ((rc = ts_db_begin(svc->db, &tx, err))) goto out;
    rc = ts_db_tx_exec(tx,
                       "SELECT 1 FROM instance_system_metadata WHERE instance_uuid = ? AND key LIKE 'password_%' "
                       "AND value IS NOT NULL AND value <> '' LIMIT 1",
                       TS_DB_ARGS(TS_DB_S(uuid)), &res, err);
    if (rc) goto out;
    if (res->nrows > 0) {
        rc = ts_err_set(err, TS_ECONFLICT, "Password already set.");
        goto out;
    }
    rc = ts_db_tx_exec(tx, "DELETE FROM instance_system_metadata WHERE instance_uuid = ? AND key LIKE 'password_%'",
                       TS_DB_ARGS(TS_DB_S(uuid)), NULL, err);
    for (int i = 0; !rc && i < PW_CHUNKS; i++) {
        char key[16], chunk[PW_CHUNK_LEN + 1] = "";
        size_t off = (size_t)i * PW_CHUNK_LEN;
        if (off < len) snprintf(chunk, sizeof(chunk), "%.*s", (int)(len - off < PW_CHUNK_LEN ? len - off : PW_CHUNK_LEN),
                                pw + off);
        snprintf(key, sizeof(key), "password_%d", i);
        rc = ts_db_tx_exec(tx, "INSERT INTO instance_system_metadata (instance_uuid, key, value) VALUES (?, ?, ?)",
                           TS_DB_ARGS(TS_DB_S(uuid), TS_DB_S(key), TS_DB_S(chunk)), NULL, err);
    }
    if (rc) goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (!rc) ts_http_resp_json(resp, 204, NULL);
out:
    if (tx) ts_db_rollback(tx);
    ts_db_res_free(res);
    json_decref(body);
    json_decref(inst);
    return rc;
}
