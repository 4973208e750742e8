/*
 * listen.c: cross-node notifications (store.h: store_listen_*).
 *
 * DESIGN: one thread with a PostgreSQL connection of its own runs LISTEN
 * on STORE_NOTIFY_CHANNEL and waits on that connection's socket (and on a
 * pipe that wakes it to stop). Every chat batch that commits, on any node,
 * notifies "<roomId> <last seq>" (ops_queries.c); the thread parses each
 * notification into a note, queues it (bounded) and wakes the loop, which
 * drains the queue with store_listen_drain(). Notifications sent by this
 * node's own store connection (its backend PID) are dropped: the node
 * delivers its own commits. Typing travels on a channel of its own. A notification is only a
 * hint: the loop reads the messages it lacks from the database, so a lost
 * one delays messages but never drops them. Whenever notes may have been
 * missed (the connection was (re)made, or the queue overflowed) the loop
 * is told to resync instead: to catch up every room it holds.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sodium.h>

#include "store_int.h"

#define NOTES_MAX     4096
#define POLL_MS       1000
#define BACKOFF_MS    250
#define BACKOFF_MAX_MS 5000

struct store_listen {
    char *conninfo;
    void (*wake)(void *arg);
    void *wake_arg;
    store_log_fn log;
    void *log_arg;
    const struct store *self;
    pthread_t thread;
    int pipe_fd[2]; /* [1] written by close() to wake the thread */
    pthread_mutex_t mu;
    bool stopping;               /* under mu */
    struct store_note *notes;    /* under mu: NOTES_MAX */
    struct store_note *spare;    /* the drainer's: swapped with notes */
    size_t n_notes;              /* under mu */
    bool resync;                 /* under mu: notes may have been missed */
    PGconn *conn;                /* the thread's */
};

static void llog(struct store_listen *l, int level, const char *event, const char *msg)
{
    if (l->log != NULL) {
        l->log(l->log_arg, level, event, msg);
    }
}

static bool stopping(struct store_listen *l)
{
    pthread_mutex_lock(&l->mu);
    bool s = l->stopping;
    pthread_mutex_unlock(&l->mu);
    return s;
}

/* Wait up to ms for the stop pipe (and fd, when >= 0). 1 if fd is readable. */
static int wait_fd(struct store_listen *l, int fd, int ms)
{
    struct pollfd p[2] = {{.fd = l->pipe_fd[0], .events = POLLIN}, {.fd = fd, .events = POLLIN}};
    int n = poll(p, fd >= 0 ? 2 : 1, ms);
    return n > 0 && fd >= 0 && (p[1].revents & (POLLIN | POLLERR | POLLHUP)) != 0;
}

/* "<roomId> <seq>", "<roomId> s" or "<roomId> p" -> note. 0, or -1 when
 * malformed. */
static int room_note_parse(const char *payload, struct store_note *note)
{
    const char *sp = strrchr(payload, ' ');
    if (sp == NULL || sp == payload || (size_t)(sp - payload) > STORE_ROOM_MAX) {
        return -1;
    }
    memset(note, 0, sizeof(*note));
    if (strcmp(sp + 1, "s") == 0 || strcmp(sp + 1, "p") == 0) {
        note->kind = sp[1] == 's' ? STORE_NOTE_STATE : STORE_NOTE_PRESENCE;
    } else {
        char *end = NULL;
        errno = 0;
        long long seq = strtoll(sp + 1, &end, 10);
        if (errno != 0 || end == sp + 1 || *end != '\0' || seq < 1) {
            return -1;
        }
        note->kind = STORE_NOTE_CHAT;
        note->seq = seq;
    }
    memcpy(note->room_id, payload, (size_t)(sp - payload));
    note->room_id[sp - payload] = '\0';
    return 0;
}

/* "<0|1> <length of roomId> <roomId><userId>" -> note. 0 or -1. */
static int typing_note_parse(const char *payload, struct store_note *note)
{
    if ((payload[0] != '0' && payload[0] != '1') || payload[1] != ' ') {
        return -1;
    }
    char *end = NULL;
    errno = 0;
    long len = strtol(payload + 2, &end, 10);
    if (errno != 0 || end == payload + 2 || *end != ' ' || len < 1 || len > STORE_ROOM_MAX ||
        strnlen(end + 1, (size_t)len) < (size_t)len) {
        return -1;
    }
    const char *user = end + 1 + len;
    size_t ulen = strlen(user);
    if (ulen < 1 || ulen > STORE_ID_MAX) {
        return -1;
    }
    memset(note, 0, sizeof(*note));
    note->kind = STORE_NOTE_TYPING;
    note->state = payload[0] == '1';
    memcpy(note->room_id, end + 1, (size_t)len);
    memcpy(note->user_id, user, ulen);
    return 0;
}

int store__note_parse(const char *channel, const char *payload, struct store_note *note)
{
    if (strcmp(channel, STORE_TYPING_CHANNEL) == 0) {
        return typing_note_parse(payload, note);
    }
    return room_note_parse(payload, note);
}

int store_typing_payload(char *out, size_t cap, const char *room_id, const char *user_id,
                         bool state)
{
    size_t rl = strlen(room_id), ul = strlen(user_id);
    if (rl < 1 || rl > STORE_ROOM_MAX || ul < 1 || ul > STORE_ID_MAX) {
        return -1;
    }
    int n = snprintf(out, cap, "%c %zu %s%s", state ? '1' : '0', rl, room_id, user_id);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* Queue a note (or ask for a resync) and wake the loop. */
static void post(struct store_listen *l, const struct store_note *note, bool resync)
{
    pthread_mutex_lock(&l->mu);
    if (resync || l->n_notes == NOTES_MAX) {
        l->resync = true;
    } else {
        l->notes[l->n_notes++] = *note;
    }
    pthread_mutex_unlock(&l->mu);
    l->wake(l->wake_arg);
}

/* Connect and LISTEN; false (and the connection closed) on failure. */
static bool listen_connect(struct store_listen *l)
{
    struct store_err err = {0};
    l->conn = store__connect(l->conninfo, &err);
    if (l->conn == NULL) {
        return false;
    }
    PGresult *res =
        PQexec(l->conn, "LISTEN " STORE_NOTIFY_CHANNEL "; LISTEN " STORE_TYPING_CHANNEL);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (!ok) {
        PQfinish(l->conn);
        l->conn = NULL;
    }
    return ok;
}

/* Read what arrived; false when the connection is gone. */
static bool consume(struct store_listen *l)
{
    if (PQconsumeInput(l->conn) == 0) {
        return false;
    }
    PGnotify *n;
    while ((n = PQnotifies(l->conn)) != NULL) {
        struct store_note note;
        /* This node's own commits are delivered by the node itself. */
        bool own = store_owns_backend(l->self, n->be_pid);
        if (!own && store__note_parse(n->relname, n->extra, &note) == 0) {
            post(l, &note, false);
        }
        PQfreemem(n);
    }
    return PQstatus(l->conn) == CONNECTION_OK;
}

static void *thread_main(void *arg)
{
    struct store_listen *l = arg;
    int backoff = BACKOFF_MS;
    bool was_up = false;
    while (!stopping(l)) {
        if (l->conn == NULL) {
            if (!listen_connect(l)) {
                if (was_up) {
                    llog(l, 4, "store.listen_down", "reconnecting");
                    was_up = false;
                }
                wait_fd(l, -1, backoff);
                backoff = backoff * 2 < BACKOFF_MAX_MS ? backoff * 2 : BACKOFF_MAX_MS;
                continue;
            }
            backoff = BACKOFF_MS;
            was_up = true;
            llog(l, 6, "store.listen_up", STORE_NOTIFY_CHANNEL);
            post(l, NULL, true); /* anything sent while we were away is in the database */
        }
        if (wait_fd(l, PQsocket(l->conn), POLL_MS) && !consume(l)) {
            PQfinish(l->conn);
            l->conn = NULL;
        }
    }
    if (l->conn != NULL) {
        PQfinish(l->conn);
        l->conn = NULL;
    }
    return NULL;
}

int store_listen_open(const struct store_listen_cfg *cfg, struct store_listen **out,
                      struct store_err *err)
{
    if (cfg->conninfo == NULL || cfg->wake == NULL) {
        store__err_set(err, -EINVAL, "listen: conninfo and wake are required");
        return -EINVAL;
    }
    struct store_listen *l = calloc(1, sizeof(*l));
    if (l == NULL || (l->notes = calloc(NOTES_MAX, sizeof(*l->notes))) == NULL ||
        (l->spare = calloc(NOTES_MAX, sizeof(*l->spare))) == NULL ||
        (l->conninfo = strdup(cfg->conninfo)) == NULL) {
        if (l != NULL) {
            free(l->notes);
            free(l->spare);
        }
        free(l);
        store__err_set(err, -ENOMEM, "listen: out of memory");
        return -ENOMEM;
    }
    l->wake = cfg->wake;
    l->wake_arg = cfg->wake_arg;
    l->log = cfg->log;
    l->log_arg = cfg->log_arg;
    l->self = cfg->self;
    pthread_mutex_init(&l->mu, NULL);
    if (pipe(l->pipe_fd) != 0) {
        int e = errno;
        pthread_mutex_destroy(&l->mu);
        free(l->conninfo);
        free(l->notes);
        free(l->spare);
        free(l);
        store__err_set(err, -e, "listen: pipe: %s", strerror(e));
        return -e;
    }
    fcntl(l->pipe_fd[0], F_SETFL, O_NONBLOCK);
    int rc = pthread_create(&l->thread, NULL, thread_main, l);
    if (rc != 0) {
        close(l->pipe_fd[0]);
        close(l->pipe_fd[1]);
        pthread_mutex_destroy(&l->mu);
        free(l->conninfo);
        free(l->notes);
        free(l->spare);
        free(l);
        store__err_set(err, -rc, "listen: cannot start its thread");
        return -rc;
    }
    *out = l;
    return 0;
}

void store_listen_drain(struct store_listen *l, store_note_fn fn, void *arg)
{
    pthread_mutex_lock(&l->mu);
    struct store_note *batch = l->notes;
    size_t n = l->n_notes;
    bool resync = l->resync;
    l->notes = l->spare;
    l->spare = batch;
    l->n_notes = 0;
    l->resync = false;
    pthread_mutex_unlock(&l->mu);
    if (resync) {
        fn(arg, NULL);
        return; /* a resync covers every note */
    }
    for (size_t i = 0; i < n; i++) {
        fn(arg, &batch[i]);
    }
}

void store_listen_close(struct store_listen *l)
{
    if (l == NULL) {
        return;
    }
    pthread_mutex_lock(&l->mu);
    l->stopping = true;
    pthread_mutex_unlock(&l->mu);
    ssize_t w = write(l->pipe_fd[1], "x", 1);
    (void)w;
    pthread_join(l->thread, NULL);
    close(l->pipe_fd[0]);
    close(l->pipe_fd[1]);
    pthread_mutex_destroy(&l->mu);
    sodium_memzero(l->conninfo, strlen(l->conninfo)); /* it may hold a password */
    free(l->conninfo);
    free(l->notes);
    free(l->spare);
    free(l);
}
