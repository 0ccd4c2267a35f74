/*
 * fuzz_ini.c: libFuzzer target for the oslo-style INI parser: ts_conf_parse() on raw bytes,
 * then lookups, then ts_conf_dump(); a dump must parse again and dump to the same text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/ts_conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ts_conf *conf = ts_conf_new();
    struct ts_conf *again = NULL;
    char *dump = NULL, *dump2 = NULL;
    struct ts_err err = {0};
    if (ts_conf_parse(conf, (const char *)data, size, &err) < 0) {
        if (strncmp(err.msg, "line ", 5) != 0) abort();
        goto out;
    }
    (void)ts_conf_get(conf, "DEFAULT", "debug", NULL);
    (void)ts_conf_get_int(conf, "identity", "port", 0);
    (void)ts_conf_get_bool(conf, "image", "debug", false);
    (void)ts_conf_get_double(conf, "s", "ratio", 0);
    dump = ts_conf_dump(conf);
    again = ts_conf_new();
    if (ts_conf_parse(again, dump, strlen(dump), &err) < 0) abort();
    dump2 = ts_conf_dump(again);
    if (strcmp(dump, dump2) != 0) abort();
out:
    free(dump);
    free(dump2);
    ts_conf_free(again);
    ts_conf_free(conf);
    return 0;
}
