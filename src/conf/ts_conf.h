/*
 * ts_conf.h: oslo.config-style INI files. Sections [DEFAULT], [identity], ...; keys are
 * case-sensitive; "#" and ";" start comments; values may continue on indented lines;
 * a key missing from a section falls back to [DEFAULT]. Values are kept as strings.
 */
#ifndef TS_CONF_H
#define TS_CONF_H

#include <stdbool.h>
#include <stdint.h>
#include "core/ts_core.h"

struct ts_conf;

struct ts_conf *ts_conf_new(void);
void ts_conf_free(struct ts_conf *conf);                  /* NULL is a no-op */
/* Parses a file; on a syntax error returns -TS_EINVAL with the line in err. */
int ts_conf_load(struct ts_conf *conf, const char *path, struct ts_err *err);
/* Parses text (len bytes, need not be NUL-terminated); same rules as ts_conf_load. */
int ts_conf_parse(struct ts_conf *conf, const char *text, size_t len, struct ts_err *err);
/* Sets (copies) a value; replaces an existing one. */
void ts_conf_set(struct ts_conf *conf, const char *section, const char *key, const char *value);
/* The value, or def when missing. The pointer lives as long as conf (or the next set of that key). */
const char *ts_conf_get(const struct ts_conf *conf, const char *section, const char *key, const char *def);
int64_t ts_conf_get_int(const struct ts_conf *conf, const char *section, const char *key, int64_t def);
bool ts_conf_get_bool(const struct ts_conf *conf, const char *section, const char *key, bool def);
double ts_conf_get_double(const struct ts_conf *conf, const char *section, const char *key, double def);
/* Writes the whole config back as INI text (malloc'd, caller frees). */
char *ts_conf_dump(const struct ts_conf *conf);

#endif
