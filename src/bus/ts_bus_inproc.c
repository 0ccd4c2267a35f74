/*
 * ts_bus_inproc.c: the in-process bus backend (transport_url inproc://, the default).
 * Every consumer (a ts_bus_serve registration, a fanout subscriber or a notification
 * listener) owns a worker pool with its own queue, so a slow handler only delays its own
 * consumer. A cast or call goes to one server of its topic, round-robin; fanout and
 * notifications push a private deep copy to every subscriber/listener. A call waits on a
 * reference-counted slot: a reply that comes after the caller gave up is dropped.
 */
#include <errno.h>
#include <string.h>
#include "bus/ts_bus_int.h"

enum { IP_SERVER, IP_SUB, IP_LISTEN };

struct ip_consumer {
    struct ip_consumer *next;
    int kind;
    char *topic;     /* NULL for listeners */
    struct ts_bus_workers *w;
};

struct ip_bus {
    struct ts_bus base;
    pthread_mutex_t mu;
    struct ip_consumer *consumers;
    int n_listeners;  /* IP_LISTEN consumers (never removed before close); read unlocked */
    unsigned rr;
    bool closing;
};

/* The rendezvous between a caller and the worker that answers it. */
struct ip_slot {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    bool done;
    int rc;
    json_t *reply;
    struct ts_err err;
};

static void slot_unref(struct ip_slot *s)
{
    pthread_mutex_lock(&s->mu);
    int left = --s->refs;
    pthread_mutex_unlock(&s->mu);
    if (left > 0) return;
    json_decref(s->reply);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

static void finish_cast(struct ts_bus_msg *m, bool handled, int rc, json_t *reply, const struct ts_err *err)
{
    if (handled && rc < 0) ts_warn(TS_BUS_LOG, "cast %s failed: %s", m->method, err ? err->msg : "");
    json_decref(reply);
    ts_bus_msg_free(m);
}

static void finish_call(struct ts_bus_msg *m, bool handled, int rc, json_t *reply, const struct ts_err *err)
{
    (void)handled;
    struct ip_slot *s = m->slot;
    json_t *copy = NULL;
    if (rc == 0) {
        copy = reply ? json_deep_copy(reply) : json_null();
        if (!copy) {
            rc = -TS_ENOMEM;
        }
    }
    json_decref(reply);
    pthread_mutex_lock(&s->mu);
    if (!s->done) {
        s->done = true;
        s->rc = rc;
        s->reply = copy;
        copy = NULL;
        if (rc < 0) {
            if (err)
                s->err = *err;
            else
                ts_err_set(&s->err, -rc, "call failed");
            s->err.code = -rc;
        }
        pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    json_decref(copy);
    slot_unref(s);
    ts_bus_msg_free(m);
}

static void finish_oneway(struct ts_bus_msg *m, bool handled, int rc, json_t *reply, const struct ts_err *err)
{
    if (handled && rc < 0) ts_debug(TS_BUS_LOG, "subscriber of %s failed: %s", m->method, err ? err->msg : "");
    json_decref(reply);
    ts_bus_msg_free(m);
}

static int add_consumer(struct ip_bus *b, int kind, const char *topic, ts_bus_handler_fn fn, void *ctx,
                        int nthreads, struct ts_err *err)
{
    struct ts_bus_workers *w = ts_bus_workers_new(topic ? topic : "notifications", fn, ctx, nthreads, err);
    if (!w) return -TS_EIO;
    struct ip_consumer *c = ts_calloc(1, sizeof(*c));
    c->kind = kind;
    c->topic = topic ? ts_strdup(topic) : NULL;
    c->w = w;
    pthread_mutex_lock(&b->mu);
    if (b->closing) {
        pthread_mutex_unlock(&b->mu);
        ts_bus_workers_free(w);
        free(c->topic);
        free(c);
        return ts_err_set(err, TS_EUNAVAIL, "bus is closing");
    }
    /* append: keeps round-robin order stable */
    struct ip_consumer **pp = &b->consumers;
    while (*pp) pp = &(*pp)->next;
    *pp = c;
    if (kind == IP_LISTEN) __atomic_add_fetch(&b->n_listeners, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&b->mu);
    return 0;
}

static void free_consumers(struct ip_consumer *c)
{
    while (c) {
        struct ip_consumer *next = c->next;
        ts_bus_workers_free(c->w);
        free(c->topic);
        free(c);
        c = next;
    }
}

static void ip_close(struct ts_bus *bus)
{
    struct ip_bus *b = (struct ip_bus *)bus;
    pthread_mutex_lock(&b->mu);
    b->closing = true;
    struct ip_consumer *all = b->consumers;
    b->consumers = NULL;
    pthread_mutex_unlock(&b->mu);
    free_consumers(all);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

static int ip_serve(struct ts_bus *bus, const char *topic, ts_bus_handler_fn fn, void *ctx, int nthreads,
                    struct ts_err *err)
{
    return add_consumer((struct ip_bus *)bus, IP_SERVER, topic, fn, ctx, nthreads, err);
}

static void ip_unserve(struct ts_bus *bus, const char *topic)
{
    struct ip_bus *b = (struct ip_bus *)bus;
    struct ip_consumer *gone = NULL, **tail = &gone;
    pthread_mutex_lock(&b->mu);
    struct ip_consumer **pp = &b->consumers;
    while (*pp) {
        struct ip_consumer *c = *pp;
        if (c->kind == IP_SERVER && ts_streq(c->topic, topic)) {
            *pp = c->next;
            c->next = NULL;
            *tail = c;
            tail = &c->next;
        } else {
            pp = &c->next;
        }
    }
    pthread_mutex_unlock(&b->mu);
    free_consumers(gone);
}

/* Queues m on the next server of topic. Consumes m in every case. */
static int push_to_server(struct ip_bus *b, const char *topic, struct ts_bus_msg *m, struct ts_err *err)
{
    int rc = -TS_EUNAVAIL;
    pthread_mutex_lock(&b->mu);
    unsigned n = 0;
    for (struct ip_consumer *c = b->consumers; c; c = c->next)
        if (c->kind == IP_SERVER && ts_streq(c->topic, topic)) n++;
    if (n > 0 && !b->closing) {
        unsigned pick = b->rr++ % n, i = 0;
        for (struct ip_consumer *c = b->consumers; c; c = c->next) {
            if (c->kind != IP_SERVER || !ts_streq(c->topic, topic)) continue;
            if (i++ == pick) {
                rc = ts_bus_workers_push(c->w, m);
                break;
            }
        }
    }
    pthread_mutex_unlock(&b->mu);
    if (rc < 0) {
        ts_bus_msg_drop(m);
        return ts_err_set(err, TS_EUNAVAIL, "no server on topic %s", topic);
    }
    return 0;
}

static int ip_cast(struct ts_bus *bus, const char *topic, const char *method, json_t *args, struct ts_err *err)
{
    struct ts_bus_msg *m = ts_bus_msg_new(method, args);
    m->finish = finish_cast;
    return push_to_server((struct ip_bus *)bus, topic, m, err);
}

static int ip_call(struct ts_bus *bus, const char *topic, const char *method, json_t *args, int timeout_ms,
                   json_t **reply, struct ts_err *err)
{
    struct ip_slot *s = ts_calloc(1, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    ts_bus_cond_init(&s->cv);
    s->refs = 2; /* the caller's and the message's */
    struct ts_bus_msg *m = ts_bus_msg_new(method, args);
    m->finish = finish_call;
    m->slot = s;
    int rc = push_to_server((struct ip_bus *)bus, topic, m, err);
    if (rc < 0) {
        slot_unref(s); /* the drop above released the message's reference */
        return rc;
    }
    struct timespec deadline;
    ts_bus_deadline(&deadline, timeout_ms);
    pthread_mutex_lock(&s->mu);
    while (!s->done) {
        if (pthread_cond_timedwait(&s->cv, &s->mu, &deadline) == ETIMEDOUT && !s->done) break;
    }
    if (!s->done) {
        s->done = true; /* a late reply is dropped */
        rc = ts_err_set(err, TS_ETIMEDOUT, "timed out after %d ms waiting for %s on %s", timeout_ms, method, topic);
    } else if (s->rc < 0) {
        rc = s->rc;
        if (err) *err = s->err;
    } else {
        *reply = s->reply;
        s->reply = NULL;
        rc = 0;
    }
    pthread_mutex_unlock(&s->mu);
    slot_unref(s);
    return rc;
}

/* A copy of (method, args) to every consumer of kind (and topic); args is consumed. */
static int broadcast(struct ip_bus *b, int kind, const char *topic, const char *method, json_t *args)
{
    int n = 0;
    pthread_mutex_lock(&b->mu);
    for (struct ip_consumer *c = b->consumers; c && !b->closing; c = c->next) {
        if (c->kind != kind || (topic && !ts_streq(c->topic, topic))) continue;
        json_t *copy = json_deep_copy(args);
        if (!copy) continue;
        struct ts_bus_msg *m = ts_bus_msg_new(method, copy);
        m->finish = finish_oneway;
        if (ts_bus_workers_push(c->w, m) < 0)
            ts_bus_msg_free(m);
        else
            n++;
    }
    pthread_mutex_unlock(&b->mu);
    json_decref(args);
    return n;
}

static int ip_fanout(struct ts_bus *bus, const char *topic, const char *method, json_t *args, struct ts_err *err)
{
    (void)err;
    broadcast((struct ip_bus *)bus, IP_SUB, topic, method, args);
    return 0; /* fanout to nobody is not an error (as on a broker) */
}

static int ip_subscribe(struct ts_bus *bus, const char *topic, ts_bus_handler_fn fn, void *ctx, struct ts_err *err)
{
    return add_consumer((struct ip_bus *)bus, IP_SUB, topic, fn, ctx, 1, err);
}

static void ip_notify(struct ts_bus *bus, const char *priority, json_t *note)
{
    (void)priority;
    const char *event_type = json_string_value(json_object_get(note, "event_type"));
    char *et = ts_strdup(event_type ? event_type : "");
    broadcast((struct ip_bus *)bus, IP_LISTEN, NULL, et, note);
    free(et);
}

static int ip_listen(struct ts_bus *bus, ts_bus_handler_fn fn, void *ctx, struct ts_err *err)
{
    return add_consumer((struct ip_bus *)bus, IP_LISTEN, NULL, fn, ctx, 1, err);
}

static bool ip_notify_wanted(struct ts_bus *bus)
{
    return __atomic_load_n(&((struct ip_bus *)bus)->n_listeners, __ATOMIC_ACQUIRE) > 0;
}

static const struct ts_bus_ops inproc_ops = {
    .close = ip_close,
    .serve = ip_serve,
    .unserve = ip_unserve,
    .cast = ip_cast,
    .call = ip_call,
    .fanout = ip_fanout,
    .subscribe = ip_subscribe,
    .notify = ip_notify,
    .listen = ip_listen,
    .notify_wanted = ip_notify_wanted,
};

int ts_bus_inproc_open(struct ts_bus **out, struct ts_err *err)
{
    (void)err;
    struct ip_bus *b = ts_calloc(1, sizeof(*b));
    b->base.ops = &inproc_ops;
    pthread_mutex_init(&b->mu, NULL);
    *out = &b->base;
    return 0;
}
