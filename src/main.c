/*
 * main.c: the `tinystack` command. `init` writes the config, databases, keys and the
 * bootstrap identity data; `serve` runs every enabled service in this process until
 * SIGINT/SIGTERM; `token rotate` rotates the Fernet keys; the per-host agent joins later.
 *
 * Services are referenced weakly: a service whose module is not linked in is skipped, so
 * the binary builds while services are added one by one.
 */
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/ts_auth.h"
#include "bus/ts_bus.h"
#include "conf/ts_conf.h"
#include "core/ts_core.h"
#include "http/ts_http.h"
#include "identity/ts_identity.h"
#include "ts_service.h"

extern const struct ts_service ts_image_service __attribute__((weak));
extern const struct ts_service ts_compute_service __attribute__((weak));
extern const struct ts_service ts_network_service __attribute__((weak));
extern const struct ts_service ts_volume_service __attribute__((weak));
extern const struct ts_service ts_object_service __attribute__((weak));
/* the per-host network agent (src/network/agent/ts_netagent.h), weak like the services */
extern int ts_netagent_start(struct ts_service_env *env, const char *host, void **state, struct ts_err *err)
    __attribute__((weak));
extern void ts_netagent_stop(void *state) __attribute__((weak));
/* its heartbeat to the agents API (src/network/ts_network.h) */
extern int ts_network_agent_report_start(struct ts_service_env *env, const char *host, void **state,
                                         struct ts_err *err) __attribute__((weak));
extern void ts_network_agent_report_stop(void *state) __attribute__((weak));
extern int ts_netagent_apply_main(int argc, char **argv) __attribute__((weak));

/* Starts this host's network agent (Neutron's L2/DHCP/L3/metadata agents) when the network
 * module is built in and [network] run_agent is true (default). Needs root: without it the
 * cloud runs with the API only, and says so. */
static void *netagent_maybe_start(struct ts_service_env *env)
{
    void *st = NULL;
    struct ts_err err = {0};
    if (!ts_netagent_start || !ts_conf_get_bool(env->conf, "network", "run_agent", true)) return NULL;
    if (ts_netagent_start(env, env->host, &st, &err) < 0) {
        ts_warn("main", "network agent not started: %s", err.msg);
        return NULL;
    }
    return st;
}

/* The network agent's heartbeat (report_state), started once the agent runs. */
static void *agent_report_maybe_start(struct ts_service_env *env)
{
    void *st = NULL;
    struct ts_err err = {0};
    if (!ts_network_agent_report_start) return NULL;
    if (ts_network_agent_report_start(env, env->host, &st, &err) < 0) {
        ts_warn("main", "network agent heartbeat not started: %s", err.msg);
        return NULL;
    }
    return st;
}

/* the per-host compute agent (src/compute/ts_compute.h), also weak */
struct ts_compute_agent;
extern int ts_compute_agent_start(struct ts_service_env *env, const char *driver, struct ts_compute_agent **out,
                                  struct ts_err *err) __attribute__((weak));
extern void ts_compute_agent_stop(struct ts_compute_agent *agent) __attribute__((weak));

#define MAX_SERVICES 16
#define MAX_SETS 128

struct opts {
    const char *data_dir;
    const char *admin_password;
    int n_sets;
    const char *sets[MAX_SETS];
};

static int services_list(const struct ts_service **out)
{
    int n = 0;
    out[n++] = &ts_identity_service;
    const struct ts_service *weak[] = {&ts_image_service, &ts_compute_service, &ts_network_service,
                                       &ts_volume_service, &ts_object_service};
    for (size_t i = 0; i < sizeof(weak) / sizeof(weak[0]); i++)
        if (weak[i]) out[n++] = weak[i];
    return n;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: tinystack <command> [options]\n"
            "  init  [--data DIR] [--admin-password PW] [--set section.key=value ...]\n"
            "        write tinystack.conf, databases, Fernet keys, bootstrap data, clouds.yaml, openrc\n"
            "        (idempotent: an existing config is kept and updated)\n"
            "  serve [--data DIR] [--set section.key=value ...]   run the enabled services\n"
            "  token rotate [--data DIR]                          rotate the Fernet keys\n"
            "  netagent-apply ...                                 apply a network data-plane state file (tests)\n"
            "  compute [--data DIR] [--host NAME] [--driver fake|libvirt] [--set section.key=value ...]\n"
            "        run only a compute agent (needs [DEFAULT] transport_url = amqp://... across processes)\n"
            "  version\n"
            "DIR defaults to $TINYSTACK_DATA or /var/lib/tinystack.\n");
}

static int parse_opts(int argc, char **argv, int first, struct opts *o)
{
    o->data_dir = getenv("TINYSTACK_DATA");
    if (!o->data_dir || !*o->data_dir) o->data_dir = "/var/lib/tinystack";
    for (int i = first; i < argc; i++) {
        if (!strcmp(argv[i], "--data") && i + 1 < argc) {
            o->data_dir = argv[++i];
        } else if (!strcmp(argv[i], "--admin-password") && i + 1 < argc) {
            o->admin_password = argv[++i];
        } else if (!strcmp(argv[i], "--set") && i + 1 < argc) {
            if (o->n_sets == MAX_SETS) {
                fprintf(stderr, "tinystack: too many --set options\n");
                return -1;
            }
            o->sets[o->n_sets++] = argv[++i];
        } else {
            fprintf(stderr, "tinystack: unknown option '%s'\n", argv[i]);
            usage();
            return -1;
        }
    }
    return 0;
}

/* Applies "section.key=value" overrides. */
static int apply_sets(struct ts_conf *conf, const struct opts *o)
{
    for (int i = 0; i < o->n_sets; i++) {
        const char *s = o->sets[i];
        const char *dot = strchr(s, '.');
        const char *eq = strchr(s, '=');
        if (!dot || !eq || dot > eq || dot == s || eq == dot + 1) {
            fprintf(stderr, "tinystack: --set wants section.key=value, got '%s'\n", s);
            return -1;
        }
        char *section = ts_strndup(s, (size_t)(dot - s));
        char *key = ts_strndup(dot + 1, (size_t)(eq - dot - 1));
        ts_conf_set(conf, section, key, eq + 1);
        free(section);
        free(key);
    }
    return 0;
}

static char *abs_path(const char *p)
{
    char buf[PATH_MAX];
    if (p[0] == '/') return ts_strdup(p);
    if (!getcwd(buf, sizeof(buf))) ts_panic("getcwd: %s", strerror(errno));
    return ts_asprintf("%s/%s", buf, p);
}

static char *random_password(void)
{
    unsigned char raw[18];
    ts_random(raw, sizeof(raw));
    return ts_b64url_encode(raw, sizeof(raw), false);
}

/* Loads DIR/tinystack.conf if present; fills defaults; applies --set. */
static struct ts_conf *load_conf(const char *data_dir, const struct opts *o, bool must_exist)
{
    struct ts_conf *conf = ts_conf_new();
    char *path = ts_asprintf("%s/tinystack.conf", data_dir);
    struct ts_err err = {0};
    if (access(path, R_OK) == 0) {
        if (ts_conf_load(conf, path, &err) < 0) {
            fprintf(stderr, "tinystack: %s: %s\n", path, err.msg);
            goto fail;
        }
    } else if (must_exist) {
        fprintf(stderr, "tinystack: %s not found: run `tinystack init --data %s` first\n", path, data_dir);
        goto fail;
    }
    if (apply_sets(conf, o) < 0) goto fail;
    free(path);
    return conf;
fail:
    free(path);
    ts_conf_free(conf);
    return NULL;
}

static void env_fill(struct ts_service_env *env, struct ts_conf *conf, const char *data_dir)
{
    memset(env, 0, sizeof(*env));
    env->conf = conf;
    env->data_dir = data_dir;
    env->host = ts_conf_get(conf, "DEFAULT", "host", "localhost");
    env->bind = ts_conf_get(conf, "DEFAULT", "bind", "127.0.0.1");
}

static char *service_url(const struct ts_conf *conf, const struct ts_service *s)
{
    const char *host = ts_conf_get(conf, "DEFAULT", "public_host", "127.0.0.1");
    int port = (int)ts_conf_get_int(conf, s->name, "port", s->default_port);
    return ts_asprintf("http://%s:%d%s", host, port, s->catalog_path ? s->catalog_path : "");
}

static int write_client_files(const char *data_dir, const char *auth_url, const char *password)
{
    char *clouds = ts_asprintf("# written by tinystack init\n"
                               "clouds:\n"
                               "  tinystack:\n"
                               "    auth:\n"
                               "      auth_url: %s/v3\n"
                               "      username: admin\n"
                               "      password: \"%s\"\n"
                               "      project_name: admin\n"
                               "      user_domain_name: Default\n"
                               "      project_domain_name: Default\n"
                               "    region_name: RegionOne\n"
                               "    identity_api_version: 3\n"
                               /* 2.37: the CLI sends `--nic none|auto` only from 2.37 on */
                               "    compute_api_version: \"2.37\"\n"
                               "    interface: public\n",
                               auth_url, password);
    char *openrc = ts_asprintf("# source this file to use the tinystack cloud as admin\n"
                               "export OS_AUTH_URL=%s/v3\n"
                               "export OS_IDENTITY_API_VERSION=3\n"
                               "export OS_COMPUTE_API_VERSION=2.37\n"
                               "export OS_USERNAME=admin\n"
                               "export OS_PASSWORD='%s'\n"
                               "export OS_PROJECT_NAME=admin\n"
                               "export OS_USER_DOMAIN_NAME=Default\n"
                               "export OS_PROJECT_DOMAIN_NAME=Default\n"
                               "export OS_REGION_NAME=RegionOne\n"
                               "export OS_INTERFACE=public\n",
                               auth_url, password);
    char *p1 = ts_asprintf("%s/clouds.yaml", data_dir);
    char *p2 = ts_asprintf("%s/openrc", data_dir);
    int rc = ts_file_write_atomic(p1, clouds, strlen(clouds), 0600);
    if (rc == 0) rc = ts_file_write_atomic(p2, openrc, strlen(openrc), 0600);
    free(clouds);
    free(openrc);
    free(p1);
    free(p2);
    return rc;
}

static int cmd_init(int argc, char **argv)
{
    struct opts o = {0};
    if (parse_opts(argc, argv, 2, &o) < 0) return 2;
    char *data_dir = abs_path(o.data_dir);
    int status = 1;
    struct ts_err err = {0};
    struct ts_conf *conf = NULL;
    const struct ts_service *svcs[MAX_SERVICES];
    int nsvc = services_list(svcs);
    struct ts_identity_catalog_entry catalog[MAX_SERVICES];
    char *urls[MAX_SERVICES] = {0};
    char *admin_pw = NULL, *service_pw = NULL, *fernet_dir = NULL, *conf_path = NULL, *text = NULL;
    char hostname[256] = "localhost";
    int ncat = 0;

    if (ts_mkdirs(data_dir, 0755) < 0) {
        fprintf(stderr, "tinystack: cannot create %s: %s\n", data_dir, strerror(errno));
        goto out;
    }
    conf = load_conf(data_dir, &o, false);
    if (!conf) goto out;

    gethostname(hostname, sizeof(hostname) - 1);
    ts_service_conf_default(conf, "DEFAULT", "data_dir", data_dir);
    ts_service_conf_default(conf, "DEFAULT", "host", hostname);
    ts_service_conf_default(conf, "DEFAULT", "bind", "127.0.0.1");
    ts_service_conf_default(conf, "DEFAULT", "public_host", "127.0.0.1");
    ts_service_conf_default(conf, "DEFAULT", "transport_url", "inproc://");
    ts_service_conf_default(conf, "DEFAULT", "region", "RegionOne");
    if (!ts_conf_get(conf, "DEFAULT", "enabled_services", NULL)) {
        struct ts_buf b;
        ts_buf_init(&b, 4096);
        for (int i = 0; i < nsvc; i++) ts_buf_printf(&b, "%s%s", i ? "," : "", svcs[i]->name);
        ts_conf_set(conf, "DEFAULT", "enabled_services", ts_buf_cstr(&b));
        ts_buf_free(&b);
    }
    if (o.admin_password) ts_conf_set(conf, "identity", "admin_password", o.admin_password);
    if (!ts_conf_get(conf, "identity", "admin_password", NULL)) {
        admin_pw = random_password();
        ts_conf_set(conf, "identity", "admin_password", admin_pw);
    }
    if (!ts_conf_get(conf, "service_credentials", "password", NULL)) {
        service_pw = random_password();
        ts_conf_set(conf, "service_credentials", "password", service_pw);
    }
    ts_service_conf_default(conf, "service_credentials", "username", "tinystack");
    ts_service_conf_default(conf, "service_credentials", "project_name", "service");

    fernet_dir = ts_asprintf("%s/fernet-keys", data_dir);
    ts_service_conf_default(conf, "identity", "key_repository", fernet_dir);
    if (ts_fernet_setup(ts_conf_get(conf, "identity", "key_repository", fernet_dir), &err) < 0) {
        fprintf(stderr, "tinystack: fernet keys: %s\n", err.msg);
        goto out;
    }

    struct ts_service_env env;
    env_fill(&env, conf, data_dir);
    for (int i = 0; i < nsvc; i++) {
        if (svcs[i]->init && svcs[i]->init(&env, &err) < 0) {
            fprintf(stderr, "tinystack: init %s: %s\n", svcs[i]->name, err.msg);
            goto out;
        }
        if (!ts_service_enabled(conf, svcs[i]->name)) continue;
        urls[ncat] = service_url(conf, svcs[i]);
        catalog[ncat] = (struct ts_identity_catalog_entry){svcs[i]->type, svcs[i]->catalog_name, urls[ncat]};
        ncat++;
    }
    if (ts_identity_bootstrap(&env, ts_conf_get(conf, "identity", "admin_password", ""),
                              ts_conf_get(conf, "service_credentials", "password", ""), catalog, ncat, &err) < 0) {
        fprintf(stderr, "tinystack: bootstrap: %s\n", err.msg);
        goto out;
    }

    conf_path = ts_asprintf("%s/tinystack.conf", data_dir);
    text = ts_conf_dump(conf);
    if (ts_file_write_atomic(conf_path, text, strlen(text), 0600) < 0) {
        fprintf(stderr, "tinystack: cannot write %s: %s\n", conf_path, strerror(errno));
        goto out;
    }
    char *auth_url = service_url(conf, &ts_identity_service);
    /* the catalog path of identity is "" so auth_url is the bare endpoint */
    if (write_client_files(data_dir, auth_url, ts_conf_get(conf, "identity", "admin_password", "")) < 0) {
        free(auth_url);
        fprintf(stderr, "tinystack: cannot write clouds.yaml/openrc in %s\n", data_dir);
        goto out;
    }
    free(auth_url);
    printf("tinystack: initialised %s\n  config:  %s\n  clouds:  %s/clouds.yaml (cloud \"tinystack\")\n"
           "  openrc:  %s/openrc\n",
           data_dir, conf_path, data_dir, data_dir);
    status = 0;
out:
    for (int i = 0; i < ncat; i++) free(urls[i]);
    free(admin_pw);
    free(service_pw);
    free(fernet_dir);
    free(conf_path);
    free(text);
    ts_conf_free(conf);
    free(data_dir);
    return status;
}

static int cmd_serve(int argc, char **argv)
{
    struct opts o = {0};
    if (parse_opts(argc, argv, 2, &o) < 0) return 2;
    char *data_dir = abs_path(o.data_dir);
    int status = 1;
    struct ts_err err = {0};
    struct ts_bus *bus = NULL;
    struct ts_http_authn *authn = NULL;
    const struct ts_service *svcs[MAX_SERVICES];
    void *states[MAX_SERVICES] = {0};
    int started[MAX_SERVICES] = {0};
    int nsvc = services_list(svcs);
    char *identity_url = NULL;
    void *netagent = NULL, *reporter = NULL;
    struct ts_conf *conf = load_conf(data_dir, &o, true);
    if (!conf) goto out;

    const char *log_file = ts_conf_get(conf, "DEFAULT", "log_file", NULL);
    if (log_file) ts_log_set_file(log_file);
    if (ts_conf_get_bool(conf, "DEFAULT", "debug", false)) ts_log_set_level(TS_LOG_DEBUG);

    /* Block the stop signals in every thread; this one waits for them with sigwait. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (ts_bus_open(ts_conf_get(conf, "DEFAULT", "transport_url", "inproc://"), &bus, &err) < 0) {
        fprintf(stderr, "tinystack: message bus: %s\n", err.msg);
        goto out;
    }
    {
        const char *host = ts_conf_get(conf, "DEFAULT", "public_host", "127.0.0.1");
        int port = (int)ts_conf_get_int(conf, "identity", "port", ts_identity_service.default_port);
        identity_url = ts_asprintf("http://%s:%d", host, port);
    }
    const char *iurl = ts_conf_get(conf, "DEFAULT", "identity_url", identity_url);
    authn = ts_http_authn_new(iurl, (int)ts_conf_get_int(conf, "DEFAULT", "token_cache_seconds", 300), bus);

    struct ts_service_env env;
    env_fill(&env, conf, data_dir);
    env.bus = bus;
    env.identity_url = iurl;
    env.authn = authn;
    for (int i = 0; i < nsvc; i++) {
        if (!ts_service_enabled(conf, svcs[i]->name)) continue;
        if (svcs[i]->start(&env, &states[i], &err) < 0) {
            fprintf(stderr, "tinystack: %s failed to start: %s\n", svcs[i]->name, err.msg);
            goto stop;
        }
        started[i] = 1;
        ts_info("main", "%s service started on port %lld", svcs[i]->name,
                (long long)ts_conf_get_int(conf, svcs[i]->name, "port", svcs[i]->default_port));
    }
    if (ts_service_enabled(conf, "network")) netagent = netagent_maybe_start(&env);
    if (netagent) reporter = agent_report_maybe_start(&env);
    printf("tinystack: serving (Ctrl-C to stop)\n");
    fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    ts_info("main", "signal %d: stopping", sig);
    status = 0;
stop:
    if (reporter) ts_network_agent_report_stop(reporter);
    if (netagent) ts_netagent_stop(netagent);
    for (int i = nsvc - 1; i >= 0; i--)
        if (started[i]) svcs[i]->stop(states[i]);
out:
    ts_bus_close(bus); /* first: the validator's revocation subscription lives on the bus */
    ts_http_authn_free(authn);
    ts_conf_free(conf);
    free(identity_url);
    free(data_dir);
    return status;
}

static int cmd_token(int argc, char **argv)
{
    if (argc < 3 || strcmp(argv[2], "rotate")) {
        usage();
        return 2;
    }
    struct opts o = {0};
    if (parse_opts(argc, argv, 3, &o) < 0) return 2;
    char *data_dir = abs_path(o.data_dir);
    struct ts_conf *conf = load_conf(data_dir, &o, true);
    int status = 1;
    struct ts_err err = {0};
    if (!conf) goto out;
    char *def = ts_asprintf("%s/fernet-keys", data_dir);
    const char *dir = ts_conf_get(conf, "identity", "key_repository", def);
    int max_active = (int)ts_conf_get_int(conf, "identity", "max_active_keys", 3);
    if (ts_fernet_rotate(dir, max_active, &err) < 0) {
        fprintf(stderr, "tinystack: rotate: %s\n", err.msg);
    } else {
        printf("tinystack: rotated Fernet keys in %s\n", dir);
        status = 0;
    }
    free(def);
out:
    ts_conf_free(conf);
    free(data_dir);
    return status;
}

/* `tinystack compute`: only the per-host compute agent (nova-compute). */
static int cmd_compute(int argc, char **argv)
{
    if (!ts_compute_agent_start) {
        fprintf(stderr, "tinystack: the compute module is not built in\n");
        return 1;
    }
    struct opts o = {0};
    const char *host = NULL, *driver = NULL;
    char **rest = ts_calloc((size_t)argc + 1, sizeof(char *));
    int nrest = 0;
    for (int i = 0; i < argc; i++) {
        if (i >= 2 && !strcmp(argv[i], "--host") && i + 1 < argc) host = argv[++i];
        else if (i >= 2 && !strcmp(argv[i], "--driver") && i + 1 < argc) driver = argv[++i];
        else rest[nrest++] = argv[i];
    }
    int status = 1;
    char *data_dir = NULL;
    struct ts_conf *conf = NULL;
    struct ts_bus *bus = NULL;
    struct ts_compute_agent *agent = NULL;
    void *netagent = NULL, *reporter = NULL;
    char *identity_url = NULL;
    struct ts_err err = {0};
    if (parse_opts(nrest, rest, 2, &o) < 0) {
        free(rest);
        return 2;
    }
    data_dir = abs_path(o.data_dir);
    conf = load_conf(data_dir, &o, false);
    if (!conf) goto out;
    if (host) ts_conf_set(conf, "DEFAULT", "host", host);
    if (driver) ts_conf_set(conf, "compute", "virt_driver", driver);
    ts_service_conf_default(conf, "DEFAULT", "host", "localhost");
    const char *log_file = ts_conf_get(conf, "DEFAULT", "log_file", NULL);
    if (log_file && !host) ts_log_set_file(log_file);
    if (ts_conf_get_bool(conf, "DEFAULT", "debug", false)) ts_log_set_level(TS_LOG_DEBUG);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (ts_bus_open(ts_conf_get(conf, "DEFAULT", "transport_url", "inproc://"), &bus, &err) < 0) {
        fprintf(stderr, "tinystack: message bus: %s\n", err.msg);
        goto out;
    }
    struct ts_service_env env;
    env_fill(&env, conf, data_dir);
    env.bus = bus;
    identity_url = ts_asprintf("http://%s:%lld", ts_conf_get(conf, "DEFAULT", "public_host", "127.0.0.1"),
                               (long long)ts_conf_get_int(conf, "identity", "port", 5000));
    env.identity_url = ts_conf_get(conf, "DEFAULT", "identity_url", identity_url);
    if (ts_compute_agent_start(&env, NULL, &agent, &err) < 0) {
        fprintf(stderr, "tinystack: compute agent: %s\n", err.msg);
        goto out;
    }
    /* fake hosts plug nothing: several of them share one machine in scale tests */
    if (ts_service_enabled(conf, "network") && !ts_streq(ts_conf_get(conf, "compute", "virt_driver", ""), "fake"))
        netagent = netagent_maybe_start(&env);
    if (netagent) reporter = agent_report_maybe_start(&env);
    printf("tinystack: compute agent for host %s running (Ctrl-C to stop)\n", env.host);
    fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    status = 0;
out:
    if (reporter) ts_network_agent_report_stop(reporter);
    if (netagent) ts_netagent_stop(netagent);
    if (agent) ts_compute_agent_stop(agent);
    ts_bus_close(bus);
    ts_conf_free(conf);
    free(identity_url);
    free(data_dir);
    free(rest);
    return status;
}

int main(int argc, char **argv)
{
    /* glibc gives each thread that contends an arena of its own, up to 8 per core, and keeps
     * their freed pages: with one HTTP thread pool per service that is most of the heap RSS.
     * Two arenas (tcache still serves most small allocations lock-free); MALLOC_ARENA_MAX wins. */
    if (!getenv("MALLOC_ARENA_MAX")) mallopt(M_ARENA_MAX, 2);
    if (argc < 2) {
        usage();
        return 2;
    }
    if (!strcmp(argv[1], "init")) return cmd_init(argc, argv);
    if (!strcmp(argv[1], "serve")) return cmd_serve(argc, argv);
    if (!strcmp(argv[1], "token")) return cmd_token(argc, argv);
    if (!strcmp(argv[1], "compute")) return cmd_compute(argc, argv);
    if (!strcmp(argv[1], "netagent-apply") && ts_netagent_apply_main)
        return ts_netagent_apply_main(argc - 1, argv + 1);
    if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
        printf("tinystack 0.1.0\n");
        return 0;
    }
    if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage();
        return 0;
    }
    fprintf(stderr, "tinystack: unknown command '%s'\n", argv[1]);
    usage();
    return 2;
}
