/*
 * ts_core_log.c: logging. One line per call, "2026-11-25 19:20:00.123 INFO module: msg",
 * to stderr or to a file set with ts_log_set_file(). A mutex keeps lines whole when
 * threads log at once; every function here may be called from any thread.
 */
#include "core/ts_core.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static enum ts_log_level log_level = TS_LOG_INFO;
static FILE *log_file; /* NULL = stderr */

void ts_log_set_level(enum ts_log_level lvl)
{
    __atomic_store_n(&log_level, lvl, __ATOMIC_RELAXED);
}

void ts_log_set_file(const char *path)
{
    FILE *f = NULL;
    if (path) {
        f = fopen(path, "ae");
        if (!f) {
            ts_error("log", "cannot open log file %s: %m; logging to stderr", path);
        } else {
            setvbuf(f, NULL, _IOLBF, 0);
        }
    }
    pthread_mutex_lock(&log_lock);
    FILE *old = log_file;
    log_file = f;
    pthread_mutex_unlock(&log_lock);
    if (old) fclose(old);
}

static const char *level_name(enum ts_log_level lvl)
{
    switch (lvl) {
    case TS_LOG_DEBUG: return "DEBUG";
    case TS_LOG_INFO: return "INFO";
    case TS_LOG_WARN: return "WARNING";
    case TS_LOG_ERROR: return "ERROR";
    }
    return "INFO";
}

void ts_log(enum ts_log_level lvl, const char *module, const char *fmt, ...)
{
    if (lvl < __atomic_load_n(&log_level, __ATOMIC_RELAXED)) return;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    time_t sec = tv.tv_sec;
    localtime_r(&sec, &tm);
    char stamp[32];
    strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);

    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* keep one record per line */
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';

    pthread_mutex_lock(&log_lock);
    FILE *out = log_file ? log_file : stderr;
    fprintf(out, "%s.%03d %s %s: %s\n", stamp, (int)(tv.tv_usec / 1000), level_name(lvl),
            module ? module : "-", msg);
    fflush(out);
    pthread_mutex_unlock(&log_lock);
}
