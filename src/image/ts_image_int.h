/*
 * ts_image_int.h: what the image service's source files share: the service state,
 * loading and rendering images, access checks and notifications. Not for other modules.
 */
#ifndef TS_IMAGE_INT_H
#define TS_IMAGE_INT_H

#include <jansson.h>
#include <pthread.h>
#include "db/ts_db.h"
#include "http/ts_http.h"
#include "image/ts_image.h"
#include "image/ts_image_store.h"
#include "image/ts_image_util.h"

struct ts_image_svc {
    struct ts_service_env *env;
    struct ts_db *db;
    struct ts_image_store *store;      /* where new image data goes ([image] default_store) */
    struct ts_image_store *file;       /* the file store (always open) */
    struct ts_image_store *swift;      /* the swift store, NULL unless enabled */
    struct ts_image_store *staging;    /* interoperable import staging area */
    struct ts_http_server *http;
    int64_t quota_bytes;               /* per project, 0 = unlimited */
    int64_t quota_images;              /* per project, 0 = unlimited */
    char publisher[300];               /* "image.<host>" */
    json_t *schema_image;              /* built once */
    struct ts_image_list_cache *list_cache;   /* rendered list pages; NULL on PostgreSQL */
    pthread_mutex_t lock;              /* guards imports_running */
    pthread_cond_t cond;
    int imports_running;
};

/* The columns every image query selects, in this order. */
#define TS_IMAGE_COLS "id, name, status, visibility, owner, protected, os_hidden, disk_format, " \
                      "container_format, min_disk, min_ram, size, virtual_size, checksum, os_hash_algo, " \
                      "os_hash_value, created_at, updated_at, store"

/* Loads image id with its properties and tags as the API view (caller decrefs).
 * -TS_ENOTFOUND if absent. No access check. */
int ts_image_load(struct ts_image_svc *svc, const char *id, json_t **view, struct ts_err *err);
/* Renders row r of res (TS_IMAGE_COLS) as a view without properties and tags. */
json_t *ts_image_row_view(const struct ts_db_res *res, int r);
/* Loads the image and checks the caller may see it (Glance's visibility rules);
 * -TS_ENOTFOUND ("No image found with ID ...") otherwise. */
int ts_image_get_visible(struct ts_image_svc *svc, struct ts_http_req *req, const char *id, json_t **view,
                         struct ts_err *err);
/* true when the caller may change the image: admin or owner, and not a reader. */
bool ts_image_can_modify(const struct ts_http_req *req, const json_t *view);
/* The store holding an image's data by the names in its view's "stores" ("file" when
 * absent; the first enabled one of a list such as "file,swift"), or NULL when none is. */
struct ts_image_store *ts_image_store_of(struct ts_image_svc *svc, const char *name);
/* The enabled store named id[0..len) ("file", "swift"), NULL otherwise. */
struct ts_image_store *ts_image_store_by_id(struct ts_image_svc *svc, const char *id, size_t len);
/* true when the comma-separated store list (the "stores" view attribute) names id. */
bool ts_image_stores_has(const char *list, const char *id);
/* String attribute of a view or NULL. */
const char *ts_image_vs(const json_t *view, const char *key);
/* Publishes a notification with Glance's payload for view (borrowed). */
void ts_image_notify(struct ts_image_svc *svc, const char *event, const json_t *view);
/* Current time in microseconds, as stored in created_at/updated_at. */
int64_t ts_image_now_us(void);
/* Bytes used by a project's images (active + staged). */
int ts_image_project_usage(struct ts_image_svc *svc, const char *project, int64_t *bytes, int64_t *count,
                           struct ts_err *err);

/* md5 + sha512 of image data on two threads (ts_image_hash.c). The caller owns the hash
 * and uses it from one thread. get hands out a block of *cap bytes (waits while all are in
 * flight); put submits its first len bytes to both digests, after which the caller may
 * still read it (write it to a store) until release; release gives it back (also for a
 * block never put). update copies data through blocks. final waits for the digests: md5
 * hex into md5[33], sha512 hex into sha[129]. size and head (the first 32 bytes, for the
 * qcow2 header) count what was put. */
struct ts_image_hash;
struct ts_image_hash *ts_image_hash_new(void);
char *ts_image_hash_get(struct ts_image_hash *h, size_t *cap);
void ts_image_hash_put(struct ts_image_hash *h, char *block, size_t len);
void ts_image_hash_release(struct ts_image_hash *h, char *block);
void ts_image_hash_update(struct ts_image_hash *h, const void *data, size_t len);
void ts_image_hash_final(struct ts_image_hash *h, char md5[33], char sha[129]);
uint64_t ts_image_hash_size(const struct ts_image_hash *h);
const unsigned char *ts_image_hash_head(const struct ts_image_hash *h, size_t *len);
void ts_image_hash_free(struct ts_image_hash *h);   /* NULL is a no-op */

/* GET /v2/images' page (ts_image_list.c): runs sql (selecting TS_IMAGE_COLS in display
 * order, at most limit rows) with args, then one statement each for the properties and tags
 * of those images, and appends the body to body: the images, the first link and, when the
 * page holds limit images, the next link (next_prefix followed by the last id). -TS_ETOOBIG
 * when body's cap is reached. */
int ts_image_list_page(struct ts_image_svc *svc, const char *sql, const struct ts_db_val *args, int nargs,
                       int64_t limit, const char *first, const char *next_prefix, struct ts_buf *body,
                       struct ts_err *err);

/* The list's page cache (ts_image_list.c). Every write to images, image_properties,
 * image_tags and image_members bumps the one row of image_list_gen (SQLite triggers, so
 * every process sharing the database bumps it), and a cached body is used only for the same
 * generation and the same key (caller's admin-ness, project and full query string). A page
 * is stored only when the generation read before and after building it is the same. On
 * PostgreSQL there are no triggers (yet) and no cache: list_cache stays NULL.
 * open creates the triggers; gen is -1 when there is no cache or it cannot be read; get
 * answers resp with the cached body and returns true on a hit. */
int ts_image_list_cache_open(struct ts_image_svc *svc, struct ts_err *err);
void ts_image_list_cache_free(struct ts_image_svc *svc);
int64_t ts_image_list_gen(struct ts_image_svc *svc);
bool ts_image_list_cache_get(struct ts_image_svc *svc, int64_t gen, const char *key, struct ts_http_resp *resp);
void ts_image_list_cache_put(struct ts_image_svc *svc, int64_t gen, const char *key, const char *body, size_t len);

/* Route handlers (ts_image_api.c, ts_image_data.c, ts_image_members.c). */
int ts_image_h_create(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int ts_image_h_list(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int ts_image_h_show(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int ts_image_h_update(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int ts_image_h_delete(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int ts_image_h_tag_add(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int ts_image_h_tag_delete(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int ts_image_h_deactivate(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int ts_image_h_reactivate(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int ts_image_h_upload(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int ts_image_h_stage(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int ts_image_h_download(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int ts_image_h_import(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int ts_image_h_members_add(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int ts_image_h_members_list(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int ts_image_h_member_show(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int ts_image_h_member_update(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
int ts_image_h_member_delete(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);

/* Crash recovery at start: saving -> queued, importing/uploading without staged data -> queued. */
int ts_image_recover(struct ts_image_svc *svc, struct ts_err *err);
/* Waits for running imports (stop). */
void ts_image_imports_wait(struct ts_image_svc *svc);

/* The image schema (ts_image_schema.c). */
json_t *ts_image_schema_image(void);
json_t *ts_image_schema_images(void);
json_t *ts_image_schema_member(void);
json_t *ts_image_schema_members(void);

#endif
