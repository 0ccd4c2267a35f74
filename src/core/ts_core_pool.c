/*
 * ts_core_pool.c: request pools (arenas). Small allocations are carved from chunked blocks;
 * large ones get a block of their own. Cleanups registered with ts_pool_cleanup() run in
 * reverse order of registration when the pool is freed, before the memory goes away.
 * A pool is used by one thread at a time.
 */
#include "core/ts_core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POOL_BLOCK_SIZE 8192
#define POOL_ALIGN 16

struct pool_block {
    struct pool_block *next;
    size_t size;    /* usable bytes after the header */
    size_t used;
    /* data follows, aligned */
    _Alignas(POOL_ALIGN) unsigned char data[];
};

struct pool_cleanup {
    struct pool_cleanup *next;
    void (*fn)(void *);
    void *arg;
};

struct ts_pool {
    struct pool_block *blocks;   /* current block first */
    struct pool_block *large;    /* dedicated blocks for big allocations */
    struct pool_cleanup *cleanups;
};

static struct pool_block *block_new(size_t size)
{
    if (size > SIZE_MAX - sizeof(struct pool_block)) ts_panic("pool allocation too large: %zu", size);
    struct pool_block *b = ts_malloc(sizeof(struct pool_block) + size);
    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

struct ts_pool *ts_pool_new(void)
{
    return ts_calloc(1, sizeof(struct ts_pool));
}

void ts_pool_free(struct ts_pool *pool)
{
    if (!pool) return;
    /* cleanups may allocate from the pool (rare); loop until the list stays empty */
    while (pool->cleanups) {
        struct pool_cleanup *c = pool->cleanups;
        pool->cleanups = NULL;
        while (c) {
            struct pool_cleanup *next = c->next;
            c->fn(c->arg);
            free(c);
            c = next;
        }
    }
    for (struct pool_block *b = pool->blocks, *n; b; b = n) {
        n = b->next;
        free(b);
    }
    for (struct pool_block *b = pool->large, *n; b; b = n) {
        n = b->next;
        free(b);
    }
    free(pool);
}

void *ts_pool_alloc(struct ts_pool *pool, size_t n)
{
    TS_ASSERT(pool);
    if (n == 0) n = 1;
    if (n > SIZE_MAX - POOL_ALIGN) ts_panic("pool allocation too large: %zu", n);
    size_t need = (n + POOL_ALIGN - 1) & ~(size_t)(POOL_ALIGN - 1);
    if (need > POOL_BLOCK_SIZE / 4) {
        struct pool_block *b = block_new(need);
        b->used = need;
        b->next = pool->large;
        pool->large = b;
        memset(b->data, 0, need);
        return b->data;
    }
    struct pool_block *b = pool->blocks;
    if (!b || b->size - b->used < need) {
        b = block_new(POOL_BLOCK_SIZE);
        b->next = pool->blocks;
        pool->blocks = b;
    }
    void *p = b->data + b->used;
    b->used += need;
    memset(p, 0, need);
    return p;
}

char *ts_pool_strndup(struct ts_pool *pool, const char *s, size_t n)
{
    size_t len = s ? strnlen(s, n) : 0;
    char *p = ts_pool_alloc(pool, len + 1);
    if (len) memcpy(p, s, len);
    return p;
}

char *ts_pool_strdup(struct ts_pool *pool, const char *s)
{
    if (!s) s = "";
    return ts_pool_strndup(pool, s, strlen(s));
}

char *ts_pool_printf(struct ts_pool *pool, const char *fmt, ...)
{
    va_list ap, cp;
    va_start(ap, fmt);
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0) {
        va_end(ap);
        ts_panic("ts_pool_printf: bad format");
    }
    char *p = ts_pool_alloc(pool, (size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void ts_pool_cleanup(struct ts_pool *pool, void (*fn)(void *), void *arg)
{
    TS_ASSERT(pool && fn);
    struct pool_cleanup *c = ts_malloc(sizeof(*c));
    c->fn = fn;
    c->arg = arg;
    c->next = pool->cleanups;
    pool->cleanups = c;
}
