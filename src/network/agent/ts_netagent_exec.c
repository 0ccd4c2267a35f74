/*
 * ts_netagent_exec.c: the one place where the network agent runs commands (ip, iptables,
 * dnsmasq, sysctl). fork/exec with an argv array (never a shell), stdin fed from a string,
 * stdout captured, stderr kept for the log, exit status checked, a 30 s limit. Unit tests
 * swap in a recording fake with ts_netagent_exec_set_fake().
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "network/agent/ts_netagent_int.h"

#define OUT_MAX (4u << 20)
#define ERR_MAX 4096
#define LIMIT_S 30.0

static ts_netagent_exec_fn fake_fn;
static void *fake_ctx;

void ts_netagent_exec_set_fake(ts_netagent_exec_fn fn, void *ctx)
{
    fake_fn = fn;
    fake_ctx = ctx;
}

static void argv_text(const char *const *argv, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = 0;
    for (int i = 0; argv[i] && n + 1 < len; i++) {
        int w = snprintf(buf + n, len - n, "%s%s", i ? " " : "", argv[i]);
        if (w < 0) break;
        n += (size_t)w;
    }
}

static void child_exec(const char *const *argv, int in_fd, int out_fd, int err_fd)
{
    /* only async-signal-safe calls between fork and exec */
    if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0) _exit(127);
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 3U, ~0U, 0) != 0)
#endif
        for (int fd = 3; fd < 4096; fd++)
            close(fd);
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    execvp(argv[0], (char *const *)argv);
    _exit(127);
}

int ts_netagent_exec(const char *const *argv, const char *input, char **out, int flags)
{
    int inp[2] = {-1, -1}, outp[2] = {-1, -1}, errp[2] = {-1, -1}, devnull = -1;
    struct ts_buf ob, eb;
    pid_t pid = -1;
    int status = -1, rc = -1;
    char cmd[512];

    if (out) *out = NULL;
    if (!argv || !argv[0]) return -1;
    if (fake_fn) return fake_fn(fake_ctx, argv, input, out);

    ts_buf_init(&ob, OUT_MAX);
    ts_buf_init(&eb, ERR_MAX);
    argv_text(argv, cmd, sizeof(cmd));
    if (pipe2(inp, O_CLOEXEC) < 0 || pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) goto out;
    if (flags & TS_NETAGENT_EXEC_DAEMON) {
        devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (devnull < 0) goto out;
    }
    pid = fork();
    if (pid < 0) goto out;
    if (pid == 0) {
        if (devnull >= 0) child_exec(argv, inp[0], devnull, devnull);
        child_exec(argv, inp[0], outp[1], errp[1]);
    }
    close(inp[0]);
    inp[0] = -1;
    close(outp[1]);
    outp[1] = -1;
    close(errp[1]);
    errp[1] = -1;
    fcntl(inp[1], F_SETFL, O_NONBLOCK);

    size_t in_len = input ? strlen(input) : 0, in_off = 0;
    if (in_len == 0) {
        close(inp[1]);
        inp[1] = -1;
    }
    double deadline = ts_mono() + LIMIT_S;
    bool timed_out = false;
    while (outp[0] >= 0 || errp[0] >= 0 || inp[1] >= 0) {
        struct pollfd p[3];
        int np = 0, io = -1, oo = -1, eo = -1;
        if (inp[1] >= 0) {
            io = np;
            p[np++] = (struct pollfd){.fd = inp[1], .events = POLLOUT};
        }
        if (outp[0] >= 0) {
            oo = np;
            p[np++] = (struct pollfd){.fd = outp[0], .events = POLLIN};
        }
        if (errp[0] >= 0) {
            eo = np;
            p[np++] = (struct pollfd){.fd = errp[0], .events = POLLIN};
        }
        double left = deadline - ts_mono();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        int n = poll(p, (nfds_t)np, (int)(left * 1000) + 1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) break;
        if (io >= 0 && p[io].revents) {
            ssize_t w = write(inp[1], input + in_off, in_len - in_off);
            if (w > 0) in_off += (size_t)w;
            if (w < 0 && errno != EAGAIN && errno != EINTR) in_off = in_len;
            if (in_off >= in_len) {
                close(inp[1]);
                inp[1] = -1;
            }
        }
        int fds[2] = {oo, eo};
        for (int k = 0; k < 2; k++) {
            if (fds[k] < 0 || !p[fds[k]].revents) continue;
            int *fdp = k == 0 ? &outp[0] : &errp[0];
            struct ts_buf *b = k == 0 ? &ob : &eb;
            char chunk[8192];
            ssize_t r = read(*fdp, chunk, sizeof(chunk));
            if (r > 0) {
                if (ts_buf_append(b, chunk, (size_t)r) < 0 && k == 1) { /* stderr: keep the head */
                }
            } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
                close(*fdp);
                *fdp = -1;
            }
        }
    }
    if (timed_out) kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status))
        rc = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        rc = 128 + WTERMSIG(status);
    if (rc != 0) {
        const char *e = eb.len ? ts_buf_cstr(&eb) : "";
        if (flags & TS_NETAGENT_EXEC_QUIET)
            ts_debug("netagent", "`%s` exited %d: %s", cmd, rc, e);
        else
            ts_warn("netagent", "`%s` exited %d%s: %s", cmd, rc, timed_out ? " (timeout)" : "", e);
    } else {
        ts_debug("netagent", "ran `%s`", cmd);
    }
    if (out) {
        ts_buf_cstr(&ob);
        *out = ob.data ? ts_buf_steal(&ob, NULL) : ts_strdup("");
    }
out:
    if (pid < 0) ts_warn("netagent", "cannot run `%s`: %s", cmd, strerror(errno));
    for (int i = 0; i < 2; i++) {
        if (inp[i] >= 0) close(inp[i]);
        if (outp[i] >= 0) close(outp[i]);
        if (errp[i] >= 0) close(errp[i]);
    }
    if (devnull >= 0) close(devnull);
    ts_buf_free(&ob);
    ts_buf_free(&eb);
    return rc;
}

int ts_netagent_exec_json(const json_t *argv, const char *input, char **out, int flags)
{
    if (out) *out = NULL;
    if (!json_is_array(argv) || json_array_size(argv) == 0 || json_array_size(argv) > 4096) return -1;
    size_t n = json_array_size(argv);
    const char **v = ts_calloc(n + 1, sizeof(*v));
    for (size_t i = 0; i < n; i++) {
        v[i] = json_string_value(json_array_get(argv, i));
        if (!v[i]) {
            free(v);
            return -1;
        }
    }
    int rc = ts_netagent_exec(v, input, out, flags);
    free(v);
    return rc;
}
