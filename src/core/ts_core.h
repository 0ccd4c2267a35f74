/*
 * ts_core.h: the libc-only foundation every module builds on: error codes and the
 * ts_err detail carrier, request pools, bounded growable buffers, logging, UUIDs,
 * time stamps and small string helpers.
 */
#ifndef TS_CORE_H
#define TS_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <time.h>

/* ---- errors ------------------------------------------------------------ */
/* Functions return 0 on success or a negative TS_E... code. ts_err_status() maps a code to
 * its HTTP status; the HTTP layer renders the fault body in the service's style. */
enum {
    TS_OK = 0,
    TS_EINVAL = 1,      /* 400 bad request / validation */
    TS_EUNAUTH,         /* 401 */
    TS_EFORBIDDEN,      /* 403 */
    TS_ENOTFOUND,       /* 404 */
    TS_EMETHOD,         /* 405 */
    TS_ENOTACCEPT,      /* 406 */
    TS_ECONFLICT,       /* 409 */
    TS_EGONE,           /* 410 */
    TS_ELENGTH,         /* 411 length required */
    TS_EPRECOND,        /* 412 precondition failed */
    TS_ETOOBIG,         /* 413 body or quota too large */
    TS_EMEDIA,          /* 415 unsupported media type */
    TS_ERANGE,          /* 416 range not satisfiable */
    TS_EUNPROCESSABLE,  /* 422 */
    TS_ELOCKED,         /* 423 */
    TS_ENOMEM,          /* 500, allocation sized by the client failed */
    TS_EIO,             /* 500 internal / I/O */
    TS_ENOTIMPL,        /* 501 */
    TS_EUNAVAIL,        /* 503 */
    TS_ETIMEDOUT,       /* 504 / rpc timeout */
    TS_EQUOTA,          /* 403 (nova) / 413 (glance, cinder): over quota; status set by service */
    TS_E_COUNT
};

#define TS_ERR_MSG_MAX 512

/* Detail for the user. Optional out-parameter: every function accepts NULL. */
struct ts_err {
    int code;                   /* positive TS_E... */
    int status;                 /* HTTP status, 0 = derive from code */
    char type[64];              /* optional fault type (Neutron "NetworkNotFound", ...) */
    char msg[TS_ERR_MSG_MAX];
};

/* Sets err (if not NULL) and returns -code. */
int ts_err_set(struct ts_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Same, with an explicit HTTP status and fault type (type may be NULL). */
int ts_err_set_full(struct ts_err *err, int code, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* The HTTP status for a (positive or negative) code. */
int ts_err_status(int code);
/* A short constant name ("Bad Request", "Not Found", ...) for an HTTP status. */
const char *ts_err_title(int status);
void ts_err_clear(struct ts_err *err);

/* Aborts with a message: for states that cannot happen (on in release builds). */
#define TS_ASSERT(cond)                                                                 \
    do {                                                                                \
        if (!(cond)) ts_panic("%s:%d: assertion failed: %s", __FILE__, __LINE__, #cond); \
    } while (0)
void ts_panic(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* ---- allocation that aborts on out-of-memory (small fixed allocations) -------- */
void *ts_malloc(size_t n);
void *ts_calloc(size_t n, size_t size);
void *ts_realloc(void *p, size_t n);
char *ts_strdup(const char *s);
char *ts_strndup(const char *s, size_t n);
char *ts_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *ts_vasprintf(const char *fmt, va_list ap);

/* ---- pools: everything a request allocates, freed in one go ------------------ */
struct ts_pool;
struct ts_pool *ts_pool_new(void);
void ts_pool_free(struct ts_pool *pool);                 /* NULL is a no-op */
void *ts_pool_alloc(struct ts_pool *pool, size_t n);     /* zeroed, aborts on OOM */
char *ts_pool_strdup(struct ts_pool *pool, const char *s);
char *ts_pool_strndup(struct ts_pool *pool, const char *s, size_t n);
char *ts_pool_printf(struct ts_pool *pool, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Runs fn(arg) when the pool is freed (e.g. json_decref, close). */
void ts_pool_cleanup(struct ts_pool *pool, void (*fn)(void *), void *arg);

/* ---- bounded growable buffer ------------------------------------------------ */
struct ts_buf {
    char *data;     /* always NUL-terminated when len > 0 or after ts_buf_cstr */
    size_t len;
    size_t cap;
    size_t max;     /* hard cap; appends past it fail with -TS_ETOOBIG; 0 = 1 GiB */
};
void ts_buf_init(struct ts_buf *b, size_t max);
void ts_buf_free(struct ts_buf *b);
int ts_buf_append(struct ts_buf *b, const void *data, size_t len);
int ts_buf_appends(struct ts_buf *b, const char *s);
int ts_buf_printf(struct ts_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *ts_buf_cstr(struct ts_buf *b);
void ts_buf_reset(struct ts_buf *b);
/* Gives the data away (caller frees) and resets b. */
char *ts_buf_steal(struct ts_buf *b, size_t *len);

/* ---- logging ------------------------------------------------------------------ */
enum ts_log_level { TS_LOG_DEBUG, TS_LOG_INFO, TS_LOG_WARN, TS_LOG_ERROR };
void ts_log_set_level(enum ts_log_level lvl);
void ts_log_set_file(const char *path);      /* NULL = stderr */
void ts_log(enum ts_log_level lvl, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define ts_debug(mod, ...) ts_log(TS_LOG_DEBUG, mod, __VA_ARGS__)
#define ts_info(mod, ...) ts_log(TS_LOG_INFO, mod, __VA_ARGS__)
#define ts_warn(mod, ...) ts_log(TS_LOG_WARN, mod, __VA_ARGS__)
#define ts_error(mod, ...) ts_log(TS_LOG_ERROR, mod, __VA_ARGS__)

/* ---- uuid, random, time --------------------------------------------------------- */
#define TS_UUID_LEN 36
/* Random v4 UUID, lower-case with dashes, into out[37]. */
void ts_uuid(char out[TS_UUID_LEN + 1]);
/* Same, without dashes (Keystone ids), into out[33]. */
void ts_uuid_hex(char out[33]);
/* Fills buf with cryptographically strong random bytes. */
void ts_random(void *buf, size_t len);
bool ts_uuid_valid(const char *s);

double ts_now(void);                 /* wall clock, seconds since epoch */
double ts_mono(void);                /* monotonic seconds */
/* ISO-8601 UTC "2026-11-25T19:20:00Z" (frac_digits 0) or with 6 fractional digits
 * "2026-11-25T19:20:00.000000Z"; out must hold 32 bytes. */
void ts_time_iso(double t, int frac_digits, char out[32]);
/* Parses ISO-8601 with optional fraction and Z/offset; -TS_EINVAL if bad. */
int ts_time_parse(const char *s, double *out);

/* ---- strings ----------------------------------------------------------------- */
bool ts_streq(const char *a, const char *b);          /* NULL-safe */
bool ts_strcaseeq(const char *a, const char *b);
bool ts_startswith(const char *s, const char *prefix);
bool ts_endswith(const char *s, const char *suffix);
/* URL percent-decoding into a new pool string (NULL on bad escapes or embedded NUL). */
char *ts_url_decode(struct ts_pool *pool, const char *s, size_t len);
/* Percent-encoding of everything but unreserved characters (and '/' if keep_slash). */
char *ts_url_encode(struct ts_pool *pool, const char *s, bool keep_slash);
/* Hex of bytes into out (2*len+1). */
void ts_hex(const unsigned char *in, size_t len, char *out);
/* true if s is valid UTF-8 without NUL bytes. */
bool ts_utf8_valid(const char *s, size_t len);
/* Parses a base-10 int64 entirely; -TS_EINVAL otherwise. */
int ts_parse_int64(const char *s, int64_t *out);
/* Parses "true/false/1/0/yes/no/on/off" (case-insensitive). */
int ts_parse_bool(const char *s, bool *out);

/* mkdir -p with mode. */
int ts_mkdirs(const char *path, int mode);
/* Writes a whole file atomically (tmp + fsync + rename). */
int ts_file_write_atomic(const char *path, const void *data, size_t len, int mode);
/* Reads a whole small file (<= max bytes) into a malloc'd NUL-terminated buffer. */
int ts_file_read(const char *path, size_t max, char **out, size_t *len);

/* ---- shared libraries loaded on first use (dlopen) ---------------------------------- */
/* One function of a library: its name, and where its pointer goes in the caller's table. */
struct ts_dl_sym {
    const char *name;
    size_t offset;
};
/* The entry for member fn of a table struct whose members are named after the functions. */
#define TS_DL_SYM(table_type, fn) {#fn, offsetof(table_type, fn)}
/* A library and the caller's table of its functions (a static the caller owns). */
struct ts_dl_lib {
    const char *soname;            /* "libvirt.so.0" */
    const char *package;           /* the Debian package that ships it, for the error message */
    const struct ts_dl_sym *syms;  /* every function the table holds */
    size_t nsyms;
    void *table;                   /* filled by ts_dl_load() */
    size_t table_size;
    bool loaded;                   /* ts_dl_load()'s own, under its lock */
};
/* dlopen()s lib->soname (RTLD_NOW | RTLD_LOCAL, never closed) and fills lib->table with every
 * function of lib->syms, once: later calls return 0 at once. Any thread may call it. 0, or
 * -TS_EUNAVAIL with a message naming the library (and its package) when the library or one of
 * its functions is missing; lib->table is untouched then and the next call tries again. */
int ts_dl_load(struct ts_dl_lib *lib, struct ts_err *err);

#endif
