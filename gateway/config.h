/*
 * config.h: the gateway's configuration (protocol.md section 6).
 *
 * Settings come from the environment and from command-line flags; a flag
 * wins over the environment. Every setting is validated once, at start-up,
 * and a malformed value stops start-up with a one-line message naming the
 * setting as the user wrote it. Everything here runs on the main thread
 * before any other thread starts.
 */
#ifndef COACH_GW_CONFIG_H
#define COACH_GW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "gw.h"

/* Capacity of gw_config.timer_warnings_sec. */
#define GW_TIMER_WARNINGS_MAX 8

/* What the process was asked to do. */
enum gw_command {
    GW_CMD_SERVE,   /* run the gateway (the default) */
    GW_CMD_MIGRATE, /* apply migrations and exit */
    GW_CMD_HELP,    /* print gw_config_print_help() and exit 0 */
    GW_CMD_VERSION, /* print the version and exit 0 */
};

/*
 * The validated configuration. All strings are owned by the struct (freed,
 * and wiped, by gw_config_fini) and stay valid until then.
 */
struct gw_config {
    enum gw_command command;
    char *database_url;       /* DATABASE_URL: libpq URI or conninfo; NULL when unset */
    char *listen_host;        /* LISTEN host, IPv6 without brackets; default "127.0.0.1" */
    int listen_port;          /* LISTEN port, 1..65535; default 8080 */
    char *jwt_secret;         /* JWT_SECRET; NULL when unset */
    char *service_key;        /* SERVICE_KEY; NULL when unset */
    char *livekit_api_key;    /* LIVEKIT_API_KEY; NULL when unset */
    char *livekit_api_secret; /* LIVEKIT_API_SECRET; NULL when unset */
    char *livekit_url;        /* LIVEKIT_URL: ws://, wss://, http:// or https://; NULL when unset */
    char *ai_summary_url;     /* AI_SUMMARY_URL: http:// or https://; NULL when unset */
    char *ai_api_key;         /* AI_API_KEY; NULL when unset */
    char *ai_model;           /* AI_MODEL; default "gpt-4o-mini" */
    int64_t ai_timeout_ms;    /* AI_TIMEOUT_MS, 1..600000; default 30000 */
    int ai_max_attempts;      /* AI_MAX_ATTEMPTS, 1..20; default 5 */
    /* TIMER_WARNINGS: seconds before the end, sorted descending, distinct,
     * each 1..86400; default 300,60. An explicit "" means no warnings. */
    int timer_warnings_sec[GW_TIMER_WARNINGS_MAX];
    size_t n_timer_warnings;
    int idle_end_sec;         /* IDLE_END_SEC, 1..86400; default 300 */
    int early_join_min;       /* EARLY_JOIN_MIN, 0..1440; default 10 */
    size_t max_frame_bytes;   /* MAX_FRAME_BYTES, 1024..1048576; default 16384 */
    int max_conn_per_user;    /* MAX_CONN_PER_USER, 1..1000; default 10 */
    int64_t store_timeout_ms; /* STORE_TIMEOUT_MS, 100..600000; default 5000 */
    int token_recheck_sec;    /* TOKEN_RECHECK_SEC, 1..300; default 300: revocation checks */
    /* MAINTENANCE_INTERVAL_SEC, 1..86400; default 3600: how often expired
     * sessions and spent auth codes are deleted (gateway/maint.c) */
    int maintenance_interval_sec;
    /* ALLOWED_ORIGINS: "scheme://host[:port]" entries, lowercased, in the
     * order given. Never NULL after a successful load: a NULL-terminated
     * array, empty (n_allowed_origins == 0) when any origin is allowed. */
    char **allowed_origins;
    size_t n_allowed_origins;
    char *tls_cert;              /* TLS_CERT path (a readable file) or NULL; set with tls_key */
    char *tls_key;               /* TLS_KEY path (a readable file) or NULL; set with tls_cert */
    char *web_root;              /* WEB_ROOT, not checked here; NULL: the gateway's default */
    enum gw_log_level log_level; /* LOG_LEVEL; default GW_LOG_NOTICE */
    bool migrate_on_start;       /* MIGRATE_ON_START (0|1|true|false), --no-migrate; default true */
    int store_connections;       /* STORE_CONNECTIONS, 1..16; default 2 */
    char *node_id;               /* NODE_ID; serve: default "<host name>-<pid>" */
    int node_heartbeat_sec;      /* NODE_HEARTBEAT_SEC, 1..60; default 2 */
    int room_lease_sec;          /* ROOM_LEASE_SEC, 2..600, >= 2 heartbeats; default 6 */
    int ws_ping_sec;             /* WS_PING_SEC, 1..3600; default 25 */
    int ws_idle_sec;             /* WS_IDLE_SEC, 2..7200, > WS_PING_SEC; default 60 */
    int store_queue_max;         /* STORE_QUEUE_MAX, 1..1000000; default 4096 */
};

/*
 * Load the configuration from envp ("NAME=value" strings, NULL-terminated;
 * NULL means none) and then argv (argv[0] is the program name); a flag wins
 * over the environment. Flags take "--flag value" or "--flag=value". An
 * empty value counts as unset (the default applies), except for
 * TIMER_WARNINGS and ALLOWED_ORIGINS, where "" means none / any.
 *
 * With --help/-h or --version only the arguments before it are checked and
 * cfg holds the defaults, so help works whatever the environment holds.
 * Nothing is required here: the caller checks that what its command needs
 * (e.g. DATABASE_URL) is set.
 *
 * Main thread, before other threads start; reads TLS_CERT/TLS_KEY files to
 * check they are readable. cfg is caller-owned; on success it owns its
 * strings (free with gw_config_fini). On error returns -EINVAL (or -ENOMEM)
 * with a one-line message in err naming the setting as written ("LISTEN"
 * or "--listen"), never holding a secret value, and leaves cfg zeroed.
 */
int gw_config_load(struct gw_config *cfg, int argc, char *const argv[], char *const envp[],
                   struct gw_err *err);

/* Wipe and free everything cfg owns and zero it. NULL-safe, idempotent. */
void gw_config_fini(struct gw_config *cfg);

/* Print the --help text: the commands and every setting with its
 * environment variable, flag, default and meaning. */
void gw_config_print_help(FILE *out);

#endif
