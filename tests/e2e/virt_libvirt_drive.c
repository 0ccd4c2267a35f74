/*
 * virt_libvirt_drive.c: a tiny command-line front end to the libvirt virt driver
 * (src/compute/virt/ts_virt_libvirt.c), used by tests/e2e/test_virt_libvirt.py to drive real
 * QEMU guests through the driver without the rest of the compute service. One call per process;
 * the guests' state lives in libvirtd. Built by the test itself:
 *   cc -Isrc src/core/(all .c) src/conf/(all .c) src/compute/virt/ts_virt_libvirt.c
 *      tests/e2e/virt_libvirt_drive.c $(pkg-config --cflags --libs libvirt uuid) -lpthread -lm
 * Usage: drive OP [--uri U] [--instances DIR] [--uuid U] [--domain N] [--name N] [--dir D]
 *              [--image P] [--format F] [--mem MB] [--vcpus N] [--root-gb G]
 *              [--disk PATH:FMT[:DEV]]... [--nic MAC:TAP:BRIDGE] [--out PATH] [--timeout S] [--bytes N]
 * OP: host_info spawn destroy power_off power_on reboot_soft reboot_hard pause unpause suspend resume
 *     power_state console snapshot attach_disk detach_disk attach_nic detach_nic list
 * Prints the result (power state number, device name, console text, uuids) on stdout; errors go
 * to stderr with exit status 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute/virt/ts_virt.h"

static void split_disk(const char *arg, struct ts_virt_disk *d)
{
    char buf[600];
    snprintf(buf, sizeof buf, "%s", arg);
    char *fmt = strchr(buf, ':');
    char *dev = NULL;
    if (fmt) {
        *fmt++ = '\0';
        dev = strchr(fmt, ':');
        if (dev) *dev++ = '\0';
    }
    snprintf(d->path, sizeof d->path, "%s", buf);
    snprintf(d->format, sizeof d->format, "%s", fmt ? fmt : "raw");
    snprintf(d->dev, sizeof d->dev, "%s", dev ? dev : "");
}

static void split_nic(const char *arg, struct ts_virt_nic *n)
{
    /* MAC has colons: the first 17 characters are the MAC */
    char buf[128];
    snprintf(buf, sizeof buf, "%s", arg);
    if (strlen(buf) < 17) return;
    memcpy(n->mac, buf, 17);
    n->mac[17] = '\0';
    char *rest = buf + 17;
    if (*rest == ':') rest++;
    char *br = strchr(rest, ':');
    if (br) *br++ = '\0';
    snprintf(n->tap, sizeof n->tap, "%s", rest);
    snprintf(n->bridge, sizeof n->bridge, "%s", br ? br : "");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s OP [options]\n", argv[0]);
        return 2;
    }
    const char *op = argv[1];
    const char *uri = "qemu:///system", *instances = "/var/lib/tinystack/instances", *out_path = NULL;
    int timeout = 30;
    size_t bytes = 65536;
    static struct ts_virt_instance inst;
    struct ts_virt_disk disk = {0};
    struct ts_virt_nic nic = {0};
    bool have_disk_arg = false;
    inst.vcpus = 1;
    inst.memory_mb = 256;
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--uri")) uri = v;
        else if (!strcmp(k, "--instances")) instances = v;
        else if (!strcmp(k, "--uuid")) snprintf(inst.uuid, sizeof inst.uuid, "%s", v);
        else if (!strcmp(k, "--domain")) snprintf(inst.domain_name, sizeof inst.domain_name, "%s", v);
        else if (!strcmp(k, "--name")) snprintf(inst.name, sizeof inst.name, "%s", v);
        else if (!strcmp(k, "--dir")) snprintf(inst.instance_dir, sizeof inst.instance_dir, "%s", v);
        else if (!strcmp(k, "--image")) snprintf(inst.image_path, sizeof inst.image_path, "%s", v);
        else if (!strcmp(k, "--format")) snprintf(inst.image_format, sizeof inst.image_format, "%s", v);
        else if (!strcmp(k, "--mem")) inst.memory_mb = atoi(v);
        else if (!strcmp(k, "--vcpus")) inst.vcpus = atoi(v);
        else if (!strcmp(k, "--root-gb")) inst.root_gb = atoi(v);
        else if (!strcmp(k, "--out")) out_path = v;
        else if (!strcmp(k, "--timeout")) timeout = atoi(v);
        else if (!strcmp(k, "--bytes")) bytes = (size_t)atol(v);
        else if (!strcmp(k, "--disk")) {
            /* for spawn: a boot volume list; for attach/detach: the one disk */
            if (inst.n_disks < TS_VIRT_MAX_DISKS) split_disk(v, &inst.disks[inst.n_disks++]);
            split_disk(v, &disk);
            have_disk_arg = true;
        } else if (!strcmp(k, "--nic")) {
            if (inst.n_nics < TS_VIRT_MAX_NICS) split_nic(v, &inst.nics[inst.n_nics++]);
            split_nic(v, &nic);
        } else {
            fprintf(stderr, "unknown option %s\n", k);
            return 2;
        }
    }
    if (!strcmp(op, "attach_disk") || !strcmp(op, "detach_disk")) {
        if (!have_disk_arg) {
            fprintf(stderr, "--disk needed\n");
            return 2;
        }
        inst.n_disks = 0;
    }
    if (!strcmp(op, "attach_nic") || !strcmp(op, "detach_nic")) inst.n_nics = 0;

    struct ts_conf *conf = ts_conf_new();
    ts_conf_set(conf, "libvirt", "connection_uri", uri);
    ts_conf_set(conf, "compute", "instances_path", instances);
    ts_log_set_level(TS_LOG_WARN);
    const struct ts_virt_ops *ops = &ts_virt_libvirt_ops;
    struct ts_virt_driver *drv = NULL;
    struct ts_err err = {0};
    int rc = ops->open(conf, "e2e", &drv, &err);
    if (rc < 0) goto out;

    if (!strcmp(op, "host_info")) {
        struct ts_virt_host_info hi;
        rc = ops->host_info(drv, &hi, &err);
        if (rc == 0)
            printf("{\"hypervisor_type\": \"%s\", \"hypervisor_version\": %lld, \"vcpus\": %d, \"memory_mb\": %lld, "
                   "\"local_gb\": %lld, \"cpu_info\": %s}\n",
                   hi.hypervisor_type, (long long)hi.hypervisor_version, hi.vcpus, (long long)hi.memory_mb,
                   (long long)hi.local_gb, hi.cpu_info);
    } else if (!strcmp(op, "spawn")) {
        rc = ops->spawn(drv, &inst, &err);
    } else if (!strcmp(op, "destroy")) {
        rc = ops->destroy(drv, &inst, &err);
    } else if (!strcmp(op, "power_off")) {
        rc = ops->power_off(drv, &inst, timeout, &err);
    } else if (!strcmp(op, "power_on")) {
        rc = ops->power_on(drv, &inst, &err);
    } else if (!strcmp(op, "reboot_soft")) {
        rc = ops->reboot(drv, &inst, false, &err);
    } else if (!strcmp(op, "reboot_hard")) {
        rc = ops->reboot(drv, &inst, true, &err);
    } else if (!strcmp(op, "pause")) {
        rc = ops->pause(drv, &inst, &err);
    } else if (!strcmp(op, "unpause")) {
        rc = ops->unpause(drv, &inst, &err);
    } else if (!strcmp(op, "suspend")) {
        rc = ops->suspend(drv, &inst, &err);
    } else if (!strcmp(op, "resume")) {
        rc = ops->resume(drv, &inst, &err);
    } else if (!strcmp(op, "power_state")) {
        enum ts_power_state st;
        rc = ops->power_state(drv, &inst, &st, &err);
        if (rc == 0) printf("%d\n", (int)st);
    } else if (!strcmp(op, "console")) {
        char *log = NULL;
        size_t len = 0;
        rc = ops->console_log(drv, &inst, bytes, &log, &len, &err);
        if (rc == 0) fwrite(log, 1, len, stdout);
        free(log);
    } else if (!strcmp(op, "snapshot")) {
        rc = out_path ? ops->snapshot(drv, &inst, out_path, &err) : ts_err_set(&err, TS_EINVAL, "--out needed");
    } else if (!strcmp(op, "attach_disk")) {
        rc = ops->attach_disk(drv, &inst, &disk, &err);
        if (rc == 0) printf("%s\n", disk.dev);
    } else if (!strcmp(op, "detach_disk")) {
        rc = ops->detach_disk(drv, &inst, &disk, &err);
    } else if (!strcmp(op, "attach_nic")) {
        rc = ops->attach_nic(drv, &inst, &nic, &err);
    } else if (!strcmp(op, "detach_nic")) {
        rc = ops->detach_nic(drv, &inst, &nic, &err);
    } else if (!strcmp(op, "list")) {
        char **uuids = NULL;
        int n = 0;
        rc = ops->list(drv, &uuids, &n, &err);
        for (int i = 0; i < n; i++) {
            printf("%s\n", uuids[i]);
            free(uuids[i]);
        }
        free(uuids);
    } else {
        rc = ts_err_set(&err, TS_EINVAL, "unknown op %s", op);
    }
out:
    if (rc < 0) fprintf(stderr, "%s: error %d: %s\n", op, -rc, err.msg);
    ops->close(drv);
    ts_conf_free(conf);
    return rc < 0 ? 1 : 0;
}
