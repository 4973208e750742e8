/*
 * main.c: coach-gateway's entry point: configuration, the `migrate` and
 * `serve` commands, signals. The only file that may exit the process.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <sodium.h>

#include "config.h"
#include "gw.h"
#include "store.h"

extern char **environ;

/* Set by SIGINT/SIGTERM; the server's housekeeping timer polls it. */
static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static int run_migrations(const struct gw_config *cfg)
{
    struct store_migrate_result res = {0};
    struct store_err err = {0};
    int rc = store_migrate(cfg->database_url, &res, &err);
    if (rc != 0) {
        gw_log(GW_LOG_ERROR, "store.migrate_failed", "msg=\"%s\"", err.msg);
        return rc;
    }
    gw_log(GW_LOG_NOTICE, "store.migrated", "baseline_created=%d applied=%d version=%d",
           res.baseline_created, res.applied, res.latest);
    return 0;
}

/* libwebsockets 4.1 treats an open-files limit above this as unreasonable
 * and falls back to 2560 descriptors (lib/core/context.c). */
#define NOFILE_LWS_MAX ((rlim_t)10000000)

/* The open-files limits before and after raise_nofile(); rc is 0 or -errno. */
struct nofile {
    int rc;
    rlim_t was, soft, hard;
};

/*
 * Every connection is a descriptor, and lws sizes its descriptor tables
 * once, from the soft RLIMIT_NOFILE it finds when the context is created.
 * Service managers and shells often leave the soft limit far below the
 * hard one (systemd: 1024 soft), which would cap the node at about a
 * thousand connections: raise soft to hard before the context exists.
 * A failure only costs capacity: start-up goes on, and serve() logs it
 * once the server is up (a start-up error stays one line).
 */
static struct nofile raise_nofile(void)
{
    struct nofile n = {0};
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        n.rc = -errno;
        return n;
    }
    n.was = n.soft = rl.rlim_cur;
    n.hard = rl.rlim_max;
    rlim_t want = rl.rlim_max < NOFILE_LWS_MAX ? rl.rlim_max : NOFILE_LWS_MAX;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            n.rc = -errno;
        } else {
            n.soft = want;
        }
    }
    return n;
}

static void log_nofile(const struct nofile *n)
{
    if (n->rc == 0) {
        gw_log(GW_LOG_NOTICE, "gw.nofile", "soft=%llu hard=%llu was=%llu",
               (unsigned long long)n->soft, (unsigned long long)n->hard,
               (unsigned long long)n->was);
        return;
    }
    char why[128];
    if (strerror_r(-n->rc, why, sizeof(why)) != 0) {
        (void)snprintf(why, sizeof(why), "error %d", -n->rc);
    }
    gw_log(GW_LOG_WARN, "gw.nofile_not_raised", "soft=%llu hard=%llu msg=\"%s\"",
           (unsigned long long)n->soft, (unsigned long long)n->hard, why);
}

static int serve(const struct gw_config *cfg)
{
    if (cfg->migrate_on_start && run_migrations(cfg) != 0) {
        return 1;
    }
    struct nofile nofile = raise_nofile();
    struct gw_err err = {0};
    struct gw_server *srv = NULL;
    if (gw_server_new(cfg, &srv, &err) != 0) {
        fprintf(stderr, "coach-gateway: %s\n", err.msg);
        return 1;
    }
    log_nofile(&nofile);
    install_signals();
    int rc = gw_server_run(srv, &stop_requested);
    gw_server_free(srv);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    struct gw_config cfg;
    struct gw_err err = {0};
    if (gw_config_load(&cfg, argc, argv, environ, &err) != 0) {
        fprintf(stderr, "coach-gateway: %s (see --help)\n", err.msg);
        return 2;
    }
    int rc = 0;
    gw_log_set_level(cfg.log_level);
    if (cfg.command == GW_CMD_HELP) {
        gw_config_print_help(stdout);
    } else if (cfg.command == GW_CMD_VERSION) {
        printf("coach-gateway %s\n", COACH_VERSION);
    } else if (sodium_init() < 0) {
        fprintf(stderr, "coach-gateway: libsodium failed to initialise\n");
        rc = 1;
    } else if (cfg.database_url == NULL) {
        fprintf(stderr, "coach-gateway: DATABASE_URL is not set (tools/dev run starts a "
                        "private PostgreSQL for development)\n");
        rc = 2;
    } else if (cfg.command == GW_CMD_MIGRATE) {
        rc = run_migrations(&cfg) == 0 ? 0 : 1;
    } else {
        rc = serve(&cfg);
    }
    gw_config_fini(&cfg);
    return rc;
}
