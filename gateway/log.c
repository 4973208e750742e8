/*
 * log.c: one-line logging to stderr and the gw_err helper.
 *
 * Each event is a single write(2) of "<time> <LEVEL> <event> key=value...",
 * so lines from the loop thread and the store thread never interleave.
 * The level is set once at start-up, before any thread runs.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "gw.h"

/* Written once by main before threads start, read-only afterwards. */
static enum gw_log_level max_level = GW_LOG_NOTICE;

static const struct {
    const char *name;
    enum gw_log_level level;
} level_names[] = {
    {"error", GW_LOG_ERROR}, {"warn", GW_LOG_WARN},   {"notice", GW_LOG_NOTICE},
    {"info", GW_LOG_INFO},   {"debug", GW_LOG_DEBUG},
};

int gw_err_set(struct gw_err *err, int code, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}

int gw_log_level_parse(const char *s, enum gw_log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcasecmp(s, level_names[i].name) == 0) {
            *out = level_names[i].level;
            return 0;
        }
    }
    return -EINVAL;
}

void gw_log_set_level(enum gw_log_level level)
{
    max_level = level;
}

static const char *level_label(enum gw_log_level level)
{
    switch (level) {
    case GW_LOG_ERROR:
        return "ERROR";
    case GW_LOG_WARN:
        return "WARN";
    case GW_LOG_NOTICE:
        return "NOTICE";
    case GW_LOG_INFO:
        return "INFO";
    case GW_LOG_DEBUG:
        return "DEBUG";
    }
    return "?";
}

void gw_logv(enum gw_log_level level, const char *event, const char *fmt, va_list ap)
{
    if (level > max_level) {
        return;
    }
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000L, level_label(level), event);
    if (n < 0) {
        return;
    }
    size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    if (fmt != NULL && fmt[0] != '\0' && len < sizeof(line) - 2) {
        line[len++] = ' ';
        int m = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
        if (m > 0) {
            len += (size_t)m < sizeof(line) - len ? (size_t)m : sizeof(line) - len - 1;
        }
    }
    /* One event, one line: control characters never split it. */
    for (size_t i = 0; i < len; i++) {
        if (iscntrl((unsigned char)line[i])) {
            line[i] = ' ';
        }
    }
    if (len > sizeof(line) - 2) {
        len = sizeof(line) - 2;
    }
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void gw_log(enum gw_log_level level, const char *event, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    gw_logv(level, event, fmt, ap);
    va_end(ap);
}
