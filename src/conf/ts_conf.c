/*
 * ts_conf.c: oslo.config-compatible INI files, parsed the way oslo's iniparser does:
 * lines are right-stripped; "#" or ";" at the start of a line is a comment; "[name]" starts
 * a section; "key = value" (or "key: value", whichever separator comes first) assigns;
 * lines starting with a space or tab continue the previous value (joined with "\n"); a
 * blank line ends a value; a value wrapped in matching quotes loses them. Later
 * assignments replace earlier ones. Lookups fall back to [DEFAULT]. Sections and keys keep
 * insertion order so ts_conf_dump() writes the file back recognisably.
 * A ts_conf is not locked: fill it at start-up, then share it read-only.
 */
#include "conf/ts_conf.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct conf_entry {
    char *key;
    char *value;
};

struct conf_section {
    char *name;
    struct conf_entry *entries;
    size_t n, cap;
};

struct ts_conf {
    struct conf_section *sections;
    size_t n, cap;
};

struct ts_conf *ts_conf_new(void)
{
    return ts_calloc(1, sizeof(struct ts_conf));
}

void ts_conf_free(struct ts_conf *conf)
{
    if (!conf) return;
    for (size_t i = 0; i < conf->n; i++) {
        struct conf_section *s = &conf->sections[i];
        for (size_t j = 0; j < s->n; j++) {
            free(s->entries[j].key);
            free(s->entries[j].value);
        }
        free(s->entries);
        free(s->name);
    }
    free(conf->sections);
    free(conf);
}

static struct conf_section *find_section(const struct ts_conf *conf, const char *name)
{
    for (size_t i = 0; i < conf->n; i++)
        if (strcmp(conf->sections[i].name, name) == 0) return &conf->sections[i];
    return NULL;
}

static struct conf_section *get_section(struct ts_conf *conf, const char *name)
{
    struct conf_section *s = find_section(conf, name);
    if (s) return s;
    if (conf->n == conf->cap) {
        conf->cap = conf->cap ? conf->cap * 2 : 8;
        conf->sections = ts_realloc(conf->sections, conf->cap * sizeof(*conf->sections));
    }
    s = &conf->sections[conf->n++];
    memset(s, 0, sizeof(*s));
    s->name = ts_strdup(name);
    return s;
}

static struct conf_entry *find_entry(const struct conf_section *s, const char *key)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->entries[i].key, key) == 0) return &s->entries[i];
    return NULL;
}

/* Takes ownership of value. */
static void section_put(struct conf_section *s, const char *key, char *value)
{
    struct conf_entry *e = find_entry(s, key);
    if (e) {
        free(e->value);
        e->value = value;
        return;
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 8;
        s->entries = ts_realloc(s->entries, s->cap * sizeof(*s->entries));
    }
    e = &s->entries[s->n++];
    e->key = ts_strdup(key);
    e->value = value;
}

void ts_conf_set(struct ts_conf *conf, const char *section, const char *key, const char *value)
{
    TS_ASSERT(conf && key);
    section_put(get_section(conf, section ? section : "DEFAULT"), key, ts_strdup(value ? value : ""));
}

const char *ts_conf_get(const struct ts_conf *conf, const char *section, const char *key, const char *def)
{
    if (!conf || !key) return def;
    const struct conf_section *s = find_section(conf, section ? section : "DEFAULT");
    const struct conf_entry *e = s ? find_entry(s, key) : NULL;
    if (!e && (!section || strcmp(section, "DEFAULT") != 0)) {
        s = find_section(conf, "DEFAULT");
        e = s ? find_entry(s, key) : NULL;
    }
    return e ? e->value : def;
}

int64_t ts_conf_get_int(const struct ts_conf *conf, const char *section, const char *key, int64_t def)
{
    const char *v = ts_conf_get(conf, section, key, NULL);
    int64_t out;
    if (!v || ts_parse_int64(v, &out) < 0) return def;
    return out;
}

bool ts_conf_get_bool(const struct ts_conf *conf, const char *section, const char *key, bool def)
{
    const char *v = ts_conf_get(conf, section, key, NULL);
    bool out;
    if (!v || ts_parse_bool(v, &out) < 0) return def;
    return out;
}

double ts_conf_get_double(const struct ts_conf *conf, const char *section, const char *key, double def)
{
    const char *v = ts_conf_get(conf, section, key, NULL);
    if (!v || !*v || isspace((unsigned char)*v)) return def;
    errno = 0;
    char *end;
    double d = strtod(v, &end);
    if (errno || *end != '\0' || !isfinite(d)) return def;
    return d;
}

/* ---- parsing ---- */

struct parser {
    struct ts_conf *conf;
    struct conf_section *section;
    char *key;              /* pending assignment, NULL if none */
    struct ts_buf value;
    size_t lineno;
    struct ts_err *err;
};

static void flush_assignment(struct parser *p)
{
    if (!p->key) return;
    char *v = ts_buf_steal(&p->value, NULL);
    section_put(p->section, p->key, v);
    free(p->key);
    p->key = NULL;
}

static int parse_error(struct parser *p, const char *what, const char *line, size_t len)
{
    /* show at most 60 bytes of the offending line */
    return ts_err_set(p->err, TS_EINVAL, "line %zu: %s: %.*s%s", p->lineno, what,
                      (int)(len > 60 ? 60 : len), line, len > 60 ? "..." : "");
}

/* Only these are stripped (not \v or \f), so every parsed key and value dumps and parses
 * back unchanged: a key like "\v#x" must not turn into a comment. */
static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int parse_line(struct parser *p, const char *line, size_t len)
{
    while (len > 0 && is_space(line[len - 1])) len--;
    if (memchr(line, '\0', len)) return parse_error(p, "NUL byte in line", "", 0);
    if (len == 0) { /* blank line ends a multi-line value */
        flush_assignment(p);
        return 0;
    }
    if (line[0] == ' ' || line[0] == '\t') {
        if (!p->key) return parse_error(p, "Unexpected continuation line", line, len);
        size_t i = 0;
        while (i < len && is_space(line[i])) i++;
        if (ts_buf_append(&p->value, "\n", 1) < 0 || ts_buf_append(&p->value, line + i, len - i) < 0)
            return ts_err_set(p->err, TS_ETOOBIG, "line %zu: value too long", p->lineno);
        return 0;
    }
    flush_assignment(p);
    if (line[0] == '#' || line[0] == ';') return 0;
    if (line[0] == '[') {
        if (line[len - 1] != ']') return parse_error(p, "Invalid section (must end with ])", line, len);
        if (len == 2) return parse_error(p, "Empty section name", line, len);
        char *name = ts_strndup(line + 1, len - 2);
        p->section = get_section(p->conf, name);
        free(name);
        return 0;
    }
    size_t sep = 0;
    while (sep < len && line[sep] != '=' && line[sep] != ':') sep++;
    if (sep == len) return parse_error(p, "No ':' or '=' found in assignment", line, len);
    /* the line does not start with a space or tab (that is a continuation); a leading "\r"
     * stays part of the key so that the key never dumps as a comment or section */
    size_t ks = 0, ke = sep;
    while (ke > ks && is_space(line[ke - 1])) ke--;
    if (ke == ks) return parse_error(p, "Key cannot be empty", line, len);
    if (!p->section) return parse_error(p, "Assignment before any [section]", line, len);
    size_t vs = sep + 1, ve = len;
    while (vs < ve && is_space(line[vs])) vs++;
    if (ve - vs >= 2 && line[vs] == line[ve - 1] && (line[vs] == '"' || line[vs] == '\'')) {
        vs++;
        ve--;
    }
    p->key = ts_strndup(line + ks, ke - ks);
    ts_buf_reset(&p->value);
    if (ts_buf_append(&p->value, line + vs, ve - vs) < 0 || ts_buf_append(&p->value, "", 0) < 0)
        return ts_err_set(p->err, TS_ETOOBIG, "line %zu: value too long", p->lineno);
    return 0;
}

int ts_conf_parse(struct ts_conf *conf, const char *text, size_t len, struct ts_err *err)
{
    TS_ASSERT(conf);
    struct parser p = {.conf = conf, .err = err};
    int rc = 0;
    ts_buf_init(&p.value, 0);
    if (!text) len = 0;
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        p.lineno++;
        rc = parse_line(&p, text + pos, end - pos);
        if (rc < 0) goto out;
        pos = nl ? end + 1 : len;
    }
    flush_assignment(&p);
out:
    free(p.key);
    ts_buf_free(&p.value);
    return rc;
}

int ts_conf_load(struct ts_conf *conf, const char *path, struct ts_err *err)
{
    char *text = NULL;
    size_t len = 0;
    int rc = ts_file_read(path, 64u << 20, &text, &len);
    if (rc < 0) {
        ts_err_set(err, -rc, "%s: cannot read config file (%s)", path,
                   rc == -TS_ENOTFOUND ? "not found" : rc == -TS_ETOOBIG ? "too big" : "I/O error");
        goto out;
    }
    struct ts_err perr = {0};
    rc = ts_conf_parse(conf, text, len, &perr);
    if (rc < 0) ts_err_set(err, -rc, "%s: %s", path, perr.msg);
out:
    free(text);
    return rc;
}

/* ---- dump ---- */

/* The first line of a value needs quotes when parsing would otherwise change it. */
static bool first_line_needs_quotes(const char *v, size_t len)
{
    if (len == 0) return false;
    if (is_space(v[0]) || is_space(v[len - 1])) return true;
    return v[0] == v[len - 1] && (v[0] == '"' || v[0] == '\'');
}

static void dump_value(struct ts_buf *b, const char *v)
{
    const char *nl = strchr(v, '\n');
    size_t first = nl ? (size_t)(nl - v) : strlen(v);
    if (first_line_needs_quotes(v, first)) {
        ts_buf_append(b, "\"", 1);
        ts_buf_append(b, v, first);
        ts_buf_append(b, "\"", 1);
    } else {
        ts_buf_append(b, v, first);
    }
    while (nl) {
        v = nl + 1;
        nl = strchr(v, '\n');
        size_t l = nl ? (size_t)(nl - v) : strlen(v);
        ts_buf_appends(b, "\n    ");
        ts_buf_append(b, v, l);
    }
}

char *ts_conf_dump(const struct ts_conf *conf)
{
    struct ts_buf b;
    ts_buf_init(&b, 0);
    for (size_t i = 0; conf && i < conf->n; i++) {
        const struct conf_section *s = &conf->sections[i];
        ts_buf_printf(&b, "%s[%s]\n", i ? "\n" : "", s->name);
        for (size_t j = 0; j < s->n; j++) {
            ts_buf_appends(&b, s->entries[j].key);
            ts_buf_appends(&b, " = ");
            dump_value(&b, s->entries[j].value);
            ts_buf_appends(&b, "\n");
        }
    }
    return ts_buf_steal(&b, NULL);
}
