/* netagent_apply.c: test driver for tests/e2e/test_netagent*.py.
 *   netagent_apply --state FILE --data DIR ...   = `tinystack netagent-apply` (no API)
 *   netagent_apply --cloud DATA_DIR [--host H]   the in-cloud agent (ts_netagent_start) against a
 *                                                running `tinystack serve` whose data dir is DATA_DIR,
 *                                                until SIGTERM (stands in for the wiring in main.c)
 * Built by the tests against the build tree's libtslib.a. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "conf/ts_conf.h"
#include "network/agent/ts_netagent.h"

static volatile sig_atomic_t stop;
static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    if (argc < 3 || strcmp(argv[1], "--cloud") != 0) return ts_netagent_apply_main(argc, argv);
    const char *data = argv[2], *host = argc > 4 && strcmp(argv[3], "--host") == 0 ? argv[4] : NULL;
    struct ts_conf *conf = ts_conf_new();
    struct ts_err err = {0};
    char path[4096], idurl[256];
    snprintf(path, sizeof(path), "%s/tinystack.conf", data);
    if (ts_conf_load(conf, path, &err) < 0) {
        fprintf(stderr, "netagent_apply: %s\n", err.msg);
        return 1;
    }
    snprintf(idurl, sizeof(idurl), "http://127.0.0.1:%lld",
             (long long)ts_conf_get_int(conf, "identity", "port", 5000));
    struct ts_service_env env = {.conf = conf,
                                 .data_dir = data,
                                 .host = ts_conf_get(conf, "DEFAULT", "host", "localhost"),
                                 .identity_url = idurl,
                                 .bind = "127.0.0.1"};
    void *st = NULL;
    if (ts_netagent_start(&env, host, &st, &err) < 0) {
        fprintf(stderr, "netagent_apply: %s\n", err.msg);
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    while (!stop)
        pause();
    ts_netagent_stop(st);
    ts_conf_free(conf);
    return 0;
}
