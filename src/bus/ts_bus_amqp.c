/*
 * ts_bus_amqp.c: the RabbitMQ backend (transport_url amqp://user:pass@host:port/vhost),
 * through librabbitmq, laid out like oslo.messaging's rabbit driver:
 *   - topic exchange "tinystack" (not durable); a server of topic T consumes queue "T"
 *     bound with key T (several servers share it round-robin, prefetch-limited, acked
 *     after the handler ran);
 *   - fanout exchange "T_fanout"; each subscriber has an exclusive auto-delete queue;
 *   - calls carry reply_to (this process's exclusive "reply_<uuid>" queue, reached
 *     through the default exchange) and correlation_id;
 *   - notifications go to "tinystack" with key "notifications.<priority>"; each listener
 *     binds its own exclusive queue with "notifications.*".
 * librabbitmq is not thread-safe, so one I/O thread owns the connection. Other threads
 * queue ops (publish, ack, reject, consume, cancel) and wake it through an eventfd; it
 * polls the socket and the eventfd, feeds deliveries to the consumers' worker pools and
 * completes pending calls. Handlers never run on the I/O thread: their replies and acks
 * come back as ops. A lost connection is re-established with backoff and every consumer
 * is declared again; acks from the old connection are dropped (the broker redelivers).
 */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include "bus/ts_bus_int.h"

#define AQ_EXCHANGE "tinystack"
#define AQ_CHANNEL 1
#define AQ_REPLY_TAG "ts.reply"
#define AQ_MAX_QUEUED_OPS 100000
#define AQ_FRAME_MAX 131072

enum { AQ_SERVER, AQ_SUB, AQ_LISTEN };
enum { OP_PUBLISH, OP_ACK, OP_REJECT, OP_CONSUME, OP_CANCEL, OP_CANCEL_TAG };

struct aq_consumer {
    struct aq_consumer *next;
    int kind;
    char *topic;        /* NULL for listeners */
    char tag[48];       /* "ts.s.N" server, "ts.f.N" subscriber, "ts.n.N" listener */
    int prefetch;
    struct ts_bus_workers *w;
    unsigned declared_gen;  /* I/O thread only: connection generation it consumes on */
};

struct aq_op {
    struct aq_op *next;
    int kind;
    char *exchange, *rkey, *corr, *reply_to;
    char *body;
    size_t len;
    bool fanout_exchange;   /* declare exchange as fanout before publishing */
    uint64_t tag;
    unsigned gen;
    struct aq_consumer *consumers; /* CONSUME: one; CANCEL: a list */
    /* synchronous ops: the caller owns the op and waits for done */
    bool sync, done;
    int rc;
    char errmsg[256];
};

struct aq_pending {
    struct aq_pending *next;
    char corr[TS_UUID_LEN + 1];
    pthread_cond_t cv;
    bool done;
    int rc;
    json_t *reply;
    struct ts_err err;
};

struct aq_bus {
    struct ts_bus base;
    pthread_mutex_t mu;          /* everything below up to "I/O thread only" */
    pthread_cond_t op_cv;        /* sync ops completed */
    struct aq_op *ops_head, *ops_tail;
    size_t nops;
    struct aq_consumer *consumers;
    struct aq_pending *pending;
    bool closing, stopping, io_gone;
    unsigned tag_seq;
    int wake_fd;
    pthread_t io;
    bool io_started;
    /* immutable after open */
    char *url_buf;
    struct amqp_connection_info info;
    char reply_queue[64];
    /* I/O thread only (and the opener before the thread starts) */
    amqp_connection_state_t conn;
    unsigned gen;
};

/* ---- ops queue ------------------------------------------------------------------ */

static void op_free(struct aq_op *op)
{
    if (!op) return;
    free(op->exchange);
    free(op->rkey);
    free(op->corr);
    free(op->reply_to);
    free(op->body);
    free(op);
}

static void wake(struct aq_bus *b)
{
    uint64_t one = 1;
    ssize_t n = write(b->wake_fd, &one, sizeof(one));
    (void)n; /* EAGAIN: the counter is already non-zero, the thread will wake */
}

/* Queues op for the I/O thread. Non-sync ops are owned by the queue from now on.
 * Returns -TS_EUNAVAIL (op freed unless sync) when the I/O thread is gone or the queue
 * is full. */
static int op_push(struct aq_bus *b, struct aq_op *op)
{
    pthread_mutex_lock(&b->mu);
    if (b->io_gone || (op->kind == OP_PUBLISH && b->nops >= AQ_MAX_QUEUED_OPS)) {
        bool full = !b->io_gone;
        pthread_mutex_unlock(&b->mu);
        if (full) ts_warn(TS_BUS_LOG, "amqp: too many queued messages, dropping one to %s", op->rkey);
        if (!op->sync) op_free(op);
        return -TS_EUNAVAIL;
    }
    op->next = NULL;
    if (b->ops_tail)
        b->ops_tail->next = op;
    else
        b->ops_head = op;
    b->ops_tail = op;
    b->nops++;
    pthread_mutex_unlock(&b->mu);
    wake(b);
    return 0;
}

/* Queues a sync op and waits until the I/O thread has run it. */
static int op_run_sync(struct aq_bus *b, struct aq_op *op)
{
    op->sync = true;
    op->done = false;
    if (op_push(b, op) < 0) return -TS_EUNAVAIL;
    pthread_mutex_lock(&b->mu);
    while (!op->done) pthread_cond_wait(&b->op_cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
    return op->rc;
}

static void op_complete(struct aq_bus *b, struct aq_op *op, int rc)
{
    if (!op->sync) {
        op_free(op);
        return;
    }
    pthread_mutex_lock(&b->mu);
    op->rc = rc;
    op->done = true;
    pthread_cond_broadcast(&b->op_cv);
    pthread_mutex_unlock(&b->mu);
}

static struct aq_op *op_pop(struct aq_bus *b)
{
    pthread_mutex_lock(&b->mu);
    struct aq_op *op = b->ops_head;
    if (op) {
        b->ops_head = op->next;
        if (!b->ops_head) b->ops_tail = NULL;
        b->nops--;
        op->next = NULL;
    }
    pthread_mutex_unlock(&b->mu);
    return op;
}

static void op_unpop(struct aq_bus *b, struct aq_op *op)
{
    pthread_mutex_lock(&b->mu);
    op->next = b->ops_head;
    b->ops_head = op;
    if (!b->ops_tail) b->ops_tail = op;
    b->nops++;
    pthread_mutex_unlock(&b->mu);
}

static int publish_json(struct aq_bus *b, const char *exchange, const char *rkey, bool fanout, json_t *body,
                        const char *corr, const char *reply_to, struct ts_err *err)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text) return ts_err_set(err, TS_EINVAL, "bus: cannot encode message");
    struct aq_op *op = ts_calloc(1, sizeof(*op));
    op->kind = OP_PUBLISH;
    op->exchange = ts_strdup(exchange);
    op->rkey = ts_strdup(rkey);
    op->fanout_exchange = fanout;
    op->corr = corr ? ts_strdup(corr) : NULL;
    op->reply_to = reply_to ? ts_strdup(reply_to) : NULL;
    op->body = text;
    op->len = strlen(text);
    if (op_push(b, op) < 0) return ts_err_set(err, TS_EUNAVAIL, "bus: AMQP transport is closed or overloaded");
    return 0;
}

/* ---- I/O thread: talking to the broker --------------------------------------------- */

static int rpc_check(amqp_rpc_reply_t r, const char *what, char *errbuf, size_t n)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return 0;
    case AMQP_RESPONSE_NONE:
        snprintf(errbuf, n, "%s: missing reply", what);
        break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        snprintf(errbuf, n, "%s: %s", what, amqp_error_string2(r.library_error));
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD && r.reply.decoded) {
            amqp_connection_close_t *m = r.reply.decoded;
            snprintf(errbuf, n, "%s: server closed the connection: %u %.*s", what, m->reply_code,
                     (int)m->reply_text.len, (const char *)m->reply_text.bytes);
        } else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD && r.reply.decoded) {
            amqp_channel_close_t *m = r.reply.decoded;
            snprintf(errbuf, n, "%s: server closed the channel: %u %.*s", what, m->reply_code,
                     (int)m->reply_text.len, (const char *)m->reply_text.bytes);
        } else {
            snprintf(errbuf, n, "%s: server error (method 0x%08x)", what, (unsigned)r.reply.id);
        }
        break;
    default:
        snprintf(errbuf, n, "%s: unknown reply", what);
    }
    return -1;
}

static int rpc_ok(struct aq_bus *b, const char *what, char *errbuf, size_t n)
{
    return rpc_check(amqp_get_rpc_reply(b->conn), what, errbuf, n);
}

/* Declares c's queue and bindings and starts consuming. I/O thread (or opener). */
static int declare_consumer(struct aq_bus *b, struct aq_consumer *c, char *errbuf, size_t n)
{
    amqp_connection_state_t conn = b->conn;
    if (c->declared_gen == b->gen) return 0;
    if (c->kind == AQ_SERVER) {
        amqp_bytes_t q = amqp_cstring_bytes(c->topic);
        amqp_queue_declare(conn, AQ_CHANNEL, q, 0, 0, 0, 0, amqp_empty_table);
        if (rpc_ok(b, "queue.declare", errbuf, n) < 0) return -1;
        amqp_queue_bind(conn, AQ_CHANNEL, q, amqp_cstring_bytes(AQ_EXCHANGE), q, amqp_empty_table);
        if (rpc_ok(b, "queue.bind", errbuf, n) < 0) return -1;
        amqp_basic_qos(conn, AQ_CHANNEL, 0, (uint16_t)c->prefetch, 0);
        if (rpc_ok(b, "basic.qos", errbuf, n) < 0) return -1;
        amqp_basic_consume(conn, AQ_CHANNEL, q, amqp_cstring_bytes(c->tag), 0, 0, 0, amqp_empty_table);
        if (rpc_ok(b, "basic.consume", errbuf, n) < 0) return -1;
    } else {
        char ex[TS_BUS_TOPIC_MAX + 16];
        const char *key;
        if (c->kind == AQ_SUB) {
            snprintf(ex, sizeof(ex), "%s_fanout", c->topic);
            amqp_exchange_declare(conn, AQ_CHANNEL, amqp_cstring_bytes(ex), amqp_cstring_bytes("fanout"), 0, 0, 0, 0,
                                  amqp_empty_table);
            if (rpc_ok(b, "exchange.declare", errbuf, n) < 0) return -1;
            key = "";
        } else {
            snprintf(ex, sizeof(ex), "%s", AQ_EXCHANGE);
            key = "notifications.*";
        }
        amqp_queue_declare_ok_t *ok = amqp_queue_declare(conn, AQ_CHANNEL, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
        if (rpc_ok(b, "queue.declare", errbuf, n) < 0 || !ok) return -1;
        amqp_bytes_t q = amqp_bytes_malloc_dup(ok->queue);
        if (!q.bytes) {
            snprintf(errbuf, n, "out of memory");
            return -1;
        }
        amqp_queue_bind(conn, AQ_CHANNEL, q, amqp_cstring_bytes(ex), amqp_cstring_bytes(key), amqp_empty_table);
        int rc = rpc_ok(b, "queue.bind", errbuf, n);
        if (rc == 0) {
            amqp_basic_consume(conn, AQ_CHANNEL, q, amqp_cstring_bytes(c->tag), 0, 1, 1, amqp_empty_table);
            rc = rpc_ok(b, "basic.consume", errbuf, n);
        }
        amqp_bytes_free(q);
        if (rc < 0) return -1;
    }
    c->declared_gen = b->gen;
    return 0;
}

static void drop_connection(struct aq_bus *b)
{
    if (!b->conn) return;
    amqp_destroy_connection(b->conn);
    b->conn = NULL;
}

/* Opens the connection, the channel, the exchange, the reply queue and every consumer. */
static int aq_connect(struct aq_bus *b, char *errbuf, size_t n)
{
    amqp_connection_state_t conn = amqp_new_connection();
    if (!conn) {
        snprintf(errbuf, n, "out of memory");
        return -1;
    }
    b->conn = conn;
    amqp_socket_t *sock = amqp_tcp_socket_new(conn);
    if (!sock) {
        snprintf(errbuf, n, "cannot create socket");
        goto fail;
    }
    struct timeval tv = {5, 0};
    int st = amqp_socket_open_noblock(sock, b->info.host, b->info.port, &tv);
    if (st != AMQP_STATUS_OK) {
        snprintf(errbuf, n, "cannot connect to %s:%d: %s", b->info.host, b->info.port, amqp_error_string2(st));
        goto fail;
    }
    /* no AMQP heartbeats (the I/O thread may sit in poll); TCP keepalive finds a dead
     * broker in about a minute instead */
    int fd = amqp_get_sockfd(conn), on = 1, idle = 30, intvl = 10, cnt = 3;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
    }
    struct timeval rpc_tv = {10, 0};
    amqp_set_rpc_timeout(conn, &rpc_tv);
    const char *vhost = b->info.vhost && *b->info.vhost ? b->info.vhost : "/";
    if (rpc_check(amqp_login(conn, vhost, 0, AQ_FRAME_MAX, 0, AMQP_SASL_METHOD_PLAIN, b->info.user,
                             b->info.password),
                  "login", errbuf, n) < 0)
        goto fail;
    amqp_channel_open(conn, AQ_CHANNEL);
    if (rpc_ok(b, "channel.open", errbuf, n) < 0) goto fail;
    amqp_exchange_declare(conn, AQ_CHANNEL, amqp_cstring_bytes(AQ_EXCHANGE), amqp_cstring_bytes("topic"), 0, 0, 0, 0,
                          amqp_empty_table);
    if (rpc_ok(b, "exchange.declare", errbuf, n) < 0) goto fail;
    amqp_bytes_t rq = amqp_cstring_bytes(b->reply_queue);
    amqp_queue_declare(conn, AQ_CHANNEL, rq, 0, 0, 1, 1, amqp_empty_table);
    if (rpc_ok(b, "queue.declare reply", errbuf, n) < 0) goto fail;
    amqp_basic_consume(conn, AQ_CHANNEL, rq, amqp_cstring_bytes(AQ_REPLY_TAG), 0, 1, 1, amqp_empty_table);
    if (rpc_ok(b, "basic.consume reply", errbuf, n) < 0) goto fail;
    b->gen++;
    /* the list cannot change under us; unserved consumers wait for their CANCEL op */
    pthread_mutex_lock(&b->mu);
    int rc = 0;
    for (struct aq_consumer *c = b->consumers; c && rc == 0; c = c->next) rc = declare_consumer(b, c, errbuf, n);
    pthread_mutex_unlock(&b->mu);
    if (rc < 0) goto fail;
    return 0;
fail:
    drop_connection(b);
    return -1;
}

/* Runs one op. Returns -1 if the connection failed (the op is then left to the caller). */
static int run_op(struct aq_bus *b, struct aq_op *op, char *errbuf, size_t n)
{
    amqp_connection_state_t conn = b->conn;
    switch (op->kind) {
    case OP_PUBLISH: {
        if (op->fanout_exchange) {
            amqp_exchange_declare(conn, AQ_CHANNEL, amqp_cstring_bytes(op->exchange), amqp_cstring_bytes("fanout"), 0,
                                  0, 0, 0, amqp_empty_table);
            if (rpc_ok(b, "exchange.declare", errbuf, n) < 0) return -1;
        }
        amqp_basic_properties_t props;
        memset(&props, 0, sizeof(props));
        props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
        props.content_type = amqp_cstring_bytes("application/json");
        props.delivery_mode = 1;
        if (op->corr) {
            props._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
            props.correlation_id = amqp_cstring_bytes(op->corr);
        }
        if (op->reply_to) {
            props._flags |= AMQP_BASIC_REPLY_TO_FLAG;
            props.reply_to = amqp_cstring_bytes(op->reply_to);
        }
        amqp_bytes_t body = {op->len, op->body};
        int st = amqp_basic_publish(conn, AQ_CHANNEL, amqp_cstring_bytes(op->exchange), amqp_cstring_bytes(op->rkey),
                                    0, 0, &props, body);
        if (st != AMQP_STATUS_OK) {
            snprintf(errbuf, n, "basic.publish: %s", amqp_error_string2(st));
            return -1;
        }
        op_complete(b, op, 0);
        return 0;
    }
    case OP_ACK:
    case OP_REJECT: {
        if (op->gen == b->gen) {
            int st = op->kind == OP_ACK ? amqp_basic_ack(conn, AQ_CHANNEL, op->tag, 0)
                                        : amqp_basic_reject(conn, AQ_CHANNEL, op->tag, 1);
            if (st != AMQP_STATUS_OK) {
                snprintf(errbuf, n, "basic.ack: %s", amqp_error_string2(st));
                op_free(op); /* stale after a reconnect anyway */
                return -2;
            }
        }
        op_complete(b, op, 0);
        return 0;
    }
    case OP_CONSUME: {
        if (declare_consumer(b, op->consumers, errbuf, n) < 0) {
            snprintf(op->errmsg, sizeof(op->errmsg), "%.200s", errbuf);
            op_complete(b, op, -TS_EIO);
            return -2;
        }
        op_complete(b, op, 0);
        return 0;
    }
    case OP_CANCEL: {
        int rc = 0;
        for (struct aq_consumer *c = op->consumers; c; c = c->next) {
            if (c->declared_gen != b->gen) continue;
            amqp_basic_cancel(conn, AQ_CHANNEL, amqp_cstring_bytes(c->tag));
            if (rpc_ok(b, "basic.cancel", errbuf, n) < 0) {
                rc = -2;
                break;
            }
            c->declared_gen = 0;
        }
        op_complete(b, op, 0); /* a broken connection cancels too */
        return rc;
    }
    case OP_CANCEL_TAG: {
        /* a broker-side consumer we no longer know (it failed to register, or raced an
         * unserve): stop it so its messages go to the live servers */
        int rc = 0;
        if (op->gen == b->gen) {
            amqp_basic_cancel(conn, AQ_CHANNEL, amqp_cstring_bytes(op->rkey));
            if (rpc_ok(b, "basic.cancel", errbuf, n) < 0) rc = -2;
        }
        op_free(op);
        return rc;
    }
    }
    op_complete(b, op, 0);
    return 0;
}

/* Runs every queued op. Returns -1 when the connection broke. */
static int run_ops(struct aq_bus *b)
{
    char errbuf[300];
    struct aq_op *op;
    while ((op = op_pop(b))) {
        int rc = run_op(b, op, errbuf, sizeof(errbuf));
        if (rc == -1) {
            op_unpop(b, op); /* retried after the reconnect */
        }
        if (rc < 0) {
            ts_warn(TS_BUS_LOG, "amqp: %s", errbuf);
            return -1;
        }
    }
    return 0;
}

/* While there is no connection: sync ops succeed (consumers are declared on connect),
 * acks and rejects are stale; publishes wait. */
static void settle_offline(struct aq_bus *b)
{
    pthread_mutex_lock(&b->mu);
    struct aq_op *keep = NULL, *last = NULL, *op = b->ops_head, *done = NULL;
    size_t kept = 0;
    while (op) {
        struct aq_op *next = op->next;
        op->next = NULL;
        if (op->kind == OP_PUBLISH) {
            if (last)
                last->next = op;
            else
                keep = op;
            last = op;
            kept++;
        } else {
            op->next = done;
            done = op;
        }
        op = next;
    }
    b->ops_head = keep;
    b->ops_tail = last;
    b->nops = kept;
    pthread_mutex_unlock(&b->mu);
    while (done) {
        struct aq_op *next = done->next;
        op_complete(b, done, 0);
        done = next;
    }
}

static void complete_pending(struct aq_bus *b, const char *corr, size_t corr_len, json_t *body)
{
    json_t *result = json_object_get(body, "result");
    json_t *failure = json_object_get(body, "failure");
    pthread_mutex_lock(&b->mu);
    struct aq_pending *p = b->pending;
    while (p && !(strlen(p->corr) == corr_len && memcmp(p->corr, corr, corr_len) == 0)) p = p->next;
    if (p && !p->done) {
        p->done = true;
        if (json_is_object(failure)) {
            json_int_t code = json_integer_value(json_object_get(failure, "code"));
            const char *msg = json_string_value(json_object_get(failure, "message"));
            p->rc = ts_bus_norm_code(code > 0 && code < TS_E_COUNT ? (int)code : TS_EIO);
            ts_err_set(&p->err, -p->rc, "%s", msg ? msg : "remote error");
        } else if (result) {
            p->rc = 0;
            p->reply = json_incref(result);
        } else {
            p->rc = -TS_EIO;
            ts_err_set(&p->err, TS_EIO, "malformed reply");
        }
        pthread_cond_signal(&p->cv);
    }
    pthread_mutex_unlock(&b->mu);
    if (!p) ts_debug(TS_BUS_LOG, "amqp: dropping late or unknown reply %.*s", (int)corr_len, corr);
}

static void finish_amqp(struct ts_bus_msg *m, bool handled, int rc, json_t *reply, const struct ts_err *err);

static void on_delivery(struct aq_bus *b, amqp_envelope_t *env)
{
    amqp_bytes_t tag = env->consumer_tag;
    amqp_basic_properties_t *props = &env->message.properties;
    json_error_t jerr;
    json_t *body = json_loadb(env->message.body.bytes, env->message.body.len, 0, &jerr);
    bool is_server = tag.len > 5 && memcmp(tag.bytes, "ts.s.", 5) == 0;

    if (tag.len == strlen(AQ_REPLY_TAG) && memcmp(tag.bytes, AQ_REPLY_TAG, tag.len) == 0) {
        if (json_is_object(body) && (props->_flags & AMQP_BASIC_CORRELATION_ID_FLAG))
            complete_pending(b, props->correlation_id.bytes, props->correlation_id.len, body);
        else
            ts_warn(TS_BUS_LOG, "amqp: malformed reply dropped");
        json_decref(body);
        return;
    }

    const char *method = NULL;
    json_t *args = NULL;
    if (json_is_object(body)) {
        /* accept oslo's envelope for notifications from other producers */
        json_t *inner = json_object_get(body, "oslo.message");
        if (json_is_string(inner)) {
            json_t *decoded = json_loads(json_string_value(inner), 0, &jerr);
            json_decref(body);
            body = decoded;
        }
    }
    if (json_is_object(body)) {
        if (tag.len > 5 && memcmp(tag.bytes, "ts.n.", 5) == 0) {
            method = json_string_value(json_object_get(body, "event_type"));
            args = json_incref(body);
        } else {
            method = json_string_value(json_object_get(body, "method"));
            args = json_object_get(body, "args");
            args = json_is_object(args) ? json_incref(args) : (json_object_get(body, "args") ? NULL : json_object());
        }
    }
    if (!method || !*method || !args) {
        ts_warn(TS_BUS_LOG, "amqp: malformed message on %.*s dropped", (int)env->routing_key.len,
                (const char *)env->routing_key.bytes);
        json_decref(args);
        json_decref(body);
        if (is_server) {
            struct aq_op *op = ts_calloc(1, sizeof(*op));
            op->kind = OP_ACK;
            op->tag = env->delivery_tag;
            op->gen = b->gen;
            op_push(b, op);
        }
        return;
    }
    struct ts_bus_msg *m = ts_bus_msg_new(method, args);
    json_decref(body);
    m->owner = b;
    m->finish = finish_amqp;
    if (is_server) {
        m->delivery_tag = env->delivery_tag;
        m->gen = b->gen;
        if ((props->_flags & AMQP_BASIC_REPLY_TO_FLAG) && (props->_flags & AMQP_BASIC_CORRELATION_ID_FLAG) &&
            props->reply_to.len > 0 && props->reply_to.len <= 255 && props->correlation_id.len <= 255) {
            m->reply_to = ts_strndup(props->reply_to.bytes, props->reply_to.len);
            m->correlation_id = ts_strndup(props->correlation_id.bytes, props->correlation_id.len);
        }
    }
    int rc = -TS_EUNAVAIL;
    pthread_mutex_lock(&b->mu);
    for (struct aq_consumer *c = b->consumers; c; c = c->next) {
        if (strlen(c->tag) == tag.len && memcmp(c->tag, tag.bytes, tag.len) == 0) {
            rc = ts_bus_workers_push(c->w, m);
            break;
        }
    }
    pthread_mutex_unlock(&b->mu);
    if (rc < 0) {
        ts_bus_msg_drop(m); /* consumer gone: requeue (server) or drop */
        if (is_server && tag.len < 48) {
            struct aq_op *op = ts_calloc(1, sizeof(*op));
            op->kind = OP_CANCEL_TAG;
            op->rkey = ts_strndup(tag.bytes, tag.len);
            op->gen = b->gen;
            op_push(b, op);
        }
    }
}

/* A frame other than a delivery: returns -1 if the connection must be re-established. */
static int handle_frame(struct aq_bus *b)
{
    amqp_frame_t f;
    int st = amqp_simple_wait_frame(b->conn, &f);
    if (st != AMQP_STATUS_OK) {
        ts_warn(TS_BUS_LOG, "amqp: connection lost: %s", amqp_error_string2(st));
        return -1;
    }
    if (f.frame_type != AMQP_FRAME_METHOD) return 0;
    switch (f.payload.method.id) {
    case AMQP_BASIC_RETURN_METHOD: {
        amqp_message_t msg;
        amqp_rpc_reply_t r = amqp_read_message(b->conn, f.channel, &msg, 0);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) return -1;
        amqp_destroy_message(&msg);
        return 0;
    }
    case AMQP_BASIC_CANCEL_METHOD:
        ts_warn(TS_BUS_LOG, "amqp: the broker cancelled a consumer (queue deleted?); reconnecting");
        return -1;
    case AMQP_CHANNEL_CLOSE_METHOD: {
        amqp_channel_close_t *m = f.payload.method.decoded;
        ts_warn(TS_BUS_LOG, "amqp: the broker closed the channel: %u %.*s", m ? m->reply_code : 0,
                m ? (int)m->reply_text.len : 0, m ? (const char *)m->reply_text.bytes : "");
        return -1;
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
        amqp_connection_close_t *m = f.payload.method.decoded;
        ts_warn(TS_BUS_LOG, "amqp: the broker closed the connection: %u %.*s", m ? m->reply_code : 0,
                m ? (int)m->reply_text.len : 0, m ? (const char *)m->reply_text.bytes : "");
        return -1;
    }
    default:
        return 0;
    }
}

/* Reads what the socket has without blocking. Returns -1 if the connection broke. */
static int read_available(struct aq_bus *b)
{
    for (int i = 0; i < 512; i++) {
        amqp_envelope_t env;
        struct timeval zero = {0, 0};
        amqp_maybe_release_buffers(b->conn);
        amqp_rpc_reply_t r = amqp_consume_message(b->conn, &env, &zero, 0);
        if (r.reply_type == AMQP_RESPONSE_NORMAL) {
            on_delivery(b, &env);
            amqp_destroy_envelope(&env);
            continue;
        }
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
            if (r.library_error == AMQP_STATUS_TIMEOUT) return 0;
            if (r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
                if (handle_frame(b) < 0) return -1;
                continue;
            }
        }
        char errbuf[300];
        rpc_check(r, "consume", errbuf, sizeof(errbuf));
        ts_warn(TS_BUS_LOG, "amqp: connection lost: %s", errbuf);
        return -1;
    }
    return 0;
}

static bool stopping(struct aq_bus *b);

/* Sleeps ms (the reconnect backoff); only ts_bus_close cuts it short. */
static void backoff_sleep(struct aq_bus *b, int ms)
{
    double end = ts_mono() + ms / 1000.0;
    for (;;) {
        int left = (int)((end - ts_mono()) * 1000.0);
        if (left <= 0 || stopping(b)) return;
        struct pollfd p = {.fd = b->wake_fd, .events = POLLIN};
        if (poll(&p, 1, left) > 0) {
            uint64_t v;
            ssize_t n = read(b->wake_fd, &v, sizeof(v));
            (void)n;
            settle_offline(b); /* serve/unserve callers need not wait for the broker */
        }
    }
}

static bool stopping(struct aq_bus *b)
{
    pthread_mutex_lock(&b->mu);
    bool s = b->stopping;
    pthread_mutex_unlock(&b->mu);
    return s;
}

static void *io_main(void *arg)
{
    struct aq_bus *b = arg;
    int backoff_ms = 500;
    char errbuf[300];
    for (;;) {
        bool stop = stopping(b);
        if (!b->conn) {
            settle_offline(b);
            if (stop) break;
            if (aq_connect(b, errbuf, sizeof(errbuf)) < 0) {
                ts_warn(TS_BUS_LOG, "amqp: %s; retrying in %d ms", errbuf, backoff_ms);
                backoff_sleep(b, backoff_ms);
                backoff_ms = backoff_ms * 2 > 5000 ? 5000 : backoff_ms * 2;
                continue;
            }
            ts_info(TS_BUS_LOG, "amqp: connected to %s:%d", b->info.host, b->info.port);
            backoff_ms = 500;
        }
        if (run_ops(b) < 0) {
            drop_connection(b);
            continue;
        }
        if (stop) break;
        int timeout = (amqp_frames_enqueued(b->conn) || amqp_data_in_buffer(b->conn)) ? 0 : 1000;
        struct pollfd p[2] = {{.fd = amqp_get_sockfd(b->conn), .events = POLLIN},
                              {.fd = b->wake_fd, .events = POLLIN}};
        int n = poll(p, 2, timeout);
        if (n < 0 && errno != EINTR) {
            ts_warn(TS_BUS_LOG, "amqp: poll: %s", strerror(errno));
            backoff_sleep(b, 100);
            continue;
        }
        if (n > 0 && (p[1].revents & POLLIN)) {
            uint64_t v;
            ssize_t r = read(b->wake_fd, &v, sizeof(v));
            (void)r;
        }
        if (timeout == 0 || (n > 0 && p[0].revents)) {
            if (read_available(b) < 0) drop_connection(b);
        }
    }
    if (b->conn) {
        amqp_connection_close(b->conn, AMQP_REPLY_SUCCESS);
        drop_connection(b);
    }
    return NULL;
}

/* ---- worker side ------------------------------------------------------------------- */

static void finish_amqp(struct ts_bus_msg *m, bool handled, int rc, json_t *reply, const struct ts_err *err)
{
    struct aq_bus *b = m->owner;
    if (handled && m->reply_to) {
        json_t *body;
        if (rc == 0)
            body = json_pack("{s:o}", "result", reply ? reply : json_null());
        else
            body = json_pack("{s:{s:i, s:s}}", "failure", "code", -rc, "message", err && err->msg[0] ? err->msg : "error");
        reply = NULL;
        if (body) {
            publish_json(b, "", m->reply_to, false, body, m->correlation_id, NULL, NULL);
        } else {
            ts_warn(TS_BUS_LOG, "amqp: cannot encode the reply to %s", m->method);
        }
    } else if (handled && rc < 0) {
        ts_warn(TS_BUS_LOG, "amqp: %s failed: %s", m->method, err ? err->msg : "");
    }
    json_decref(reply);
    if (m->delivery_tag) {
        struct aq_op *op = ts_calloc(1, sizeof(*op));
        op->kind = handled ? OP_ACK : OP_REJECT;
        op->tag = m->delivery_tag;
        op->gen = m->gen;
        op_push(b, op);
    }
    ts_bus_msg_free(m);
}

/* ---- the interface ----------------------------------------------------------------- */

static void free_consumer_list(struct aq_consumer *c)
{
    while (c) {
        struct aq_consumer *next = c->next;
        ts_bus_workers_free(c->w);
        free(c->topic);
        free(c);
        c = next;
    }
}

static int add_consumer(struct aq_bus *b, int kind, const char *topic, ts_bus_handler_fn fn, void *ctx, int nthreads,
                        struct ts_err *err)
{
    if (nthreads <= 0) nthreads = 1;
    if (nthreads > TS_BUS_MAX_THREADS) nthreads = TS_BUS_MAX_THREADS;
    struct ts_bus_workers *w = ts_bus_workers_new(topic ? topic : "notifications", fn, ctx, nthreads, err);
    if (!w) return -TS_EIO;
    struct aq_consumer *c = ts_calloc(1, sizeof(*c));
    c->kind = kind;
    c->topic = topic ? ts_strdup(topic) : NULL;
    c->w = w;
    c->prefetch = nthreads * 2;
    pthread_mutex_lock(&b->mu);
    if (b->closing) {
        pthread_mutex_unlock(&b->mu);
        free_consumer_list(c);
        return ts_err_set(err, TS_EUNAVAIL, "bus is closing");
    }
    snprintf(c->tag, sizeof(c->tag), "ts.%c.%u", kind == AQ_SERVER ? 's' : kind == AQ_SUB ? 'f' : 'n', ++b->tag_seq);
    c->next = b->consumers;
    b->consumers = c;
    pthread_mutex_unlock(&b->mu);

    struct aq_op op;
    memset(&op, 0, sizeof(op));
    op.kind = OP_CONSUME;
    op.consumers = c;
    int rc = op_run_sync(b, &op);
    if (rc == 0) return 0;
    /* unlink it again */
    pthread_mutex_lock(&b->mu);
    for (struct aq_consumer **pp = &b->consumers; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    pthread_mutex_unlock(&b->mu);
    c->next = NULL;
    free_consumer_list(c);
    return ts_err_set(err, TS_EUNAVAIL, "bus: cannot consume %s: %s", topic ? topic : "notifications",
                      op.errmsg[0] ? op.errmsg : "transport closed");
}

static int aq_serve(struct ts_bus *bus, const char *topic, ts_bus_handler_fn fn, void *ctx, int nthreads,
                    struct ts_err *err)
{
    return add_consumer((struct aq_bus *)bus, AQ_SERVER, topic, fn, ctx, nthreads, err);
}

static void aq_unserve(struct ts_bus *bus, const char *topic)
{
    struct aq_bus *b = (struct aq_bus *)bus;
    struct aq_consumer *gone = NULL;
    pthread_mutex_lock(&b->mu);
    struct aq_consumer **pp = &b->consumers;
    while (*pp) {
        struct aq_consumer *c = *pp;
        if (c->kind == AQ_SERVER && ts_streq(c->topic, topic)) {
            *pp = c->next;
            c->next = gone;
            gone = c;
        } else {
            pp = &c->next;
        }
    }
    pthread_mutex_unlock(&b->mu);
    if (!gone) return;
    struct aq_op op;
    memset(&op, 0, sizeof(op));
    op.kind = OP_CANCEL;
    op.consumers = gone;
    op_run_sync(b, &op);
    free_consumer_list(gone);
}

static json_t *rpc_body(const char *method, json_t *args)
{
    return json_pack("{s:s, s:o, s:{}}", "method", method, "args", args, "context");
}

static int aq_cast(struct ts_bus *bus, const char *topic, const char *method, json_t *args, struct ts_err *err)
{
    json_t *body = rpc_body(method, args);
    if (!body) return ts_err_set(err, TS_EINVAL, "bus: cannot build message");
    return publish_json((struct aq_bus *)bus, AQ_EXCHANGE, topic, false, body, NULL, NULL, err);
}

static int aq_call(struct ts_bus *bus, const char *topic, const char *method, json_t *args, int timeout_ms,
                   json_t **reply, struct ts_err *err)
{
    struct aq_bus *b = (struct aq_bus *)bus;
    json_t *body = rpc_body(method, args);
    if (!body) return ts_err_set(err, TS_EINVAL, "bus: cannot build message");
    struct aq_pending p;
    memset(&p, 0, sizeof(p));
    ts_uuid(p.corr);
    ts_bus_cond_init(&p.cv);
    pthread_mutex_lock(&b->mu);
    bool closing = b->closing;
    if (!closing) {
        p.next = b->pending;
        b->pending = &p;
    }
    pthread_mutex_unlock(&b->mu);
    if (closing) {
        json_decref(body);
        pthread_cond_destroy(&p.cv);
        return ts_err_set(err, TS_EUNAVAIL, "bus is closing");
    }
    int rc = publish_json(b, AQ_EXCHANGE, topic, false, body, p.corr, b->reply_queue, err);
    struct timespec deadline;
    ts_bus_deadline(&deadline, timeout_ms);
    pthread_mutex_lock(&b->mu);
    while (rc == 0 && !p.done && !b->closing) {
        if (pthread_cond_timedwait(&p.cv, &b->mu, &deadline) == ETIMEDOUT) break;
    }
    for (struct aq_pending **pp = &b->pending; *pp; pp = &(*pp)->next) {
        if (*pp == &p) {
            *pp = p.next;
            break;
        }
    }
    pthread_mutex_unlock(&b->mu);
    if (rc == 0) {
        if (!p.done) {
            rc = ts_err_set(err, b->closing ? TS_EUNAVAIL : TS_ETIMEDOUT, "timed out after %d ms waiting for %s on %s",
                            timeout_ms, method, topic);
        } else if (p.rc < 0) {
            rc = p.rc;
            if (err) *err = p.err;
        } else {
            *reply = p.reply;
            p.reply = NULL;
        }
    }
    json_decref(p.reply);
    pthread_cond_destroy(&p.cv);
    return rc;
}

static int aq_fanout(struct ts_bus *bus, const char *topic, const char *method, json_t *args, struct ts_err *err)
{
    json_t *body = rpc_body(method, args);
    if (!body) return ts_err_set(err, TS_EINVAL, "bus: cannot build message");
    char ex[TS_BUS_TOPIC_MAX + 16];
    snprintf(ex, sizeof(ex), "%s_fanout", topic);
    return publish_json((struct aq_bus *)bus, ex, "", true, body, NULL, NULL, err);
}

static int aq_subscribe(struct ts_bus *bus, const char *topic, ts_bus_handler_fn fn, void *ctx, struct ts_err *err)
{
    return add_consumer((struct aq_bus *)bus, AQ_SUB, topic, fn, ctx, 1, err);
}

static void aq_notify(struct ts_bus *bus, const char *priority, json_t *note)
{
    char key[64];
    snprintf(key, sizeof(key), "notifications.%s", priority);
    struct ts_err e;
    if (publish_json((struct aq_bus *)bus, AQ_EXCHANGE, key, false, note, NULL, NULL, &e) < 0)
        ts_warn(TS_BUS_LOG, "notify: %s", e.msg);
}

static int aq_listen(struct ts_bus *bus, ts_bus_handler_fn fn, void *ctx, struct ts_err *err)
{
    return add_consumer((struct aq_bus *)bus, AQ_LISTEN, NULL, fn, ctx, 1, err);
}

static void aq_free(struct aq_bus *b)
{
    struct aq_op *op = b->ops_head;
    while (op) {
        struct aq_op *next = op->next;
        if (op->sync) {
            op->rc = -TS_EUNAVAIL;
            op->done = true;
        } else {
            op_free(op);
        }
        op = next;
    }
    pthread_cond_broadcast(&b->op_cv);
    if (b->wake_fd >= 0) close(b->wake_fd);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->op_cv);
    free(b->url_buf);
    free(b);
}

static void aq_close(struct ts_bus *bus)
{
    struct aq_bus *b = (struct aq_bus *)bus;
    pthread_mutex_lock(&b->mu);
    b->closing = true;
    struct aq_consumer *all = b->consumers;
    b->consumers = NULL;
    for (struct aq_pending *p = b->pending; p; p = p->next) pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&b->mu);
    /* running handlers finish; their replies and acks are still flushed below */
    free_consumer_list(all);
    pthread_mutex_lock(&b->mu);
    b->stopping = true;
    pthread_mutex_unlock(&b->mu);
    wake(b);
    if (b->io_started) pthread_join(b->io, NULL);
    pthread_mutex_lock(&b->mu);
    b->io_gone = true;
    pthread_mutex_unlock(&b->mu);
    drop_connection(b);
    aq_free(b);
}

static const struct ts_bus_ops amqp_ops = {
    .close = aq_close,
    .serve = aq_serve,
    .unserve = aq_unserve,
    .cast = aq_cast,
    .call = aq_call,
    .fanout = aq_fanout,
    .subscribe = aq_subscribe,
    .notify = aq_notify,
    .listen = aq_listen,
};

int ts_bus_amqp_open(const char *url, struct ts_bus **out, struct ts_err *err)
{
    int rc = 0;
    struct aq_bus *b = ts_calloc(1, sizeof(*b));
    b->base.ops = &amqp_ops;
    b->wake_fd = -1;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->op_cv, NULL);
    /* oslo spells it rabbit://; librabbitmq wants amqp:// */
    b->url_buf = ts_startswith(url, "rabbit://") ? ts_asprintf("amqp://%s", url + strlen("rabbit://")) : ts_strdup(url);
    amqp_default_connection_info(&b->info);
    if (amqp_parse_url(b->url_buf, &b->info) != AMQP_STATUS_OK) {
        rc = ts_err_set(err, TS_EINVAL, "bus: cannot parse transport_url (want amqp://user:pass@host:port/vhost)");
        goto out;
    }
    char hex[33];
    ts_uuid_hex(hex);
    snprintf(b->reply_queue, sizeof(b->reply_queue), "reply_%s", hex);
    b->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (b->wake_fd < 0) {
        rc = ts_err_set(err, TS_EIO, "bus: eventfd: %s", strerror(errno));
        goto out;
    }
    char errbuf[300];
    if (aq_connect(b, errbuf, sizeof(errbuf)) < 0) {
        rc = ts_err_set(err, TS_EUNAVAIL, "bus: AMQP: %s", errbuf);
        goto out;
    }
    int prc = pthread_create(&b->io, NULL, io_main, b);
    if (prc != 0) {
        rc = ts_err_set(err, TS_EIO, "bus: cannot start the AMQP I/O thread: %s", strerror(prc));
        goto out;
    }
    b->io_started = true;
    ts_info(TS_BUS_LOG, "amqp: connected to %s:%d, reply queue %s", b->info.host, b->info.port, b->reply_queue);
out:
    if (rc < 0) {
        drop_connection(b);
        aq_free(b);
        return rc;
    }
    *out = &b->base;
    return 0;
}
