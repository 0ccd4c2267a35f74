/*
 * ts_compute.h: the compute service (Nova v2.1 compatible): compute-api, scheduler and
 * conductor run inside `tinystack serve` (plus an in-process agent when
 * [compute] run_agent is true); `tinystack compute` runs only a per-host agent.
 */
#ifndef TS_COMPUTE_H
#define TS_COMPUTE_H

#include "ts_service.h"

extern const struct ts_service ts_compute_service;

struct ts_compute_agent;

/* Starts a compute agent (nova-compute) for host env->host on env->bus with the virt driver
 * `driver` (NULL = [compute] virt_driver, else "libvirt" when libvirtd answers, else "fake").
 * It serves topic "compute.<host>" and reports to the conductor every
 * [compute] report_interval seconds. Called from the main thread; *out is the caller's. */
int ts_compute_agent_start(struct ts_service_env *env, const char *driver, struct ts_compute_agent **out,
                           struct ts_err *err);
/* Stops the agent (waits for running operations) and frees it. NULL is a no-op. */
void ts_compute_agent_stop(struct ts_compute_agent *agent);

#endif
