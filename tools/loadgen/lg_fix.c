/*
 * lg_fix.c: fixtures (setup, load, cleanup) and session export for
 * coach-loadgen (see lg_fix.h). Blocking libpq, parameterized statements
 * only; bulk inserts pass their values as text[] parameters to unnest().
 */
#include "lg_fix.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <sodium.h>

#define ID_LEN     25
#define TAG_LEN    6
#define TOKEN_RAND 32

static void fail(struct lg_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct lg_err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
}

/* ---- the fixtures file ---------------------------------------------------------------- */

void lg_fix_fini(struct lg_fixtures *f)
{
    if (f->v != NULL) {
        sodium_memzero(f->v, f->n * sizeof *f->v);
    }
    free(f->v);
    f->v = NULL;
    f->n = 0;
}

static int copy_field(char *dst, size_t cap, const char *s, size_t len)
{
    if (len == 0 || len >= cap) {
        return -1;
    }
    memcpy(dst, s, len);
    dst[len] = '\0';
    return 0;
}

static int parse_fix_line(char *line, struct lg_room_fix *r)
{
    size_t len = strcspn(line, "\r\n");
    line[len] = '\0';
    char *t1 = strchr(line, '\t');
    char *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
    if (t2 == NULL || strchr(t2 + 1, '\t') != NULL) {
        return -1;
    }
    if (copy_field(r->room, sizeof r->room, line, (size_t)(t1 - line)) != 0 ||
        copy_field(r->token[0], sizeof r->token[0], t1 + 1, (size_t)(t2 - t1 - 1)) != 0 ||
        copy_field(r->token[1], sizeof r->token[1], t2 + 1, strlen(t2 + 1)) != 0) {
        return -1;
    }
    return 0;
}

int lg_fix_load(const char *path, struct lg_fixtures *out, struct lg_err *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        int e = errno;
        fail(err, "%s: cannot open (errno %d)", path, e);
        return -e;
    }
    struct lg_fixtures fx = {0};
    size_t cap = 0;
    char line[LG_FIX_ID_MAX + 2 * LG_FIX_TOKEN_MAX + 8];
    unsigned ln = 0;
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f) != NULL) {
        ln++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            fail(err, "%s:%u: line too long", path, ln);
            rc = -EINVAL;
            break;
        }
        if (line[0] == '\n' || line[0] == '#') {
            continue;
        }
        if (fx.n == LG_FIX_MAX_ROOMS) {
            fail(err, "%s:%u: more than %d rooms", path, ln, LG_FIX_MAX_ROOMS);
            rc = -EINVAL;
            break;
        }
        if (fx.n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            struct lg_room_fix *nv = realloc(fx.v, ncap * sizeof *nv);
            if (nv == NULL) {
                rc = -ENOMEM;
                break;
            }
            fx.v = nv;
            cap = ncap;
        }
        if (parse_fix_line(line, &fx.v[fx.n]) != 0) {
            fail(err, "%s:%u: want <room> TAB <coach token> TAB <client token>", path, ln);
            rc = -EINVAL;
            break;
        }
        fx.n++;
    }
    (void)fclose(f);
    if (rc == 0 && fx.n == 0) {
        fail(err, "%s: no rooms", path);
        rc = -EINVAL;
    }
    if (rc != 0) {
        lg_fix_fini(&fx);
        return rc;
    }
    *out = fx;
    return 0;
}

/* ---- database helpers ------------------------------------------------------------------ */

static PGconn *db_open(const char *conninfo, struct lg_err *err)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        fail(err, "cannot connect to the database: %s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* Run sql with n text params; 0 when it succeeded (the result is cleared
 * unless res is given). */
static int db_exec(PGconn *c, const char *sql, int n, const char *const *params, PGresult **res,
                   struct lg_err *err)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        fail(err, "database: %s", PQresultErrorMessage(r));
        PQclear(r);
        return -EIO;
    }
    if (res != NULL) {
        *res = r;
    } else {
        PQclear(r);
    }
    return 0;
}

/* ---- setup ----------------------------------------------------------------------------- */

static void random_tag(char *out, size_t len)
{
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    for (size_t i = 0; i < len; i++) {
        out[i] = alnum[randombytes_uniform(36)];
    }
    out[len] = '\0';
}

/* LG_FIX_PREFIX kind tag index: 3 + 1 + 6 + 15 = 25 characters. */
static void make_id(char out[ID_LEN + 1], char kind, const char *tag, size_t i)
{
    (void)snprintf(out, ID_LEN + 1, "%s%c%s%015zu", LG_FIX_PREFIX, kind, tag, i);
}

static void make_token(char *out, size_t cap)
{
    unsigned char raw[TOKEN_RAND];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(out, cap, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
}

/* A growing text[] literal of safe values ([A-Za-z0-9_@.-] and space). */
struct arr {
    char *s;
    size_t len, cap;
};

static int arr_add(struct arr *a, const char *v)
{
    size_t need = a->len + strlen(v) + 4;
    if (need > a->cap) {
        size_t ncap = a->cap ? a->cap : 1024;
        while (ncap < need) {
            ncap *= 2;
        }
        char *ns = realloc(a->s, ncap);
        if (ns == NULL) {
            return -ENOMEM;
        }
        a->s = ns;
        a->cap = ncap;
    }
    a->len += (size_t)snprintf(a->s + a->len, a->cap - a->len, "%s\"%s\"", a->len ? "," : "{", v);
    return 0;
}

static const char *arr_done(struct arr *a)
{
    if (a->s == NULL || a->len + 2 > a->cap) {
        return NULL;
    }
    a->s[a->len++] = '}';
    a->s[a->len] = '\0';
    return a->s;
}

enum {
    A_UID,
    A_EMAIL,
    A_NAME,
    A_ROLE,
    A_SKOOL,
    A_SID,
    A_TOKEN,
    A_AID,
    A_ROOM,
    A_COACH,
    A_CLIENT,
    A_N
};

static const char SQL_CODE[] =
    "INSERT INTO \"AuthCode\" (\"id\", \"code\", \"skoolUserId\", \"skoolUsername\", "
    "\"expiresAt\", \"isActive\") VALUES ($1, $2, 'loadgen', 'loadgen', "
    "now() + interval '2 days', false)";
static const char SQL_USERS[] =
    "INSERT INTO \"User\" (\"id\", \"email\", \"displayName\", \"role\", \"skoolUserId\", "
    "\"updatedAt\") SELECT * , now() FROM unnest($1::text[], $2::text[], $3::text[], "
    "$4::text[], $5::text[])";
static const char SQL_SESSIONS[] =
    "INSERT INTO \"UserSession\" (\"id\", \"sessionId\", \"skoolUserId\", \"skoolUsername\", "
    "\"authCodeUsed\", \"expiresAt\", \"ipAddress\", \"userAgent\", \"deviceFingerprint\", "
    "\"isActive\") SELECT t.sid, t.tok, t.skool, t.skool, $4, now() + interval '2 days', "
    "'127.0.0.1', 'coach-loadgen', 'loadgen', true "
    "FROM unnest($1::text[], $2::text[], $3::text[]) AS t(sid, tok, skool)";
static const char SQL_APPTS[] =
    "INSERT INTO \"Appointment\" (\"id\", \"scheduledFor\", \"durationMin\", \"clientId\", "
    "\"coachId\", \"roomId\", \"status\") SELECT t.id, now(), $5::int, t.client, t.coach, "
    "t.room, 'scheduled' FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) "
    "AS t(id, room, coach, client)";

static int add_user(struct arr *a, const char *tag, size_t i, int coach, char *token_out,
                    size_t token_cap)
{
    char id[ID_LEN + 1], sid[ID_LEN + 1], email[80], name[64], skool[64];
    make_id(id, coach ? 'c' : 'k', tag, i);
    make_id(sid, coach ? 's' : 't', tag, i);
    (void)snprintf(email, sizeof email, "%s@loadgen.invalid", id);
    (void)snprintf(name, sizeof name, "Loadgen %s %zu", coach ? "Coach" : "Client", i + 1);
    (void)snprintf(skool, sizeof skool, "loadgen-%s", id);
    make_token(token_out, token_cap);
    int rc = arr_add(&a[A_UID], id) | arr_add(&a[A_EMAIL], email) | arr_add(&a[A_NAME], name) |
             arr_add(&a[A_ROLE], coach ? "coach" : "client") | arr_add(&a[A_SKOOL], skool) |
             arr_add(&a[A_SID], sid) | arr_add(&a[A_TOKEN], token_out);
    return rc ? -ENOMEM : 0;
}

static int build_rows(struct arr *a, const char *tag, struct lg_fixtures *fx)
{
    for (size_t i = 0; i < fx->n; i++) {
        struct lg_room_fix *r = &fx->v[i];
        char aid[ID_LEN + 1], coach[ID_LEN + 1], client[ID_LEN + 1];
        make_id(aid, 'a', tag, i);
        make_id(coach, 'c', tag, i);
        make_id(client, 'k', tag, i);
        (void)snprintf(r->room, sizeof r->room, "loadgen-%s-%zu", tag, i + 1);
        if (add_user(a, tag, i, 1, r->token[0], sizeof r->token[0]) != 0 ||
            add_user(a, tag, i, 0, r->token[1], sizeof r->token[1]) != 0 ||
            arr_add(&a[A_AID], aid) != 0 || arr_add(&a[A_ROOM], r->room) != 0 ||
            arr_add(&a[A_COACH], coach) != 0 || arr_add(&a[A_CLIENT], client) != 0) {
            return -ENOMEM;
        }
    }
    for (int k = 0; k < A_N; k++) {
        if (arr_done(&a[k]) == NULL) {
            return -ENOMEM;
        }
    }
    return 0;
}

static int insert_rows(PGconn *c, struct arr *a, const char *tag, int duration_min,
                       struct lg_err *err)
{
    char code_id[ID_LEN + 1], code[40], dur[16];
    make_id(code_id, 'z', tag, 0);
    (void)snprintf(code, sizeof code, "LOADGEN-%s", code_id);
    (void)snprintf(dur, sizeof dur, "%d", duration_min);
    const char *p_code[] = {code_id, code};
    const char *p_users[] = {a[A_UID].s, a[A_EMAIL].s, a[A_NAME].s, a[A_ROLE].s, a[A_SKOOL].s};
    const char *p_sess[] = {a[A_SID].s, a[A_TOKEN].s, a[A_SKOOL].s, code};
    const char *p_appt[] = {a[A_AID].s, a[A_ROOM].s, a[A_COACH].s, a[A_CLIENT].s, dur};
    int rc = db_exec(c, "BEGIN", 0, NULL, NULL, err);
    if (rc == 0) {
        rc = db_exec(c, SQL_CODE, 2, p_code, NULL, err);
    }
    if (rc == 0) {
        rc = db_exec(c, SQL_USERS, 5, p_users, NULL, err);
    }
    if (rc == 0) {
        rc = db_exec(c, SQL_SESSIONS, 4, p_sess, NULL, err);
    }
    if (rc == 0) {
        rc = db_exec(c, SQL_APPTS, 5, p_appt, NULL, err);
    }
    if (rc == 0) {
        rc = db_exec(c, "COMMIT", 0, NULL, NULL, err);
    }
    if (rc != 0) {
        struct lg_err ignored = {{0}};
        (void)db_exec(c, "ROLLBACK", 0, NULL, NULL, &ignored);
    }
    return rc;
}

static int write_fixtures(const char *path, const struct lg_fixtures *fx, struct lg_err *err)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fail(err, "%s: cannot create (errno %d)", path, errno);
        return -EIO;
    }
    for (size_t i = 0; i < fx->n; i++) {
        (void)fprintf(f, "%s\t%s\t%s\n", fx->v[i].room, fx->v[i].token[0], fx->v[i].token[1]);
    }
    if (fclose(f) != 0) {
        fail(err, "%s: write failed", path);
        return -EIO;
    }
    return 0;
}

int lg_fix_setup(const char *conninfo, size_t n, int duration_min, const char *path,
                 struct lg_err *err)
{
    if (n == 0 || n > LG_FIX_MAX_ROOMS || duration_min <= 0) {
        fail(err, "--setup wants 1..%d rooms", LG_FIX_MAX_ROOMS);
        return -EINVAL;
    }
    struct lg_fixtures fx = {.v = calloc(n, sizeof(struct lg_room_fix)), .n = n};
    struct arr a[A_N];
    memset(a, 0, sizeof a);
    char tag[TAG_LEN + 1];
    random_tag(tag, TAG_LEN);
    int rc = fx.v == NULL ? -ENOMEM : build_rows(a, tag, &fx);
    if (rc == -ENOMEM) {
        fail(err, "out of memory");
    }
    PGconn *c = rc == 0 ? db_open(conninfo, err) : NULL;
    if (rc == 0 && c == NULL) {
        rc = -EIO;
    }
    if (rc == 0) {
        rc = insert_rows(c, a, tag, duration_min, err);
    }
    PQfinish(c);
    if (rc == 0) {
        rc = write_fixtures(path, &fx, err);
    }
    for (int k = 0; k < A_N; k++) {
        if (a[k].s != NULL) {
            sodium_memzero(a[k].s, a[k].cap);
        }
        free(a[k].s);
    }
    lg_fix_fini(&fx);
    return rc;
}

/* ---- cleanup --------------------------------------------------------------------------- */

static const char *const SQL_CLEANUP[] = {
    "DELETE FROM \"SessionRating\" WHERE \"sessionId\" IN (SELECT \"id\" FROM \"Session\" "
    "WHERE \"appointmentId\" LIKE $1)",
    "DELETE FROM \"Message\" WHERE \"sessionId\" IN (SELECT \"id\" FROM \"Session\" "
    "WHERE \"appointmentId\" LIKE $1)",
    "DELETE FROM \"Session\" WHERE \"appointmentId\" LIKE $1",
    "DELETE FROM \"Appointment\" WHERE \"id\" LIKE $1",
    "DELETE FROM \"UserSession\" WHERE \"id\" LIKE $1",
    "DELETE FROM \"AuthCode\" WHERE \"id\" LIKE $1",
    "DELETE FROM \"User\" WHERE \"id\" LIKE $1",
};

int lg_fix_cleanup(const char *conninfo, long *rows, struct lg_err *err)
{
    PGconn *c = db_open(conninfo, err);
    if (c == NULL) {
        return -EIO;
    }
    const char *like[] = {LG_FIX_PREFIX "%"};
    long total = 0;
    int rc = db_exec(c, "BEGIN", 0, NULL, NULL, err);
    for (size_t i = 0; rc == 0 && i < sizeof SQL_CLEANUP / sizeof SQL_CLEANUP[0]; i++) {
        PGresult *r = NULL;
        rc = db_exec(c, SQL_CLEANUP[i], 1, like, &r, err);
        if (rc == 0) {
            total += strtol(PQcmdTuples(r), NULL, 10);
            PQclear(r);
        }
    }
    if (rc == 0) {
        rc = db_exec(c, "COMMIT", 0, NULL, NULL, err);
    }
    PQfinish(c);
    *rows = total;
    return rc;
}

/* ---- export ---------------------------------------------------------------------------- */

static const char SQL_EX_SESSION[] =
    "SELECT s.\"appointmentId\", "
    "(SELECT min(x.\"startedAt\") FROM \"Session\" x WHERE x.\"appointmentId\" = "
    "s.\"appointmentId\")::text, "
    "(extract(epoch FROM s.\"endedAt\" - (SELECT min(x.\"startedAt\") FROM \"Session\" x "
    "WHERE x.\"appointmentId\" = s.\"appointmentId\")) * 1000)::bigint, "
    "coalesce(s.\"transcript\", '') FROM \"Session\" s WHERE s.\"id\" = $1";
static const char SQL_EX_MESSAGES[] =
    "SELECT CASE WHEN m.\"userId\" = a.\"coachId\" THEN 'coach' ELSE 'client' END, "
    "(extract(epoch FROM m.\"createdAt\" - $2::timestamp) * 1000)::bigint, m.\"content\" "
    "FROM coach_message cm JOIN \"Message\" m ON m.\"id\" = cm.message_id "
    "JOIN \"Appointment\" a ON a.\"id\" = cm.appointment_id "
    "WHERE cm.appointment_id = $1 ORDER BY cm.seq";
static const char SQL_EX_RATING[] =
    "SELECT r.\"rating\", coalesce(r.\"comment\", ''), coalesce(r.\"tipAmount\", 0)::int "
    "FROM \"SessionRating\" r JOIN \"Session\" s ON s.\"id\" = r.\"sessionId\" "
    "WHERE s.\"appointmentId\" = $1 ORDER BY r.\"createdAt\" LIMIT 1";

struct exporter {
    FILE *out;
    int64_t last_ms;
    size_t n;
};

static void emit(struct exporter *x, json_t *o, int64_t at_ms)
{
    if (at_ms < x->last_ms) {
        at_ms = x->last_ms;
    }
    x->last_ms = at_ms;
    json_t *line = json_pack("{sI}", "at_ms", (json_int_t)at_ms); /* at_ms first */
    if (line != NULL) {
        (void)json_object_update(line, o);
    }
    char *s = line ? json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(line);
    if (s != NULL) {
        (void)fprintf(x->out, "%s\n", s);
        x->n++;
    }
    free(s);
    json_decref(o);
}

static void emit_chat(struct exporter *x, const char *who, int64_t at_ms, const char *text)
{
    size_t len = strlen(text);
    if (len == 0 || len > LG_REC_MAX_TEXT) {
        return;
    }
    int64_t typing_at = at_ms - 1500 - (int64_t)(len * 40 > 6000 ? 6000 : len * 40);
    emit(x, json_pack("{ss ss sb}", "who", who, "type", "typing", "state", 1), typing_at);
    emit(x, json_pack("{ss ss ss}", "who", who, "type", "chat", "text", text), at_ms);
}

/* A transcript line: "[HH:MM:SS] <name> (<role>): <text>". */
static void export_transcript(struct exporter *x, char *t)
{
    int64_t first = -1;
    for (char *line = t; line != NULL && *line != '\0';) {
        char *nl = strchr(line, '\n');
        if (nl != NULL) {
            *nl = '\0';
        }
        int hh, mm, ss, pos = 0;
        /* NOLINTNEXTLINE(cert-err34-c): two-digit fields, their count checked */
        if (sscanf(line, "[%2d:%2d:%2d]%n", &hh, &mm, &ss, &pos) == 3 && pos > 0) {
            char *coach = strstr(line + pos, " (coach): ");
            char *client = strstr(line + pos, " (client): ");
            char *mark = coach && (!client || coach < client) ? coach : client;
            if (mark != NULL) {
                int64_t at = ((int64_t)hh * 3600 + (int64_t)mm * 60 + ss) * 1000;
                if (first < 0) {
                    first = at;
                }
                if (at < first) {
                    at += 24LL * 3600 * 1000; /* past midnight */
                }
                emit_chat(x, mark == coach ? "coach" : "client", at - first + 5000,
                          mark + (mark == coach ? 10 : 11));
            }
        }
        line = nl ? nl + 1 : NULL;
    }
}

static int export_messages(PGconn *c, struct exporter *x, const char *aid, const char *start,
                           struct lg_err *err)
{
    const char *p[] = {aid, start};
    PGresult *r = NULL;
    int rc = db_exec(c, SQL_EX_MESSAGES, 2, p, &r, err);
    if (rc != 0) {
        return rc;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        emit_chat(x, PQgetvalue(r, i, 0), strtoll(PQgetvalue(r, i, 1), NULL, 10),
                  PQgetvalue(r, i, 2));
    }
    PQclear(r);
    return 0;
}

static int export_end(PGconn *c, struct exporter *x, const char *aid, PGresult *sess,
                      struct lg_err *err)
{
    if (PQgetisnull(sess, 0, 2)) {
        return 0;
    }
    int64_t end_ms = strtoll(PQgetvalue(sess, 0, 2), NULL, 10);
    emit(x, json_pack("{ss ss}", "who", "coach", "type", "end"), end_ms);
    const char *p[] = {aid};
    PGresult *r = NULL;
    int rc = db_exec(c, SQL_EX_RATING, 1, p, &r, err);
    if (rc == 0 && PQntuples(r) == 1) {
        json_t *o = json_pack("{ss ss si}", "who", "client", "type", "rate", "rating",
                              (int)strtol(PQgetvalue(r, 0, 0), NULL, 10));
        if (PQgetvalue(r, 0, 1)[0] != '\0') {
            json_object_set_new(o, "comment", json_string(PQgetvalue(r, 0, 1)));
        }
        long tip = strtol(PQgetvalue(r, 0, 2), NULL, 10);
        if (tip == 1 || tip == 3 || tip == 5) {
            json_object_set_new(o, "tip", json_integer(tip));
        }
        emit(x, o, end_ms + 8000);
    }
    PQclear(r);
    return rc;
}

int lg_fix_export(const char *conninfo, const char *session_id, FILE *out, struct lg_err *err)
{
    PGconn *c = db_open(conninfo, err);
    if (c == NULL) {
        return -EIO;
    }
    const char *p[] = {session_id};
    PGresult *sess = NULL;
    int rc = db_exec(c, SQL_EX_SESSION, 1, p, &sess, err);
    if (rc == 0 && PQntuples(sess) != 1) {
        fail(err, "no \"Session\" with id %s", session_id);
        rc = -ENOENT;
    }
    struct exporter x = {.out = out};
    if (rc == 0) {
        (void)fprintf(out, "# coach-loadgen recording exported from Session %s\n", session_id);
        rc = export_messages(c, &x, PQgetvalue(sess, 0, 0), PQgetvalue(sess, 0, 1), err);
    }
    if (rc == 0 && x.n == 0) {
        char *t = strdup(PQgetvalue(sess, 0, 3));
        if (t == NULL) {
            rc = -ENOMEM;
        } else {
            export_transcript(&x, t);
            free(t);
        }
    }
    if (rc == 0) {
        rc = export_end(c, &x, PQgetvalue(sess, 0, 0), sess, err);
    }
    if (rc == 0 && x.n == 0) {
        fail(err, "session %s has no messages to export", session_id);
        rc = -ENOENT;
    }
    PQclear(sess);
    PQfinish(c);
    return rc;
}
