/*
 * gw.h: the gateway module's public header.
 *
 * The gateway is the only module that does network I/O: it owns the lws
 * context, configuration, logging and the HTTP/WebSocket handlers, and
 * drives the store (and later rooms and ai) modules. Everything declared
 * here runs on the main (loop) thread unless stated otherwise.
 */
#ifndef COACH_GW_H
#define COACH_GW_H

#include <stdarg.h>

/* A caller-owned error: a code (negative errno-style or module code) and a
 * one-line message that never holds secrets. */
struct gw_err {
    int code;
    char msg[256];
};

/* Fill err with code and a printf-style message. Returns code. */
int gw_err_set(struct gw_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Log levels, most severe first (syslog-like numbering). */
enum gw_log_level {
    GW_LOG_ERROR = 3,
    GW_LOG_WARN = 4,
    GW_LOG_NOTICE = 5,
    GW_LOG_INFO = 6,
    GW_LOG_DEBUG = 7,
};

/* Parse "error|warn|notice|info|debug" (case-insensitive). 0 or -EINVAL. */
int gw_log_level_parse(const char *s, enum gw_log_level *out);

/* Set the most verbose level that is printed. Call before threads start. */
void gw_log_set_level(enum gw_log_level level);

/* One line to stderr: "<ISO8601> <LEVEL> <event> key=value ...".
 * Thread-safe (one write(2) per line). Never pass secrets. */
void gw_log(enum gw_log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void gw_logv(enum gw_log_level level, const char *event, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#endif

/* ---- the server ------------------------------------------------------------ */

#include <signal.h>

struct gw_config;
struct gw_server;

/* Create the lws context listening on cfg's LISTEN address and start the
 * store thread. cfg is borrowed and must outlive the server. Fails with a
 * one-line message (e.g. the address is in use). Main thread. */
int gw_server_new(const struct gw_config *cfg, struct gw_server **out, struct gw_err *err);

/* Serve until *stop becomes nonzero (set it from a signal handler), then
 * drain: stop accepting, let the store finish what is queued, close
 * connections with 1001. Returns 0 after a clean drain. Main thread. */
int gw_server_run(struct gw_server *srv, volatile sig_atomic_t *stop);

/* Free everything the server owns. NULL-safe. Main thread. */
void gw_server_free(struct gw_server *srv);

/* The port actually listened on (useful with LISTEN port 0). */
int gw_server_port(const struct gw_server *srv);
