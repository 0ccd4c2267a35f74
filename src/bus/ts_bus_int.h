/*
 * ts_bus_int.h: what the bus backends share (private to src/bus). The front end in
 * ts_bus.c copies and validates arguments, then calls the backend through struct
 * ts_bus_ops. Both backends run handlers on worker pools (struct ts_bus_workers): a FIFO
 * of messages, a mutex and condvar, and N threads calling the handler; each message
 * carries a finish() callback that the worker calls exactly once (with the handler's
 * result, or with handled = false when the message is dropped unprocessed).
 */
#ifndef TS_BUS_INT_H
#define TS_BUS_INT_H

#include <pthread.h>
#include <stdint.h>
#include "bus/ts_bus.h"

#define TS_BUS_LOG "bus"
#define TS_BUS_MAX_THREADS 64
#define TS_BUS_TOPIC_MAX 255

struct ts_bus_msg;
/* Called once per message on the worker thread (or on whoever drops it). Takes ownership
 * of reply (may be NULL) and must free m with ts_bus_msg_free(). err is only meaningful
 * when rc < 0. handled = false: the message was dropped before any handler saw it. */
typedef void (*ts_bus_finish_fn)(struct ts_bus_msg *m, bool handled, int rc, json_t *reply, const struct ts_err *err);

struct ts_bus_msg {
    struct ts_bus_msg *next;
    char *method;
    json_t *args;                 /* owned, an object */
    ts_bus_finish_fn finish;      /* NULL = just free */
    /* backend data */
    void *slot;                   /* inproc: the call slot */
    void *owner;                  /* amqp: the bus */
    char *reply_to;               /* amqp: reply queue (calls) */
    char *correlation_id;         /* amqp */
    uint64_t delivery_tag;        /* amqp: 0 = no ack needed */
    unsigned gen;                 /* amqp: connection generation of delivery_tag */
};

/* A new message; takes ownership of args (an object; NULL -> {}). */
struct ts_bus_msg *ts_bus_msg_new(const char *method, json_t *args);
void ts_bus_msg_free(struct ts_bus_msg *m);
/* Calls m->finish with handled = false (or frees m if it has none). */
void ts_bus_msg_drop(struct ts_bus_msg *m);

struct ts_bus_workers;
/* Starts nthreads (1..TS_BUS_MAX_THREADS) threads running fn(ctx, ...) on pushed
 * messages; name is for logs. Returns NULL (err set) if no thread could start. */
struct ts_bus_workers *ts_bus_workers_new(const char *name, ts_bus_handler_fn fn, void *ctx, int nthreads,
                                          struct ts_err *err);
/* Queues m (ownership passes). Returns -TS_EUNAVAIL (m untouched) once stopping. */
int ts_bus_workers_push(struct ts_bus_workers *w, struct ts_bus_msg *m);
/* Stops the threads (running handlers finish first), drops queued messages, frees w.
 * Must not be called from one of w's own threads. NULL is a no-op. */
void ts_bus_workers_free(struct ts_bus_workers *w);
/* Messages queued but not started. */
size_t ts_bus_workers_pending(struct ts_bus_workers *w);

struct ts_bus_ops {
    void (*close)(struct ts_bus *bus);
    int (*serve)(struct ts_bus *bus, const char *topic, ts_bus_handler_fn fn, void *ctx, int nthreads,
                 struct ts_err *err);
    void (*unserve)(struct ts_bus *bus, const char *topic);
    /* args: an owned private copy */
    int (*cast)(struct ts_bus *bus, const char *topic, const char *method, json_t *args, struct ts_err *err);
    int (*call)(struct ts_bus *bus, const char *topic, const char *method, json_t *args, int timeout_ms,
                json_t **reply, struct ts_err *err);
    int (*fanout)(struct ts_bus *bus, const char *topic, const char *method, json_t *args, struct ts_err *err);
    int (*subscribe)(struct ts_bus *bus, const char *topic, ts_bus_handler_fn fn, void *ctx, struct ts_err *err);
    /* note: the whole notification (owned); priority lower-case */
    void (*notify)(struct ts_bus *bus, const char *priority, json_t *note);
    int (*listen)(struct ts_bus *bus, ts_bus_handler_fn fn, void *ctx, struct ts_err *err);
    /* may be NULL: notifications always wanted */
    bool (*notify_wanted)(struct ts_bus *bus);
};

struct ts_bus {
    const struct ts_bus_ops *ops;
};

int ts_bus_inproc_open(struct ts_bus **out, struct ts_err *err);
int ts_bus_amqp_open(const char *url, struct ts_bus **out, struct ts_err *err);

/* A deadline for pthread_cond_timedwait on a CLOCK_MONOTONIC condvar, ms from now. */
void ts_bus_deadline(struct timespec *ts, int timeout_ms);
/* Initialises a condvar that waits on CLOCK_MONOTONIC. */
void ts_bus_cond_init(pthread_cond_t *cv);
/* A handler's failure as a code for the caller: negative, in range (else -TS_EIO). */
int ts_bus_norm_code(int rc);

#endif
