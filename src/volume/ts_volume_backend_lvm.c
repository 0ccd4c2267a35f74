/*
 * ts_volume_backend_lvm.c: the LVM backend (Cinder's LVMVolumeDriver with the local
 * connector): each volume is a logical volume "volume-<id>" of one volume group, each
 * snapshot "_snapshot-<id>" (LVM reserves names starting with "snapshot"), and volumes
 * reach guests as block devices /dev/<vg>/volume-<id>. Two layouts:
 *  - thin (lvm_type thin, or auto where the kernel has device-mapper): thin LVs in a thin
 *    pool; snapshots, clones and reverts are thin snapshots (instant, copy on write);
 *  - thick (lvm_type default): linear LVs allocated contiguously; snapshots and clones
 *    are data copies. Without device-mapper in the kernel (the containers and VMs this
 *    project runs on have none) LVM still allocates extents and keeps its metadata
 *    (--driverloaded n), and the backend maps each LV's extents itself with a loop
 *    device over the physical volume (offset, size limit) and links it as
 *    /dev/<vg>/<lv>, which is what device-mapper's linear target would do.
 * Long writes (create from image, clones) go to "tmp-volume-<id>" and are renamed into
 * place on success; cleanup removes tmp- LVs and maps LVs whose loop device is gone.
 * lvm runs with udev off (udev_sync=0 udev_rules=0: no udev daemon here) and a device
 * filter that accepts only the group's physical volumes, so it never scans the volumes'
 * own block devices (guests may put anything, LVM labels too, on them), and without metadata
 * archives (one per change would pile up in /etc/lvm/archive; the latest backup is kept).
 */
#include "volume/ts_volume_backend.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <poll.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define LVM_BIN "/usr/sbin/lvm"
#define MAX_ARGS 40

struct lvm_be {
    struct ts_volume_backend base; /* first: the manager sees only this */
    char vg[128];
    char pool[128];    /* thin pool LV (thin layout) */
    bool thin;         /* thin LVs in pool; else linear LVs */
    bool loop;         /* no device-mapper: LVs are mapped by loop devices */
    char config[2048]; /* lvm --config: udev off, filter to the group's PVs */
};

static struct lvm_be *LB(struct ts_volume_backend *be)
{
    return (struct lvm_be *)be;
}

/* ---- running lvm and qemu-img with their output ------------------------------------------------ */

/* Runs argv with a fixed environment; stdout into out (may be NULL), stderr into err on failure. */
static int run_capture(const char *const *argv, char *out, size_t outcap, struct ts_err *err)
{
    static char *const envp[] = {"LVM_SUPPRESS_FD_WARNINGS=1", "LC_ALL=C",
                                 "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
    int po[2], pe[2];
    if (pipe2(po, O_CLOEXEC) != 0) return ts_err_set(err, TS_EIO, "pipe: %s", strerror(errno));
    if (pipe2(pe, O_CLOEXEC) != 0) {
        close(po[0]);
        close(po[1]);
        return ts_err_set(err, TS_EIO, "pipe: %s", strerror(errno));
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, po[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    close(po[1]);
    close(pe[1]);
    if (rc != 0) {
        close(po[0]);
        close(pe[0]);
        return ts_err_set(err, TS_EIO, "cannot run %s: %s", argv[0], strerror(rc));
    }
    char msg[512];
    size_t no = 0, ne = 0;
    struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    int open_fds = 2;
    while (open_fds > 0) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            char tmp[1024];
            ssize_t r = read(fds[i].fd, tmp, sizeof(tmp));
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
                continue;
            }
            char *dst = i == 0 ? out : msg;
            size_t cap = i == 0 ? (out ? outcap : 0) : sizeof(msg);
            size_t *n = i == 0 ? &no : &ne;
            if (cap > 0) {
                size_t take = (size_t)r < cap - 1 - *n ? (size_t)r : cap - 1 - *n;
                memcpy(dst + *n, tmp, take);
                *n += take;
            }
        }
    }
    if (out && outcap) out[no] = 0;
    msg[ne] = 0;
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        while (ne > 0 && (msg[ne - 1] == '\n' || msg[ne - 1] == ' '))
            msg[--ne] = 0;
        /* the first line that is not a warning says what went wrong */
        const char *m = msg;
        while (strncmp(m, "  WARNING:", 10) == 0 && strchr(m, '\n'))
            m = strchr(m, '\n') + 1;
        while (*m == ' ')
            m++;
        return ts_err_set(err, TS_EIO, "%s %s failed: %s", argv[0], argv[1] ? argv[1] : "", m);
    }
    return 0;
}

/* lvm <cmd> --config ... [--driverloaded n] args... (NULL-terminated). */
static int lvm(struct lvm_be *lb, char *out, size_t outcap, struct ts_err *err, const char *cmd, ...)
{
    const char *argv[MAX_ARGS];
    int n = 0;
    argv[n++] = LVM_BIN;
    argv[n++] = cmd;
    argv[n++] = "--config";
    argv[n++] = lb->config;
    if (lb->loop) {
        argv[n++] = "--driverloaded";
        argv[n++] = "n";
    }
    va_list ap;
    va_start(ap, cmd);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < MAX_ARGS - 1)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    return run_capture(argv, out, outcap, err);
}

static void lv_name(char *out, size_t len, const char *prefix, const char *id)
{
    snprintf(out, len, "%s-%s", prefix, id);
}

static void lv_full(struct lvm_be *lb, const char *lv, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", lb->vg, lv);
}

static void lv_dev(struct lvm_be *lb, const char *lv, char *out, size_t len)
{
    snprintf(out, len, "/dev/%s/%s", lb->vg, lv);
}

static bool lv_exists(struct lvm_be *lb, const char *lv)
{
    char full[300];
    lv_full(lb, lv, full, sizeof(full));
    return lvm(lb, NULL, 0, NULL, "lvs", "--noheadings", "-o", "lv_name", full, NULL) == 0;
}

/* Size of an LV in bytes (0 when it cannot be read). */
static int64_t lv_bytes(struct lvm_be *lb, const char *lv)
{
    char full[300], out[128];
    lv_full(lb, lv, full, sizeof(full));
    if (lvm(lb, out, sizeof(out), NULL, "lvs", "--noheadings", "--units", "b", "--nosuffix", "-o", "lv_size",
            full, NULL) != 0)
        return 0;
    return strtoll(out, NULL, 10);
}

/* ---- loop-device mapping (no device-mapper) ---------------------------------------------------- */

/* Where an LV's extents are: the file (or device) under its PV, byte offset and length. */
static int lv_extent(struct lvm_be *lb, const char *lv, char *backing, size_t blen, int64_t *off,
                     int64_t *len, struct ts_err *err)
{
    char sel[200], out[1024];
    snprintf(sel, sizeof(sel), "lv_name=%s", lv);
    int rc = lvm(lb, out, sizeof(out), err, "pvs", "--noheadings", "--units", "b", "--nosuffix",
                 "--separator", ",", "--segments", "-o",
                 "pv_name,pe_start,pvseg_start,pvseg_size,vg_extent_size", "-S", sel, NULL);
    if (rc) return rc;
    char pv[256];
    long long pe_start, seg_start, seg_size, ext;
    char *nl = strchr(out, '\n');
    if (nl && strchr(nl + 1, ',')) return ts_err_set(err, TS_EIO, "%s/%s is not contiguous", lb->vg, lv);
    if (sscanf(out, " %255[^,],%lld,%lld,%lld,%lld", pv, &pe_start, &seg_start, &seg_size, &ext) != 5)
        return ts_err_set(err, TS_EIO, "no extents for %s/%s", lb->vg, lv);
    *off = pe_start + seg_start * ext;
    *len = seg_size * ext;
    snprintf(backing, blen, "%s", pv);
    /* a PV on a loop device: map straight onto its file (one page cache, holes punch) */
    if (strncmp(pv, "/dev/loop", 9) == 0) {
        char sys[128], file[1024];
        snprintf(sys, sizeof(sys), "/sys/block/%s/loop/backing_file", pv + 5);
        FILE *f = fopen(sys, "re");
        if (f) {
            if (fgets(file, sizeof(file), f)) {
                file[strcspn(file, "\n")] = 0;
                if (file[0] == '/') snprintf(backing, blen, "%s", file);
            }
            fclose(f);
        }
    }
    return 0;
}

/* Zeroes [off, off+len) of a block device: hole punching where it ends in a file. */
static int zero_range(const char *dev, int64_t off, int64_t len, bool file_backed, struct ts_err *err)
{
    if (len <= 0) return 0;
    int fd = open(dev, O_RDWR | O_CLOEXEC);
    if (fd < 0) return ts_err_set(err, TS_EIO, "open %s: %s", dev, strerror(errno));
    uint64_t range[2] = {(uint64_t)off, (uint64_t)len};
    int rc = 0;
    if (!file_backed || ioctl(fd, BLKDISCARD, range) != 0) {
        range[0] = (uint64_t)off;
        range[1] = (uint64_t)len;
        if (ioctl(fd, BLKZEROOUT, range) != 0)
            rc = ts_err_set(err, TS_EIO, "zero %s: %s", dev, strerror(errno));
    }
    close(fd);
    return rc;
}

/* The loop device /dev/<vg>/<lv> links to (into out), or false. */
static bool loop_of(struct lvm_be *lb, const char *lv, char *out, size_t len)
{
    char link[400];
    lv_dev(lb, lv, link, sizeof(link));
    ssize_t n = readlink(link, out, len - 1);
    if (n <= 0) return false;
    out[n] = 0;
    return strncmp(out, "/dev/loop", 9) == 0;
}

/* Maps lv with a free loop device and links /dev/<vg>/<lv> to it; zero: a new LV (stale
 * extents of earlier volumes must not show). */
static int loop_map(struct lvm_be *lb, const char *lv, bool zero, struct ts_err *err)
{
    char backing[1024], loopdev[64], link[400], dir[300];
    int64_t off, len;
    int rc = lv_extent(lb, lv, backing, sizeof(backing), &off, &len, err);
    if (rc) return rc;
    struct stat st;
    bool file_backed = stat(backing, &st) == 0 && S_ISREG(st.st_mode);
    int bfd = open(backing, O_RDWR | O_CLOEXEC);
    if (bfd < 0) return ts_err_set(err, TS_EIO, "open %s: %s", backing, strerror(errno));
    int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (ctl < 0) {
        close(bfd);
        return ts_err_set(err, TS_EIO, "open /dev/loop-control: %s", strerror(errno));
    }
    int lfd = -1;
    for (int tries = 0; tries < 64 && lfd < 0; tries++) {
        int nr = ioctl(ctl, LOOP_CTL_GET_FREE);
        if (nr < 0) {
            rc = ts_err_set(err, TS_EIO, "no free loop device: %s", strerror(errno));
            break;
        }
        snprintf(loopdev, sizeof(loopdev), "/dev/loop%d", nr);
        int fd = -1;
        for (int w = 0; w < 100 && fd < 0; w++) { /* devtmpfs adds the node just after GET_FREE */
            fd = open(loopdev, O_RDWR | O_CLOEXEC);
            if (fd < 0 && errno == ENOENT)
                usleep(1000);
            else
                break;
        }
        if (fd < 0) {
            rc = ts_err_set(err, TS_EIO, "open %s: %s", loopdev, strerror(errno));
            break;
        }
        struct loop_config cfg;
        memset(&cfg, 0, sizeof(cfg));
        cfg.fd = (uint32_t)bfd;
        cfg.info.lo_offset = (uint64_t)off;
        cfg.info.lo_sizelimit = (uint64_t)len;
        snprintf((char *)cfg.info.lo_file_name, sizeof(cfg.info.lo_file_name), "%s/%s", lb->vg, lv);
        if (ioctl(fd, LOOP_CONFIGURE, &cfg) == 0) {
            lfd = fd;
            break;
        }
        int e = errno;
        close(fd);
        if (e != EBUSY) { /* EBUSY: another thread took it first */
            rc = ts_err_set(err, TS_EIO, "loop setup %s: %s", loopdev, strerror(e));
            break;
        }
    }
    close(ctl);
    close(bfd);
    if (lfd < 0) return rc ? rc : ts_err_set(err, TS_EIO, "no free loop device");
    close(lfd);
    if (zero) {
        rc = zero_range(loopdev, 0, len, file_backed, err);
        if (rc) goto fail;
    }
    snprintf(dir, sizeof(dir), "/dev/%s", lb->vg);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        rc = ts_err_set(err, TS_EIO, "mkdir %s: %s", dir, strerror(errno));
        goto fail;
    }
    lv_dev(lb, lv, link, sizeof(link));
    unlink(link);
    if (symlink(loopdev, link) != 0) {
        rc = ts_err_set(err, TS_EIO, "symlink %s: %s", link, strerror(errno));
        goto fail;
    }
    return 0;
fail:;
    int fd = open(loopdev, O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
        ioctl(fd, LOOP_CLR_FD, 0);
        close(fd);
    }
    return rc;
}

/* Drops the loop device and link of lv (nothing when it has none). */
static void loop_unmap(struct lvm_be *lb, const char *lv)
{
    char loopdev[64], link[400];
    if (loop_of(lb, lv, loopdev, sizeof(loopdev))) {
        int fd = open(loopdev, O_RDWR | O_CLOEXEC);
        if (fd >= 0) {
            ioctl(fd, LOOP_CLR_FD, 0); /* still open elsewhere: the kernel clears it on last close */
            close(fd);
        }
    }
    lv_dev(lb, lv, link, sizeof(link));
    unlink(link);
}

/* After lvextend: the loop device grows to the LV's new size, the new part zeroed. */
static int loop_resize(struct lvm_be *lb, const char *lv, struct ts_err *err)
{
    char loopdev[64], backing[1024];
    int64_t off, len;
    if (!loop_of(lb, lv, loopdev, sizeof(loopdev))) return loop_map(lb, lv, false, err);
    int rc = lv_extent(lb, lv, backing, sizeof(backing), &off, &len, err);
    if (rc) return rc;
    struct stat st;
    bool file_backed = stat(backing, &st) == 0 && S_ISREG(st.st_mode);
    int fd = open(loopdev, O_RDWR | O_CLOEXEC);
    if (fd < 0) return ts_err_set(err, TS_EIO, "open %s: %s", loopdev, strerror(errno));
    struct loop_info64 info;
    if (ioctl(fd, LOOP_GET_STATUS64, &info) != 0) {
        rc = ts_err_set(err, TS_EIO, "loop status %s: %s", loopdev, strerror(errno));
        goto out;
    }
    if ((int64_t)info.lo_offset != off) {
        rc = ts_err_set(err, TS_EIO, "%s moved on its physical volume", lv);
        goto out;
    }
    int64_t old = (int64_t)info.lo_sizelimit;
    info.lo_sizelimit = (uint64_t)len;
    if (ioctl(fd, LOOP_SET_STATUS64, &info) != 0) {
        rc = ts_err_set(err, TS_EIO, "loop resize %s: %s", loopdev, strerror(errno));
        goto out;
    }
    close(fd);
    fd = -1;
    rc = zero_range(loopdev, old, len - old, file_backed, err);
out:
    if (fd >= 0) close(fd);
    return rc;
}

/* ---- building blocks ---------------------------------------------------------------------------- */

/* A new LV of size_gb, usable and reading as zeros at /dev/<vg>/<lv>. */
static int make_lv(struct lvm_be *lb, const char *lv, int64_t size_gb, struct ts_err *err)
{
    char sz[32], full[300];
    snprintf(sz, sizeof(sz), "%lldg", (long long)size_gb);
    int rc;
    if (lb->thin) {
        char pool[300];
        lv_full(lb, lb->pool, pool, sizeof(pool));
        rc = lvm(lb, NULL, 0, err, "lvcreate", "-q", "-T", pool, "-V", sz, "-n", lv, NULL);
        return rc; /* unprovisioned thin blocks read as zeros */
    }
    if (lb->loop)
        rc = lvm(lb, NULL, 0, err, "lvcreate", "-q", "-an", "-Zn", "-Wn", "--alloc", "contiguous", "-L", sz,
                 "-n", lv, lb->vg, NULL);
    else
        rc = lvm(lb, NULL, 0, err, "lvcreate", "-q", "-Wn", "--alloc", "contiguous", "-L", sz, "-n", lv,
                 lb->vg, NULL);
    if (rc) return rc;
    if (lb->loop)
        rc = loop_map(lb, lv, true, err);
    else {
        char dev[400];
        lv_dev(lb, lv, dev, sizeof(dev));
        rc = zero_range(dev, 0, size_gb << 30, false, err);
    }
    if (rc) {
        lv_full(lb, lv, full, sizeof(full));
        lvm(lb, NULL, 0, NULL, "lvremove", "-q", "-f", full, NULL);
    }
    return rc;
}

/* Removes an LV (and its loop mapping); a missing LV is no error. */
static int drop_lv(struct lvm_be *lb, const char *lv, struct ts_err *err)
{
    char full[300];
    if (lb->loop) loop_unmap(lb, lv);
    lv_full(lb, lv, full, sizeof(full));
    int rc = lvm(lb, NULL, 0, err, "lvremove", "-q", "-f", full, NULL);
    if (rc && !lv_exists(lb, lv)) rc = 0;
    return rc;
}

static int rename_lv(struct lvm_be *lb, const char *from, const char *to, struct ts_err *err)
{
    int rc = lvm(lb, NULL, 0, err, "lvrename", "-q", lb->vg, from, to, NULL);
    if (rc || !lb->loop) return rc;
    char a[400], b[400];
    lv_dev(lb, from, a, sizeof(a));
    lv_dev(lb, to, b, sizeof(b));
    if (rename(a, b) != 0) return ts_err_set(err, TS_EIO, "rename %s: %s", a, strerror(errno));
    return 0;
}

static int extend_lv(struct lvm_be *lb, const char *lv, int64_t size_gb, struct ts_err *err)
{
    char sz[32], full[300];
    snprintf(sz, sizeof(sz), "%lldg", (long long)size_gb);
    lv_full(lb, lv, full, sizeof(full));
    int rc;
    if (lb->thin) return lvm(lb, NULL, 0, err, "lvextend", "-q", "-L", sz, full, NULL);
    int64_t old = lv_bytes(lb, lv);
    rc = lvm(lb, NULL, 0, err, "lvextend", "-q", "--alloc", "contiguous", "-L", sz, full, NULL);
    if (rc) return rc;
    if (lb->loop) return loop_resize(lb, lv, err);
    char dev[400];
    lv_dev(lb, lv, dev, sizeof(dev));
    return zero_range(dev, old, (size_gb << 30) - old, false, err);
}

/* Copies the data of LV src into LV dst (already zeroed), skipping zero blocks. */
static int copy_lv(struct lvm_be *lb, const char *src, const char *dst, struct ts_err *err)
{
    char sp[400], dp[400];
    lv_dev(lb, src, sp, sizeof(sp));
    lv_dev(lb, dst, dp, sizeof(dp));
    int in = open(sp, O_RDONLY | O_CLOEXEC), out = open(dp, O_WRONLY | O_CLOEXEC);
    int rc = 0;
    char *buf = NULL;
    if (in < 0 || out < 0) {
        rc = ts_err_set(err, TS_EIO, "open %s: %s", in < 0 ? sp : dp, strerror(errno));
        goto out;
    }
    int64_t len = lseek(in, 0, SEEK_END), dlen = lseek(out, 0, SEEK_END);
    if (len < 0 || dlen < len) {
        rc = ts_err_set(err, TS_EIO, "%s is smaller than %s", dp, sp);
        goto out;
    }
    const size_t bs = 1 << 20;
    buf = ts_malloc(bs);
    for (int64_t off = 0; off < len;) {
        size_t want = (size_t)(len - off < (int64_t)bs ? len - off : (int64_t)bs);
        ssize_t got = pread(in, buf, want, off);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {
            rc = ts_err_set(err, TS_EIO, "read %s: %s", sp, got < 0 ? strerror(errno) : "short");
            goto out;
        }
        bool zero = true;
        for (ssize_t i = 0; i < got && zero; i += 8) {
            uint64_t w = 0;
            memcpy(&w, buf + i, (size_t)(got - i) < 8 ? (size_t)(got - i) : 8);
            zero = w == 0;
        }
        for (ssize_t done = 0; !zero && done < got;) {
            ssize_t w = pwrite(out, buf + done, (size_t)(got - done), off + done);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) {
                rc = ts_err_set(err, TS_EIO, "write %s: %s", dp, strerror(errno));
                goto out;
            }
            done += w;
        }
        off += got;
    }
    if (fsync(out) != 0) rc = ts_err_set(err, TS_EIO, "fsync %s: %s", dp, strerror(errno));
out:
    free(buf);
    if (in >= 0) close(in);
    if (out >= 0) close(out);
    return rc;
}

/* A thick copy of LV src as LV dst of at least size_gb (0 = src's size). */
static int copy_to_new(struct lvm_be *lb, const char *src, const char *dst, int64_t size_gb,
                       struct ts_err *err)
{
    int64_t src_gb = (lv_bytes(lb, src) + (1LL << 30) - 1) >> 30;
    if (src_gb <= 0) return ts_err_set(err, TS_ENOTFOUND, "%s/%s not found", lb->vg, src);
    char sdev[400], lo[64];
    lv_dev(lb, src, sdev, sizeof(sdev));
    if (lb->loop && !loop_of(lb, src, lo, sizeof(lo))) {
        int rc = loop_map(lb, src, false, err);
        if (rc) return rc;
    }
    int rc = make_lv(lb, dst, size_gb > src_gb ? size_gb : src_gb, err);
    if (rc == 0) rc = copy_lv(lb, src, dst, err);
    if (rc) drop_lv(lb, dst, NULL);
    return rc;
}

/* A thin snapshot of src named dst, active, grown to size_gb when larger. */
static int thin_snap(struct lvm_be *lb, const char *src, const char *dst, int64_t size_gb, struct ts_err *err)
{
    char full[300];
    lv_full(lb, src, full, sizeof(full));
    int rc = lvm(lb, NULL, 0, err, "lvcreate", "-q", "-s", "-kn", "-n", dst, full, NULL);
    if (rc) return rc;
    if (size_gb > 0 && (size_gb << 30) > lv_bytes(lb, dst)) rc = extend_lv(lb, dst, size_gb, err);
    if (rc) drop_lv(lb, dst, NULL);
    return rc;
}

/* ---- the driver interface ---------------------------------------------------------------------- */

static int l_create(struct ts_volume_backend *be, const char *vol_id, int64_t size_gb, struct ts_err *err)
{
    char lv[128];
    lv_name(lv, sizeof(lv), "volume", vol_id);
    return make_lv(LB(be), lv, size_gb, err);
}

static int64_t image_virtual_size(const char *path, struct ts_err *err)
{
    char out[4096];
    const char *argv[] = {"/usr/bin/qemu-img", "info", "--output=json", path, NULL};
    if (run_capture(argv, out, sizeof(out), err) != 0) return -1;
    const char *p = strstr(out, "\"virtual-size\":");
    if (!p) {
        ts_err_set(err, TS_EIO, "qemu-img info %s: no virtual size", path);
        return -1;
    }
    return strtoll(p + 15, NULL, 10);
}

static int l_create_from_image(struct ts_volume_backend *be, const char *vol_id, const char *image_path,
                               int64_t size_gb, struct ts_err *err)
{
    struct lvm_be *lb = LB(be);
    char tmp[128], final[128], dev[400];
    lv_name(tmp, sizeof(tmp), "tmp-volume", vol_id);
    lv_name(final, sizeof(final), "volume", vol_id);
    int64_t vsize = image_virtual_size(image_path, err);
    if (vsize < 0) return -TS_EIO;
    if (vsize > (size_gb << 30))
        return ts_err_set(err, TS_EINVAL,
                          "Image virtual size is %lld bytes and doesn't fit in a volume of size %lldGB.",
                          (long long)vsize, (long long)size_gb);
    drop_lv(lb, tmp, NULL); /* leftovers of an earlier try */
    int rc = make_lv(lb, tmp, size_gb, err);
    if (rc) return rc;
    lv_dev(lb, tmp, dev, sizeof(dev));
    /* -n: the target exists (a block device); it reads as zeros, so zero areas are skipped */
    const char *argv[] = {"/usr/bin/qemu-img", "convert", "-q", "-n", "--target-is-zero", "-O", "raw",
                          image_path,          dev,       NULL};
    rc = ts_volume_run(argv, err);
    if (rc == 0) {
        int fd = open(dev, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) != 0) rc = ts_err_set(err, TS_EIO, "fsync %s: %s", dev, strerror(errno));
        if (fd >= 0) close(fd);
    }
    if (rc == 0) rc = rename_lv(lb, tmp, final, err);
    if (rc) drop_lv(lb, tmp, NULL);
    return rc;
}

static int l_clone(struct ts_volume_backend *be, const char *vol_id, const char *src_id, bool src_is_snapshot,
                   int64_t size_gb, struct ts_err *err)
{
    struct lvm_be *lb = LB(be);
    char src[128], tmp[128], final[128];
    lv_name(src, sizeof(src), src_is_snapshot ? "_snapshot" : "volume", src_id);
    lv_name(tmp, sizeof(tmp), "tmp-volume", vol_id);
    lv_name(final, sizeof(final), "volume", vol_id);
    drop_lv(lb, tmp, NULL);
    int rc = lb->thin ? thin_snap(lb, src, tmp, size_gb, err) : copy_to_new(lb, src, tmp, size_gb, err);
    if (rc == 0) rc = rename_lv(lb, tmp, final, err);
    if (rc) drop_lv(lb, tmp, NULL);
    return rc;
}

static int l_delete(struct ts_volume_backend *be, const char *vol_id, struct ts_err *err)
{
    /* (a tmp-volume-<id> of failed work is dropped where it failed, or by cleanup at start) */
    char lv[128];
    lv_name(lv, sizeof(lv), "volume", vol_id);
    return drop_lv(LB(be), lv, err);
}

static int l_extend(struct ts_volume_backend *be, const char *vol_id, int64_t new_size_gb, struct ts_err *err)
{
    char lv[128];
    lv_name(lv, sizeof(lv), "volume", vol_id);
    return extend_lv(LB(be), lv, new_size_gb, err);
}

static int l_snapshot_create(struct ts_volume_backend *be, const char *snap_id, const char *vol_id,
                             struct ts_err *err)
{
    struct lvm_be *lb = LB(be);
    char src[128], dst[128];
    lv_name(src, sizeof(src), "volume", vol_id);
    lv_name(dst, sizeof(dst), "_snapshot", snap_id);
    drop_lv(lb, dst, NULL);
    return lb->thin ? thin_snap(lb, src, dst, 0, err) : copy_to_new(lb, src, dst, 0, err);
}

static int l_snapshot_delete(struct ts_volume_backend *be, const char *snap_id, struct ts_err *err)
{
    char lv[128];
    lv_name(lv, sizeof(lv), "_snapshot", snap_id);
    return drop_lv(LB(be), lv, err);
}

static int l_revert(struct ts_volume_backend *be, const char *vol_id, const char *snap_id, struct ts_err *err)
{
    struct lvm_be *lb = LB(be);
    char vol[128], snap[128], tmp[128], old[128];
    lv_name(vol, sizeof(vol), "volume", vol_id);
    lv_name(snap, sizeof(snap), "_snapshot", snap_id);
    if (!lb->thin) {
        /* thick: the volume's extents get the snapshot's data (the volume is not in use) */
        char dev[400], lo[64];
        lv_dev(lb, vol, dev, sizeof(dev));
        if (lb->loop && !loop_of(lb, snap, lo, sizeof(lo))) {
            int rc = loop_map(lb, snap, false, err);
            if (rc) return rc;
        }
        struct stat st;
        bool file_backed = false;
        if (lb->loop) {
            char backing[1024];
            int64_t off, len;
            if (lv_extent(lb, vol, backing, sizeof(backing), &off, &len, NULL) == 0)
                file_backed = stat(backing, &st) == 0 && S_ISREG(st.st_mode);
        }
        int rc = zero_range(dev, 0, lv_bytes(lb, vol), file_backed, err);
        return rc ? rc : copy_lv(lb, snap, vol, err);
    }
    /* thin: a new thin snapshot of the snapshot takes the volume's name */
    int64_t gb = lv_bytes(lb, vol) >> 30;
    lv_name(tmp, sizeof(tmp), "tmp-volume", vol_id);
    lv_name(old, sizeof(old), "tmp-old-volume", vol_id);
    drop_lv(lb, tmp, NULL);
    int rc = thin_snap(lb, snap, tmp, gb, err);
    if (rc) return rc;
    rc = rename_lv(lb, vol, old, err);
    if (rc == 0) {
        rc = rename_lv(lb, tmp, vol, err);
        if (rc) rename_lv(lb, old, vol, NULL);
    }
    if (rc == 0)
        drop_lv(lb, old, NULL);
    else
        drop_lv(lb, tmp, NULL);
    return rc;
}

static void l_path(struct ts_volume_backend *be, const char *vol_id, char *out, size_t outlen)
{
    char lv[128];
    lv_name(lv, sizeof(lv), "volume", vol_id);
    lv_dev(LB(be), lv, out, outlen);
}

static json_t *l_connection_info(struct ts_volume_backend *be, const char *vol_id)
{
    char p[400], name[128];
    l_path(be, vol_id, p, sizeof(p));
    lv_name(name, sizeof(name), "volume", vol_id);
    return json_pack("{s:s, s:{s:s, s:s, s:s, s:s, s:s}}", "driver_volume_type", "local", "data",
                     "device_path", p, "format", "raw", "name", name, "volume_id", vol_id, "access_mode",
                     "rw");
}

static int l_stats(struct ts_volume_backend *be, struct ts_volume_backend_stats *out)
{
    struct lvm_be *lb = LB(be);
    char buf[256];
    double total, free_b;
    if (lb->thin) {
        char pool[300];
        lv_full(lb, lb->pool, pool, sizeof(pool));
        if (lvm(lb, buf, sizeof(buf), NULL, "lvs", "--noheadings", "--units", "b", "--nosuffix",
                "--separator", ",", "-o", "lv_size,data_percent", pool, NULL) != 0)
            return -TS_EIO;
        double pct = 0;
        if (sscanf(buf, " %lf,%lf", &total, &pct) < 1) return -TS_EIO;
        free_b = total * (1.0 - pct / 100.0);
    } else {
        if (lvm(lb, buf, sizeof(buf), NULL, "vgs", "--noheadings", "--units", "b", "--nosuffix",
                "--separator", ",", "-o", "vg_size,vg_free", lb->vg, NULL) != 0)
            return -TS_EIO;
        if (sscanf(buf, " %lf,%lf", &total, &free_b) != 2) return -TS_EIO;
    }
    out->total_gb = total / (1024.0 * 1024 * 1024);
    out->free_gb = free_b / (1024.0 * 1024 * 1024);
    if (be->capacity_gb > 0 && be->capacity_gb < out->total_gb) out->total_gb = be->capacity_gb;
    out->thin = lb->thin;
    return 0;
}

/* Removes tmp- LVs of interrupted work and maps LVs whose loop device went (a reboot). */
static void l_cleanup(struct ts_volume_backend *be)
{
    struct lvm_be *lb = LB(be);
    char *out = ts_malloc(1 << 20);
    if (lvm(lb, out, 1 << 20, NULL, "lvs", "--noheadings", "-o", "lv_name", lb->vg, NULL) == 0) {
        for (char *save = NULL, *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
            while (*l == ' ')
                l++;
            l[strcspn(l, " ")] = 0;
            if (strncmp(l, "tmp-", 4) == 0) {
                ts_warn("volume", "lvm %s: removing leftover %s", be->name, l);
                drop_lv(lb, l, NULL);
            } else if (lb->loop && (strncmp(l, "volume-", 7) == 0 || strncmp(l, "_snapshot-", 10) == 0)) {
                char lo[64], sys[128];
                bool mapped = loop_of(lb, l, lo, sizeof(lo));
                snprintf(sys, sizeof(sys), "/sys/block/%s/loop/backing_file", mapped ? lo + 5 : "none");
                if (mapped && access(sys, F_OK) == 0) continue;
                struct ts_err e = {0};
                if (loop_map(lb, l, false, &e) != 0)
                    ts_warn("volume", "lvm %s: cannot map %s: %s", be->name, l, e.msg);
            }
        }
    }
    free(out);
    /* temporary image files (downloads) in the state directory */
    DIR *d = opendir(be->dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, ".tmp-", 5) == 0) {
            char p[1400];
            snprintf(p, sizeof(p), "%s/%s", be->dir, e->d_name);
            unlink(p);
        }
    }
    closedir(d);
}

static void l_free(struct ts_volume_backend *be)
{
    free(be);
}

static const struct ts_volume_backend_ops lvm_ops = {
    .driver = "lvm",
    .create = l_create,
    .create_from_image = l_create_from_image,
    .clone = l_clone,
    .delete = l_delete,
    .extend = l_extend,
    .snapshot_create = l_snapshot_create,
    .snapshot_delete = l_snapshot_delete,
    .revert = l_revert,
    .path = l_path,
    .connection_info = l_connection_info,
    .stats = l_stats,
    .cleanup = l_cleanup,
    .free = l_free,
};

static bool have_device_mapper(void)
{
    FILE *f = fopen("/proc/misc", "re");
    if (!f) return false;
    char line[128];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, "device-mapper") != NULL;
    fclose(f);
    return found;
}

static bool valid_name(const char *s)
{
    if (!s || !*s || *s == '-' || strlen(s) > 100) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
              *s == '-' || *s == '.' || *s == '+'))
            return false;
    return true;
}

int ts_volume_backend_lvm_open(const char *name, const char *vg, const char *lvm_type, const char *pool,
                               const char *state_dir, double capacity_gb, struct ts_volume_backend **out,
                               struct ts_err *err)
{
    if (!valid_name(vg))
        return ts_err_set(err, TS_EINVAL, "lvm backend %s: volume_group is not set or invalid", name);
    bool dm = have_device_mapper();
    bool thin;
    if (!lvm_type || !strcmp(lvm_type, "auto"))
        thin = dm;
    else if (!strcmp(lvm_type, "thin"))
        thin = true;
    else if (!strcmp(lvm_type, "default"))
        thin = false;
    else
        return ts_err_set(err, TS_EINVAL, "lvm backend %s: lvm_type must be auto, thin or default", name);
    if (thin && !dm)
        return ts_err_set(err, TS_EINVAL,
                          "lvm backend %s: thin volumes need device-mapper, which this kernel lacks", name);
    struct lvm_be *lb = ts_calloc(1, sizeof(*lb));
    int rc = 0;
    snprintf(lb->vg, sizeof(lb->vg), "%s", vg);
    if (pool && *pool)
        snprintf(lb->pool, sizeof(lb->pool), "%s", pool);
    else
        snprintf(lb->pool, sizeof(lb->pool), "%s-pool", vg);
    lb->thin = thin;
    lb->loop = !dm;
    /* find the group's physical volumes once (this scan looks at every device) */
    snprintf(
        lb->config, sizeof(lb->config),
        "activation{udev_sync=0 udev_rules=0} backup{archive=0} devices{obtain_device_list_from_udev=0}");
    char pvs[4096], sel[200];
    snprintf(sel, sizeof(sel), "vg_name=%s", vg);
    rc = lvm(lb, pvs, sizeof(pvs), err, "pvs", "--noheadings", "-o", "pv_name", "-S", sel, NULL);
    if (rc) goto out;
    char filter[1500] = "";
    size_t fl = 0;
    for (char *save = NULL, *l = strtok_r(pvs, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        while (*l == ' ')
            l++;
        l[strcspn(l, " ")] = 0;
        if (!*l || strchr(l, '|') || strchr(l, '"')) continue;
        int n = snprintf(filter + fl, sizeof(filter) - fl, "\"a|^%s$|\",", l);
        if (n < 0 || (size_t)n >= sizeof(filter) - fl) break;
        fl += (size_t)n;
    }
    if (fl == 0) {
        rc = ts_err_set(err, TS_EINVAL, "lvm backend %s: volume group %s not found", name, vg);
        goto out;
    }
    snprintf(lb->config, sizeof(lb->config),
             "activation{udev_sync=0 udev_rules=0} backup{archive=0} devices{obtain_device_list_from_udev=0 "
             "global_filter=[%s\"r|.*|\"]}",
             filter);
    if (thin && !lv_exists(lb, lb->pool)) {
        rc = ts_err_set(err, TS_EINVAL, "lvm backend %s: thin pool %s/%s not found", name, vg, lb->pool);
        goto out;
    }
    rc = ts_mkdirs(state_dir, 0700);
    if (rc) {
        rc = ts_err_set(err, TS_EIO, "cannot create %s", state_dir);
        goto out;
    }
    struct ts_volume_backend *be = &lb->base;
    be->ops = &lvm_ops;
    snprintf(be->name, sizeof(be->name), "%s", name);
    snprintf(be->dir, sizeof(be->dir), "%s", state_dir);
    snprintf(be->format, sizeof(be->format), "raw");
    be->capacity_gb = capacity_gb;
    be->ratio = thin ? 20.0 : 1.0;
    *out = be;
    return 0;
out:
    free(lb);
    return rc;
}
