/*
 * test_virt_libvirt_xml.c: unit tests for the libvirt virt driver: the domain/disk/NIC XML it
 * generates (type='qemu', ACPI, serial log, disks, NICs, escaping), input validation, the
 * parsers of libvirt's live XML, the directory-permission check, and the driver's call
 * sequence against libvirt's in-process test:///default hypervisor (define, start, pause,
 * managed save, power off/on, reboot, snapshot, list, destroy). Hotplug is not supported by
 * test:///default; it is covered by tests/e2e/test_virt_libvirt.py on real QEMU.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "compute/virt/ts_virt.h"
#include "compute/virt/virt_libvirt_int.h"

/* libvirt keeps a few process-wide allocations (error tables, driver registry) for the life
 * of the process; they are not leaks of ours. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libvirt.so\nleak:libglib-2.0.so\nleak:libxml2.so\n";
}

#define UUID1 "6f1b8a40-2f4e-4c43-9b4a-1d2e3f405162"

static bool fake_tap_exists(const char *tap)
{
    return strcmp(tap, "tapexists0") == 0;
}

static void base_instance(struct ts_virt_instance *inst, const char *dir)
{
    memset(inst, 0, sizeof *inst);
    snprintf(inst->uuid, sizeof inst->uuid, "%s", UUID1);
    snprintf(inst->name, sizeof inst->name, "vm<1>&'\"");
    snprintf(inst->domain_name, sizeof inst->domain_name, "instance-0000000a");
    inst->vcpus = 1;
    inst->memory_mb = 256;
    inst->root_gb = 1;
    snprintf(inst->image_path, sizeof inst->image_path, "/var/lib/tinystack/_base/abc");
    snprintf(inst->image_format, sizeof inst->image_format, "qcow2");
    snprintf(inst->instance_dir, sizeof inst->instance_dir, "%s", dir);
}

static void add_disk(struct ts_virt_instance *inst, const char *id, const char *path, const char *fmt, const char *dev)
{
    struct ts_virt_disk *d = &inst->disks[inst->n_disks++];
    snprintf(d->id, sizeof d->id, "%s", id);
    snprintf(d->path, sizeof d->path, "%s", path);
    snprintf(d->format, sizeof d->format, "%s", fmt);
    snprintf(d->dev, sizeof d->dev, "%s", dev);
}

static void add_nic(struct ts_virt_instance *inst, const char *mac, const char *tap, const char *bridge, int mtu)
{
    struct ts_virt_nic *n = &inst->nics[inst->n_nics++];
    snprintf(n->mac, sizeof n->mac, "%s", mac);
    snprintf(n->tap, sizeof n->tap, "%s", tap);
    snprintf(n->bridge, sizeof n->bridge, "%s", bridge);
    n->mtu = mtu;
}

static const struct ts_virt_libvirt_xml_opts opts = {
    .virt_type = "qemu", .emulator = NULL, .cpu_model = NULL, .tap_exists = fake_tap_exists};

static void test_domain_xml_image(void **state)
{
    (void)state;
    struct ts_virt_instance inst;
    base_instance(&inst, "/var/lib/tinystack/instances/" UUID1);
    add_disk(&inst, "11111111-1111-4111-8111-111111111111", "/var/lib/tinystack/volumes/v1", "raw", "");
    add_disk(&inst, "22222222-2222-4222-8222-222222222222", "/var/lib/tinystack/volumes/v2", "qcow2", "vdd");
    add_disk(&inst, "33333333-3333-4333-8333-333333333333", "/var/lib/tinystack/volumes/v3", "", "");
    add_nic(&inst, "fa:16:3e:00:00:01", "tapexists0", "brq123", 1450);
    add_nic(&inst, "fa:16:3e:00:00:02", "tapnew0", "brq123", 0);
    add_nic(&inst, "fa:16:3e:00:00:03", "tapalone0", "", 0);
    char *xml = NULL;
    struct ts_err err = {0};
    assert_int_equal(ts_virt_libvirt_domain_xml(&inst, &opts, &xml, &err), 0);
    assert_non_null(xml);
    assert_non_null(strstr(xml, "<domain type='qemu'>"));
    assert_non_null(strstr(xml, "<name>instance-0000000a</name>"));
    assert_non_null(strstr(xml, "<uuid>" UUID1 "</uuid>"));
    assert_non_null(strstr(xml, "<ts:name>vm&lt;1&gt;&amp;&apos;&quot;</ts:name>"));
    assert_non_null(strstr(xml, "<memory unit='MiB'>256</memory>"));
    assert_non_null(strstr(xml, "<vcpu>1</vcpu>"));
    assert_non_null(strstr(xml, "<acpi/>"));
    assert_non_null(strstr(xml, "<cpu mode='custom' match='exact'>"));
    assert_non_null(strstr(xml, "<model fallback='allow'>qemu64</model>"));
    assert_non_null(strstr(xml, "<on_poweroff>destroy</on_poweroff>"));
    assert_non_null(strstr(xml, "<on_reboot>restart</on_reboot>"));
    assert_null(strstr(xml, "<graphics"));
    assert_non_null(strstr(xml, "<video>\n      <model type='none'/>"));
    /* serial console logged to the instance dir */
    assert_non_null(strstr(xml, "<serial type='pty'>\n      <log file='/var/lib/tinystack/instances/" UUID1
                                "/console.log' append='off'/>"));
    assert_non_null(strstr(xml, "<console type='pty'>"));
    /* root overlay as vda; volumes: next free vdb, given vdd, then vdc */
    assert_non_null(strstr(xml, "<driver name='qemu' type='qcow2'/>\n      <source file='/var/lib/tinystack/"
                                "instances/" UUID1 "/disk'/>\n      <target dev='vda' bus='virtio'/>"));
    assert_non_null(strstr(xml, "<driver name='qemu' type='raw'/>\n      <source file='/var/lib/tinystack/volumes/"
                                "v1'/>\n      <target dev='vdb' bus='virtio'/>\n      <serial>11111111-1111-4111-"
                                "8111-111111111111</serial>"));
    assert_non_null(strstr(xml, "volumes/v2'/>\n      <target dev='vdd' bus='virtio'/>"));
    assert_non_null(strstr(xml, "<driver name='qemu' type='raw'/>\n      <source file='/var/lib/tinystack/volumes/"
                                "v3'/>\n      <target dev='vdc' bus='virtio'/>"));
    /* NICs: existing tap -> ethernet unmanaged; otherwise bridge; neither -> ethernet */
    assert_non_null(strstr(xml, "<interface type='ethernet'>\n      <mac address='fa:16:3e:00:00:01'/>\n"
                                "      <target dev='tapexists0' managed='no'/>\n      <model type='virtio'/>\n"
                                "      <mtu size='1450'/>"));
    assert_non_null(strstr(xml, "<interface type='bridge'>\n      <mac address='fa:16:3e:00:00:02'/>\n"
                                "      <source bridge='brq123'/>\n      <target dev='tapnew0'/>"));
    assert_non_null(strstr(xml, "<mac address='fa:16:3e:00:00:03'/>\n      <target dev='tapalone0'/>"));
    /* libvirt's own RNG schema accepts it (virt-xml-validate from libvirt-clients) */
    if (access("/usr/bin/virt-xml-validate", X_OK) == 0) {
        char path[] = "/tmp/tsvirtxmlXXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, xml, strlen(xml)), (ssize_t)strlen(xml));
        close(fd);
        char cmd[128];
        snprintf(cmd, sizeof cmd, "/usr/bin/virt-xml-validate %s domain >/dev/null 2>&1", path);
        int st = system(cmd);
        unlink(path);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    free(xml);

    /* kvm */
    struct ts_virt_libvirt_xml_opts k = opts;
    k.virt_type = "kvm";
    k.emulator = "/usr/bin/qemu-system-x86_64";
    assert_int_equal(ts_virt_libvirt_domain_xml(&inst, &k, &xml, &err), 0);
    assert_non_null(strstr(xml, "<domain type='kvm'>"));
    assert_non_null(strstr(xml, "<emulator>/usr/bin/qemu-system-x86_64</emulator>"));
    free(xml);
}

static void test_domain_xml_volume_root(void **state)
{
    (void)state;
    struct ts_virt_instance inst;
    base_instance(&inst, "/tmp/inst");
    inst.image_path[0] = '\0';
    add_disk(&inst, "11111111-1111-4111-8111-111111111111", "/vols/root", "qcow2", "");
    add_disk(&inst, "22222222-2222-4222-8222-222222222222", "/vols/data", "raw", "");
    char *xml = NULL;
    assert_int_equal(ts_virt_libvirt_domain_xml(&inst, &opts, &xml, NULL), 0);
    assert_non_null(strstr(xml, "<source file='/vols/root'/>\n      <target dev='vda' bus='virtio'/>"));
    assert_non_null(strstr(xml, "<source file='/vols/data'/>\n      <target dev='vdb' bus='virtio'/>"));
    assert_null(strstr(xml, "/tmp/inst/disk"));
    assert_non_null(strstr(xml, "<log file='/tmp/inst/console.log' append='off'/>"));
    free(xml);

    char path[1024];
    const char *fmt;
    assert_int_equal(ts_virt_libvirt_root_disk(&inst, path, sizeof path, &fmt, NULL), 0);
    assert_string_equal(path, "/vols/root");
    assert_string_equal(fmt, "qcow2");
}

static void test_validation(void **state)
{
    (void)state;
    struct ts_virt_instance inst;
    struct ts_err err = {0};
    char *xml = NULL;
#define BAD(mutation)                                                                  \
    do {                                                                               \
        base_instance(&inst, "/tmp/inst");                                             \
        mutation;                                                                      \
        assert_int_equal(ts_virt_libvirt_domain_xml(&inst, &opts, &xml, &err), -TS_EINVAL); \
        assert_null(xml);                                                              \
    } while (0)
    BAD(snprintf(inst.uuid, sizeof inst.uuid, "not-a-uuid"));
    BAD(snprintf(inst.domain_name, sizeof inst.domain_name, "inst'ance"));
    BAD(snprintf(inst.domain_name, sizeof inst.domain_name, "a b"));
    BAD(inst.domain_name[0] = '\0');
    BAD(snprintf(inst.instance_dir, sizeof inst.instance_dir, "relative/dir"));
    BAD(snprintf(inst.instance_dir, sizeof inst.instance_dir, "/var/../etc"));
    BAD(snprintf(inst.instance_dir, sizeof inst.instance_dir, "/"));
    BAD(snprintf(inst.instance_dir, sizeof inst.instance_dir, "/tmp/a\nb"));
    BAD(inst.vcpus = 0);
    BAD(inst.memory_mb = 1);
    BAD(inst.root_gb = -1);
    BAD(snprintf(inst.image_format, sizeof inst.image_format, "vmdk"));
    BAD(snprintf(inst.image_path, sizeof inst.image_path, "base.img"));
    BAD(inst.image_path[0] = '\0'); /* no image, no volume */
    BAD(add_nic(&inst, "fa:16:3e:00:00:0g", "tap1", "", 0));
    BAD(add_nic(&inst, "fa:16:3e:00:00:01", "", "", 0));
    BAD(add_nic(&inst, "fa:16:3e:00:00:01", "tap'x", "", 0));
    BAD(add_nic(&inst, "fa:16:3e:00:00:01", "tap1", "br<1", 0));
    BAD((add_nic(&inst, "fa:16:3e:00:00:01", "tap1", "", 0), add_nic(&inst, "FA:16:3E:00:00:01", "tap2", "", 0)));
    BAD(add_disk(&inst, "v1", "/vols/../etc/shadow", "raw", ""));
    BAD(add_disk(&inst, "v1", "/vols/v1", "vmdk", ""));
    BAD(add_disk(&inst, "v1", "/vols/v1", "raw", "sda"));
    BAD(add_disk(&inst, "v1", "/vols/v1", "raw", "vda"));  /* vda is the root */
    BAD((add_disk(&inst, "v1", "/vols/v1", "raw", "vdc"), add_disk(&inst, "v2", "/vols/v2", "raw", "vdc")));
    BAD(inst.n_nics = 17);
    BAD(inst.n_disks = -1);
#undef BAD
    /* not NUL-terminated fields */
    base_instance(&inst, "/tmp/inst");
    memset(inst.domain_name, 'a', sizeof inst.domain_name);
    assert_int_equal(ts_virt_libvirt_check_instance(&inst, &err), -TS_EINVAL);
    base_instance(&inst, "/tmp/inst");
    memset(inst.image_path, 'a', sizeof inst.image_path);
    assert_int_equal(ts_virt_libvirt_check_instance(&inst, &err), -TS_EINVAL);
    assert_int_equal(ts_virt_libvirt_check_instance(NULL, &err), -TS_EINVAL);

    struct ts_virt_disk d = {0};
    snprintf(d.path, sizeof d.path, "/vols/v1");
    assert_int_equal(ts_virt_libvirt_disk_xml(&d, "sdb", &xml, NULL), -TS_EINVAL);
    assert_int_equal(ts_virt_libvirt_disk_xml(&d, "vdb", &xml, NULL), 0);
    assert_non_null(strstr(xml, "<target dev='vdb' bus='virtio'/>"));
    assert_null(strstr(xml, "<serial>"));
    free(xml);
    struct ts_virt_nic n = {0};
    snprintf(n.mac, sizeof n.mac, "fa:16:3e:aa:bb:cc");
    snprintf(n.tap, sizeof n.tap, "tapexists0");
    assert_int_equal(ts_virt_libvirt_nic_xml(&n, &opts, &xml, NULL), 0);
    assert_non_null(strstr(xml, "managed='no'"));
    free(xml);
}

static const char live_xml[] =
    "<domain type='qemu' id='3'>\n"
    "  <name>instance-0000000a</name>\n"
    "  <devices>\n"
    "    <disk type='file' device='disk'>\n"
    "      <driver name='qemu' type='qcow2'/>\n"
    "      <source file='/inst/disk' index='2'/>\n"
    "      <backingStore type='file' index='3'>\n"
    "        <format type='qcow2'/>\n"
    "        <source file='/base/img'/>\n"
    "      </backingStore>\n"
    "      <target dev='vda' bus='virtio'/>\n"
    "    </disk>\n"
    "    <disk type='file' device='disk'>\n"
    "      <driver name='qemu' type='raw'/>\n"
    "      <source file='/vols/a&amp;b' index='1'/>\n"
    "      <target dev='vdb' bus='virtio'/>\n"
    "    </disk>\n"
    "    <disk type='block' device='disk'>\n"
    "      <source dev='/dev/loop7'/>\n"
    "      <target dev='vdc' bus='virtio'/>\n"
    "    </disk>\n"
    "    <interface type='ethernet'>\n"
    "      <mac address='fa:16:3e:00:00:01'/>\n"
    "      <target dev='tap1' managed='no'/>\n"
    "    </interface>\n"
    "  </devices>\n"
    "</domain>\n";

static void test_live_xml_parsers(void **state)
{
    (void)state;
    char dev[8];
    assert_int_equal(ts_virt_libvirt_next_dev(live_xml, dev), 0);
    assert_string_equal(dev, "vdd");
    assert_int_equal(ts_virt_libvirt_next_dev("<domain/>", dev), 0);
    assert_string_equal(dev, "vdb");
    assert_int_equal(ts_virt_libvirt_find_disk(live_xml, NULL, "/vols/a&b", dev), 0);
    assert_string_equal(dev, "vdb");
    assert_int_equal(ts_virt_libvirt_find_disk(live_xml, NULL, "/dev/loop7", dev), 0);
    assert_string_equal(dev, "vdc");
    assert_int_equal(ts_virt_libvirt_find_disk(live_xml, NULL, "/inst/disk", dev), 0);
    assert_string_equal(dev, "vda");
    assert_int_equal(ts_virt_libvirt_find_disk(live_xml, NULL, "/base/img", dev), -TS_ENOTFOUND);
    assert_int_equal(ts_virt_libvirt_find_disk(live_xml, "vdc", NULL, dev), 0);
    assert_int_equal(ts_virt_libvirt_find_disk(live_xml, "vdz", NULL, dev), -TS_ENOTFOUND);
    assert_int_equal(ts_virt_libvirt_find_disk("<disk type='file'><target dev='vdb'", NULL, "/x", dev),
                     -TS_ENOTFOUND);
    assert_true(ts_virt_libvirt_has_mac(live_xml, "FA:16:3E:00:00:01"));
    assert_false(ts_virt_libvirt_has_mac(live_xml, "fa:16:3e:00:00:02"));
    assert_false(ts_virt_libvirt_has_mac("<interface type='x'><mac address='fa:16", "fa:16:3e:00:00:02"));

    /* all 25 volume slots in use */
    char big[8192] = "";
    for (char c = 'a'; c <= 'z'; c++) {
        char one[128];
        snprintf(one, sizeof one, "<disk type='file'><target dev='vd%c' bus='virtio'/></disk>\n", c);
        strcat(big, one);
    }
    assert_int_equal(ts_virt_libvirt_next_dev(big, dev), -TS_ECONFLICT);
}

static void test_traversable(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/tsvirtXXXXXX";
    assert_non_null(mkdtemp(tmpl));
    char sub[256], file[300], bad[512];
    snprintf(sub, sizeof sub, "%s/a", tmpl);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(file, sizeof file, "%s/disk", sub);
    chmod(tmpl, 0755);
    assert_false(ts_virt_libvirt_path_traversable(file, bad, sizeof bad));
    assert_string_equal(bad, sub);
    chmod(sub, 0755);
    assert_true(ts_virt_libvirt_path_traversable(file, bad, sizeof bad));
    assert_false(ts_virt_libvirt_path_traversable("relative", bad, sizeof bad));
    rmdir(sub);
    rmdir(tmpl);
}

/* ---------------------------------------------------------------- test:///default */

static int run(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool in_list(struct ts_virt_driver *drv, const char *uuid)
{
    char **uuids = NULL;
    int n = 0;
    assert_int_equal(ts_virt_libvirt_ops.list(drv, &uuids, &n, NULL), 0);
    bool found = false;
    for (int i = 0; i < n; i++) {
        if (strcmp(uuids[i], uuid) == 0) found = true;
        free(uuids[i]);
    }
    free(uuids);
    return found;
}

static enum ts_power_state pstate(struct ts_virt_driver *drv, const struct ts_virt_instance *inst)
{
    enum ts_power_state st = TS_POWER_NOSTATE;
    assert_int_equal(ts_virt_libvirt_ops.power_state(drv, inst, &st, NULL), 0);
    return st;
}

static void test_driver_test_uri(void **state)
{
    (void)state;
    const struct ts_virt_ops *ops = &ts_virt_libvirt_ops;
    char tmpl[] = "/tmp/tsvirtXXXXXX";
    assert_non_null(mkdtemp(tmpl));
    chmod(tmpl, 0755);
    char cmd[1024], base[512], insts[512], idir[600], snap[600];
    snprintf(base, sizeof base, "%s/base.qcow2", tmpl);
    snprintf(insts, sizeof insts, "%s/instances", tmpl);
    snprintf(idir, sizeof idir, "%s/%s", insts, UUID1);
    snprintf(snap, sizeof snap, "%s/snap.qcow2", tmpl);
    snprintf(cmd, sizeof cmd, "qemu-img create -q -f qcow2 %s 16M", base);
    assert_int_equal(run(cmd), 0);

    struct ts_conf *conf = ts_conf_new();
    ts_conf_set(conf, "libvirt", "connection_uri", "test:///default");
    ts_conf_set(conf, "libvirt", "detach_timeout", "1");
    ts_conf_set(conf, "compute", "instances_path", insts);
    struct ts_virt_driver *drv = NULL;
    struct ts_err err = {0};
    assert_int_equal(ops->open(conf, "host1", &drv, &err), 0);
    assert_non_null(drv);

    struct ts_virt_host_info hi;
    assert_int_equal(ops->host_info(drv, &hi, &err), 0);
    assert_string_equal(hi.hypervisor_type, "TEST");
    assert_true(hi.vcpus > 0);
    assert_true(hi.memory_mb > 0);
    assert_true(hi.local_gb >= 0);
    assert_non_null(strstr(hi.cpu_info, "\"topology\""));

    struct ts_virt_instance inst;
    base_instance(&inst, idir);
    snprintf(inst.image_path, sizeof inst.image_path, "%s", base);
    inst.image_format[0] = '\0'; /* detected from the header */
    enum ts_power_state st;
    assert_int_equal(ops->power_state(drv, &inst, &st, &err), -TS_ENOTFOUND);
    assert_false(in_list(drv, UUID1));

    assert_int_equal(ops->spawn(drv, &inst, &err), 0);
    char disk[700];
    snprintf(disk, sizeof disk, "%s/disk", idir);
    assert_int_equal(access(disk, F_OK), 0);
    snprintf(cmd, sizeof cmd, "qemu-img info %s | grep -q 'backing file: %s'", disk, base);
    assert_int_equal(run(cmd), 0);
    snprintf(cmd, sizeof cmd, "qemu-img info %s | grep -q 'virtual size: 1 GiB'", disk);
    assert_int_equal(run(cmd), 0);
    assert_true(in_list(drv, UUID1));
    assert_int_equal(pstate(drv, &inst), TS_POWER_RUNNING);
    assert_int_equal(ops->spawn(drv, &inst, &err), 0); /* already running: no-op */

    assert_int_equal(ops->pause(drv, &inst, &err), 0);
    assert_int_equal(pstate(drv, &inst), TS_POWER_PAUSED);
    assert_int_equal(ops->unpause(drv, &inst, &err), 0);
    assert_int_equal(pstate(drv, &inst), TS_POWER_RUNNING);

    assert_int_equal(ops->suspend(drv, &inst, &err), 0);
    assert_int_equal(pstate(drv, &inst), TS_POWER_SUSPENDED);
    assert_int_equal(ops->resume(drv, &inst, &err), 0);
    assert_int_equal(pstate(drv, &inst), TS_POWER_RUNNING);

    assert_int_equal(ops->power_off(drv, &inst, 5, &err), 0);
    assert_int_equal(pstate(drv, &inst), TS_POWER_SHUTDOWN);
    assert_int_equal(ops->power_off(drv, &inst, 0, &err), 0); /* already off */
    assert_int_equal(ops->power_on(drv, &inst, &err), 0);
    assert_int_equal(pstate(drv, &inst), TS_POWER_RUNNING);
    assert_int_equal(ops->power_off(drv, &inst, 0, &err), 0); /* hard */
    assert_int_equal(pstate(drv, &inst), TS_POWER_SHUTDOWN);
    assert_int_equal(ops->power_on(drv, &inst, &err), 0);

    assert_int_equal(ops->reboot(drv, &inst, false, &err), 0);
    assert_int_equal(pstate(drv, &inst), TS_POWER_RUNNING);
    assert_int_equal(ops->reboot(drv, &inst, true, &err), 0);
    assert_int_equal(pstate(drv, &inst), TS_POWER_RUNNING);

    /* console: missing file -> empty; then the tail */
    char *log = NULL;
    size_t len = 99;
    assert_int_equal(ops->console_log(drv, &inst, 1024, &log, &len, &err), 0);
    assert_int_equal(len, 0);
    assert_string_equal(log, "");
    free(log);
    char cpath[700];
    snprintf(cpath, sizeof cpath, "%s/console.log", idir);
    FILE *f = fopen(cpath, "w");
    assert_non_null(f);
    fputs("line1\nTINYVM READY uptime=3\n", f);
    fclose(f);
    chmod(cpath, 0600);
    assert_int_equal(ops->console_log(drv, &inst, 1024, &log, &len, &err), 0);
    assert_string_equal(log, "line1\nTINYVM READY uptime=3\n");
    free(log);
    assert_int_equal(ops->console_log(drv, &inst, 10, &log, &len, &err), 0);
    assert_int_equal(len, 10);
    assert_string_equal(log, " uptime=3\n");
    free(log);

    /* snapshot of the running guest: a standalone qcow2 (no backing file) */
    assert_int_equal(ops->snapshot(drv, &inst, snap, &err), 0);
    snprintf(cmd, sizeof cmd, "qemu-img info %s | grep -q 'file format: qcow2' && ! qemu-img info %s | grep -q "
                              "backing", snap, snap);
    assert_int_equal(run(cmd), 0);
    assert_int_equal(pstate(drv, &inst), TS_POWER_RUNNING); /* resumed */
    assert_int_equal(ops->snapshot(drv, &inst, "relative.qcow2", &err), -TS_EINVAL);

    /* test:///default cannot hot-plug: an error, not a crash */
    struct ts_virt_disk vol = {0};
    snprintf(vol.path, sizeof vol.path, "%s/vol1", tmpl);
    snprintf(vol.format, sizeof vol.format, "raw");
    assert_true(ops->attach_disk(drv, &inst, &vol, &err) < 0);
    assert_int_equal(ops->detach_disk(drv, &inst, &vol, &err), -TS_ENOTFOUND);
    struct ts_virt_nic nic = {0};
    snprintf(nic.mac, sizeof nic.mac, "fa:16:3e:01:02:03");
    snprintf(nic.bridge, sizeof nic.bridge, "brqtest");
    assert_int_equal(ops->detach_nic(drv, &inst, &nic, &err), -TS_ENOTFOUND);

    /* destroy: no domain, no files; twice is fine */
    assert_int_equal(ops->destroy(drv, &inst, &err), 0);
    assert_false(in_list(drv, UUID1));
    assert_int_not_equal(access(idir, F_OK), 0);
    assert_int_equal(ops->power_state(drv, &inst, &st, &err), -TS_ENOTFOUND);
    assert_int_equal(ops->destroy(drv, &inst, &err), 0);
    assert_int_equal(ops->power_on(drv, &inst, &err), -TS_ENOTFOUND);

    /* boot from volume: nothing is created in the instance dir but the dir itself */
    struct ts_virt_instance bfv;
    base_instance(&bfv, idir);
    bfv.image_path[0] = '\0';
    add_disk(&bfv, "11111111-1111-4111-8111-111111111111", "/nonexistent/vol", "raw", "");
    assert_int_equal(ops->spawn(drv, &bfv, &err), 0);
    assert_int_not_equal(access(disk, F_OK), 0);
    assert_int_equal(pstate(drv, &bfv), TS_POWER_RUNNING);
    assert_int_equal(ops->destroy(drv, &bfv, &err), 0);

    /* a qcow2 base with a backing file is refused */
    char evil[600];
    snprintf(evil, sizeof evil, "%s/evil.qcow2", tmpl);
    snprintf(cmd, sizeof cmd, "qemu-img create -q -f qcow2 -b %s -F qcow2 %s", base, evil);
    assert_int_equal(run(cmd), 0);
    snprintf(inst.image_path, sizeof inst.image_path, "%s", evil);
    snprintf(inst.image_format, sizeof inst.image_format, "qcow2");
    assert_int_equal(ops->spawn(drv, &inst, &err), -TS_EINVAL);
    assert_non_null(strstr(err.msg, "backing file"));
    assert_false(in_list(drv, UUID1));
    /* raw declared as qcow2 */
    snprintf(inst.image_path, sizeof inst.image_path, "%s/vol1", tmpl);
    f = fopen(inst.image_path, "w");
    assert_non_null(f);
    fputs("not an image", f);
    fclose(f);
    assert_int_equal(ops->spawn(drv, &inst, &err), -TS_EINVAL);
    assert_int_equal(ops->destroy(drv, &inst, &err), 0);

    ops->close(drv);
    ts_conf_free(conf);
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpl);
    assert_int_equal(run(cmd), 0);
}

/* Several agent threads share one driver: spawn, pause, power off and destroy their own guests
 * at the same time. */
struct thread_arg {
    struct ts_virt_driver *drv;
    char dir[256];
    int idx;
    int failures;
};

static void *worker(void *p)
{
    struct thread_arg *a = p;
    const struct ts_virt_ops *ops = &ts_virt_libvirt_ops;
    for (int round = 0; round < 5; round++) {
        struct ts_virt_instance inst;
        char idir[400];
        snprintf(idir, sizeof idir, "%s/t%d", a->dir, a->idx);
        base_instance(&inst, idir);
        snprintf(inst.uuid, sizeof inst.uuid, "6f1b8a40-2f4e-4c43-9b4a-1d2e3f4051%02d", a->idx);
        snprintf(inst.domain_name, sizeof inst.domain_name, "instance-t%02d", a->idx);
        inst.image_path[0] = '\0';
        add_disk(&inst, "", "/nonexistent/root", "raw", "");
        enum ts_power_state st;
        if (ops->spawn(a->drv, &inst, NULL) < 0) a->failures++;
        if (ops->pause(a->drv, &inst, NULL) < 0) a->failures++;
        if (ops->power_state(a->drv, &inst, &st, NULL) < 0 || st != TS_POWER_PAUSED) a->failures++;
        if (ops->power_off(a->drv, &inst, 0, NULL) < 0) a->failures++;
        if (ops->power_state(a->drv, &inst, &st, NULL) < 0 || st != TS_POWER_SHUTDOWN) a->failures++;
        if (ops->destroy(a->drv, &inst, NULL) < 0) a->failures++;
    }
    return NULL;
}

static void test_driver_threads(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/tsvirtXXXXXX";
    assert_non_null(mkdtemp(tmpl));
    struct ts_conf *conf = ts_conf_new();
    ts_conf_set(conf, "libvirt", "connection_uri", "test:///default");
    ts_conf_set(conf, "compute", "instances_path", tmpl);
    struct ts_virt_driver *drv = NULL;
    assert_int_equal(ts_virt_libvirt_ops.open(conf, "h", &drv, NULL), 0);
    enum { N = 4 };
    pthread_t th[N];
    struct thread_arg args[N];
    for (int i = 0; i < N; i++) {
        args[i] = (struct thread_arg){.drv = drv, .idx = i, .failures = 0};
        snprintf(args[i].dir, sizeof args[i].dir, "%s", tmpl);
        assert_int_equal(pthread_create(&th[i], NULL, worker, &args[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
    char **uuids = NULL;
    int n = -1;
    assert_int_equal(ts_virt_libvirt_ops.list(drv, &uuids, &n, NULL), 0);
    assert_int_equal(n, 0);
    free(uuids);
    ts_virt_libvirt_ops.close(drv);
    ts_conf_free(conf);
    assert_int_equal(rmdir(tmpl), 0);
}

static void test_open_errors(void **state)
{
    (void)state;
    struct ts_conf *conf = ts_conf_new();
    struct ts_virt_driver *drv = NULL;
    struct ts_err err = {0};
    ts_conf_set(conf, "libvirt", "connection_uri", "test:///default");
    ts_conf_set(conf, "libvirt", "virt_type", "xen");
    ts_conf_set(conf, "compute", "instances_path", "/tmp");
    assert_int_equal(ts_virt_libvirt_ops.open(conf, "h", &drv, &err), -TS_EINVAL);
    assert_null(drv);
    ts_conf_set(conf, "libvirt", "virt_type", "qemu");
    ts_conf_set(conf, "libvirt", "connection_uri", "test:///nonexistent/file.xml");
    assert_int_equal(ts_virt_libvirt_ops.open(conf, "h", &drv, &err), -TS_EUNAVAIL);
    assert_null(drv);
    /* kvm configured: accepted, and falls back to qemu when KVM does not work */
    ts_conf_set(conf, "libvirt", "connection_uri", "test:///default");
    ts_conf_set(conf, "libvirt", "virt_type", "kvm");
    assert_int_equal(ts_virt_libvirt_ops.open(conf, "h", &drv, &err), 0);
    ts_virt_libvirt_ops.close(drv);
    ts_virt_libvirt_ops.close(NULL);
    ts_conf_free(conf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_domain_xml_image),
        cmocka_unit_test(test_domain_xml_volume_root),
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_live_xml_parsers),
        cmocka_unit_test(test_traversable),
        cmocka_unit_test(test_driver_test_uri),
        cmocka_unit_test(test_driver_threads),
        cmocka_unit_test(test_open_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
