/*
 * ts_virt_libvirt.c: the libvirt virt driver of the compute agent (Nova's LibvirtDriver, in
 * small). Guests are QEMU domains defined through the libvirt C API on [libvirt] connection_uri
 * (default qemu:///system): domain type 'qemu' (TCG) unless [libvirt] virt_type = kvm and KVM
 * really works, a qcow2 overlay "<instance_dir>/disk" on the cached base image (or a volume as
 * root), volumes as virtio disks, ports as tap/bridge NICs, the serial console logged to
 * "<instance_dir>/console.log". Disk images are handled with qemu-img, run by posix_spawn with an
 * argv (never a shell). One libvirt connection is shared by all threads (libvirt connections are
 * thread-safe); the mutex only guards (re)connecting. See docs/internals/virt-libvirt.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "compute/virt/ts_virt.h"
#include "compute/virt/virt_libvirt_int.h"
#include "compute/virt/ts_virt_libvirt_dl.h"

#define MOD "virt.libvirt"
#define XML_MAX (256 * 1024)
#define TS_XMLNS "https://tinystack.dev/xmlns/libvirt/instance/1.0"

extern char **environ;

struct ts_virt_driver {
    pthread_mutex_t lock; /* guards conn (reconnects) */
    virConnectPtr conn;
    char uri[256];
    char host[256];
    char virt_type[16];
    char emulator[256];
    char cpu_model[64];
    char qemu_img[256];
    char instances_path[512];
    int reboot_timeout_s;  /* soft reboot: wait this long for the guest to shut down */
    int detach_timeout_s;  /* hot-unplug: wait this long for the guest to release the device */
    bool check_perms;      /* warn when QEMU (libvirt-qemu) cannot traverse instance dirs */
};

/* ------------------------------------------------------------------ validation */

static bool name_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '_' || c == '.'))
            return false;
    }
    return true;
}

/* An absolute path without "..", control characters or a trailing NUL-less overflow. */
static bool path_ok(const char *p, size_t cap)
{
    size_t n = strnlen(p, cap);
    if (n == 0 || n >= cap || p[0] != '/') return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f) return false;
    if (strstr(p, "/../") || ts_endswith(p, "/..") || strstr(p, "/./") || ts_endswith(p, "/.")) return false;
    return true;
}

static bool mac_ok(const char *m)
{
    if (strlen(m) != 17) return false;
    for (int i = 0; i < 17; i++) {
        char c = m[i];
        if (i % 3 == 2) {
            if (c != ':') return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return true;
}

static bool dev_ok(const char *d)
{
    return strlen(d) == 3 && d[0] == 'v' && d[1] == 'd' && d[2] >= 'a' && d[2] <= 'z';
}

static bool fmt_ok(const char *f)
{
    return ts_streq(f, "raw") || ts_streq(f, "qcow2");
}

static int check_disk(const struct ts_virt_disk *d, int i, struct ts_err *err)
{
    if (strnlen(d->id, sizeof d->id) >= sizeof d->id || strnlen(d->dev, sizeof d->dev) >= sizeof d->dev ||
        strnlen(d->format, sizeof d->format) >= sizeof d->format)
        return ts_err_set(err, TS_EINVAL, "disk %d: field not terminated", i);
    if (!path_ok(d->path, sizeof d->path)) return ts_err_set(err, TS_EINVAL, "disk %d: bad path", i);
    if (d->format[0] && !fmt_ok(d->format))
        return ts_err_set(err, TS_EINVAL, "disk %d: format must be raw or qcow2", i);
    if (d->dev[0] && !dev_ok(d->dev)) return ts_err_set(err, TS_EINVAL, "disk %d: bad device name", i);
    if (d->id[0] && !name_ok(d->id, 36)) return ts_err_set(err, TS_EINVAL, "disk %d: bad volume id", i);
    return 0;
}

static int check_nic(const struct ts_virt_nic *n, int i, struct ts_err *err)
{
    if (strnlen(n->mac, sizeof n->mac) >= sizeof n->mac || strnlen(n->tap, sizeof n->tap) >= sizeof n->tap ||
        strnlen(n->bridge, sizeof n->bridge) >= sizeof n->bridge ||
        strnlen(n->port_id, sizeof n->port_id) >= sizeof n->port_id)
        return ts_err_set(err, TS_EINVAL, "nic %d: field not terminated", i);
    if (!mac_ok(n->mac)) return ts_err_set(err, TS_EINVAL, "nic %d: bad MAC address", i);
    if (n->tap[0] && !name_ok(n->tap, 15)) return ts_err_set(err, TS_EINVAL, "nic %d: bad tap name", i);
    if (n->bridge[0] && !name_ok(n->bridge, 15)) return ts_err_set(err, TS_EINVAL, "nic %d: bad bridge name", i);
    if (!n->tap[0] && !n->bridge[0]) return ts_err_set(err, TS_EINVAL, "nic %d: needs a tap or a bridge", i);
    if (n->mtu < 0 || n->mtu > 65535) return ts_err_set(err, TS_EINVAL, "nic %d: bad MTU", i);
    return 0;
}

int ts_virt_libvirt_check_instance(const struct ts_virt_instance *inst, struct ts_err *err)
{
    if (!inst) return ts_err_set(err, TS_EINVAL, "no instance");
    if (strnlen(inst->uuid, sizeof inst->uuid) >= sizeof inst->uuid || !ts_uuid_valid(inst->uuid))
        return ts_err_set(err, TS_EINVAL, "bad instance uuid");
    if (strnlen(inst->domain_name, sizeof inst->domain_name) >= sizeof inst->domain_name ||
        !name_ok(inst->domain_name, 63))
        return ts_err_set(err, TS_EINVAL, "bad domain name");
    if (strnlen(inst->name, sizeof inst->name) >= sizeof inst->name ||
        !ts_utf8_valid(inst->name, strlen(inst->name)))
        return ts_err_set(err, TS_EINVAL, "bad display name");
    if (!path_ok(inst->instance_dir, sizeof inst->instance_dir) || ts_streq(inst->instance_dir, "/"))
        return ts_err_set(err, TS_EINVAL, "bad instance_dir");
    if (inst->vcpus < 1 || inst->vcpus > 256) return ts_err_set(err, TS_EINVAL, "bad vcpus");
    if (inst->memory_mb < 16 || inst->memory_mb > 16 * 1024 * 1024) return ts_err_set(err, TS_EINVAL, "bad memory_mb");
    if (inst->root_gb < 0 || inst->root_gb > 65536) return ts_err_set(err, TS_EINVAL, "bad root_gb");
    if (strnlen(inst->image_path, sizeof inst->image_path) >= sizeof inst->image_path ||
        strnlen(inst->image_format, sizeof inst->image_format) >= sizeof inst->image_format)
        return ts_err_set(err, TS_EINVAL, "image field not terminated");
    if (inst->image_path[0]) {
        if (!path_ok(inst->image_path, sizeof inst->image_path)) return ts_err_set(err, TS_EINVAL, "bad image_path");
        if (inst->image_format[0] && !fmt_ok(inst->image_format))
            return ts_err_set(err, TS_EINVAL, "image_format must be qcow2 or raw");
    } else if (inst->n_disks < 1) {
        return ts_err_set(err, TS_EINVAL, "no image and no root volume");
    }
    if (inst->n_nics < 0 || inst->n_nics > TS_VIRT_MAX_NICS) return ts_err_set(err, TS_EINVAL, "bad n_nics");
    if (inst->n_disks < 0 || inst->n_disks > TS_VIRT_MAX_DISKS) return ts_err_set(err, TS_EINVAL, "bad n_disks");
    for (int i = 0; i < inst->n_disks; i++) {
        int rc = check_disk(&inst->disks[i], i, err);
        if (rc < 0) return rc;
    }
    for (int i = 0; i < inst->n_nics; i++) {
        int rc = check_nic(&inst->nics[i], i, err);
        if (rc < 0) return rc;
        for (int j = 0; j < i; j++)
            if (strcasecmp(inst->nics[j].mac, inst->nics[i].mac) == 0)
                return ts_err_set(err, TS_EINVAL, "nic %d: duplicate MAC address", i);
    }
    return 0;
}

/* Just what identifies the guest and its files (destroy and snapshot may get an instance
 * the agent rebuilt from little more than its uuid). */
static int check_ident(const struct ts_virt_instance *inst, struct ts_err *err)
{
    if (!inst) return ts_err_set(err, TS_EINVAL, "no instance");
    if (strnlen(inst->uuid, sizeof inst->uuid) >= sizeof inst->uuid || !ts_uuid_valid(inst->uuid))
        return ts_err_set(err, TS_EINVAL, "bad instance uuid");
    if (strnlen(inst->domain_name, sizeof inst->domain_name) >= sizeof inst->domain_name ||
        !name_ok(inst->domain_name, 63))
        return ts_err_set(err, TS_EINVAL, "bad domain name");
    if (!path_ok(inst->instance_dir, sizeof inst->instance_dir) || ts_streq(inst->instance_dir, "/"))
        return ts_err_set(err, TS_EINVAL, "bad instance_dir");
    if (strnlen(inst->image_path, sizeof inst->image_path) >= sizeof inst->image_path)
        return ts_err_set(err, TS_EINVAL, "bad image_path");
    if (inst->n_disks < 0 || inst->n_disks > TS_VIRT_MAX_DISKS) return ts_err_set(err, TS_EINVAL, "bad n_disks");
    if (!inst->image_path[0] && inst->n_disks > 0) return check_disk(&inst->disks[0], 0, err);
    return 0;
}

int ts_virt_libvirt_console_path(const struct ts_virt_instance *inst, char *out, size_t out_len)
{
    int n = snprintf(out, out_len, "%s/console.log", inst->instance_dir);
    return n < 0 || (size_t)n >= out_len ? -TS_EINVAL : 0;
}

static const char *disk_format(const struct ts_virt_disk *d)
{
    return d->format[0] ? d->format : "raw";
}

int ts_virt_libvirt_root_disk(const struct ts_virt_instance *inst, char *path, size_t path_len, const char **format,
                              struct ts_err *err)
{
    int n;
    if (inst->image_path[0]) {
        n = snprintf(path, path_len, "%s/disk", inst->instance_dir);
        *format = "qcow2";
    } else {
        if (inst->n_disks < 1) return ts_err_set(err, TS_EINVAL, "no root disk");
        n = snprintf(path, path_len, "%s", inst->disks[0].path);
        *format = disk_format(&inst->disks[0]);
    }
    if (n < 0 || (size_t)n >= path_len) return ts_err_set(err, TS_EINVAL, "root disk path too long");
    return 0;
}

/* ------------------------------------------------------------------ XML building */

/* A capped buffer that remembers its first error, so building code stays linear. */
struct xb {
    struct ts_buf b;
    int rc;
};

static void xb_raw(struct xb *x, const char *s)
{
    if (x->rc == 0) x->rc = ts_buf_appends(&x->b, s);
}

/* Appends s escaped for XML text and attribute values (single or double quoted). */
static void xb_esc(struct xb *x, const char *s)
{
    for (const char *p = s; *p && x->rc == 0; p++) {
        switch (*p) {
        case '&': xb_raw(x, "&amp;"); break;
        case '<': xb_raw(x, "&lt;"); break;
        case '>': xb_raw(x, "&gt;"); break;
        case '\'': xb_raw(x, "&apos;"); break;
        case '"': xb_raw(x, "&quot;"); break;
        default: x->rc = ts_buf_append(&x->b, p, 1);
        }
    }
}

/* printf-like with "%s" meaning "escaped string" and "%d" an int; nothing else. Keeps every
 * value that reaches the XML escaped. */
static void xb_fmt(struct xb *x, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    for (const char *p = fmt; *p && x->rc == 0; p++) {
        if (p[0] == '%' && p[1] == 's') {
            xb_esc(x, va_arg(ap, const char *));
            p++;
        } else if (p[0] == '%' && p[1] == 'd') {
            x->rc = ts_buf_printf(&x->b, "%d", va_arg(ap, int));
            p++;
        } else {
            x->rc = ts_buf_append(&x->b, p, 1);
        }
    }
    va_end(ap);
}

static int xb_finish(struct xb *x, char **out, struct ts_err *err)
{
    if (x->rc < 0) {
        ts_buf_free(&x->b);
        return ts_err_set(err, TS_EINVAL, "domain XML too large");
    }
    ts_buf_cstr(&x->b);
    *out = ts_buf_steal(&x->b, NULL);
    return 0;
}

static bool sys_tap_exists(const char *tap)
{
    char p[64];
    snprintf(p, sizeof p, "/sys/class/net/%s", tap);
    return access(p, F_OK) == 0;
}

static bool is_block_device(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISBLK(st.st_mode);
}

static void disk_elem(struct xb *x, const char *path, const char *format, const char *dev, const char *serial)
{
    bool blk = is_block_device(path);
    xb_fmt(x, "    <disk type='%s' device='disk'>\n", blk ? "block" : "file");
    xb_fmt(x, "      <driver name='qemu' type='%s'/>\n", format);
    xb_fmt(x, blk ? "      <source dev='%s'/>\n" : "      <source file='%s'/>\n", path);
    xb_fmt(x, "      <target dev='%s' bus='virtio'/>\n", dev);
    if (serial && serial[0]) xb_fmt(x, "      <serial>%s</serial>\n", serial);
    xb_raw(x, "    </disk>\n");
}

static void nic_elem(struct xb *x, const struct ts_virt_nic *n, const struct ts_virt_libvirt_xml_opts *opts)
{
    bool (*exists)(const char *) = opts && opts->tap_exists ? opts->tap_exists : sys_tap_exists;
    if (n->tap[0] && exists(n->tap)) {
        /* the network agent made and plugged the tap: QEMU just opens it */
        xb_raw(x, "    <interface type='ethernet'>\n");
        xb_fmt(x, "      <mac address='%s'/>\n", n->mac);
        xb_fmt(x, "      <target dev='%s' managed='no'/>\n", n->tap);
    } else if (n->bridge[0]) {
        /* libvirt makes the tap and enslaves it to the bridge */
        xb_raw(x, "    <interface type='bridge'>\n");
        xb_fmt(x, "      <mac address='%s'/>\n", n->mac);
        xb_fmt(x, "      <source bridge='%s'/>\n", n->bridge);
        if (n->tap[0]) xb_fmt(x, "      <target dev='%s'/>\n", n->tap);
    } else {
        /* no tap yet and no bridge: libvirt makes an unplugged tap with this name */
        xb_raw(x, "    <interface type='ethernet'>\n");
        xb_fmt(x, "      <mac address='%s'/>\n", n->mac);
        xb_fmt(x, "      <target dev='%s'/>\n", n->tap);
    }
    xb_raw(x, "      <model type='virtio'/>\n");
    if (n->mtu > 0) xb_fmt(x, "      <mtu size='%d'/>\n", n->mtu);
    xb_raw(x, "    </interface>\n");
}

int ts_virt_libvirt_domain_xml(const struct ts_virt_instance *inst, const struct ts_virt_libvirt_xml_opts *opts,
                               char **out, struct ts_err *err)
{
    *out = NULL;
    int rc = ts_virt_libvirt_check_instance(inst, err);
    if (rc < 0) return rc;
    const char *vtype = opts && opts->virt_type && opts->virt_type[0] ? opts->virt_type : "qemu";
    const char *cpu = opts && opts->cpu_model && opts->cpu_model[0] ? opts->cpu_model : "qemu64";
    char root[1024], console[1024];
    const char *root_fmt;
    rc = ts_virt_libvirt_root_disk(inst, root, sizeof root, &root_fmt, err);
    if (rc < 0) return rc;
    if (ts_virt_libvirt_console_path(inst, console, sizeof console) < 0)
        return ts_err_set(err, TS_EINVAL, "instance_dir too long");

    struct xb x = {.rc = 0};
    ts_buf_init(&x.b, XML_MAX);
    xb_fmt(&x, "<domain type='%s'>\n", vtype);
    xb_fmt(&x, "  <name>%s</name>\n  <uuid>%s</uuid>\n", inst->domain_name, inst->uuid);
    xb_raw(&x, "  <metadata>\n");
    xb_fmt(&x, "    <ts:instance xmlns:ts='%s'>\n", TS_XMLNS);
    xb_fmt(&x, "      <ts:name>%s</ts:name>\n", inst->name);
    xb_raw(&x, "    </ts:instance>\n  </metadata>\n");
    xb_fmt(&x, "  <memory unit='MiB'>%d</memory>\n", inst->memory_mb);
    xb_fmt(&x, "  <vcpu>%d</vcpu>\n", inst->vcpus);
    xb_raw(&x, "  <os>\n    <type arch='x86_64'>hvm</type>\n    <boot dev='hd'/>\n  </os>\n");
    xb_raw(&x, "  <features>\n    <acpi/>\n  </features>\n");
    if (ts_streq(vtype, "kvm"))
        xb_raw(&x, "  <cpu mode='host-model'/>\n");
    else
        xb_fmt(&x, "  <cpu mode='custom' match='exact'>\n    <model fallback='allow'>%s</model>\n  </cpu>\n", cpu);
    xb_raw(&x, "  <clock offset='utc'/>\n");
    xb_raw(&x, "  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>restart</on_reboot>\n"
               "  <on_crash>destroy</on_crash>\n");
    xb_raw(&x, "  <devices>\n");
    if (opts && opts->emulator && opts->emulator[0]) xb_fmt(&x, "    <emulator>%s</emulator>\n", opts->emulator);

    /* root is vda; volumes keep their dev or take the next free name */
    bool used[26] = {false};
    used[0] = true;
    int first_vol = inst->image_path[0] ? 0 : 1;
    if (!inst->image_path[0])
        disk_elem(&x, root, root_fmt, "vda", inst->disks[0].id);
    else
        disk_elem(&x, root, root_fmt, "vda", NULL);
    for (int i = first_vol; i < inst->n_disks; i++) {
        const char *d = inst->disks[i].dev;
        if (d[0]) {
            if (used[d[2] - 'a']) {
                ts_buf_free(&x.b);
                return ts_err_set(err, TS_EINVAL, "disk %d: device %s used twice", i, d);
            }
            used[d[2] - 'a'] = true;
        }
    }
    for (int i = first_vol; i < inst->n_disks; i++) {
        char dev[8];
        if (inst->disks[i].dev[0]) {
            snprintf(dev, sizeof dev, "%s", inst->disks[i].dev);
        } else {
            int k = 1;
            while (k < 26 && used[k]) k++;
            if (k == 26) {
                ts_buf_free(&x.b);
                return ts_err_set(err, TS_EINVAL, "too many disks");
            }
            used[k] = true;
            snprintf(dev, sizeof dev, "vd%c", 'a' + k);
        }
        disk_elem(&x, inst->disks[i].path, disk_format(&inst->disks[i]), dev, inst->disks[i].id);
    }
    for (int i = 0; i < inst->n_nics; i++) nic_elem(&x, &inst->nics[i], opts);
    /* Nova's console: a pty (virsh console works) whose output virtlogd copies to the file */
    xb_raw(&x, "    <serial type='pty'>\n");
    xb_fmt(&x, "      <log file='%s' append='off'/>\n", console);
    xb_raw(&x, "      <target port='0'/>\n    </serial>\n");
    xb_raw(&x, "    <console type='pty'>\n      <target type='serial' port='0'/>\n    </console>\n");
    xb_raw(&x, "    <video>\n      <model type='none'/>\n    </video>\n");
    xb_raw(&x, "    <memballoon model='virtio'/>\n");
    /* entropy: under TCG the guest's random pool fills slowly (sshd waits on it) */
    xb_raw(&x, "    <rng model='virtio'>\n      <backend model='random'>/dev/urandom</backend>\n    </rng>\n");
    xb_raw(&x, "  </devices>\n</domain>\n");
    return xb_finish(&x, out, err);
}

int ts_virt_libvirt_disk_xml(const struct ts_virt_disk *disk, const char *dev, char **out, struct ts_err *err)
{
    *out = NULL;
    int rc = check_disk(disk, 0, err);
    if (rc < 0) return rc;
    if (!dev || !dev_ok(dev)) return ts_err_set(err, TS_EINVAL, "bad device name");
    struct xb x = {.rc = 0};
    ts_buf_init(&x.b, XML_MAX);
    disk_elem(&x, disk->path, disk_format(disk), dev, disk->id);
    return xb_finish(&x, out, err);
}

int ts_virt_libvirt_nic_xml(const struct ts_virt_nic *nic, const struct ts_virt_libvirt_xml_opts *opts, char **out,
                            struct ts_err *err)
{
    *out = NULL;
    int rc = check_nic(nic, 0, err);
    if (rc < 0) return rc;
    struct xb x = {.rc = 0};
    ts_buf_init(&x.b, XML_MAX);
    nic_elem(&x, nic, opts);
    return xb_finish(&x, out, err);
}

/* ------------------------------------------------------------------ parsing libvirt's XML */
/* libvirt formats its XML itself (single-quoted attributes, one element per line), so a
 * scanner over <disk>...</disk> blocks is enough; values are compared in escaped form. */

/* Copies the value of attr='...' found in [s, end) into out; false if absent. */
static bool attr_in(const char *s, const char *end, const char *elem, const char *attr, char *out, size_t out_len)
{
    char pat[64];
    snprintf(pat, sizeof pat, "<%s ", elem);
    size_t alen = strlen(attr);
    for (const char *p = s; p < end && (p = strstr(p, pat)) && p < end; p++) {
        const char *gt = strchr(p, '>');
        if (!gt || gt > end) return false;
        for (const char *a = p + strlen(pat); a < gt; a++) {
            if (a[-1] != ' ' || strncmp(a, attr, alen) != 0 || a[alen] != '=') continue;
            char q = a[alen + 1];
            if (q != '\'' && q != '"') continue;
            const char *v = a + alen + 2;
            const char *ve = memchr(v, q, (size_t)(gt - v));
            if (!ve) return false;
            size_t n = (size_t)(ve - v);
            if (n >= out_len) return false;
            memcpy(out, v, n);
            out[n] = '\0';
            return true;
        }
    }
    return false;
}

static char *xml_escaped(const char *s)
{
    struct xb x = {.rc = 0};
    ts_buf_init(&x.b, 8192);
    xb_esc(&x, s);
    if (x.rc < 0) {
        ts_buf_free(&x.b);
        return NULL;
    }
    ts_buf_cstr(&x.b);
    return ts_buf_steal(&x.b, NULL);
}

/* Calls fn for each <disk ...>...</disk> block; stops when fn returns true. */
static bool each_disk(const char *xml, bool (*fn)(const char *s, const char *e, void *arg), void *arg)
{
    const char *p = xml;
    while ((p = strstr(p, "<disk ")) != NULL) {
        const char *e = strstr(p, "</disk>");
        if (!e) break;
        if (fn(p, e, arg)) return true;
        p = e;
    }
    return false;
}

static bool mark_used(const char *s, const char *e, void *arg)
{
    bool *used = arg;
    char dev[16];
    if (attr_in(s, e, "target", "dev", dev, sizeof dev) && dev_ok(dev)) used[dev[2] - 'a'] = true;
    return false;
}

int ts_virt_libvirt_next_dev(const char *domain_xml, char out[8])
{
    bool used[26] = {false};
    used[0] = true; /* vda is the root disk */
    each_disk(domain_xml, mark_used, used);
    for (int k = 1; k < 26; k++) {
        if (!used[k]) {
            snprintf(out, 8, "vd%c", 'a' + k);
            return 0;
        }
    }
    return -TS_ECONFLICT;
}

struct find_arg {
    const char *dev;
    const char *path_esc;
    char *out;
};

static bool match_disk(const char *s, const char *e, void *arg)
{
    struct find_arg *f = arg;
    char dev[16], src[2048];
    if (!attr_in(s, e, "target", "dev", dev, sizeof dev)) return false;
    bool hit;
    if (f->dev && f->dev[0]) {
        hit = ts_streq(dev, f->dev);
    } else {
        hit = f->path_esc && ((attr_in(s, e, "source", "file", src, sizeof src) && ts_streq(src, f->path_esc)) ||
                              (attr_in(s, e, "source", "dev", src, sizeof src) && ts_streq(src, f->path_esc)));
    }
    if (hit) snprintf(f->out, 8, "%.7s", dev);
    return hit;
}

int ts_virt_libvirt_find_disk(const char *domain_xml, const char *dev, const char *path, char out[8])
{
    char *esc = path ? xml_escaped(path) : NULL;
    struct find_arg f = {.dev = dev, .path_esc = esc, .out = out};
    bool hit = each_disk(domain_xml, match_disk, &f);
    free(esc);
    return hit ? 0 : -TS_ENOTFOUND;
}

bool ts_virt_libvirt_has_mac(const char *domain_xml, const char *mac)
{
    const char *p = domain_xml;
    while ((p = strstr(p, "<interface ")) != NULL) {
        const char *e = strstr(p, "</interface>");
        if (!e) break;
        char m[32];
        if (attr_in(p, e, "mac", "address", m, sizeof m) && strcasecmp(m, mac) == 0) return true;
        p = e;
    }
    return false;
}

bool ts_virt_libvirt_path_traversable(const char *path, char *bad, size_t bad_len)
{
    char buf[PATH_MAX];
    if (!path || path[0] != '/' || strlen(path) >= sizeof buf) {
        if (bad) snprintf(bad, bad_len, "%s", path ? path : "");
        return false;
    }
    snprintf(buf, sizeof buf, "%s", path);
    char *slash = strrchr(buf, '/');
    /* check path's directory and each of its ancestors */
    for (;;) {
        if (slash == buf) {
            buf[1] = '\0';
        } else {
            *slash = '\0';
        }
        struct stat st;
        if (stat(buf, &st) < 0 || !S_ISDIR(st.st_mode) || !(st.st_mode & S_IXOTH)) {
            if (bad) snprintf(bad, bad_len, "%s", buf);
            return false;
        }
        if (slash == buf) return true;
        slash = strrchr(buf, '/');
    }
}

/* ------------------------------------------------------------------ libvirt plumbing */

static void quiet_errors(void *ud, virErrorPtr e)
{
    (void)ud;
    (void)e;
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void global_init(void)
{
    virInitialize();
    virSetErrorFunc(NULL, quiet_errors);
}

/* Fills err from libvirt's last error of this thread. */
static int lv_err(struct ts_err *err, const char *what)
{
    virErrorPtr e = virGetLastError();
    int code = TS_EIO;
    const char *msg = e && e->message ? e->message : "unknown libvirt error";
    if (e) {
        switch (e->code) {
        case VIR_ERR_NO_DOMAIN: code = TS_ENOTFOUND; break;
        case VIR_ERR_OPERATION_INVALID: code = TS_ECONFLICT; break;
        case VIR_ERR_OPERATION_TIMEOUT: code = TS_ETIMEDOUT; break;
        case VIR_ERR_NO_SUPPORT:
        case VIR_ERR_OPERATION_UNSUPPORTED: code = TS_ENOTIMPL; break;
        case VIR_ERR_NO_CONNECT: code = TS_EUNAVAIL; break;
        case VIR_ERR_INVALID_ARG:
        case VIR_ERR_XML_ERROR:
        case VIR_ERR_XML_DETAIL:
        case VIR_ERR_CONFIG_UNSUPPORTED: code = TS_EINVAL; break;
        default: break;
        }
    }
    int rc = ts_err_set(err, code, "%s: %s", what, msg);
    virResetLastError();
    return rc;
}

/* A referenced connection for one call (virConnectClose it after); reconnects when the
 * shared one died (libvirtd restarted). */
static virConnectPtr get_conn(struct ts_virt_driver *drv, struct ts_err *err)
{
    virConnectPtr c = NULL;
    pthread_mutex_lock(&drv->lock);
    if (drv->conn && virConnectIsAlive(drv->conn) != 1) {
        ts_warn(MOD, "connection to %s lost, reconnecting", drv->uri);
        virConnectClose(drv->conn);
        drv->conn = NULL;
    }
    if (!drv->conn) {
        drv->conn = virConnectOpen(drv->uri);
        if (!drv->conn) {
            virErrorPtr e = virGetLastError();
            ts_err_set(err, TS_EUNAVAIL, "cannot connect to libvirt at %s: %s", drv->uri,
                       e && e->message ? e->message : "unknown error");
            virResetLastError();
            goto out;
        }
    }
    if (virConnectRef(drv->conn) == 0) c = drv->conn;
out:
    pthread_mutex_unlock(&drv->lock);
    return c;
}

/* The domain of inst, by UUID, else by name. NULL + -TS_ENOTFOUND in err when undefined. */
static virDomainPtr get_dom(virConnectPtr c, const struct ts_virt_instance *inst, struct ts_err *err)
{
    virDomainPtr d = virDomainLookupByUUIDString(c, inst->uuid);
    if (!d) {
        virResetLastError();
        d = virDomainLookupByName(c, inst->domain_name);
    }
    if (!d) {
        virResetLastError();
        ts_err_set(err, TS_ENOTFOUND, "domain %s (%s) is not defined", inst->domain_name, inst->uuid);
    }
    return d;
}

static int dom_state(virDomainPtr d)
{
    int st = VIR_DOMAIN_NOSTATE, reason = 0;
    if (virDomainGetState(d, &st, &reason, 0) < 0) {
        virResetLastError();
        return -1;
    }
    return st;
}

static bool dom_active(virDomainPtr d)
{
    int a = virDomainIsActive(d);
    if (a < 0) virResetLastError();
    return a == 1;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits up to timeout_s for the domain to be shut off; true if it is. ACPI shutdown is
 * re-sent every 5 s while waiting when resend is set (a guest that was still booting may have
 * missed the first power-button press). */
static bool wait_shutoff(virDomainPtr d, int timeout_s, bool resend)
{
    double end = ts_mono() + timeout_s, next = ts_mono() + 5;
    for (;;) {
        if (!dom_active(d)) return true;
        if (ts_mono() >= end) return false;
        if (resend && ts_mono() >= next) {
            if (virDomainShutdown(d) < 0) virResetLastError();
            next = ts_mono() + 5;
        }
        sleep_ms(100);
    }
}

/* ------------------------------------------------------------------ qemu-img */

/* Runs argv (argv[0] looked up in PATH) and waits. On failure err gets the first line(s) of
 * the program's stderr. */
static int run_prog(char *const argv[], struct ts_err *err)
{
    int rc = -TS_EIO;
    int pipefd[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    bool fa_init = false;
    pid_t pid = -1;
    char msg[1024];
    size_t mlen = 0;

    if (pipe2(pipefd, O_CLOEXEC) < 0) return ts_err_set(err, TS_EIO, "pipe: %s", strerror(errno));
    if (posix_spawn_file_actions_init(&fa) != 0) goto out;
    fa_init = true;
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
    int e = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    if (e != 0) {
        rc = ts_err_set(err, TS_EIO, "cannot run %s: %s", argv[0], strerror(e));
        goto out;
    }
    close(pipefd[1]);
    pipefd[1] = -1;
    for (;;) {
        char tmp[512];
        ssize_t n = read(pipefd[0], tmp, sizeof tmp);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        size_t take = (size_t)n;
        if (take > sizeof msg - 1 - mlen) take = sizeof msg - 1 - mlen;
        memcpy(msg + mlen, tmp, take);
        mlen += take;
    }
    msg[mlen] = '\0';
    while (mlen > 0 && (msg[mlen - 1] == '\n' || msg[mlen - 1] == '\r')) msg[--mlen] = '\0';
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            rc = ts_err_set(err, TS_EIO, "waitpid: %s", strerror(errno));
            goto out;
        }
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        rc = 0;
    } else {
        rc = ts_err_set(err, TS_EIO, "%s %s failed (status %d): %s", argv[0], argv[1] ? argv[1] : "",
                        WIFEXITED(status) ? WEXITSTATUS(status) : -1, mlen ? msg : "no message");
    }
out:
    if (fa_init) posix_spawn_file_actions_destroy(&fa);
    if (pipefd[0] >= 0) close(pipefd[0]);
    if (pipefd[1] >= 0) close(pipefd[1]);
    return rc;
}

/* Reads the image's first bytes: detects the format when fmt is empty, and refuses a qcow2
 * base that names a backing file or an external data file (it would make QEMU open host
 * files the image's uploader chose). */
static int inspect_base(const char *path, const char *fmt_in, char fmt_out[8], struct ts_err *err)
{
    unsigned char h[104];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ts_err_set(err, errno == ENOENT ? TS_ENOTFOUND : TS_EIO, "image %s: %s", path, strerror(errno));
    ssize_t n = pread(fd, h, sizeof h, 0);
    close(fd);
    bool is_qcow2 = n >= 72 && h[0] == 'Q' && h[1] == 'F' && h[2] == 'I' && h[3] == 0xfb;
    const char *fmt = fmt_in && fmt_in[0] ? fmt_in : (is_qcow2 ? "qcow2" : "raw");
    if (ts_streq(fmt, "qcow2")) {
        if (!is_qcow2) return ts_err_set(err, TS_EINVAL, "image %s is not qcow2", path);
        uint64_t backing = 0;
        for (int i = 8; i < 16; i++) backing = backing << 8 | h[i];
        if (backing != 0) return ts_err_set(err, TS_EINVAL, "image %s has a backing file: refused", path);
        uint32_t version = (uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 | (uint32_t)h[6] << 8 | h[7];
        if (version >= 3 && n >= 80) {
            /* incompatible feature bit 2: external data file */
            if (h[79] & 0x04) return ts_err_set(err, TS_EINVAL, "image %s has an external data file: refused", path);
        }
    }
    snprintf(fmt_out, 8, "%s", fmt);
    return 0;
}

static int make_overlay(struct ts_virt_driver *drv, const struct ts_virt_instance *inst, const char *disk,
                        struct ts_err *err)
{
    char fmt[8], size[32];
    int rc = inspect_base(inst->image_path, inst->image_format, fmt, err);
    if (rc < 0) return rc;
    struct stat st;
    if (stat(inst->image_path, &st) == 0 && !(st.st_mode & S_IROTH))
        ts_warn(MOD, "base image %s is not world-readable (mode %o): QEMU may not open it", inst->image_path,
                (unsigned)(st.st_mode & 07777));
    char *argv[12];
    int a = 0;
    argv[a++] = drv->qemu_img;
    argv[a++] = "create";
    argv[a++] = "-q";
    argv[a++] = "-f";
    argv[a++] = "qcow2";
    argv[a++] = "-b";
    argv[a++] = (char *)inst->image_path;
    argv[a++] = "-F";
    argv[a++] = fmt;
    argv[a++] = (char *)disk;
    if (inst->root_gb > 0) {
        snprintf(size, sizeof size, "%dG", inst->root_gb);
        argv[a++] = size;
    }
    argv[a] = NULL;
    rc = run_prog(argv, err);
    if (rc == 0) chmod(disk, 0644);
    return rc;
}

/* ------------------------------------------------------------------ driver ops */

static bool kvm_works(void)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0) return false;
    bool ok = false;
    if (ioctl(fd, KVM_GET_API_VERSION, 0) == KVM_API_VERSION) {
        int vm = ioctl(fd, KVM_CREATE_VM, 0);
        if (vm >= 0) {
            /* Nested setups can create VMs and vcpus yet refuse the MSRs QEMU programs:
             * QEMU then dies with "failed to set MSR 0x10a" (IA32_ARCH_CAPABILITIES). Do what
             * it does: read the host-supported value, write it into a vcpu. */
            int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
            ok = vcpu >= 0;
            if (vcpu >= 0) {
                /* struct kvm_msrs ends in a flexible array: room for one entry after it */
                union {
                    struct kvm_msrs msrs;
                    unsigned char raw[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)];
                } m;
                memset(&m, 0, sizeof m);
                m.msrs.nmsrs = 1;
                m.msrs.entries[0].index = 0x10a;
                if (ioctl(fd, KVM_GET_MSRS, &m) == 1 && ioctl(vcpu, KVM_SET_MSRS, &m) != 1) ok = false;
                close(vcpu);
            }
            close(vm);
        }
    }
    close(fd);
    return ok;
}

static void copy_conf(char *dst, size_t len, const struct ts_conf *conf, const char *sec, const char *key,
                      const char *def)
{
    snprintf(dst, len, "%s", ts_conf_get(conf, sec, key, def));
}

static int lv_open(const struct ts_conf *conf, const char *host, struct ts_virt_driver **out, struct ts_err *err)
{
    *out = NULL;
    int lrc = ts_virt_libvirt_dl_load(err);
    if (lrc != 0) return lrc;
    pthread_once(&init_once, global_init);
    struct ts_virt_driver *drv = ts_calloc(1, sizeof *drv);
    pthread_mutex_init(&drv->lock, NULL);
    snprintf(drv->host, sizeof drv->host, "%s", host ? host : "");
    copy_conf(drv->uri, sizeof drv->uri, conf, "libvirt", "connection_uri", "qemu:///system");
    copy_conf(drv->virt_type, sizeof drv->virt_type, conf, "libvirt", "virt_type", "qemu");
    copy_conf(drv->emulator, sizeof drv->emulator, conf, "libvirt", "emulator", "");
    copy_conf(drv->cpu_model, sizeof drv->cpu_model, conf, "libvirt", "cpu_model", "qemu64");
    copy_conf(drv->qemu_img, sizeof drv->qemu_img, conf, "libvirt", "qemu_img", "qemu-img");
    copy_conf(drv->instances_path, sizeof drv->instances_path, conf, "compute", "instances_path",
              "/var/lib/tinystack/instances");
    drv->reboot_timeout_s = (int)ts_conf_get_int(conf, "libvirt", "reboot_timeout", 60);
    drv->detach_timeout_s = (int)ts_conf_get_int(conf, "libvirt", "detach_timeout", 20);
    if (drv->reboot_timeout_s < 0 || drv->reboot_timeout_s > 3600) drv->reboot_timeout_s = 60;
    if (drv->detach_timeout_s < 0 || drv->detach_timeout_s > 3600) drv->detach_timeout_s = 20;
    drv->check_perms = ts_startswith(drv->uri, "qemu") && strstr(drv->uri, "/system") != NULL;

    if (ts_streq(drv->virt_type, "kvm")) {
        if (!kvm_works()) {
            ts_warn(MOD, "[libvirt] virt_type = kvm but KVM does not work here: using qemu (TCG)");
            snprintf(drv->virt_type, sizeof drv->virt_type, "qemu");
        }
    } else if (!ts_streq(drv->virt_type, "qemu")) {
        int rc = ts_err_set(err, TS_EINVAL, "[libvirt] virt_type must be qemu or kvm, not '%s'", drv->virt_type);
        pthread_mutex_destroy(&drv->lock);
        free(drv);
        return rc;
    }
    virConnectPtr c = get_conn(drv, err);
    if (!c) {
        pthread_mutex_destroy(&drv->lock);
        free(drv);
        return -TS_EUNAVAIL;
    }
    virConnectClose(c);
    /* instances dir (made only once libvirt answers, so probing for libvirt leaves no trace):
     * QEMU runs as libvirt-qemu and must traverse it */
    if (ts_mkdirs(drv->instances_path, 0755) < 0)
        ts_warn(MOD, "cannot create instances_path %s", drv->instances_path);
    char bad[PATH_MAX];
    char probe[600];
    snprintf(probe, sizeof probe, "%s/x", drv->instances_path);
    if (drv->check_perms && !ts_virt_libvirt_path_traversable(probe, bad, sizeof bad))
        ts_warn(MOD, "%s is not searchable by others (libvirt-qemu): guests under %s will fail to start; "
                     "make every component mode 0755",
                bad, drv->instances_path);
    ts_info(MOD, "connected to %s (virt_type %s, instances %s)", drv->uri, drv->virt_type, drv->instances_path);
    *out = drv;
    return 0;
}

static void lv_close(struct ts_virt_driver *drv)
{
    if (!drv) return;
    if (drv->conn) virConnectClose(drv->conn);
    pthread_mutex_destroy(&drv->lock);
    free(drv);
}

static void xml_opts(const struct ts_virt_driver *drv, struct ts_virt_libvirt_xml_opts *o)
{
    memset(o, 0, sizeof *o);
    o->virt_type = drv->virt_type;
    o->emulator = drv->emulator;
    o->cpu_model = drv->cpu_model;
}

static int lv_host_info(struct ts_virt_driver *drv, struct ts_virt_host_info *out, struct ts_err *err)
{
    memset(out, 0, sizeof *out);
    virConnectPtr c = get_conn(drv, err);
    if (!c) return -TS_EUNAVAIL;
    int rc = 0;
    virNodeInfo ni;
    if (virNodeGetInfo(c, &ni) < 0) {
        rc = lv_err(err, "virNodeGetInfo");
        goto out;
    }
    const char *type = virConnectGetType(c);
    snprintf(out->hypervisor_type, sizeof out->hypervisor_type, "%s", type ? type : "QEMU");
    if (!type) virResetLastError();
    unsigned long hv = 0;
    if (virConnectGetVersion(c, &hv) < 0) virResetLastError();
    out->hypervisor_version = (int64_t)hv;
    out->vcpus = (int)ni.cpus;
    out->memory_mb = (int64_t)(ni.memory / 1024);
    struct statvfs sv;
    if (statvfs(drv->instances_path, &sv) == 0)
        out->local_gb = (int64_t)((unsigned long long)sv.f_blocks * sv.f_frsize / (1024ULL * 1024 * 1024));
    char model[64];
    snprintf(model, sizeof model, "%s", ts_streq(drv->virt_type, "kvm") ? "host-model" : drv->cpu_model);
    snprintf(out->cpu_info, sizeof out->cpu_info,
             "{\"arch\": \"%s\", \"model\": \"%s\", \"vendor\": \"QEMU\", \"topology\": {\"sockets\": %u, "
             "\"cores\": %u, \"threads\": %u}, \"features\": []}",
             ts_streq(ni.model, "i686") ? "i686" : "x86_64", model, ni.sockets * ni.nodes, ni.cores, ni.threads);
out:
    virConnectClose(c);
    return rc;
}

static void check_traversable(const struct ts_virt_driver *drv, const char *path)
{
    char bad[PATH_MAX];
    if (drv->check_perms && !ts_virt_libvirt_path_traversable(path, bad, sizeof bad))
        ts_warn(MOD, "%s is not searchable by libvirt-qemu (uid 64055): QEMU cannot open %s", bad, path);
}

/* Defines the domain of inst (replacing an existing definition of the same uuid) over its
 * root disk (the overlay is made when missing) and starts it when start is set. */
static int spawn_ex(struct ts_virt_driver *drv, const struct ts_virt_instance *inst, bool start, struct ts_err *err)
{
    int rc = ts_virt_libvirt_check_instance(inst, err);
    if (rc < 0) return rc;
    char *xml = NULL;
    virDomainPtr d = NULL;
    virConnectPtr c = get_conn(drv, err);
    if (!c) return -TS_EUNAVAIL;

    d = get_dom(c, inst, NULL);
    if (d && dom_active(d)) {
        ts_info(MOD, "spawn %s: already running", inst->domain_name);
        goto out;
    }
    if (d) {
        virDomainFree(d);
        d = NULL;
    }
    if (ts_mkdirs(inst->instance_dir, 0755) < 0) {
        rc = ts_err_set(err, TS_EIO, "cannot create %s", inst->instance_dir);
        goto out;
    }
    chmod(inst->instance_dir, 0755);
    char root[1024];
    const char *root_fmt;
    rc = ts_virt_libvirt_root_disk(inst, root, sizeof root, &root_fmt, err);
    if (rc < 0) goto out;
    if (inst->image_path[0]) {
        check_traversable(drv, inst->image_path);
        if (access(root, F_OK) != 0) {
            rc = make_overlay(drv, inst, root, err);
            if (rc < 0) goto out;
        }
    }
    check_traversable(drv, root);

    struct ts_virt_libvirt_xml_opts o;
    xml_opts(drv, &o);
    rc = ts_virt_libvirt_domain_xml(inst, &o, &xml, err);
    if (rc < 0) goto out;
    d = virDomainDefineXML(c, xml);
    if (!d) {
        rc = lv_err(err, "define");
        goto out;
    }
    if (!start) goto out;
    if (virDomainCreate(d) < 0) {
        rc = lv_err(err, "start");
        if (virDomainUndefineFlags(d, VIR_DOMAIN_UNDEFINE_MANAGED_SAVE) < 0) virResetLastError();
        goto out;
    }
    ts_info(MOD, "spawned %s (%s) type=%s", inst->domain_name, inst->uuid, drv->virt_type);
out:
    free(xml);
    if (d) virDomainFree(d);
    virConnectClose(c);
    return rc;
}

static int lv_spawn(struct ts_virt_driver *drv, const struct ts_virt_instance *inst, struct ts_err *err)
{
    return spawn_ex(drv, inst, true, err);
}

/* Removes the regular files (and symlinks) directly inside dir, then dir itself. Not
 * recursive: the agent puts only flat files there. */
static int remove_instance_dir(const char *dir, struct ts_err *err)
{
    DIR *dh = opendir(dir);
    if (!dh) {
        if (errno == ENOENT) return 0;
        return ts_err_set(err, TS_EIO, "cannot open %s: %s", dir, strerror(errno));
    }
    int dfd = dirfd(dh);
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(dh)) != NULL) {
        if (ts_streq(de->d_name, ".") || ts_streq(de->d_name, "..")) continue;
        if (unlinkat(dfd, de->d_name, 0) < 0 && errno != ENOENT) {
            ts_warn(MOD, "cannot remove %s/%s: %s", dir, de->d_name, strerror(errno));
            rc = ts_err_set(err, TS_EIO, "cannot remove %s/%s: %s", dir, de->d_name, strerror(errno));
        }
    }
    closedir(dh);
    if (rc == 0 && rmdir(dir) < 0 && errno != ENOENT)
        rc = ts_err_set(err, TS_EIO, "cannot remove %s: %s", dir, strerror(errno));
    return rc;
}

/* "<instance_dir>_resize": the old disk and domain definition kept while a resize waits for
 * confirm or revert. */
static int backup_dir(const struct ts_virt_instance *inst, char *out, size_t len)
{
    int n = snprintf(out, len, "%s_resize", inst->instance_dir);
    return n < 0 || (size_t)n >= len ? -TS_EINVAL : 0;
}

static int lv_destroy(struct ts_virt_driver *drv, const struct ts_virt_instance *inst, struct ts_err *err)
{
    int rc = check_ident(inst, err);
    if (rc < 0) return rc;
    virConnectPtr c = get_conn(drv, err);
    if (!c) return -TS_EUNAVAIL;
    virDomainPtr d = get_dom(c, inst, NULL);
    if (d) {
        if (dom_active(d) && virDomainDestroy(d) < 0 && dom_active(d)) {
            rc = lv_err(err, "destroy");
            goto out;
        }
        virResetLastError();
        unsigned flags = VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA;
        if (virDomainUndefineFlags(d, flags) < 0) {
            virResetLastError();
            if (virDomainUndefine(d) < 0) {
                rc = lv_err(err, "undefine");
                goto out;
            }
        }
    }
    rc = remove_instance_dir(inst->instance_dir, err);
    char bk[PATH_MAX];
    if (rc == 0 && backup_dir(inst, bk, sizeof bk) == 0) rc = remove_instance_dir(bk, err);
    ts_info(MOD, "destroyed %s (%s)", inst->domain_name, inst->uuid);
out:
    if (d) virDomainFree(d);
    virConnectClose(c);
    return rc;
}

/* Opens the connection and domain for a call; both released by put_dom. */
static int with_dom(struct ts_virt_driver *drv, const struct ts_virt_instance *inst, virConnectPtr *c,
                    virDomainPtr *d, struct ts_err *err)
{
    *c = NULL;
    *d = NULL;
    if (!inst || strnlen(inst->uuid, sizeof inst->uuid) >= sizeof inst->uuid ||
        strnlen(inst->domain_name, sizeof inst->domain_name) >= sizeof inst->domain_name)
        return ts_err_set(err, TS_EINVAL, "bad instance");
    *c = get_conn(drv, err);
    if (!*c) return -TS_EUNAVAIL;
    *d = get_dom(*c, inst, err);
    if (!*d) {
        virConnectClose(*c);
        *c = NULL;
        return -TS_ENOTFOUND;
    }
    return 0;
}

static void put_dom(virConnectPtr c, virDomainPtr d)
{
    if (d) virDomainFree(d);
    if (c) virConnectClose(c);
}

static int lv_power_off(struct ts_virt_driver *drv, const struct ts_virt_instance *inst, int timeout_s,
                        struct ts_err *err)
{
    virConnectPtr c;
    virDomainPtr d;
    int rc = with_dom(drv, inst, &c, &d, err);
    if (rc < 0) return rc;
    if (!dom_active(d)) goto out;
    int st = dom_state(d);
    if (timeout_s > 0 && (st == VIR_DOMAIN_RUNNING || st == VIR_DOMAIN_SHUTDOWN)) {
        if (virDomainShutdown(d) < 0) {
            virResetLastError();
        } else if (wait_shutoff(d, timeout_s, true)) {
            ts_info(MOD, "%s shut down cleanly", inst->domain_name);
            goto out;
        }
        ts_info(MOD, "%s did not shut down within %d s: destroying", inst->domain_name, timeout_s);
    }
    if (virDomainDestroy(d) < 0 && dom_active(d)) rc = lv_err(err, "destroy");
    virResetLastError();
out:
    put_dom(c, d);
    return rc;
}

static int lv_power_on(struct ts_virt_driver *drv, const struct ts_virt_instance *inst, struct ts_err *err)
{
    virConnectPtr c;
    virDomainPtr d;
    int rc = with_dom(drv, inst, &c, &d, err);
    if (rc < 0) return rc;
    if (dom_active(d)) {
        /* paused guests come back on power on too */
        if (dom_state(d) == VIR_DOMAIN_PAUSED && virDomainResume(d) < 0) rc = lv_err(err, "resume");
        goto out;
    }
    if (virDomainCreate(d) < 0) rc = lv_err(err, "start");
out:
    put_dom(c, d);
    return rc;
}

static int lv_reboot(struct ts_virt_driver *drv, const struct ts_virt_instance *inst, bool hard, struct ts_err *err)
{
    virConnectPtr c;
    virDomainPtr d;
    int rc = with_dom(drv, inst, &c, &d, err);
    if (rc < 0) return rc;
    /* soft: ACPI power button, wait, start again (Nova's way; the guest flushes its disks);
     * a guest that ignores the button within reboot_timeout gets a hard reboot */
    if (!hard && dom_state(d) == VIR_DOMAIN_RUNNING) {
        if (virDomainShutdown(d) == 0 && wait_shutoff(d, drv->reboot_timeout_s, true)) {
            if (virDomainCreate(d) < 0) rc = lv_err(err, "start");
            goto out;
        }
        virResetLastError();
        ts_info(MOD, "%s: soft reboot timed out, rebooting hard", inst->domain_name);
    }
    if (dom_active(d) && virDomainDestroy(d) < 0 && dom_active(d)) {
        rc = lv_err(err, "destroy");
        goto out;
    }
    virResetLastError();
    if (virDomainCreate(d) < 0) rc = lv_err(err, "start");
out:
    put_dom(c, d);
    return rc;
}

static int lv_pause(struct ts_virt_driver *drv, const struct ts_virt_instance *inst, struct ts_err *err)
{
    virConnectPtr c;
    virDomainPtr d;
    int rc = with_dom(drv, inst, &c, &d, err);
    if (rc < 0) return rc;
    if (dom_state(d) != VIR_DOMAIN_PAUSED && virDomainSuspend(d) < 0) rc = lv_err(err, "pause");
    put_dom(c, d);
    return rc;
}

static int lv_unpause(struct ts_virt_driver *drv, const struct ts_virt_instance *inst, struct ts_err *err)
{
    virConnectPtr c;
    virDomainPtr d;
    int rc = with_dom(drv, inst, &c, &d, err);
    if (rc < 0) return rc;
    if (dom_state(d) == VIR_DOMAIN_PAUSED && virDomainResume(d) < 0) rc = lv_err(err, "unpause");
    put_dom(c, d);
    return rc;
}

static int lv_suspend(struct ts_virt_driver *drv, const struct ts_virt_instance *inst, struct ts_err *err)
{
    virConnectPtr c;
    virDomainPtr d;
    int rc = with_dom(drv, inst, &c, &d, err);
    if (rc < 0) return rc;
    if (!dom_active(d)) {
        if (virDomainHasManagedSaveImage(d, 0) == 1) goto out; /* already suspended */
        virResetLastError();
        rc = ts_err_set(err, TS_ECONFLICT, "%s is not running", inst->domain_name);
        goto out;
    }
    if (virDomainManagedSave(d, 0) < 0) rc = lv_err(err, "managed save");
out:
    put_dom(c, d);
    return rc;
}

static int lv_resume(struct ts_virt_driver *drv, const struct ts_virt_instance *inst, struct ts_err *err)
{
    virConnectPtr c;
    virDomainPtr d;
    int rc = with_dom(drv, inst, &c, &d, err);
    if (rc < 0) return rc;
    if (dom_active(d)) {
        if (dom_state(d) == VIR_DOMAIN_PAUSED && virDomainResume(d) < 0) rc = lv_err(err, "resume");
        goto out;
    }
    /* virDomainCreate restores the managed-save image when there is one */
    if (virDomainCreate(d) < 0) rc = lv_err(err, "restore");
out:
    put_dom(c, d);
    return rc;
}

static int lv_power_state(struct ts_virt_driver *drv, const struct ts_virt_instance *inst, enum ts_power_state *out,
                          struct ts_err *err)
{
    *out = TS_POWER_NOSTATE;
    virConnectPtr c;
    virDomainPtr d;
    int rc = with_dom(drv, inst, &c, &d, err);
    if (rc < 0) return rc;
    int st = dom_state(d);
    switch (st) {
    case VIR_DOMAIN_RUNNING:
    case VIR_DOMAIN_BLOCKED: *out = TS_POWER_RUNNING; break;
    case VIR_DOMAIN_PAUSED: *out = TS_POWER_PAUSED; break;
    case VIR_DOMAIN_SHUTDOWN: *out = TS_POWER_SHUTDOWN; break;
    case VIR_DOMAIN_SHUTOFF: {
        int ms = virDomainHasManagedSaveImage(d, 0);
        if (ms < 0) virResetLastError();
        *out = ms == 1 ? TS_POWER_SUSPENDED : TS_POWER_SHUTDOWN;
        break;
    }
    case VIR_DOMAIN_CRASHED: *out = TS_POWER_CRASHED; break;
    case VIR_DOMAIN_PMSUSPENDED: *out = TS_POWER_SUSPENDED; break;
    case -1: rc = lv_err(err, "get state"); break;
    default: *out = TS_POWER_NOSTATE; break;
    }
    put_dom(c, d);
    return rc;
}

static int lv_console_log(struct ts_virt_driver *drv, const struct ts_virt_instance *inst, size_t max_bytes,
                          char **out, size_t *len, struct ts_err *err)
{
    (void)drv;
    *out = NULL;
    *len = 0;
    if (!inst || !path_ok(inst->instance_dir, sizeof inst->instance_dir))
        return ts_err_set(err, TS_EINVAL, "bad instance_dir");
    if (max_bytes > 64 * 1024 * 1024) max_bytes = 64 * 1024 * 1024;
    char path[1024];
    if (ts_virt_libvirt_console_path(inst, path, sizeof path) < 0) return ts_err_set(err, TS_EINVAL, "path too long");
    /* the file belongs to root (virtlogd writes it); we read it whatever its owner */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT) {
            *out = ts_strdup("");
            return 0;
        }
        return ts_err_set(err, TS_EIO, "cannot open %s: %s", path, strerror(errno));
    }
    int rc = 0;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        rc = ts_err_set(err, TS_EIO, "%s is not a regular file", path);
        goto out;
    }
    off_t size = st.st_size;
    off_t start = (off_t)max_bytes < size ? size - (off_t)max_bytes : 0;
    size_t want = (size_t)(size - start);
    char *buf = malloc(want + 1);
    if (!buf) {
        rc = ts_err_set(err, TS_ENOMEM, "console log too large");
        goto out;
    }
    size_t got = 0;
    while (got < want) {
        ssize_t n = pread(fd, buf + got, want - got, start + (off_t)got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
out:
    close(fd);
    return rc;
}

static int lv_snapshot(struct ts_virt_driver *drv, const struct ts_virt_instance *inst, const char *out_path,
                       struct ts_err *err)
{
    int rc = check_ident(inst, err);
    if (rc < 0) return rc;
    if (!out_path || !path_ok(out_path, PATH_MAX)) return ts_err_set(err, TS_EINVAL, "bad snapshot path");
    char root[1024];
    const char *root_fmt;
    rc = ts_virt_libvirt_root_disk(inst, root, sizeof root, &root_fmt, err);
    if (rc < 0) return rc;
    virConnectPtr c = get_conn(drv, err);
    if (!c) return -TS_EUNAVAIL;
    virDomainPtr d = get_dom(c, inst, NULL);
    bool paused_by_us = false;
    /* a running guest is paused for the copy: QEMU flushes its caches on stop, so the
     * image is consistent at the block level while qemu-img reads it (with -U, since the
     * running QEMU keeps its lock) */
    if (d && dom_state(d) == VIR_DOMAIN_RUNNING) {
        if (virDomainSuspend(d) < 0) {
            rc = lv_err(err, "pause for snapshot");
            goto out;
        }
        paused_by_us = true;
    }
    char *argv[] = {drv->qemu_img, "convert", "-U", "-f", (char *)root_fmt, "-O", "qcow2",
                    root, (char *)out_path, NULL};
    rc = run_prog(argv, err);
    if (rc == 0) chmod(out_path, 0644);
    else unlink(out_path);
out:
    if (paused_by_us && virDomainResume(d) < 0) {
        ts_warn(MOD, "%s: resume after snapshot failed", inst->domain_name);
        if (rc == 0) rc = lv_err(err, "resume after snapshot");
    }
    virResetLastError();
    if (d) virDomainFree(d);
    virConnectClose(c);
    return rc;
}

static unsigned affect_flags(virDomainPtr d)
{
    return VIR_DOMAIN_AFFECT_CONFIG | (dom_active(d) ? VIR_DOMAIN_AFFECT_LIVE : 0);
}

static int lv_attach_disk(struct ts_virt_driver *drv, const struct ts_virt_instance *inst, struct ts_virt_disk *disk,
                          struct ts_err *err)
{
    if (!disk) return ts_err_set(err, TS_EINVAL, "no disk");
    int rc = check_disk(disk, 0, err);
    if (rc < 0) return rc;
    virConnectPtr c;
    virDomainPtr d;
    rc = with_dom(drv, inst, &c, &d, err);
    if (rc < 0) return rc;
    char *dxml = NULL, *xml = NULL;
    /* the live XML when running (what the guest sees), else the config */
    dxml = virDomainGetXMLDesc(d, dom_active(d) ? 0 : VIR_DOMAIN_XML_INACTIVE);
    if (!dxml) {
        rc = lv_err(err, "get XML");
        goto out;
    }
    char found[8];
    if (ts_virt_libvirt_find_disk(dxml, NULL, disk->path, found) == 0) {
        snprintf(disk->dev, sizeof disk->dev, "%s", found); /* already attached */
        goto out;
    }
    char dev[8];
    if (disk->dev[0]) {
        if (ts_virt_libvirt_find_disk(dxml, disk->dev, NULL, found) == 0) {
            rc = ts_err_set(err, TS_ECONFLICT, "device %s is in use", disk->dev);
            goto out;
        }
        snprintf(dev, sizeof dev, "%s", disk->dev);
    } else if (ts_virt_libvirt_next_dev(dxml, dev) < 0) {
        rc = ts_err_set(err, TS_ECONFLICT, "no free disk name");
        goto out;
    }
    check_traversable(drv, disk->path);
    rc = ts_virt_libvirt_disk_xml(disk, dev, &xml, err);
    if (rc < 0) goto out;
    if (virDomainAttachDeviceFlags(d, xml, affect_flags(d)) < 0) {
        rc = lv_err(err, "attach disk");
        goto out;
    }
    snprintf(disk->dev, sizeof disk->dev, "%s", dev);
out:
    free(dxml);
    free(xml);
    put_dom(c, d);
    return rc;
}

/* Polls the live XML until pred says the device is gone, up to timeout_s. */
static bool wait_gone(virDomainPtr d, int timeout_s, bool (*gone)(const char *xml, const void *arg), const void *arg)
{
    double end = ts_mono() + timeout_s;
    for (;;) {
        char *x = virDomainGetXMLDesc(d, 0);
        if (!x) {
            virResetLastError();
            return false;
        }
        bool g = gone(x, arg);
        free(x);
        if (g) return true;
        if (ts_mono() >= end) return false;
        sleep_ms(200);
    }
}

static bool disk_gone(const char *xml, const void *arg)
{
    char f[8];
    return ts_virt_libvirt_find_disk(xml, arg, NULL, f) != 0;
}

static bool nic_gone(const char *xml, const void *arg)
{
    return !ts_virt_libvirt_has_mac(xml, arg);
}

static int lv_detach_disk(struct ts_virt_driver *drv, const struct ts_virt_instance *inst,
                          const struct ts_virt_disk *disk, struct ts_err *err)
{
    if (!disk) return ts_err_set(err, TS_EINVAL, "no disk");
    int rc = check_disk(disk, 0, err);
    if (rc < 0) return rc;
    virConnectPtr c;
    virDomainPtr d;
    rc = with_dom(drv, inst, &c, &d, err);
    if (rc < 0) return rc;
    char *xml = NULL, *dxml = NULL;
    bool live = dom_active(d);
    unsigned flags = VIR_DOMAIN_AFFECT_CONFIG | (live ? VIR_DOMAIN_AFFECT_LIVE : 0);
    char dev[8], cfgdev[8];
    dxml = virDomainGetXMLDesc(d, live ? 0 : VIR_DOMAIN_XML_INACTIVE);
    if (!dxml) {
        rc = lv_err(err, "get XML");
        goto out;
    }
    if (ts_virt_libvirt_find_disk(dxml, NULL, disk->path, dev) < 0) {
        rc = ts_err_set(err, TS_ENOTFOUND, "%s is not attached to %s", disk->path, inst->domain_name);
        goto out;
    }
    if (live) {
        /* the persistent config may lack the disk (attached live only): then detach live only */
        char *cxml = virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE);
        if (cxml && ts_virt_libvirt_find_disk(cxml, NULL, disk->path, cfgdev) < 0) flags &= ~VIR_DOMAIN_AFFECT_CONFIG;
        if (!cxml) virResetLastError();
        free(cxml);
    }
    rc = ts_virt_libvirt_disk_xml(disk, dev, &xml, err);
    if (rc < 0) goto out;
    if (virDomainDetachDeviceFlags(d, xml, flags) < 0) {
        rc = lv_err(err, "detach disk");
        goto out;
    }
    /* libvirt returns once the unplug request is sent; the guest releases the device later */
    if (live && !wait_gone(d, drv->detach_timeout_s, disk_gone, dev))
        rc = ts_err_set(err, TS_ETIMEDOUT, "guest did not release %s within %d s", dev, drv->detach_timeout_s);
out:
    free(xml);
    free(dxml);
    put_dom(c, d);
    return rc;
}

static int lv_attach_nic(struct ts_virt_driver *drv, const struct ts_virt_instance *inst,
                         const struct ts_virt_nic *nic, struct ts_err *err)
{
    if (!nic) return ts_err_set(err, TS_EINVAL, "no nic");
    int rc = check_nic(nic, 0, err);
    if (rc < 0) return rc;
    virConnectPtr c;
    virDomainPtr d;
    rc = with_dom(drv, inst, &c, &d, err);
    if (rc < 0) return rc;
    char *xml = NULL;
    char *dxml = virDomainGetXMLDesc(d, dom_active(d) ? 0 : VIR_DOMAIN_XML_INACTIVE);
    if (!dxml) {
        rc = lv_err(err, "get XML");
        goto out;
    }
    if (ts_virt_libvirt_has_mac(dxml, nic->mac)) goto out; /* already there */
    struct ts_virt_libvirt_xml_opts o;
    xml_opts(drv, &o);
    rc = ts_virt_libvirt_nic_xml(nic, &o, &xml, err);
    if (rc < 0) goto out;
    if (virDomainAttachDeviceFlags(d, xml, affect_flags(d)) < 0) rc = lv_err(err, "attach interface");
out:
    free(dxml);
    free(xml);
    put_dom(c, d);
    return rc;
}

static int lv_detach_nic(struct ts_virt_driver *drv, const struct ts_virt_instance *inst,
                         const struct ts_virt_nic *nic, struct ts_err *err)
{
    if (!nic) return ts_err_set(err, TS_EINVAL, "no nic");
    if (strnlen(nic->mac, sizeof nic->mac) >= sizeof nic->mac || !mac_ok(nic->mac))
        return ts_err_set(err, TS_EINVAL, "bad MAC address");
    virConnectPtr c;
    virDomainPtr d;
    int rc = with_dom(drv, inst, &c, &d, err);
    if (rc < 0) return rc;
    bool live = dom_active(d);
    unsigned flags = 0;
    char *lx = live ? virDomainGetXMLDesc(d, 0) : NULL;
    char *cx = virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE);
    if (lx && ts_virt_libvirt_has_mac(lx, nic->mac)) flags |= VIR_DOMAIN_AFFECT_LIVE;
    if (cx && ts_virt_libvirt_has_mac(cx, nic->mac)) flags |= VIR_DOMAIN_AFFECT_CONFIG;
    virResetLastError();
    free(lx);
    free(cx);
    if (!flags) {
        rc = ts_err_set(err, TS_ENOTFOUND, "no interface %s on %s", nic->mac, inst->domain_name);
        goto out;
    }
    /* libvirt matches the interface by MAC; the rest of the element only has to parse */
    char mac[32];
    snprintf(mac, sizeof mac, "%s", nic->mac);
    struct xb x = {.rc = 0};
    ts_buf_init(&x.b, 4096);
    xb_raw(&x, "<interface type='ethernet'>\n");
    xb_fmt(&x, "  <mac address='%s'/>\n", mac);
    xb_raw(&x, "</interface>\n");
    char *xml = NULL;
    rc = xb_finish(&x, &xml, err);
    if (rc < 0) goto out;
    if (virDomainDetachDeviceFlags(d, xml, flags) < 0) rc = lv_err(err, "detach interface");
    free(xml);
    if (rc == 0 && (flags & VIR_DOMAIN_AFFECT_LIVE) && !wait_gone(d, drv->detach_timeout_s, nic_gone, mac))
        rc = ts_err_set(err, TS_ETIMEDOUT, "guest did not release %s within %d s", mac, drv->detach_timeout_s);
out:
    put_dom(c, d);
    return rc;
}

static int lv_list(struct ts_virt_driver *drv, char ***uuids, int *n, struct ts_err *err)
{
    *uuids = NULL;
    *n = 0;
    virConnectPtr c = get_conn(drv, err);
    if (!c) return -TS_EUNAVAIL;
    virDomainPtr *doms = NULL;
    int rc = 0;
    int cnt = virConnectListAllDomains(c, &doms, 0);
    if (cnt < 0) {
        rc = lv_err(err, "list domains");
        goto out;
    }
    char **list = ts_calloc((size_t)cnt + 1, sizeof *list);
    int k = 0;
    for (int i = 0; i < cnt; i++) {
        const char *name = virDomainGetName(doms[i]);
        char uuid[VIR_UUID_STRING_BUFLEN];
        if (name && ts_startswith(name, "instance-") && virDomainGetUUIDString(doms[i], uuid) == 0)
            list[k++] = ts_strdup(uuid);
        virDomainFree(doms[i]);
    }
    free(doms);
    *uuids = list;
    *n = k;
out:
    virConnectClose(c);
    return rc;
}

/* ------------------------------------------------------------------ resize */

/* The virtual size of a qcow2 image from its header (bytes 24-31, big endian); -1 if path
 * is not a readable qcow2 file. */
static int64_t qcow2_size(const char *path)
{
    unsigned char h[32];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = pread(fd, h, sizeof h, 0);
    close(fd);
    if (n != (ssize_t)sizeof h || h[0] != 'Q' || h[1] != 'F' || h[2] != 'I' || h[3] != 0xfb) return -1;
    uint64_t v = 0;
    for (int i = 24; i < 32; i++) v = v << 8 | h[i];
    return v > INT64_MAX ? -1 : (int64_t)v;
}

static int lv_migrate_disk_and_power_off(struct ts_virt_driver *drv, const struct ts_virt_instance *inst,
                                         const struct ts_virt_instance *new_inst, int timeout_s, struct ts_err *err)
{
    int rc = check_ident(inst, err);
    if (rc < 0) return rc;
    char disk[PATH_MAX], bk[PATH_MAX], path[PATH_MAX + 32];
    char *xml = NULL;
    virConnectPtr c = NULL;
    virDomainPtr d = NULL;
    bool moved = false;
    if (backup_dir(inst, bk, sizeof bk) < 0) return ts_err_set(err, TS_EINVAL, "instance_dir too long");
    snprintf(disk, sizeof disk, "%s/disk", inst->instance_dir);
    if (inst->image_path[0]) {
        /* Nova's libvirt driver refuses before touching the guest */
        int64_t cur = qcow2_size(disk);
        if (new_inst->root_gb <= 0 ? inst->root_gb > 0 : cur > (int64_t)new_inst->root_gb << 30)
            return ts_err_set(err, TS_EINVAL, "Unable to resize disk down.");
    }
    rc = with_dom(drv, inst, &c, &d, err);
    if (rc < 0) return rc;
    xml = virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE);
    if (!xml) {
        rc = lv_err(err, "get domain XML");
        goto out;
    }
    rc = lv_power_off(drv, inst, timeout_s, err);
    if (rc < 0) goto out;
    /* a backup left by a resize that was confirmed while this one was queued */
    if (access(bk, F_OK) == 0 && (rc = remove_instance_dir(bk, err)) < 0) goto out;
    if (rename(inst->instance_dir, bk) < 0) {
        rc = ts_err_set(err, TS_EIO, "rename %s: %s", inst->instance_dir, strerror(errno));
        goto out;
    }
    moved = true;
    if (ts_mkdirs(inst->instance_dir, 0755) < 0) {
        rc = ts_err_set(err, TS_EIO, "cannot create %s", inst->instance_dir);
        goto out;
    }
    chmod(inst->instance_dir, 0755);
    snprintf(path, sizeof path, "%s/domain.xml", bk);
    if (ts_file_write_atomic(path, xml, strlen(xml), 0600) < 0) {
        rc = ts_err_set(err, TS_EIO, "cannot write %s", path);
        goto out;
    }
    if (inst->image_path[0]) {
        /* the overlay is copied back; its backing file (the cached base) is an absolute path */
        snprintf(path, sizeof path, "%s/disk", bk);
        char *argv[] = {"cp", "--sparse=always", path, disk, NULL};
        rc = run_prog(argv, err);
        if (rc < 0) goto out;
        chmod(disk, 0644);
    }
    ts_info(MOD, "%s powered off for resize, old disk kept in %s", inst->domain_name, bk);
out:
    if (rc < 0 && moved) {
        /* put everything back as it was; the guest stays off (the agent powers it on) */
        remove_instance_dir(inst->instance_dir, NULL);
        snprintf(path, sizeof path, "%s/domain.xml", bk);
        unlink(path);
        if (rename(bk, inst->instance_dir) < 0) ts_warn(MOD, "cannot restore %s: %s", bk, strerror(errno));
    }
    free(xml);
    put_dom(c, d);
    return rc;
}

static int lv_finish_migration(struct ts_virt_driver *drv, const struct ts_virt_instance *new_inst, bool power_on,
                               struct ts_err *err)
{
    int rc = ts_virt_libvirt_check_instance(new_inst, err);
    if (rc < 0) return rc;
    char disk[PATH_MAX];
    snprintf(disk, sizeof disk, "%s/disk", new_inst->instance_dir);
    /* the disk is never copied between machines: a guest resized onto another host whose
     * instance directory does not hold it would boot from a fresh overlay */
    if (new_inst->image_path[0] && access(disk, F_OK) != 0)
        return ts_err_set(err, TS_EINVAL, "root disk %s is missing: resize to another host needs shared instance "
                          "storage", disk);
    if (new_inst->image_path[0] && new_inst->root_gb > 0) {
        char size[32];
        int64_t cur = qcow2_size(disk), want = (int64_t)new_inst->root_gb << 30;
        if (cur < 0) return ts_err_set(err, TS_EIO, "root disk %s is not a readable qcow2 image", disk);
        if (want < cur) return ts_err_set(err, TS_EINVAL, "Unable to resize disk down.");
        if (want > cur) {
            snprintf(size, sizeof size, "%dG", new_inst->root_gb);
            char *argv[] = {drv->qemu_img, "resize", "-q", "-f", "qcow2", disk, size, NULL};
            rc = run_prog(argv, err);
            if (rc < 0) return rc;
        }
    }
    rc = spawn_ex(drv, new_inst, power_on, err);
    if (rc == 0) ts_info(MOD, "%s resized to %d vCPUs, %d MiB, root %d GiB", new_inst->domain_name, new_inst->vcpus,
                         new_inst->memory_mb, new_inst->root_gb);
    return rc;
}

static int lv_finish_revert_migration(struct ts_virt_driver *drv, const struct ts_virt_instance *inst, bool power_on,
                                      struct ts_err *err)
{
    int rc = check_ident(inst, err);
    if (rc < 0) return rc;
    char bk[PATH_MAX], path[PATH_MAX + 32];
    char *xml = NULL;
    size_t xl = 0;
    virDomainPtr d = NULL, nd = NULL;
    if (backup_dir(inst, bk, sizeof bk) < 0) return ts_err_set(err, TS_EINVAL, "instance_dir too long");
    virConnectPtr c = get_conn(drv, err);
    if (!c) return -TS_EUNAVAIL;
    d = get_dom(c, inst, NULL);
    if (d && dom_active(d) && virDomainDestroy(d) < 0 && dom_active(d)) {
        rc = lv_err(err, "destroy");
        goto out;
    }
    virResetLastError();
    if (access(bk, F_OK) != 0) {
        /* no backup (the resize failed before making one): the guest comes back as it is */
        ts_warn(MOD, "%s: no resize backup in %s", inst->domain_name, bk);
        rc = spawn_ex(drv, inst, power_on, err);
        goto out;
    }
    rc = remove_instance_dir(inst->instance_dir, err);
    if (rc < 0) goto out;
    if (rename(bk, inst->instance_dir) < 0) {
        rc = ts_err_set(err, TS_EIO, "rename %s: %s", bk, strerror(errno));
        goto out;
    }
    snprintf(path, sizeof path, "%s/domain.xml", inst->instance_dir);
    if (ts_file_read(path, XML_MAX, &xml, &xl) == 0) {
        /* the old definition as it was, volumes and NICs included */
        nd = virDomainDefineXML(c, xml);
        unlink(path);
        if (!nd) {
            rc = lv_err(err, "define");
            goto out;
        }
        if (power_on && virDomainCreate(nd) < 0) rc = lv_err(err, "start");
    } else {
        rc = spawn_ex(drv, inst, power_on, err);
    }
    if (rc == 0) ts_info(MOD, "%s resize reverted", inst->domain_name);
out:
    free(xml);
    if (nd) virDomainFree(nd);
    if (d) virDomainFree(d);
    virConnectClose(c);
    return rc;
}

static int lv_confirm_migration(struct ts_virt_driver *drv, const struct ts_virt_instance *inst, struct ts_err *err)
{
    (void)drv;
    int rc = check_ident(inst, err);
    if (rc < 0) return rc;
    char bk[PATH_MAX];
    if (backup_dir(inst, bk, sizeof bk) < 0) return ts_err_set(err, TS_EINVAL, "instance_dir too long");
    return remove_instance_dir(bk, err);
}

const struct ts_virt_ops ts_virt_libvirt_ops = {
    .name = "libvirt",
    .open = lv_open,
    .close = lv_close,
    .host_info = lv_host_info,
    .spawn = lv_spawn,
    .destroy = lv_destroy,
    .power_off = lv_power_off,
    .power_on = lv_power_on,
    .reboot = lv_reboot,
    .pause = lv_pause,
    .unpause = lv_unpause,
    .suspend = lv_suspend,
    .resume = lv_resume,
    .power_state = lv_power_state,
    .console_log = lv_console_log,
    .snapshot = lv_snapshot,
    .attach_disk = lv_attach_disk,
    .detach_disk = lv_detach_disk,
    .attach_nic = lv_attach_nic,
    .detach_nic = lv_detach_nic,
    .list = lv_list,
    .migrate_disk_and_power_off = lv_migrate_disk_and_power_off,
    .finish_migration = lv_finish_migration,
    .finish_revert_migration = lv_finish_revert_migration,
    .confirm_migration = lv_confirm_migration,
};
