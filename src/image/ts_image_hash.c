/*
 * ts_image_hash.c: md5 (Glance's checksum) and sha512 (os_hash_value) of image data on two
 * threads of their own, so that receiving, writing and each digest run in parallel rather
 * than one after the other in the HTTP thread. The caller fills blocks (HASH_BLOCKS of
 * HASH_BLOCK_SIZE, the only memory an upload holds however large the image), hands each
 * to both digest threads with ts_image_hash_put, writes it to the store meanwhile and
 * releases it; a block is reused once the writer and both digests are done with it. Each
 * digest thread takes the blocks in submission order. Without threads (pthread_create
 * failed) the digests run inline in put.
 */
#include "image/ts_image_int.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#define HASH_BLOCKS 4
#define HASH_BLOCK_SIZE (1u << 20)

struct hash_block {
    char *data;
    size_t len;
    int refs;     /* users of a submitted block: the caller and the digest threads */
    bool busy;    /* handed out by get, not yet back to the pool */
};

struct worker {
    struct ts_image_hash *h;
    EVP_MD_CTX *ctx;
    uint64_t done;   /* blocks digested */
    pthread_t thread;
};

struct ts_image_hash {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct hash_block blocks[HASH_BLOCKS];
    struct hash_block *order[HASH_BLOCKS];   /* submission n is order[n % HASH_BLOCKS] */
    uint64_t submitted;
    bool stop;
    int nthreads;
    struct worker w[2];                      /* md5, sha512 */
    unsigned char head[32];
    size_t head_len;
    uint64_t size;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct ts_image_hash *h = w->h;
    pthread_mutex_lock(&h->mu);
    for (;;) {
        while (w->done == h->submitted && !h->stop) pthread_cond_wait(&h->cv, &h->mu);
        if (w->done == h->submitted) break;   /* stopped and drained */
        struct hash_block *b = h->order[w->done % HASH_BLOCKS];
        pthread_mutex_unlock(&h->mu);
        EVP_DigestUpdate(w->ctx, b->data, b->len);
        pthread_mutex_lock(&h->mu);
        w->done++;
        if (--b->refs == 0) b->busy = false;
        pthread_cond_broadcast(&h->cv);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

struct ts_image_hash *ts_image_hash_new(void)
{
    struct ts_image_hash *h = ts_calloc(1, sizeof(*h));
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    const EVP_MD *mds[2] = {EVP_md5(), EVP_sha512()};
    for (int i = 0; i < 2; i++) {
        h->w[i].h = h;
        h->w[i].ctx = EVP_MD_CTX_new();
        TS_ASSERT(h->w[i].ctx && EVP_DigestInit_ex(h->w[i].ctx, mds[i], NULL) == 1);
    }
    /* page-aligned: the file store writes them with O_DIRECT */
    for (int i = 0; i < HASH_BLOCKS; i++) {
        void *p = NULL;
        TS_ASSERT(posix_memalign(&p, 4096, HASH_BLOCK_SIZE) == 0);
        h->blocks[i].data = p;
    }
    for (int i = 0; i < 2; i++) {
        if (pthread_create(&h->w[i].thread, NULL, worker_main, &h->w[i]) != 0) break;
        h->nthreads++;
    }
    if (h->nthreads == 1) {   /* half started: stop it and digest inline */
        pthread_mutex_lock(&h->mu);
        h->stop = true;
        pthread_cond_broadcast(&h->cv);
        pthread_mutex_unlock(&h->mu);
        pthread_join(h->w[0].thread, NULL);
        h->nthreads = 0;
        h->stop = false;
    }
    return h;
}

char *ts_image_hash_get(struct ts_image_hash *h, size_t *cap)
{
    pthread_mutex_lock(&h->mu);
    struct hash_block *b = NULL;
    for (;;) {
        for (int i = 0; i < HASH_BLOCKS && !b; i++)
            if (!h->blocks[i].busy) b = &h->blocks[i];
        if (b) break;
        pthread_cond_wait(&h->cv, &h->mu);
    }
    b->busy = true;
    b->refs = 0;
    pthread_mutex_unlock(&h->mu);
    *cap = HASH_BLOCK_SIZE;
    return b->data;
}

static struct hash_block *block_of(struct ts_image_hash *h, const char *data)
{
    for (int i = 0; i < HASH_BLOCKS; i++)
        if (h->blocks[i].data == data) return &h->blocks[i];
    TS_ASSERT(!"not a hash block");
    return NULL;
}

void ts_image_hash_put(struct ts_image_hash *h, char *block, size_t len)
{
    struct hash_block *b = block_of(h, block);
    if (h->head_len < sizeof(h->head)) {
        size_t n = sizeof(h->head) - h->head_len;
        if (n > len) n = len;
        memcpy(h->head + h->head_len, block, n);
        h->head_len += n;
    }
    h->size += len;
    if (h->nthreads == 0) {
        EVP_DigestUpdate(h->w[0].ctx, block, len);
        EVP_DigestUpdate(h->w[1].ctx, block, len);
        pthread_mutex_lock(&h->mu);
        b->len = len;
        b->refs = 1;
        pthread_mutex_unlock(&h->mu);
        return;
    }
    pthread_mutex_lock(&h->mu);
    b->len = len;
    b->refs = 1 + h->nthreads;
    h->order[h->submitted % HASH_BLOCKS] = b;
    h->submitted++;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

void ts_image_hash_release(struct ts_image_hash *h, char *block)
{
    struct hash_block *b = block_of(h, block);
    pthread_mutex_lock(&h->mu);
    if (b->refs <= 1) {   /* never submitted, or the digests are done with it */
        b->refs = 0;
        b->busy = false;
        pthread_cond_broadcast(&h->cv);
    } else {
        b->refs--;
    }
    pthread_mutex_unlock(&h->mu);
}

void ts_image_hash_update(struct ts_image_hash *h, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        size_t cap = 0;
        char *b = ts_image_hash_get(h, &cap);
        size_t n = len < cap ? len : cap;
        memcpy(b, p, n);
        ts_image_hash_put(h, b, n);
        ts_image_hash_release(h, b);
        p += n;
        len -= n;
    }
}

/* Stops the threads once they digested everything submitted. */
static void hash_join(struct ts_image_hash *h)
{
    if (h->nthreads == 0) return;
    pthread_mutex_lock(&h->mu);
    h->stop = true;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    for (int i = 0; i < h->nthreads; i++) pthread_join(h->w[i].thread, NULL);
    h->nthreads = 0;
}

void ts_image_hash_final(struct ts_image_hash *h, char md5[33], char sha[129])
{
    hash_join(h);
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(h->w[0].ctx, d, &n);
    ts_hex(d, n, md5);
    EVP_DigestFinal_ex(h->w[1].ctx, d, &n);
    ts_hex(d, n, sha);
}

uint64_t ts_image_hash_size(const struct ts_image_hash *h) { return h->size; }

const unsigned char *ts_image_hash_head(const struct ts_image_hash *h, size_t *len)
{
    *len = h->head_len;
    return h->head;
}

void ts_image_hash_free(struct ts_image_hash *h)
{
    if (!h) return;
    hash_join(h);
    for (int i = 0; i < 2; i++) EVP_MD_CTX_free(h->w[i].ctx);
    for (int i = 0; i < HASH_BLOCKS; i++) free(h->blocks[i].data);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h);
}
