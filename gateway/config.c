/*
 * config.c: load and validate the gateway configuration.
 *
 * DESIGN: one table, `settings`, lists every setting with its environment
 * variable, flag, default, help text and parser. Loading is three steps:
 *   1. every default is parsed through the setting's own parser, so the
 *      help text and the real defaults cannot drift apart;
 *   2. the environment and then argv are scanned into `struct raw`, one
 *      winning string per setting plus the name the user wrote it under
 *      (so a flag overrides the environment just by coming later);
 *   3. each winning string is parsed into the config, then cross-setting
 *      rules (TLS_CERT with TLS_KEY) are checked.
 * Parsers replace a field only once the new value is fully valid. Error
 * messages quote a value only for settings that are not secret, and URLs
 * (which may carry keys) are never quoted.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

struct setting;

/* Parse value (non-NULL) for setting s, written by the user as name, into
 * cfg. 0, or -EINVAL/-ENOMEM with err set; cfg unchanged on error. */
typedef int (*setting_parse_fn)(struct gw_config *cfg, const struct setting *s, const char *name,
                                const char *value, struct gw_err *err);

enum {
    SET_SECRET = 1 << 0,   /* the value never appears in a message */
    SET_EMPTY_OK = 1 << 1, /* "" is a value, not "unset" */
};

struct setting {
    const char *env;     /* environment variable */
    const char *flag;    /* long flag, "--" included */
    const char *metavar; /* the flag's value in the help text */
    const char *def;     /* default, parsed like user input; NULL: unset */
    const char *help;    /* one line for --help */
    setting_parse_fn parse;
    size_t off;         /* offset of the field in struct gw_config */
    long long min, max; /* range for numeric settings */
    unsigned flags;     /* SET_* */
};

/* ---- small helpers ---------------------------------------------------- */

static void *field(struct gw_config *cfg, const struct setting *s)
{
    return (char *)cfg + s->off;
}

/* Wipe then free a string: some of them are secrets. */
static void wipe_free(char **p)
{
    if (*p != NULL) {
        sodium_memzero(*p, strlen(*p));
        free(*p);
        *p = NULL;
    }
}

static int no_memory(struct gw_err *err)
{
    return gw_err_set(err, -ENOMEM, "configuration: out of memory");
}

/* Copy v into buf for quoting in a message: at most size-1 bytes, control
 * characters replaced, "..." when cut. */
static const char *shown(char *buf, size_t size, const char *v, size_t len)
{
    size_t n = 0;
    for (; n < len && n + 1 < size; n++) {
        buf[n] = iscntrl((unsigned char)v[n]) ? '?' : v[n];
    }
    if (n < len && size > 4) {
        memcpy(buf + size - 4, "...", 3);
        n = size - 1;
    }
    buf[n] = '\0';
    return buf;
}

static bool has_space_or_cntrl(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (isspace((unsigned char)s[i]) || iscntrl((unsigned char)s[i])) {
            return true;
        }
    }
    return false;
}

/* Trim blanks around s[0..*len): returns the new start, updates *len. */
static const char *trim(const char *s, size_t *len)
{
    while (*len > 0 && (s[0] == ' ' || s[0] == '\t')) {
        s++;
        (*len)--;
    }
    while (*len > 0 && (s[*len - 1] == ' ' || s[*len - 1] == '\t')) {
        (*len)--;
    }
    return s;
}

/* Parse s[0..len) as a base-10 integer in min..max. 0 or -EINVAL. */
static int parse_range(const char *s, size_t len, long long min, long long max, long long *out)
{
    char buf[32];
    if (len == 0 || len >= sizeof(buf)) {
        return -EINVAL;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    size_t digits = buf[0] == '-' ? 1 : 0;
    if (!isdigit((unsigned char)buf[digits])) {
        return -EINVAL; /* also rejects blanks and '+' that strtoll would skip */
    }
    char *end = NULL;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno != 0 || end == buf || *end != '\0' || v < min || v > max) {
        return -EINVAL;
    }
    *out = v;
    return 0;
}

/* ---- hosts and URLs --------------------------------------------------- */

static bool is_host_char(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_';
}

static bool is_ipv6_char(char c)
{
    return isxdigit((unsigned char)c) || c == ':' || c == '.' || c == '%';
}

/* Check a host name or IPv4 address (no brackets). NULL or the problem. */
static const char *check_host(const char *h, size_t len)
{
    if (len == 0) {
        return "empty host";
    }
    for (size_t i = 0; i < len; i++) {
        if (!is_host_char(h[i])) {
            return "invalid character in host";
        }
    }
    return NULL;
}

/* Check the inside of "[...]". NULL or the problem. */
static const char *check_ipv6(const char *h, size_t len)
{
    if (len == 0) {
        return "empty host";
    }
    for (size_t i = 0; i < len; i++) {
        if (!is_ipv6_char(h[i])) {
            return "invalid IPv6 address in brackets";
        }
    }
    return memchr(h, ':', len) != NULL ? NULL : "invalid IPv6 address in brackets";
}

/* Split "host:port" or "[v6]:port" (port optional when !need_port). On
 * success host and host_len name the host without brackets and *port is the
 * text after the colon (NULL when absent). NULL or the problem. */
static const char *split_authority(const char *a, size_t len, bool need_port, const char **host,
                                   size_t *host_len, const char **port, size_t *port_len)
{
    const char *colon = NULL;
    const char *problem = NULL;
    if (len > 0 && a[0] == '[') {
        const char *close = memchr(a, ']', len);
        if (close == NULL) {
            return "missing ']' after IPv6 address";
        }
        *host = a + 1;
        *host_len = (size_t)(close - a) - 1;
        problem = check_ipv6(*host, *host_len);
        colon = close + 1 < a + len ? close + 1 : NULL;
        if (colon != NULL && *colon != ':') {
            return "unexpected text after ']'";
        }
    } else {
        colon = memchr(a, ':', len);
        *host = a;
        *host_len = colon != NULL ? (size_t)(colon - a) : len;
        if (colon != NULL && memchr(colon + 1, ':', len - *host_len - 1) != NULL) {
            return "IPv6 address must be in brackets, e.g. [::1]:8080";
        }
        problem = check_host(*host, *host_len);
    }
    if (problem != NULL) {
        return problem;
    }
    if (colon == NULL && need_port) {
        return "expected HOST:PORT";
    }
    *port = colon != NULL ? colon + 1 : NULL;
    *port_len = colon != NULL ? (size_t)(a + len - colon) - 1 : 0;
    return NULL;
}

/* Check "host[:port]" in a URL. NULL or the problem. */
static const char *check_authority(const char *a, size_t len)
{
    const char *host = NULL, *port = NULL;
    size_t host_len = 0, port_len = 0;
    const char *problem = split_authority(a, len, false, &host, &host_len, &port, &port_len);
    long long n = 0;
    if (problem == NULL && port != NULL && parse_range(port, port_len, 1, 65535, &n) != 0) {
        problem = "port must be 1..65535";
    }
    return problem;
}

/* Check "scheme://host[:port][/path...]". schemes: NULL-terminated list of
 * accepted schemes (case-insensitive), or NULL for any well-formed scheme.
 * allow_path false: nothing may follow the authority. NULL or the problem. */
static const char *check_url(const char *v, const char *const *schemes, bool allow_path)
{
    size_t len = strlen(v);
    if (has_space_or_cntrl(v, len)) {
        return "must not contain spaces or control characters";
    }
    const char *sep = strstr(v, "://");
    if (sep == NULL || sep == v) {
        return "missing scheme";
    }
    size_t scheme_len = (size_t)(sep - v);
    bool ok = schemes == NULL && isalpha((unsigned char)v[0]);
    for (size_t i = 1; ok && i < scheme_len; i++) {
        ok = isalnum((unsigned char)v[i]) || v[i] == '+' || v[i] == '-' || v[i] == '.';
    }
    for (size_t i = 0; schemes != NULL && schemes[i] != NULL && !ok; i++) {
        ok = strlen(schemes[i]) == scheme_len && strncasecmp(v, schemes[i], scheme_len) == 0;
    }
    if (!ok) {
        return "wrong scheme";
    }
    const char *auth = sep + 3;
    size_t auth_len = strcspn(auth, "/?#");
    if (!allow_path && auth[auth_len] != '\0') {
        return "must not have a path";
    }
    return check_authority(auth, auth_len);
}

/* ---- parsers ------------------------------------------------------------ */

/* Replace the char * field of s with a copy of value. */
static int set_string(struct gw_config *cfg, const struct setting *s, const char *value,
                      struct gw_err *err)
{
    char *copy = strdup(value);
    if (copy == NULL) {
        return no_memory(err);
    }
    char **slot = field(cfg, s);
    wipe_free(slot);
    *slot = copy;
    return 0;
}

static int parse_string(struct gw_config *cfg, const struct setting *s, const char *name,
                        const char *value, struct gw_err *err)
{
    (void)name;
    return set_string(cfg, s, value, err);
}

static int parse_node_id(struct gw_config *cfg, const struct setting *s, const char *name,
                         const char *value, struct gw_err *err)
{
    size_t n = strlen(value);
    bool ok = n >= 1 && n <= 128;
    for (size_t i = 0; ok && i < n; i++) {
        char c = value[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '.' || c == '_' || c == ':' || c == '-';
    }
    if (!ok) {
        char q[64];
        return gw_err_set(err, -EINVAL, "%s: 1..128 of A-Z a-z 0-9 . _ : -, got '%s'", name,
                          shown(q, sizeof(q), value, n));
    }
    return set_string(cfg, s, value, err);
}

static int parse_database_url(struct gw_config *cfg, const struct setting *s, const char *name,
                              const char *value, struct gw_err *err)
{
    bool is_uri =
        strncmp(value, "postgres://", 11) == 0 || strncmp(value, "postgresql://", 13) == 0;
    if (is_uri && has_space_or_cntrl(value, strlen(value))) {
        return gw_err_set(err, -EINVAL, "%s: a URI must not contain spaces", name);
    }
    if (!is_uri && (strchr(value, '=') == NULL || value[0] == '=')) {
        return gw_err_set(err, -EINVAL,
                          "%s: must be a postgres:// or postgresql:// URI or a key=value conninfo",
                          name);
    }
    return set_string(cfg, s, value, err);
}

static int parse_listen(struct gw_config *cfg, const struct setting *s, const char *name,
                        const char *value, struct gw_err *err)
{
    const char *host = NULL, *port = NULL;
    size_t host_len = 0, port_len = 0;
    char q[48];
    const char *problem =
        split_authority(value, strlen(value), true, &host, &host_len, &port, &port_len);
    if (problem != NULL) {
        return gw_err_set(err, -EINVAL, "%s: %s, got '%s'", name, problem,
                          shown(q, sizeof(q), value, strlen(value)));
    }
    long long n = 0;
    if (parse_range(port, port_len, 1, 65535, &n) != 0) {
        return gw_err_set(err, -EINVAL, "%s: port must be 1..65535, got '%s'", name,
                          shown(q, sizeof(q), port, port_len));
    }
    char *copy = strndup(host, host_len);
    if (copy == NULL) {
        return no_memory(err);
    }
    char **slot = field(cfg, s);
    wipe_free(slot);
    *slot = copy;
    cfg->listen_port = (int)n;
    return 0;
}

static int parse_url_with(struct gw_config *cfg, const struct setting *s, const char *name,
                          const char *value, const char *const *schemes, const char *expected,
                          struct gw_err *err)
{
    /* URLs may carry keys in their query: never quote them. */
    const char *problem = check_url(value, schemes, true);
    if (problem != NULL) {
        return gw_err_set(err, -EINVAL, "%s: %s; expected %s", name, problem, expected);
    }
    return set_string(cfg, s, value, err);
}

static int parse_livekit_url(struct gw_config *cfg, const struct setting *s, const char *name,
                             const char *value, struct gw_err *err)
{
    static const char *const schemes[] = {"ws", "wss", "http", "https", NULL};
    return parse_url_with(cfg, s, name, value, schemes,
                          "ws://, wss://, http:// or https:// and a host", err);
}

static int parse_http_url(struct gw_config *cfg, const struct setting *s, const char *name,
                          const char *value, struct gw_err *err)
{
    static const char *const schemes[] = {"http", "https", NULL};
    return parse_url_with(cfg, s, name, value, schemes, "http:// or https:// and a host", err);
}

/* Parse value as an integer in s->min..s->max, with a message on error. */
static int parse_number(const struct setting *s, const char *name, const char *value,
                        long long *out, struct gw_err *err)
{
    char q[48];
    if (parse_range(value, strlen(value), s->min, s->max, out) != 0) {
        return gw_err_set(err, -EINVAL, "%s: must be an integer %lld..%lld, got '%s'", name, s->min,
                          s->max, shown(q, sizeof(q), value, strlen(value)));
    }
    return 0;
}

static int parse_int(struct gw_config *cfg, const struct setting *s, const char *name,
                     const char *value, struct gw_err *err)
{
    long long n = 0;
    int rc = parse_number(s, name, value, &n, err);
    if (rc == 0) {
        *(int *)field(cfg, s) = (int)n;
    }
    return rc;
}

static int parse_i64(struct gw_config *cfg, const struct setting *s, const char *name,
                     const char *value, struct gw_err *err)
{
    long long n = 0;
    int rc = parse_number(s, name, value, &n, err);
    if (rc == 0) {
        *(int64_t *)field(cfg, s) = (int64_t)n;
    }
    return rc;
}

static int parse_size(struct gw_config *cfg, const struct setting *s, const char *name,
                      const char *value, struct gw_err *err)
{
    long long n = 0;
    int rc = parse_number(s, name, value, &n, err);
    if (rc == 0) {
        *(size_t *)field(cfg, s) = (size_t)n;
    }
    return rc;
}

/* Insert v into the descending list w[0..n), which has room for one more. */
static void insert_descending(int *w, size_t n, int v)
{
    size_t i = n;
    while (i > 0 && w[i - 1] < v) {
        w[i] = w[i - 1];
        i--;
    }
    w[i] = v;
}

static int parse_warnings(struct gw_config *cfg, const struct setting *s, const char *name,
                          const char *value, struct gw_err *err)
{
    int w[GW_TIMER_WARNINGS_MAX] = {0};
    size_t n = 0, len = strlen(value);
    char q[48];
    const char *p = trim(value, &len);
    while (len > 0) {
        const char *comma = memchr(p, ',', len);
        size_t item_len = comma != NULL ? (size_t)(comma - p) : len;
        size_t rest = comma != NULL ? len - item_len - 1 : 0;
        const char *item = trim(p, &item_len);
        long long v = 0;
        if (parse_range(item, item_len, s->min, s->max, &v) != 0) {
            return gw_err_set(err, -EINVAL, "%s: each entry must be seconds %lld..%lld, got '%s'",
                              name, s->min, s->max, shown(q, sizeof(q), item, item_len));
        }
        for (size_t i = 0; i < n; i++) {
            if (w[i] == (int)v) {
                return gw_err_set(err, -EINVAL, "%s: duplicate entry %lld", name, v);
            }
        }
        if (n == GW_TIMER_WARNINGS_MAX) {
            return gw_err_set(err, -EINVAL, "%s: at most %d entries", name, GW_TIMER_WARNINGS_MAX);
        }
        insert_descending(w, n++, (int)v);
        if (comma != NULL && rest == 0) {
            return gw_err_set(err, -EINVAL, "%s: empty entry after the last comma", name);
        }
        p = comma != NULL ? comma + 1 : p + len;
        len = rest;
    }
    memcpy(cfg->timer_warnings_sec, w, n * sizeof(w[0]));
    cfg->n_timer_warnings = n;
    return 0;
}

static void free_origins(char **list)
{
    for (size_t i = 0; list != NULL && list[i] != NULL; i++) {
        free(list[i]);
    }
    free(list);
}

/* Check one origin and append a lowercased copy to list[*n]. */
static int add_origin(char **list, size_t *n, const char *name, const char *o, size_t len,
                      struct gw_err *err)
{
    char q[48];
    char *copy = strndup(o, len);
    if (copy == NULL) {
        return no_memory(err);
    }
    const char *problem = len == 0 ? "empty entry" : check_url(copy, NULL, false);
    if (problem != NULL) {
        gw_err_set(err, -EINVAL, "%s: %s, want scheme://host[:port], got '%s'", name, problem,
                   shown(q, sizeof(q), o, len));
        free(copy);
        return -EINVAL;
    }
    for (char *c = copy; *c != '\0'; c++) {
        *c = (char)tolower((unsigned char)*c);
    }
    list[(*n)++] = copy;
    return 0;
}

static int parse_origins(struct gw_config *cfg, const struct setting *s, const char *name,
                         const char *value, struct gw_err *err)
{
    size_t len = strlen(value), cap = 1, n = 0;
    const char *p = trim(value, &len);
    for (size_t i = 0; i < len; i++) {
        cap += p[i] == ',';
    }
    char **list = calloc(cap + 1, sizeof(*list));
    if (list == NULL) {
        return no_memory(err);
    }
    while (len > 0) {
        const char *comma = memchr(p, ',', len);
        size_t item_len = comma != NULL ? (size_t)(comma - p) : len;
        size_t rest = comma != NULL ? len - item_len - 1 : 0;
        const char *item = trim(p, &item_len);
        int rc = add_origin(list, &n, name, item, item_len, err);
        if (rc == 0 && comma != NULL && rest == 0) {
            rc = gw_err_set(err, -EINVAL, "%s: empty entry after the last comma", name);
        }
        if (rc != 0) {
            free_origins(list);
            return rc;
        }
        p = comma != NULL ? comma + 1 : p + len;
        len = rest;
    }
    char ***slot = field(cfg, s);
    free_origins(*slot);
    *slot = list;
    cfg->n_allowed_origins = n;
    return 0;
}

/* Check that value names a readable regular file. O_NONBLOCK: a FIFO must
 * not hang start-up. */
static int parse_file(struct gw_config *cfg, const struct setting *s, const char *name,
                      const char *value, struct gw_err *err)
{
    char q[96], why[96] = "not a regular file";
    int fd = open(value, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (strerror_r(e, why, sizeof(why)) != 0) {
            (void)snprintf(why, sizeof(why), "error %d", e);
        }
    } else {
        struct stat st;
        bool regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
        close(fd);
        if (regular) {
            return set_string(cfg, s, value, err);
        }
    }
    return gw_err_set(err, -EINVAL, "%s: cannot read '%s': %s", name,
                      shown(q, sizeof(q), value, strlen(value)), why);
}

static int parse_log_level(struct gw_config *cfg, const struct setting *s, const char *name,
                           const char *value, struct gw_err *err)
{
    char q[48];
    enum gw_log_level level;
    if (gw_log_level_parse(value, &level) != 0) {
        return gw_err_set(err, -EINVAL, "%s: must be error, warn, notice, info or debug, got '%s'",
                          name, shown(q, sizeof(q), value, strlen(value)));
    }
    *(enum gw_log_level *)field(cfg, s) = level;
    return 0;
}

static int parse_bool(struct gw_config *cfg, const struct setting *s, const char *name,
                      const char *value, struct gw_err *err)
{
    char q[48];
    bool *slot = field(cfg, s);
    if (strcmp(value, "1") == 0 || strcasecmp(value, "true") == 0) {
        *slot = true;
    } else if (strcmp(value, "0") == 0 || strcasecmp(value, "false") == 0) {
        *slot = false;
    } else {
        return gw_err_set(err, -EINVAL, "%s: must be 0, 1, true or false, got '%s'", name,
                          shown(q, sizeof(q), value, strlen(value)));
    }
    return 0;
}

/* ---- the table ------------------------------------------------------ */

/* Indexes of the settings that other code refers to by name. */
enum {
    S_LIVEKIT_API_KEY = 4,
    S_LIVEKIT_API_SECRET = 5,
    S_LIVEKIT_URL = 6,
    S_TLS_CERT = 21,
    S_TLS_KEY = 22,
    S_MIGRATE_ON_START = 25,
    S_NODE_HEARTBEAT_SEC = 28,
    S_ROOM_LEASE_SEC = 29,
    S_WS_PING_SEC = 30,
    S_WS_IDLE_SEC = 31,
    N_SETTINGS = 33,
};

#define F(field) offsetof(struct gw_config, field)

static const struct setting settings[] = {
    {"DATABASE_URL", "--database-url", "URL", NULL,
     "PostgreSQL: postgres[ql]:// URI or key=value conninfo; serve and migrate need it",
     parse_database_url, F(database_url), 0, 0, SET_SECRET},
    {"LISTEN", "--listen", "HOST:PORT", "127.0.0.1:8080",
     "address to listen on; IPv6 in brackets, e.g. [::1]:8080", parse_listen, F(listen_host), 0, 0,
     0},
    {"JWT_SECRET", "--jwt-secret", "SECRET", NULL,
     "HS256 key that signs and verifies access tokens", parse_string, F(jwt_secret), 0, 0,
     SET_SECRET},
    {"SERVICE_KEY", "--service-key", "KEY", NULL, "bearer key for POST /api/auth/codes",
     parse_string, F(service_key), 0, 0, SET_SECRET},
    {"LIVEKIT_API_KEY", "--livekit-api-key", "KEY", NULL,
     "LiveKit API key, the issuer of room tokens", parse_string, F(livekit_api_key), 0, 0, 0},
    {"LIVEKIT_API_SECRET", "--livekit-api-secret", "SECRET", NULL,
     "LiveKit API secret: signs room tokens, checks webhooks", parse_string, F(livekit_api_secret),
     0, 0, SET_SECRET},
    {"LIVEKIT_URL", "--livekit-url", "URL", NULL,
     "LiveKit server, ws:// wss:// http:// or https://; unset: no LiveKit room calls",
     parse_livekit_url, F(livekit_url), 0, 0, 0},
    {"AI_SUMMARY_URL", "--ai-summary-url", "URL", NULL,
     "OpenAI-compatible chat completions URL, http(s)://; unset: summaries skipped", parse_http_url,
     F(ai_summary_url), 0, 0, 0},
    {"AI_API_KEY", "--ai-api-key", "KEY", NULL, "bearer key for AI_SUMMARY_URL", parse_string,
     F(ai_api_key), 0, 0, SET_SECRET},
    {"AI_MODEL", "--ai-model", "NAME", "gpt-4o-mini", "model named in AI summary requests",
     parse_string, F(ai_model), 0, 0, 0},
    {"AI_TIMEOUT_MS", "--ai-timeout-ms", "MS", "30000", "timeout of one AI request, 1..600000",
     parse_i64, F(ai_timeout_ms), 1, 600000, 0},
    {"AI_MAX_ATTEMPTS", "--ai-max-attempts", "N", "5", "attempts per AI summary job, 1..20",
     parse_int, F(ai_max_attempts), 1, 20, 0},
    {"TIMER_WARNINGS", "--timer-warnings", "LIST", "300,60",
     "seconds before the end to warn (at most 8, each 1..86400); \"\": none", parse_warnings,
     F(timer_warnings_sec), 1, 86400, SET_EMPTY_OK},
    {"IDLE_END_SEC", "--idle-end-sec", "SEC", "300",
     "end a session once nobody has been connected this long, 1..86400", parse_int, F(idle_end_sec),
     1, 86400, 0},
    {"EARLY_JOIN_MIN", "--early-join-min", "MIN", "10",
     "minutes before scheduledFor that join is allowed, 0..1440", parse_int, F(early_join_min), 0,
     1440, 0},
    {"MAX_FRAME_BYTES", "--max-frame-bytes", "BYTES", "16384",
     "largest WebSocket frame, 1024..1048576", parse_size, F(max_frame_bytes), 1024, 1048576, 0},
    {"MAX_CONN_PER_USER", "--max-conn-per-user", "N", "10",
     "WebSocket connections per user, 1..1000", parse_int, F(max_conn_per_user), 1, 1000, 0},
    {"STORE_TIMEOUT_MS", "--store-timeout-ms", "MS", "5000",
     "timeout of one database call, 100..600000", parse_i64, F(store_timeout_ms), 100, 600000, 0},
    {"TOKEN_RECHECK_SEC", "--token-recheck-sec", "SEC", "300",
     "how often a connection's session token is checked for revocation, 1..300", parse_int,
     F(token_recheck_sec), 1, 300, 0},
    {"MAINTENANCE_INTERVAL_SEC", "--maintenance-interval-sec", "SEC", "3600",
     "how often expired sessions and spent auth codes are deleted, 1..86400", parse_int,
     F(maintenance_interval_sec), 1, 86400, 0},
    {"ALLOWED_ORIGINS", "--allowed-origins", "LIST", "",
     "comma list of allowed scheme://host[:port] origins (others: 403); \"\": any", parse_origins,
     F(allowed_origins), 0, 0, SET_EMPTY_OK},
    [S_TLS_CERT] = {"TLS_CERT", "--tls-cert", "FILE", NULL,
                    "PEM certificate chain; with TLS_KEY serves https/wss", parse_file, F(tls_cert),
                    0, 0, 0},
    [S_TLS_KEY] = {"TLS_KEY", "--tls-key", "FILE", NULL, "PEM private key for TLS_CERT", parse_file,
                   F(tls_key), 0, 0, 0},
    {"WEB_ROOT", "--web-root", "DIR", NULL,
     "directory of the browser client's static files; unset: built-in default", parse_string,
     F(web_root), 0, 0, 0},
    {"LOG_LEVEL", "--log-level", "LEVEL", "notice", "error, warn, notice, info or debug",
     parse_log_level, F(log_level), 0, 0, 0},
    [S_MIGRATE_ON_START] = {"MIGRATE_ON_START", "--migrate-on-start", "BOOL", "true",
                            "apply migrations when serve starts: 0, 1, true, false", parse_bool,
                            F(migrate_on_start), 0, 0, 0},
    {"STORE_CONNECTIONS", "--store-connections", "N", "2",
     "PostgreSQL connections (each with its thread) for rooms and requests, 1..16", parse_int,
     F(store_connections), 1, 16, 0},
    {"NODE_ID", "--node-id", "ID", NULL,
     "this node's name (1..128 of A-Za-z0-9._:-); default: host name and pid",
     parse_node_id, F(node_id), 0, 0, 0},
    [S_NODE_HEARTBEAT_SEC] = {"NODE_HEARTBEAT_SEC", "--node-heartbeat-sec", "SEC", "2",
                              "node heartbeat period, 1..60; a node silent 3 periods is dead",
                              parse_int, F(node_heartbeat_sec), 1, 60, 0},
    [S_ROOM_LEASE_SEC] = {"ROOM_LEASE_SEC", "--room-lease-sec", "SEC", "6",
                          "life of a room clock lease, 2..600, at least 2 heartbeats", parse_int,
                          F(room_lease_sec), 2, 600, 0},
    [S_WS_PING_SEC] = {"WS_PING_SEC", "--ws-ping-sec", "SEC", "25",
                       "WebSocket ping after this long without a frame or pong, 1..3600",
                       parse_int, F(ws_ping_sec), 1, 3600, 0},
    [S_WS_IDLE_SEC] = {"WS_IDLE_SEC", "--ws-idle-sec", "SEC", "60",
                       "drop a WebSocket silent this long, 2..7200, more than WS_PING_SEC",
                       parse_int, F(ws_idle_sec), 2, 7200, 0},
    {"STORE_QUEUE_MAX", "--store-queue-max", "N", "4096",
     "store requests waiting, split among STORE_CONNECTIONS (more: unavailable), 1..1000000", parse_int,
     F(store_queue_max), 1, 1000000, 0},
};

#undef F

_Static_assert(sizeof(settings) / sizeof(settings[0]) == N_SETTINGS, "settings table size");

/* The winning string for each setting and the name it was given under. */
struct raw {
    const char *value[N_SETTINGS];
    const char *name[N_SETTINGS];
};

/* ---- sources ------------------------------------------------------------ */

static int apply_defaults(struct gw_config *cfg, struct gw_err *err)
{
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const struct setting *s = &settings[i];
        if (s->def != NULL) {
            int rc = s->parse(cfg, s, s->env, s->def, err);
            if (rc != 0) {
                return rc;
            }
        }
    }
    return 0;
}

static void scan_env(struct raw *raw, char *const envp[])
{
    for (size_t e = 0; envp != NULL && envp[e] != NULL; e++) {
        const char *eq = strchr(envp[e], '=');
        if (eq == NULL) {
            continue;
        }
        size_t len = (size_t)(eq - envp[e]);
        for (size_t i = 0; i < N_SETTINGS; i++) {
            /* The first definition wins, as with getenv(). */
            if (raw->value[i] == NULL && strlen(settings[i].env) == len &&
                strncmp(envp[e], settings[i].env, len) == 0) {
                raw->value[i] = eq + 1;
                raw->name[i] = settings[i].env;
            }
        }
    }
}

static const struct setting *find_flag(const char *arg, size_t len)
{
    for (size_t i = 0; i < N_SETTINGS; i++) {
        if (strlen(settings[i].flag) == len && strncmp(arg, settings[i].flag, len) == 0) {
            return &settings[i];
        }
    }
    return NULL;
}

/* A flag that takes no value: --help, -h, --version, --no-migrate. Returns
 * true when arg[0..len) is one (and handles it). */
static bool switch_flag(struct raw *raw, enum gw_command *cmd, const char *arg, size_t len)
{
    if ((len == 6 && strncmp(arg, "--help", len) == 0) ||
        (len == 2 && strncmp(arg, "-h", 2) == 0)) {
        *cmd = GW_CMD_HELP;
    } else if (len == 9 && strncmp(arg, "--version", len) == 0) {
        *cmd = GW_CMD_VERSION;
    } else if (len == 12 && strncmp(arg, "--no-migrate", len) == 0) {
        raw->value[S_MIGRATE_ON_START] = "false";
        raw->name[S_MIGRATE_ON_START] = "--no-migrate";
    } else {
        return false;
    }
    return true;
}

/* Handle the flag argv[*i]; may consume argv[*i + 1] as its value. */
static int scan_flag(struct raw *raw, enum gw_command *cmd, int argc, char *const argv[], int *i,
                     struct gw_err *err)
{
    const char *arg = argv[*i];
    const char *eq = strchr(arg, '=');
    size_t len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
    char q[48];
    if (switch_flag(raw, cmd, arg, len)) {
        return eq == NULL ? 0 : gw_err_set(err, -EINVAL, "%.*s: takes no value", (int)len, arg);
    }
    const struct setting *s = strncmp(arg, "--", 2) == 0 ? find_flag(arg, len) : NULL;
    if (s == NULL) {
        /* Only the part before '=': the value might be a secret. */
        return gw_err_set(err, -EINVAL, "unknown flag '%s'", shown(q, sizeof(q), arg, len));
    }
    size_t idx = (size_t)(s - settings);
    if (eq != NULL) {
        raw->value[idx] = eq + 1;
    } else if (*i + 1 < argc) {
        raw->value[idx] = argv[++*i];
    } else {
        return gw_err_set(err, -EINVAL, "%s: missing value", s->flag);
    }
    raw->name[idx] = s->flag;
    return 0;
}

/* Handle a positional argument: the command, once. */
static int scan_command(enum gw_command *cmd, bool *have_cmd, const char *arg, struct gw_err *err)
{
    char q[48];
    if (*have_cmd) {
        return gw_err_set(err, -EINVAL, "unexpected argument '%s'",
                          shown(q, sizeof(q), arg, strlen(arg)));
    }
    if (strcmp(arg, "serve") == 0) {
        *cmd = GW_CMD_SERVE;
    } else if (strcmp(arg, "migrate") == 0) {
        *cmd = GW_CMD_MIGRATE;
    } else {
        return gw_err_set(err, -EINVAL, "unknown command '%s' (expected serve or migrate)",
                          shown(q, sizeof(q), arg, strlen(arg)));
    }
    *have_cmd = true;
    return 0;
}

/* Scan argv into raw and *cmd. Stops at --help or --version. */
static int scan_argv(struct raw *raw, enum gw_command *cmd, int argc, char *const argv[],
                     struct gw_err *err)
{
    bool have_cmd = false;
    *cmd = GW_CMD_SERVE;
    for (int i = 1; i < argc && argv[i] != NULL; i++) {
        int rc = argv[i][0] == '-' && argv[i][1] != '\0'
                     ? scan_flag(raw, cmd, argc, argv, &i, err)
                     : scan_command(cmd, &have_cmd, argv[i], err);
        if (rc != 0) {
            return rc;
        }
        if (*cmd == GW_CMD_HELP || *cmd == GW_CMD_VERSION) {
            return 0;
        }
    }
    return 0;
}

static int apply_raw(struct gw_config *cfg, const struct raw *raw, struct gw_err *err)
{
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const struct setting *s = &settings[i];
        const char *v = raw->value[i];
        if (v == NULL || (v[0] == '\0' && !(s->flags & SET_EMPTY_OK))) {
            continue; /* unset: keep the default */
        }
        int rc = s->parse(cfg, s, raw->name[i], v, err);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* TLS_CERT and TLS_KEY come together or not at all. */
static int check_tls(const struct gw_config *cfg, const struct raw *raw, struct gw_err *err)
{
    if ((cfg->tls_cert == NULL) == (cfg->tls_key == NULL)) {
        return 0;
    }
    size_t have = cfg->tls_cert != NULL ? S_TLS_CERT : S_TLS_KEY;
    size_t missing = have == S_TLS_CERT ? S_TLS_KEY : S_TLS_CERT;
    return gw_err_set(err, -EINVAL, "%s: requires %s (or %s) as well", raw->name[have],
                      settings[missing].env, settings[missing].flag);
}

/* LIVEKIT_API_KEY and LIVEKIT_API_SECRET come together; LIVEKIT_URL needs both. */
static int check_livekit(const struct gw_config *cfg, const struct raw *raw, struct gw_err *err)
{
    bool key = cfg->livekit_api_key != NULL, secret = cfg->livekit_api_secret != NULL;
    if (key != secret) {
        size_t have = key ? S_LIVEKIT_API_KEY : S_LIVEKIT_API_SECRET;
        size_t missing = key ? S_LIVEKIT_API_SECRET : S_LIVEKIT_API_KEY;
        return gw_err_set(err, -EINVAL, "%s: requires %s (or %s) as well", raw->name[have],
                          settings[missing].env, settings[missing].flag);
    }
    if (cfg->livekit_url != NULL && !key) {
        return gw_err_set(err, -EINVAL, "%s: requires LIVEKIT_API_KEY and LIVEKIT_API_SECRET",
                          raw->name[S_LIVEKIT_URL]);
    }
    return 0;
}

/* A silent connection is pinged before it is dropped. */
static int check_keepalive(const struct gw_config *cfg, const struct raw *raw, struct gw_err *err)
{
    if (cfg->ws_idle_sec <= cfg->ws_ping_sec) {
        return gw_err_set(err, -EINVAL, "%s: must be more than WS_PING_SEC (%d)",
                          raw->name[S_WS_IDLE_SEC] != NULL ? raw->name[S_WS_IDLE_SEC]
                                                           : settings[S_WS_IDLE_SEC].env,
                          cfg->ws_ping_sec);
    }
    return 0;
}

/* A lease outlives two heartbeats (its renewal); NODE_ID defaults to the
 * host name and pid. */
static int check_node(struct gw_config *cfg, const struct raw *raw, struct gw_err *err)
{
    if (cfg->room_lease_sec < 2 * cfg->node_heartbeat_sec) {
        return gw_err_set(err, -EINVAL, "%s: must be at least twice NODE_HEARTBEAT_SEC (%d)",
                          raw->name[S_ROOM_LEASE_SEC] != NULL ? raw->name[S_ROOM_LEASE_SEC]
                                                              : settings[S_ROOM_LEASE_SEC].env,
                          cfg->node_heartbeat_sec);
    }
    if (cfg->node_id != NULL) {
        return 0;
    }
    char host[64] = "node";
    if (gethostname(host, sizeof(host)) != 0) {
        snprintf(host, sizeof(host), "node");
    }
    host[sizeof(host) - 1] = '\0';
    for (char *p = host; *p != '\0'; p++) {
        bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '.' || *p == '-';
        *p = ok ? *p : '_';
    }
    char id[96];
    snprintf(id, sizeof(id), "%s-%ld", host, (long)getpid());
    cfg->node_id = strdup(id);
    return cfg->node_id != NULL ? 0 : no_memory(err);
}

/* ---- public ------------------------------------------------------------- */

int gw_config_load(struct gw_config *cfg, int argc, char *const argv[], char *const envp[],
                   struct gw_err *err)
{
    struct raw raw;
    memset(&raw, 0, sizeof(raw));
    memset(cfg, 0, sizeof(*cfg));
    int rc = apply_defaults(cfg, err);
    if (rc == 0) {
        scan_env(&raw, envp);
        rc = scan_argv(&raw, &cfg->command, argc, argv, err);
    }
    if (rc == 0 && (cfg->command == GW_CMD_HELP || cfg->command == GW_CMD_VERSION)) {
        return 0;
    }
    if (rc == 0) {
        rc = apply_raw(cfg, &raw, err);
    }
    if (rc == 0) {
        rc = check_tls(cfg, &raw, err);
    }
    if (rc == 0) {
        rc = check_livekit(cfg, &raw, err);
    }
    if (rc == 0) {
        rc = check_keepalive(cfg, &raw, err);
    }
    if (rc == 0 && (cfg->command == GW_CMD_SERVE)) {
        rc = check_node(cfg, &raw, err);
    }
    if (rc != 0) {
        gw_config_fini(cfg);
    }
    return rc;
}

void gw_config_fini(struct gw_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    char **strings[] = {
        &cfg->database_url,    &cfg->listen_host,        &cfg->jwt_secret,  &cfg->service_key,
        &cfg->livekit_api_key, &cfg->livekit_api_secret, &cfg->livekit_url, &cfg->ai_summary_url,
        &cfg->ai_api_key,      &cfg->ai_model,           &cfg->tls_cert,    &cfg->tls_key,
        &cfg->web_root,        &cfg->node_id,
    };
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
        wipe_free(strings[i]);
    }
    free_origins(cfg->allowed_origins);
    memset(cfg, 0, sizeof(*cfg));
}

void gw_config_print_help(FILE *out)
{
    (void)fprintf(out,
                  "Usage: coach-gateway [serve|migrate] [FLAGS]\n"
                  "       coach-gateway --help | -h\n"
                  "       coach-gateway --version\n\n"
                  "Commands:\n"
                  "  serve      run the gateway (the default)\n"
                  "  migrate    apply database migrations and exit\n\n"
                  "Settings: each environment variable is also a flag, written \"--flag VALUE\"\n"
                  "or \"--flag=VALUE\"; a flag wins over the environment. An empty value means\n"
                  "unset. Prefer the environment for secrets: flags show up in ps.\n\n");
    (void)fprintf(out, "  %-19s %-28s %s\n", "VARIABLE", "FLAG", "DEFAULT");
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const struct setting *s = &settings[i];
        char flag[64];
        (void)snprintf(flag, sizeof(flag), "%s %s", s->flag, s->metavar);
        const char *def = s->def == NULL ? "(unset)" : s->def[0] == '\0' ? "\"\"" : s->def;
        (void)fprintf(out, "  %-19s %-28s %s\n      %s%s\n", s->env, flag, def, s->help,
                      (s->flags & SET_SECRET) != 0 ? " (secret)" : "");
    }
    (void)fprintf(out, "  %-19s --no-migrate\n      same as MIGRATE_ON_START=false\n", "");
}
