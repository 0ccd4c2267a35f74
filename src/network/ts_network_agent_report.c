/*
 * ts_network_agent_report.c: the host side of the agents API. Where the data-plane agent
 * of src/network/agent runs (in `tinystack serve` or `tinystack compute`), a thread casts
 * report_state to the network service (bus topic "q-reports-plugin") at start and every
 * [network] agent_report_interval seconds, as Neutron's agents do: that one process is this
 * host's Linux bridge, DHCP, L3 and metadata agent, so it reports the four of them. The
 * heartbeat stops with the process; the service then shows the agents not alive.
 */
#include "network/ts_network.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/ts_bus.h"
#include "conf/ts_conf.h"
#include "json/ts_json.h"

struct reporter {
    struct ts_bus *bus;
    json_t *agents; /* what every report carries */
    char host[256];
    double interval;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool stop, warned;
};

static json_t *agent(const char *type, const char *binary, const char *topic, const char *az, json_t *conf)
{
    json_t *a = json_pack("{s:s,s:s,s:s,s:o}", "agent_type", type, "binary", binary, "topic", topic,
                          "configurations", conf);
    if (az) ts_json_set_str(a, "availability_zone", az);
    return a;
}

static void report(struct reporter *r, bool start)
{
    json_t *args = json_pack("{s:s,s:b,s:O}", "host", r->host, "start_flag", start, "agents", r->agents);
    struct ts_err err = {0};
    /* ts_bus_cast steals args */
    if (ts_bus_cast(r->bus, "q-reports-plugin", "report_state", args, &err) < 0) {
        if (!r->warned) ts_warn("netagent", "agent heartbeat not delivered: %s", err.msg);
        r->warned = true;
    } else {
        r->warned = false;
    }
}

static void *report_main(void *arg)
{
    struct reporter *r = arg;
    bool start = true;
    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        pthread_mutex_unlock(&r->mu);
        report(r, start);
        start = false;
        pthread_mutex_lock(&r->mu);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double until = (double)ts.tv_sec + ts.tv_nsec / 1e9 + r->interval;
        ts.tv_sec = (time_t)until;
        ts.tv_nsec = (long)((until - (double)ts.tv_sec) * 1e9);
        while (!r->stop)
            if (pthread_cond_timedwait(&r->cond, &r->mu, &ts) == ETIMEDOUT) break;
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

int ts_network_agent_report_start(struct ts_service_env *env, const char *host, void **state, struct ts_err *err)
{
    if (!env || !env->bus || !state) return ts_err_set(err, TS_EINVAL, "agent report: no bus");
    const struct ts_conf *c = env->conf;
    struct reporter *r = ts_calloc(1, sizeof(*r));
    r->bus = env->bus;
    snprintf(r->host, sizeof(r->host), "%s", host ? host : env->host ? env->host : "localhost");
    r->interval = ts_conf_get_double(c, "network", "agent_report_interval", 10.0);
    if (r->interval < 0.2) r->interval = 0.2;
    const char *az = ts_conf_get(c, "network", "availability_zone", "nova");
    const char *ext = ts_conf_get(c, "network", "external_bridge_interface", NULL);
    r->agents = json_array();
    json_array_append_new(r->agents,
                          agent("Linux bridge agent", "neutron-linuxbridge-agent", "N/A", NULL,
                                json_pack("{s:{},s:s?,s:[],s:b}", "bridge_mappings", "external_bridge_interface",
                                          ext, "tunnel_types", "l2_population", 0)));
    json_array_append_new(r->agents, agent("DHCP agent", "neutron-dhcp-agent", "dhcp_agent", az,
                                           json_pack("{s:s,s:b}", "dhcp_driver", "dnsmasq", "notifies_port_ready",
                                                     1)));
    json_array_append_new(r->agents, agent("L3 agent", "neutron-l3-agent", "l3_agent", az,
                                           json_pack("{s:s,s:b,s:s}", "agent_mode", "legacy",
                                                     "handle_internal_only_routers", 1, "interface_driver",
                                                     "linuxbridge")));
    if (ts_conf_get_bool(c, "network", "enable_metadata_proxy", true))
        json_array_append_new(r->agents,
                              agent("Metadata agent", "neutron-metadata-agent", "N/A", NULL,
                                    json_pack("{s:I}", "metadata_proxy_port",
                                              (json_int_t)ts_conf_get_int(c, "network", "metadata_proxy_port",
                                                                          9697))));
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cond, NULL);
    if (pthread_create(&r->thread, NULL, report_main, r) != 0) {
        pthread_mutex_destroy(&r->mu);
        pthread_cond_destroy(&r->cond);
        json_decref(r->agents);
        free(r);
        return ts_err_set(err, TS_EIO, "agent report: cannot start its thread");
    }
    *state = r;
    return 0;
}

void ts_network_agent_report_stop(void *state)
{
    struct reporter *r = state;
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cond);
    json_decref(r->agents);
    free(r);
}
