/*
 * test_ts_compute.c: compute helpers without a server: Nova's status mapping, service
 * liveness, quota defaults (and their conf overrides), and instance rows stored,
 * updated with a task_state guard, and destroyed in a real SQLite database; Nova's
 * "addresses" built from a VIF cache, and what a disabled network service means for
 * requested networks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "compute/ts_compute_int.h"

static void test_status(void **state)
{
    (void)state;
    assert_string_equal(ts_compute_status("building", "scheduling"), "BUILD");
    assert_string_equal(ts_compute_status("active", NULL), "ACTIVE");
    assert_string_equal(ts_compute_status("active", "rebooting"), "REBOOT");
    assert_string_equal(ts_compute_status("active", "rebooting_hard"), "HARD_REBOOT");
    assert_string_equal(ts_compute_status("active", "powering-off"), "ACTIVE");
    assert_string_equal(ts_compute_status("active", "resize_prep"), "RESIZE");
    assert_string_equal(ts_compute_status("stopped", NULL), "SHUTOFF");
    assert_string_equal(ts_compute_status("resized", NULL), "VERIFY_RESIZE");
    assert_string_equal(ts_compute_status("resized", "resize_reverting"), "REVERT_RESIZE");
    assert_string_equal(ts_compute_status("error", NULL), "ERROR");
    assert_string_equal(ts_compute_status("deleted", NULL), "DELETED");
    assert_string_equal(ts_compute_status(NULL, NULL), "UNKNOWN");
}

static void test_liveness_quota(void **state)
{
    (void)state;
    double now = ts_now();
    assert_true(ts_compute_is_up(now - 5, 60, false));
    assert_false(ts_compute_is_up(now - 61, 60, false));
    assert_false(ts_compute_is_up(now, 60, true));
    assert_false(ts_compute_is_up(0, 60, false));
    struct ts_conf *conf = ts_conf_new();
    assert_int_equal(ts_compute_quota_default(conf, "instances"), 10);
    assert_int_equal(ts_compute_quota_default(conf, "cores"), 20);
    assert_int_equal(ts_compute_quota_default(conf, "ram"), 51200);
    assert_int_equal(ts_compute_quota_default(conf, "metadata_items"), 128);
    ts_conf_set(conf, "compute", "quota_instances", "3");
    assert_int_equal(ts_compute_quota_default(conf, "instances"), 3);
    assert_int_equal(ts_compute_quota_default(conf, "nope"), -1);
    ts_conf_free(conf);
}

static void test_instance_name(void **state)
{
    (void)state;
    char out[64];
    ts_compute_instance_name(NULL, 10, out, sizeof(out));
    assert_string_equal(out, "instance-0000000a");
    struct ts_conf *conf = ts_conf_new();
    ts_conf_set(conf, "compute", "instance_name_template", "instance-ab12%04x");
    ts_compute_instance_name(conf, 0x1f, out, sizeof(out));
    assert_string_equal(out, "instance-ab12001f");
    ts_conf_set(conf, "compute", "instance_name_template", "vm-%d-100%%");
    ts_compute_instance_name(conf, 42, out, sizeof(out));
    assert_string_equal(out, "vm-42-100%");
    /* no conversion, two conversions, %s, absurd width or too long: the default */
    const char *bad[] = {"plain", "i-%x-%x", "i-%s", "i-%0999x", "i-%n", "%x-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ts_conf_set(conf, "compute", "instance_name_template", bad[i]);
        ts_compute_instance_name(conf, 10, out, sizeof(out));
        assert_string_equal(out, "instance-0000000a");
    }
    ts_conf_free(conf);
}

static void test_instance_rows(void **state)
{
    (void)state;
    struct ts_db *db = NULL;
    struct ts_err err = {0};
    assert_int_equal(ts_db_open("sqlite://:memory:", &db, &err), 0);
    assert_int_equal(ts_db_exec(db,
                                "CREATE TABLE instances (id INTEGER PRIMARY KEY AUTOINCREMENT, uuid TEXT UNIQUE, "
                                "project_id TEXT, user_id TEXT, display_name TEXT, description TEXT, hostname TEXT, "
                                "image_ref TEXT, flavor_id TEXT, flavor TEXT, old_flavor TEXT, vcpus BIGINT, "
                                "memory_mb BIGINT, root_gb BIGINT, vm_state TEXT, task_state TEXT, power_state BIGINT, "
                                "host TEXT, node TEXT, availability_zone TEXT, key_name TEXT, key_data TEXT, "
                                "user_data TEXT, config_drive TEXT, access_ip_v4 TEXT, access_ip_v6 TEXT, "
                                "reservation_id TEXT, launch_index BIGINT, locked BIGINT DEFAULT 0, locked_reason TEXT, "
                                "bdm TEXT, networks TEXT, security_groups TEXT, server_group TEXT, request_spec TEXT, "
                                "fault TEXT, created_at DOUBLE PRECISION, updated_at DOUBLE PRECISION, launched_at "
                                "DOUBLE PRECISION, terminated_at DOUBLE PRECISION, deleted BIGINT DEFAULT 0, deleted_at "
                                "DOUBLE PRECISION, old_vm_state TEXT, nw_info TEXT, migration TEXT)",
                                TS_DB_NOARGS, NULL, &err),
                     0);
    assert_int_equal(ts_db_exec(db, "CREATE TABLE allocations (consumer TEXT PRIMARY KEY, host TEXT)", TS_DB_NOARGS,
                                NULL, &err), 0);
    assert_int_equal(ts_db_exec(db, "CREATE TABLE instance_tags (instance_uuid TEXT, tag TEXT)", TS_DB_NOARGS, NULL,
                                &err), 0);
    assert_int_equal(ts_db_exec(db, "CREATE TABLE server_group_members (group_uuid TEXT, instance_uuid TEXT)",
                                TS_DB_NOARGS, NULL, &err), 0);
    const char *u = "22222222-2222-2222-2222-222222222222";
    assert_int_equal(ts_db_exec(db,
                                "INSERT INTO instances (uuid, project_id, user_id, vm_state, task_state, flavor, "
                                "created_at) VALUES (?, 'p', 'u', 'building', 'scheduling', '{\"vcpus\": 2}', 1.5)",
                                TS_DB_ARGS(TS_DB_S(u)), NULL, &err),
                     0);
    json_t *inst = NULL;
    assert_int_equal(ts_compute_inst_load(db, u, &inst, &err), 0);
    assert_string_equal(json_string_value(json_object_get(inst, "vm_state")), "building");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(inst, "flavor"), "vcpus")), 2);
    json_decref(inst);

    json_t *vals = json_pack("{s:s, s:n, s:s}", "vm_state", "active", "task_state", "host", "h1");
    assert_int_equal(ts_compute_inst_update(db, u, vals, "spawning", NULL, &err), -TS_ECONFLICT);
    assert_int_equal(ts_compute_inst_update(db, u, vals, "scheduling", &inst, &err), 0);
    json_decref(vals);
    assert_string_equal(json_string_value(json_object_get(inst, "host")), "h1");
    assert_true(json_is_null(json_object_get(inst, "task_state")));
    json_decref(inst);
    vals = json_pack("{s:s}", "uuid", "x");
    assert_int_equal(ts_compute_inst_update(db, u, vals, NULL, NULL, &err), -TS_EINVAL);
    json_decref(vals);

    assert_int_equal(ts_compute_inst_destroy(db, u, &err), 0);
    assert_int_equal(ts_compute_inst_load(db, u, &inst, &err), 0);
    assert_int_equal(json_integer_value(json_object_get(inst, "deleted")), 1);
    json_decref(inst);
    vals = json_pack("{s:s}", "vm_state", "active");
    assert_int_equal(ts_compute_inst_update(db, u, vals, NULL, NULL, &err), -TS_ENOTFOUND);
    json_decref(vals);
    assert_int_equal(ts_compute_inst_load(db, "nope", &inst, &err), -TS_ENOTFOUND);
    ts_db_close(db);
}

static void test_addresses_and_resolve(void **state)
{
    (void)state;
    json_t *nw = json_loads("[{\"port_id\": \"p1\", \"network_id\": \"n1\", \"network_name\": \"priv\", "
                            "\"mac\": \"fa:16:3e:00:00:01\", \"ips\": [{\"addr\": \"10.0.0.5\", \"version\": 4, "
                            "\"type\": \"fixed\"}, {\"addr\": \"172.24.4.9\", \"version\": 4, \"type\": "
                            "\"floating\"}]}, {\"port_id\": \"p2\", \"network_id\": \"n2\", \"ips\": []}]",
                            0, NULL);
    assert_non_null(nw);
    json_t *a = ts_compute_net_addresses(nw);
    json_t *priv = json_object_get(a, "priv");
    assert_int_equal(json_array_size(priv), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(priv, 1), "OS-EXT-IPS:type")), "floating");
    assert_string_equal(json_string_value(json_object_get(json_array_get(priv, 0), "OS-EXT-IPS-MAC:mac_addr")),
                        "fa:16:3e:00:00:01");
    /* a network without a name is keyed by its id, even with no addresses */
    assert_int_equal(json_array_size(json_object_get(a, "n2")), 0);
    assert_non_null(json_object_get(a, "n2"));
    json_decref(a);
    json_decref(nw);
    a = ts_compute_net_addresses(NULL);
    assert_int_equal(json_object_size(a), 0);
    json_decref(a);

    /* without a network service: none/absent are fine, a network or auto is a 400 */
    struct ts_conf *conf = ts_conf_new();
    ts_conf_set(conf, "DEFAULT", "enabled_services", "compute");
    struct ts_service_env env = {.conf = conf, .bind = "127.0.0.1"};
    struct ts_err err = {0};
    json_t *out = NULL;
    assert_int_equal(ts_compute_net_resolve(&env, "tok", "proj", NULL, 1, &out, &err), 0);
    assert_int_equal(json_array_size(out), 0);
    json_decref(out);
    json_t *none = json_string("none");
    assert_int_equal(ts_compute_net_resolve(&env, "tok", "proj", none, 1, &out, &err), 0);
    json_decref(out);
    json_decref(none);
    json_t *autoj = json_string("auto");
    assert_int_equal(ts_compute_net_resolve(&env, "tok", "proj", autoj, 1, &out, &err), -TS_EINVAL);
    assert_null(out);
    json_decref(autoj);
    json_t *bad = json_loads("[{\"uuid\": \"a;b\"}]", 0, NULL);
    assert_int_equal(ts_compute_net_resolve(&env, "tok", "proj", bad, 1, &out, &err), -TS_EINVAL);
    json_decref(bad);
    json_t *net = json_loads("[{\"uuid\": \"4b3d5a3c-0000-4000-8000-000000000000\"}]", 0, NULL);
    assert_int_equal(ts_compute_net_resolve(&env, "tok", "proj", net, 1, &out, &err), -TS_EINVAL);
    assert_non_null(strstr(err.msg, "could not be found"));
    json_decref(net);
    char buf[64];
    assert_null(ts_compute_ext_url(&env, "network", buf, sizeof(buf)));
    ts_conf_set(conf, "compute", "network_url", "http://10.0.0.1:9696/");
    assert_string_equal(ts_compute_ext_url(&env, "network", buf, sizeof(buf)), "http://10.0.0.1:9696");
    ts_conf_free(conf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_liveness_quota),
        cmocka_unit_test(test_instance_name),
        cmocka_unit_test(test_instance_rows),
        cmocka_unit_test(test_addresses_and_resolve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
