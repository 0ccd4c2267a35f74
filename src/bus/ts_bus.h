/*
 * ts_bus.h: the message bus between services, oslo.messaging-like. Two backends behind
 * one interface: "inproc://" (queues and worker threads inside the process, the default)
 * and "amqp://user:pass@host:port/vhost" (RabbitMQ through librabbitmq; one I/O thread
 * owns the connection). Topology as oslo.messaging: a topic exchange per bus, queues
 * "<topic>" (shared by all servers) and "<topic>.<host>" (one server), fanout
 * "<topic>_fanout", replies by correlation id, notifications on topic "notifications".
 *
 * Messages are JSON: {"method": "...", "args": {...}, "context": {...}}.
 */
#ifndef TS_BUS_H
#define TS_BUS_H

#include <jansson.h>
#include "core/ts_core.h"

struct ts_bus;

/* Called on a worker thread for each message. For calls, set *reply (ownership passes to
 * the bus) and return 0, or return a negative TS_E code (the caller gets it back with
 * the err message). For casts *reply is ignored. args are borrowed. */
typedef int (*ts_bus_handler_fn)(void *ctx, const char *method, json_t *args, json_t **reply, struct ts_err *err);

/* Opens the bus. url NULL or "inproc://" = in-process. */
int ts_bus_open(const char *url, struct ts_bus **out, struct ts_err *err);
/* Stops consumers (waits for running handlers) and frees. NULL is a no-op. */
void ts_bus_close(struct ts_bus *bus);

/* Consumes topic (e.g. "scheduler", "compute.host1") with nthreads workers (0 = 1).
 * Several servers on one topic share its messages round-robin. */
int ts_bus_serve(struct ts_bus *bus, const char *topic, ts_bus_handler_fn fn, void *ctx, int nthreads, struct ts_err *err);
/* Stops consuming topic (all servers registered on it by this process). */
void ts_bus_unserve(struct ts_bus *bus, const char *topic);

/* Fire and forget. Steals args. Returns -TS_EUNAVAIL if nobody can ever receive it
 * (in-process: no server on the topic). */
int ts_bus_cast(struct ts_bus *bus, const char *topic, const char *method, json_t *args, struct ts_err *err);
/* Request/response with a timeout. Steals args; *reply is the caller's. A handler error
 * comes back as its code and message; no answer in time -> -TS_ETIMEDOUT. */
int ts_bus_call(struct ts_bus *bus, const char *topic, const char *method, json_t *args, int timeout_ms,
                json_t **reply, struct ts_err *err);

/* Fanout: every subscriber of topic gets a copy. */
int ts_bus_fanout(struct ts_bus *bus, const char *topic, const char *method, json_t *args, struct ts_err *err);
int ts_bus_subscribe(struct ts_bus *bus, const char *topic, ts_bus_handler_fn fn, void *ctx, struct ts_err *err);

/* Notifications (oslo "messagingv2" shape): publishes
 * {"event_type", "publisher_id", "priority", "payload", "timestamp", "message_id"}
 * to every notification listener. Steals payload. Never fails the caller: errors are logged. */
void ts_bus_notify(struct ts_bus *bus, const char *publisher_id, const char *event_type, const char *priority,
                   json_t *payload);
/* false when no notification can reach anyone now (an in-process bus without a listener):
 * a caller may then skip building one (per-request metering events). A broker: true. */
bool ts_bus_notify_wanted(struct ts_bus *bus);
/* Listener gets method = event_type and args = the whole notification. */
int ts_bus_listen_notifications(struct ts_bus *bus, ts_bus_handler_fn fn, void *ctx, struct ts_err *err);

#endif
