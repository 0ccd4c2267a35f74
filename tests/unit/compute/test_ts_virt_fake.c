/*
 * test_ts_virt_fake.c: the fake virt driver: host_info from [fake], spawn/power
 * transitions with Nova's power states, wrong-state errors, console, snapshot file,
 * disks, list, and many threads spawning and destroying at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "compute/virt/ts_virt.h"

static struct ts_virt_driver *open_fake(struct ts_conf **conf)
{
    *conf = ts_conf_new();
    ts_conf_set(*conf, "fake", "vcpus", "8");
    const struct ts_virt_ops *ops = ts_virt_find("fake");
    assert_non_null(ops);
    struct ts_virt_driver *d = NULL;
    assert_int_equal(ops->open(*conf, "h1", &d, NULL), 0);
    return d;
}

static void inst_init(struct ts_virt_instance *vi, const char *uuid)
{
    memset(vi, 0, sizeof(*vi));
    snprintf(vi->uuid, sizeof(vi->uuid), "%s", uuid);
    snprintf(vi->name, sizeof(vi->name), "vm");
    vi->vcpus = 1;
    vi->memory_mb = 64;
}

static void test_lifecycle(void **state)
{
    (void)state;
    struct ts_conf *conf;
    const struct ts_virt_ops *ops = &ts_virt_fake_ops;
    struct ts_virt_driver *d = open_fake(&conf);
    struct ts_virt_host_info hi;
    assert_int_equal(ops->host_info(d, &hi, NULL), 0);
    assert_int_equal(hi.vcpus, 8);
    assert_int_equal(hi.memory_mb, 1048576);
    assert_string_equal(hi.hypervisor_type, "fake");

    struct ts_virt_instance vi;
    inst_init(&vi, "11111111-1111-1111-1111-111111111111");
    enum ts_power_state ps;
    struct ts_err err = {0};
    assert_int_equal(ops->power_state(d, &vi, &ps, &err), -TS_ENOTFOUND);
    assert_int_equal(ops->spawn(d, &vi, NULL), 0);
    assert_int_equal(ops->spawn(d, &vi, NULL), -TS_ECONFLICT);
    assert_int_equal(ops->power_state(d, &vi, &ps, NULL), 0);
    assert_int_equal(ps, TS_POWER_RUNNING);
    assert_int_equal(ops->pause(d, &vi, NULL), 0);
    ops->power_state(d, &vi, &ps, NULL);
    assert_int_equal(ps, TS_POWER_PAUSED);
    assert_int_equal(ops->pause(d, &vi, NULL), -TS_ECONFLICT);
    assert_int_equal(ops->unpause(d, &vi, NULL), 0);
    assert_int_equal(ops->suspend(d, &vi, NULL), 0);
    ops->power_state(d, &vi, &ps, NULL);
    assert_int_equal(ps, TS_POWER_SUSPENDED);
    assert_int_equal(ops->resume(d, &vi, NULL), 0);
    assert_int_equal(ops->power_off(d, &vi, 1, NULL), 0);
    ops->power_state(d, &vi, &ps, NULL);
    assert_int_equal(ps, TS_POWER_SHUTDOWN);
    assert_int_equal(ops->power_on(d, &vi, NULL), 0);
    assert_int_equal(ops->reboot(d, &vi, true, NULL), 0);

    char *out = NULL;
    size_t len = 0;
    assert_int_equal(ops->console_log(d, &vi, 13, &out, &len, NULL), 0);
    assert_int_equal(len, 13);
    assert_string_equal(out, "TINYVM READY\n");
    free(out);

    char path[] = "/tmp/ts-fake-snap-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    assert_int_equal(ops->snapshot(d, &vi, path, NULL), 0);
    assert_int_equal(access(path, R_OK), 0);
    unlink(path);

    struct ts_virt_disk disk = {0};
    snprintf(disk.id, sizeof(disk.id), "vol1");
    assert_int_equal(ops->attach_disk(d, &vi, &disk, NULL), 0);
    assert_string_equal(disk.dev, "vdb");
    assert_int_equal(ops->detach_disk(d, &vi, &disk, NULL), 0);

    char **uuids = NULL;
    int n = 0;
    assert_int_equal(ops->list(d, &uuids, &n, NULL), 0);
    assert_int_equal(n, 1);
    assert_string_equal(uuids[0], vi.uuid);
    free(uuids[0]);
    free(uuids);
    assert_int_equal(ops->destroy(d, &vi, NULL), 0);
    assert_int_equal(ops->destroy(d, &vi, NULL), 0);
    ops->close(d);
    ts_conf_free(conf);
}

static struct ts_virt_driver *shared;

static void *worker(void *arg)
{
    int base = (int)(intptr_t)arg;
    for (int i = 0; i < 200; i++) {
        struct ts_virt_instance vi;
        char uuid[40];
        snprintf(uuid, sizeof(uuid), "%08d-0000-0000-0000-%012d", base, i);
        inst_init(&vi, uuid);
        if (ts_virt_fake_ops.spawn(shared, &vi, NULL) != 0) return (void *)1;
        if (i % 2 && ts_virt_fake_ops.destroy(shared, &vi, NULL) != 0) return (void *)1;
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    struct ts_conf *conf;
    shared = open_fake(&conf);
    pthread_t t[8];
    for (int i = 0; i < 8; i++) pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
    for (int i = 0; i < 8; i++) {
        void *r;
        pthread_join(t[i], &r);
        assert_null(r);
    }
    char **uuids = NULL;
    int n = 0;
    ts_virt_fake_ops.list(shared, &uuids, &n, NULL);
    assert_int_equal(n, 8 * 100);
    for (int i = 0; i < n; i++) free(uuids[i]);
    free(uuids);
    ts_virt_fake_ops.close(shared);
    ts_conf_free(conf);
}

static void test_find(void **state)
{
    (void)state;
    assert_null(ts_virt_find("nope"));
    assert_null(ts_virt_find(NULL));
    assert_ptr_equal(ts_virt_find("fake"), &ts_virt_fake_ops);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lifecycle),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_find),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
