/*
 * ts_core_time.c: UUIDs, strong random bytes (getrandom), clocks, and ISO-8601 time
 * stamps in UTC as the OpenStack APIs print and accept them.
 */
#include "core/ts_core.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

void ts_random(void *buf, size_t len)
{
    unsigned char *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len > 256 ? 256 : len, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            ts_panic("getrandom failed: %s", strerror(errno));
        }
        p += n;
        len -= (size_t)n;
    }
}

static void uuid_bytes(unsigned char u[16])
{
    ts_random(u, 16);
    u[6] = (unsigned char)((u[6] & 0x0f) | 0x40); /* version 4 */
    u[8] = (unsigned char)((u[8] & 0x3f) | 0x80); /* RFC 4122 variant */
}

void ts_uuid(char out[TS_UUID_LEN + 1])
{
    unsigned char u[16];
    uuid_bytes(u);
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
        out[o++] = hex[u[i] >> 4];
        out[o++] = hex[u[i] & 15];
    }
    out[o] = '\0';
}

void ts_uuid_hex(char out[33])
{
    unsigned char u[16];
    uuid_bytes(u);
    ts_hex(u, 16, out);
}

bool ts_uuid_valid(const char *s)
{
    if (!s) return false;
    size_t len = strlen(s);
    if (len == 36) {
        for (size_t i = 0; i < 36; i++) {
            if (i == 8 || i == 13 || i == 18 || i == 23) {
                if (s[i] != '-') return false;
            } else if (!isxdigit((unsigned char)s[i])) {
                return false;
            }
        }
        return true;
    }
    if (len == 32) {
        for (size_t i = 0; i < 32; i++)
            if (!isxdigit((unsigned char)s[i])) return false;
        return true;
    }
    return false;
}

double ts_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double ts_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void ts_time_iso(double t, int frac_digits, char out[32])
{
    if (frac_digits < 0) frac_digits = 0;
    if (frac_digits > 6) frac_digits = 6;
    /* years 1..9999 only: keeps the cast to time_t defined and the output 4-digit */
    if (!isfinite(t) || t < -62135596800.0 || t >= 253402300800.0) t = 0;
    double fl = floor(t);
    time_t sec = (time_t)fl;
    long usec = lround((t - fl) * 1e6);
    if (usec >= 1000000) {
        sec += 1;
        usec -= 1000000;
    }
    struct tm tm;
    if (!gmtime_r(&sec, &tm)) {
        sec = 0;
        usec = 0;
        gmtime_r(&sec, &tm);
    }
    char base[24];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    int div = 1;
    for (int i = frac_digits; i < 6; i++) div *= 10;
    int frac = (int)(usec < 0 ? 0 : usec > 999999 ? 999999 : usec) / div;
    char tmp[64];
    if (frac_digits == 0) snprintf(tmp, sizeof(tmp), "%sZ", base);
    else snprintf(tmp, sizeof(tmp), "%s.%0*dZ", base, frac_digits, frac);
    size_t n = strnlen(tmp, 31);
    memcpy(out, tmp, n);
    out[n] = '\0';
}

/* Reads exactly n digits at *p. */
static int read_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9') return -1;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int ts_time_parse(const char *s, double *out)
{
    if (!s) return -TS_EINVAL;
    const char *p = s;
    int Y, M, D, h = 0, m = 0, sec = 0;
    double frac = 0;
    if (read_digits(&p, 4, &Y) || *p++ != '-' || read_digits(&p, 2, &M) || *p++ != '-' ||
        read_digits(&p, 2, &D))
        return -TS_EINVAL;
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (M < 1 || M > 12 || D < 1) return -TS_EINVAL;
    if (D > mdays[M - 1] + (M == 2 && leap(Y) ? 1 : 0)) return -TS_EINVAL;
    int off = 0;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (read_digits(&p, 2, &h) || *p++ != ':' || read_digits(&p, 2, &m)) return -TS_EINVAL;
        if (*p == ':') {
            p++;
            if (read_digits(&p, 2, &sec)) return -TS_EINVAL;
            if (*p == '.' || *p == ',') {
                p++;
                if (*p < '0' || *p > '9') return -TS_EINVAL;
                double scale = 0.1;
                while (*p >= '0' && *p <= '9') {
                    frac += (*p - '0') * scale;
                    scale /= 10;
                    p++;
                }
            }
        }
        if (h > 23 || m > 59 || sec > 60) return -TS_EINVAL;
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p == '-' ? -1 : 1;
            int oh, om = 0;
            p++;
            if (read_digits(&p, 2, &oh)) return -TS_EINVAL;
            if (*p == ':') {
                p++;
                if (read_digits(&p, 2, &om)) return -TS_EINVAL;
            } else if (*p >= '0' && *p <= '9') {
                if (read_digits(&p, 2, &om)) return -TS_EINVAL;
            }
            if (oh > 23 || om > 59) return -TS_EINVAL;
            off = sign * (oh * 3600 + om * 60);
        }
    } else if (*p == 'Z' || *p == 'z') {
        p++;
    }
    if (*p != '\0') return -TS_EINVAL;
    struct tm tm = {0};
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    if (out) *out = (double)t - off + frac;
    return 0;
}
