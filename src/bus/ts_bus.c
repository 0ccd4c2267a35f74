/*
 * ts_bus.c: the bus front end and what both backends share. ts_bus_open() picks the
 * backend from the URL; the public calls validate topics and methods, make a private
 * deep copy of every payload (sender and receiver never share a json_t), and hand over
 * to the backend. Also here: the worker pool that runs handlers, and the oslo
 * "messagingv2" notification envelope.
 */
#include <errno.h>
#include <string.h>
#include <time.h>
#include "bus/ts_bus_int.h"

/* ---- messages ------------------------------------------------------------------- */

struct ts_bus_msg *ts_bus_msg_new(const char *method, json_t *args)
{
    struct ts_bus_msg *m = ts_calloc(1, sizeof(*m));
    m->method = ts_strdup(method ? method : "");
    m->args = args ? args : json_object();
    return m;
}

void ts_bus_msg_free(struct ts_bus_msg *m)
{
    if (!m) return;
    free(m->method);
    json_decref(m->args);
    free(m->reply_to);
    free(m->correlation_id);
    free(m);
}

void ts_bus_msg_drop(struct ts_bus_msg *m)
{
    if (!m) return;
    if (m->finish) {
        struct ts_err e;
        ts_err_set(&e, TS_EUNAVAIL, "message dropped: the bus or the server is shutting down");
        m->finish(m, false, -TS_EUNAVAIL, NULL, &e);
    } else {
        ts_bus_msg_free(m);
    }
}

/* ---- time helpers --------------------------------------------------------------- */

void ts_bus_cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
}

void ts_bus_deadline(struct timespec *ts, int timeout_ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    if (timeout_ms < 0) timeout_ms = 0;
    ts->tv_sec += timeout_ms / 1000;
    ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

int ts_bus_norm_code(int rc)
{
    if (rc > 0) rc = -rc;
    if (rc == 0 || rc <= -TS_E_COUNT) return -TS_EIO;
    return rc;
}

/* ---- worker pools --------------------------------------------------------------- */

struct ts_bus_workers {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct ts_bus_msg *head, *tail;
    size_t count;
    bool stopping;
    ts_bus_handler_fn fn;
    void *ctx;
    char *name;
    int nthreads;
    pthread_t *threads;
};

static void *worker_main(void *arg)
{
    struct ts_bus_workers *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->head && !w->stopping) pthread_cond_wait(&w->cv, &w->mu);
        if (w->stopping) {
            pthread_mutex_unlock(&w->mu);
            break;
        }
        struct ts_bus_msg *m = w->head;
        w->head = m->next;
        if (!w->head) w->tail = NULL;
        w->count--;
        pthread_mutex_unlock(&w->mu);
        m->next = NULL;

        struct ts_err e;
        ts_err_clear(&e);
        json_t *reply = NULL;
        int rc = w->fn(w->ctx, m->method, m->args, &reply, &e);
        if (rc < 0) {
            rc = ts_bus_norm_code(rc);
            if (!e.msg[0]) snprintf(e.msg, sizeof(e.msg), "%s failed (error %d)", m->method, -rc);
            json_decref(reply);
            reply = NULL;
        } else {
            rc = 0;
        }
        if (m->finish)
            m->finish(m, true, rc, reply, &e);
        else {
            json_decref(reply);
            ts_bus_msg_free(m);
        }
    }
    return NULL;
}

struct ts_bus_workers *ts_bus_workers_new(const char *name, ts_bus_handler_fn fn, void *ctx, int nthreads,
                                          struct ts_err *err)
{
    if (nthreads <= 0) nthreads = 1;
    if (nthreads > TS_BUS_MAX_THREADS) nthreads = TS_BUS_MAX_THREADS;
    struct ts_bus_workers *w = ts_calloc(1, sizeof(*w));
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->fn = fn;
    w->ctx = ctx;
    w->name = ts_strdup(name ? name : "?");
    w->threads = ts_calloc((size_t)nthreads, sizeof(pthread_t));
    for (int i = 0; i < nthreads; i++) {
        int rc = pthread_create(&w->threads[i], NULL, worker_main, w);
        if (rc != 0) {
            ts_warn(TS_BUS_LOG, "%s: could not start worker %d: %s", w->name, i, strerror(rc));
            break;
        }
        w->nthreads++;
    }
    if (w->nthreads == 0) {
        ts_err_set(err, TS_EIO, "cannot start worker threads for %s", w->name);
        ts_bus_workers_free(w);
        return NULL;
    }
    return w;
}

int ts_bus_workers_push(struct ts_bus_workers *w, struct ts_bus_msg *m)
{
    pthread_mutex_lock(&w->mu);
    if (w->stopping) {
        pthread_mutex_unlock(&w->mu);
        return -TS_EUNAVAIL;
    }
    m->next = NULL;
    if (w->tail)
        w->tail->next = m;
    else
        w->head = m;
    w->tail = m;
    w->count++;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

size_t ts_bus_workers_pending(struct ts_bus_workers *w)
{
    pthread_mutex_lock(&w->mu);
    size_t n = w->count;
    pthread_mutex_unlock(&w->mu);
    return n;
}

void ts_bus_workers_free(struct ts_bus_workers *w)
{
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; i < w->nthreads; i++) pthread_join(w->threads[i], NULL);
    /* threads are gone: the queue is ours */
    struct ts_bus_msg *m = w->head;
    w->head = w->tail = NULL;
    while (m) {
        struct ts_bus_msg *next = m->next;
        m->next = NULL;
        ts_bus_msg_drop(m);
        m = next;
    }
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w->threads);
    free(w->name);
    free(w);
}

/* ---- front end ------------------------------------------------------------------ */

static int check_name(const char *what, const char *s, struct ts_err *err)
{
    if (!s || !*s) return ts_err_set(err, TS_EINVAL, "bus: empty %s", what);
    size_t n = strlen(s);
    if (n > TS_BUS_TOPIC_MAX) return ts_err_set(err, TS_EINVAL, "bus: %s too long", what);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || c == '*' || c == '#')
            return ts_err_set(err, TS_EINVAL, "bus: bad character in %s", what);
    }
    return 0;
}

/* A private copy of args (stolen): always an object. */
static int own_args(json_t *args, json_t **out, struct ts_err *err)
{
    *out = NULL;
    if (!args) {
        *out = json_object();
        return 0;
    }
    if (!json_is_object(args)) {
        json_decref(args);
        return ts_err_set(err, TS_EINVAL, "bus: args must be a JSON object");
    }
    json_t *copy = json_deep_copy(args);
    json_decref(args);
    if (!copy) return ts_err_set(err, TS_ENOMEM, "bus: cannot copy args");
    *out = copy;
    return 0;
}

int ts_bus_open(const char *url, struct ts_bus **out, struct ts_err *err)
{
    if (!out) return ts_err_set(err, TS_EINVAL, "bus: no output handle");
    *out = NULL;
    if (!url || !*url || ts_streq(url, "inproc://") || ts_streq(url, "inproc:")) return ts_bus_inproc_open(out, err);
    if (ts_startswith(url, "amqp://") || ts_startswith(url, "rabbit://")) return ts_bus_amqp_open(url, out, err);
    return ts_err_set(err, TS_EINVAL, "bus: unsupported transport_url scheme (want inproc:// or amqp://)");
}

void ts_bus_close(struct ts_bus *bus)
{
    if (!bus) return;
    bus->ops->close(bus);
}

int ts_bus_serve(struct ts_bus *bus, const char *topic, ts_bus_handler_fn fn, void *ctx, int nthreads,
                 struct ts_err *err)
{
    if (!bus || !fn) return ts_err_set(err, TS_EINVAL, "bus: no bus or handler");
    int rc = check_name("topic", topic, err);
    if (rc < 0) return rc;
    return bus->ops->serve(bus, topic, fn, ctx, nthreads, err);
}

void ts_bus_unserve(struct ts_bus *bus, const char *topic)
{
    if (!bus || !topic) return;
    bus->ops->unserve(bus, topic);
}

int ts_bus_cast(struct ts_bus *bus, const char *topic, const char *method, json_t *args, struct ts_err *err)
{
    json_t *own = NULL;
    int rc = own_args(args, &own, err);
    if (rc < 0) return rc;
    if (!bus) rc = ts_err_set(err, TS_EINVAL, "bus: no bus");
    if (rc == 0) rc = check_name("topic", topic, err);
    if (rc == 0) rc = check_name("method", method, err);
    if (rc < 0) {
        json_decref(own);
        return rc;
    }
    return bus->ops->cast(bus, topic, method, own, err);
}

int ts_bus_call(struct ts_bus *bus, const char *topic, const char *method, json_t *args, int timeout_ms,
                json_t **reply, struct ts_err *err)
{
    if (reply) *reply = NULL;
    json_t *own = NULL;
    int rc = own_args(args, &own, err);
    if (rc < 0) return rc;
    if (!bus || !reply) rc = ts_err_set(err, TS_EINVAL, "bus: no bus or reply pointer");
    if (rc == 0) rc = check_name("topic", topic, err);
    if (rc == 0) rc = check_name("method", method, err);
    if (rc < 0) {
        json_decref(own);
        return rc;
    }
    if (timeout_ms <= 0) timeout_ms = 60000;
    return bus->ops->call(bus, topic, method, own, timeout_ms, reply, err);
}

int ts_bus_fanout(struct ts_bus *bus, const char *topic, const char *method, json_t *args, struct ts_err *err)
{
    json_t *own = NULL;
    int rc = own_args(args, &own, err);
    if (rc < 0) return rc;
    if (!bus) rc = ts_err_set(err, TS_EINVAL, "bus: no bus");
    if (rc == 0) rc = check_name("topic", topic, err);
    if (rc == 0) rc = check_name("method", method, err);
    if (rc < 0) {
        json_decref(own);
        return rc;
    }
    return bus->ops->fanout(bus, topic, method, own, err);
}

int ts_bus_subscribe(struct ts_bus *bus, const char *topic, ts_bus_handler_fn fn, void *ctx, struct ts_err *err)
{
    if (!bus || !fn) return ts_err_set(err, TS_EINVAL, "bus: no bus or handler");
    int rc = check_name("topic", topic, err);
    if (rc < 0) return rc;
    return bus->ops->subscribe(bus, topic, fn, ctx, err);
}

/* oslo's timestamp: str(datetime.utcnow()) = "2026-11-25 19:20:00.123456". */
static void oslo_timestamp(char out[32])
{
    double now = ts_now();
    time_t secs = (time_t)now;
    long usec = (long)((now - (double)secs) * 1e6);
    if (usec < 0) usec = 0;
    if (usec > 999999) usec = 999999;
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(out, 32, "%04d-%02d-%02d %02d:%02d:%02d.%06ld", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, usec);
}

void ts_bus_notify(struct ts_bus *bus, const char *publisher_id, const char *event_type, const char *priority,
                   json_t *payload)
{
    json_t *own = NULL;
    if (payload) {
        own = json_deep_copy(payload);
        json_decref(payload);
        if (!own) {
            ts_warn(TS_BUS_LOG, "notify: cannot copy payload of %s", event_type ? event_type : "?");
            return;
        }
    } else {
        own = json_object();
    }
    if (!bus || !event_type || !*event_type) {
        ts_warn(TS_BUS_LOG, "notify: no bus or event_type; notification dropped");
        json_decref(own);
        return;
    }
    char prio[16];
    const char *p = priority && *priority ? priority : "info";
    size_t i = 0;
    for (; p[i] && i < sizeof(prio) - 1; i++) {
        char c = p[i];
        prio[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
        if (!((prio[i] >= 'a' && prio[i] <= 'z'))) {
            i = 0;
            break;
        }
    }
    if (i == 0) snprintf(prio, sizeof(prio), "info");
    else prio[i] = '\0';
    char upper[16];
    for (i = 0; prio[i]; i++) upper[i] = (char)(prio[i] - 'a' + 'A');
    upper[i] = '\0';
    char ts[32], id[TS_UUID_LEN + 1];
    oslo_timestamp(ts);
    ts_uuid(id);
    json_t *note = json_pack("{s:s, s:s, s:s, s:o, s:s, s:s}", "event_type", event_type, "publisher_id",
                             publisher_id ? publisher_id : "tinystack", "priority", upper, "payload", own,
                             "timestamp", ts, "message_id", id);
    if (!note) {
        ts_warn(TS_BUS_LOG, "notify: cannot build %s (bad UTF-8?)", event_type);
        return;
    }
    bus->ops->notify(bus, prio, note);
}

bool ts_bus_notify_wanted(struct ts_bus *bus)
{
    if (!bus) return false;
    return !bus->ops->notify_wanted || bus->ops->notify_wanted(bus);
}

int ts_bus_listen_notifications(struct ts_bus *bus, ts_bus_handler_fn fn, void *ctx, struct ts_err *err)
{
    if (!bus || !fn) return ts_err_set(err, TS_EINVAL, "bus: no bus or handler");
    return bus->ops->listen(bus, fn, ctx, err);
}
