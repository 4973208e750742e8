/*
 * pg_limit.c: the ceiling the database sets. Writes chat messages straight
 * into PostgreSQL the way the gateway's group commit does (one transaction
 * per batch: lock the batch's coach_room rows, insert the "Message" and
 * coach_message rows, move last_seq; sent as one libpq pipeline), with no
 * WebSocket, no JSON and no event loop, for a fixed time. The gateway's
 * durable throughput is reported as a share of this (bench/compare.sh
 * --targets gateway,pglimit).
 *
 *   pg_limit CONNINFO ROOMS BATCH SECONDS
 *
 * Uses the first ROOMS appointments of the database (coach-loadgen --setup
 * makes them), giving each a coach_room row and an active Session row for
 * its coach when it has none. Prints one line:
 *   batch=<B> messages=<n> seconds=<s> per_s=<r> commit_p50_ms=<x> commit_p99_ms=<y>
 * Exits 1 on any database error.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#define MAX_BATCH 4096
#define MAX_LAT   (1 << 20)

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A growing text buffer for array literals. */
struct buf {
    char *p;
    size_t len, cap;
};

static void put(struct buf *b, const char *s)
{
    size_t n = strlen(s);
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        if (b->p == NULL) {
            fprintf(stderr, "pg_limit: out of memory\n");
            exit(1);
        }
    }
    memcpy(b->p + b->len, s, n + 1);
    b->len += n;
}

/* Append element s to the array literal in b ("{" first, "}" last). */
static void elem(struct buf *b, const char *s)
{
    put(b, b->len > 1 ? ",\"" : "\"");
    put(b, s);
    put(b, "\"");
}

static void must(PGconn *c, PGresult *r, const char *what)
{
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_PIPELINE_SYNC) {
        fprintf(stderr, "pg_limit: %s: %s", what, PQerrorMessage(c));
        exit(1);
    }
}

static const char lock_sql[] = "SELECT appointment_id, last_seq FROM coach_room"
                               " WHERE appointment_id = ANY($1::text[])"
                               " ORDER BY appointment_id FOR UPDATE";
static const char insert_sql[] =
    "WITH b AS (SELECT * FROM unnest($1::text[], $2::text[], $3::int8[]) AS b(id, aid, n)),"
    " m AS (INSERT INTO \"Message\" (id, \"sessionId\", \"userId\", sender, content)"
    "  SELECT b.id, s.id, s.\"userId\", 'coach', 'a message of a realistic length, about'"
    "   || ' sixty bytes ' || b.n FROM b JOIN \"Session\" s ON s.\"appointmentId\" = b.aid),"
    " c AS (INSERT INTO coach_message (message_id, appointment_id, seq, user_id, client_msg_id)"
    "  SELECT b.id, b.aid, r.last_seq + row_number() OVER (PARTITION BY b.aid ORDER BY b.n),"
    "   s.\"userId\", b.id FROM b JOIN coach_room r ON r.appointment_id = b.aid"
    "   JOIN \"Session\" s ON s.\"appointmentId\" = b.aid)"
    " UPDATE coach_room r SET last_seq = r.last_seq + v.k"
    " FROM (SELECT aid, count(*) AS k FROM b GROUP BY aid) v WHERE r.appointment_id = v.aid";

static const char prepare_sql[] =
    "INSERT INTO coach_room (appointment_id) SELECT id FROM \"Appointment\" ON CONFLICT DO NOTHING;"
    "INSERT INTO \"Session\" (id, \"roomId\", \"appointmentId\", \"userId\", status)"
    " SELECT 'cpls' || substr(md5(a.id), 1, 21), a.\"roomId\", a.id, a.\"coachId\", 'active'"
    " FROM \"Appointment\" a ON CONFLICT DO NOTHING";

/* The ids of the first `want` appointments into *out; how many there are. */
static int prepare_rooms(PGconn *c, int want, char ***out)
{
    PGresult *r = PQexec(c, prepare_sql);
    must(c, r, "prepare");
    PQclear(r);
    char lim[16];
    snprintf(lim, sizeof lim, "%d", want);
    const char *v[] = {lim};
    r = PQexecParams(c, "SELECT id FROM \"Appointment\" ORDER BY id LIMIT $1::int4", 1, NULL, v,
                     NULL, NULL, 0);
    must(c, r, "rooms");
    int n = PQntuples(r);
    if (n == 0) {
        fprintf(stderr, "pg_limit: no appointments (run coach-loadgen --setup first)\n");
        exit(1);
    }
    *out = calloc((size_t)n, sizeof(char *));
    for (int i = 0; *out != NULL && i < n; i++) {
        (*out)[i] = strdup(PQgetvalue(r, i, 0));
    }
    PQclear(r);
    if (*out == NULL) {
        fprintf(stderr, "pg_limit: out of memory\n");
        exit(1);
    }
    return n;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* One batch of n messages over the rooms, in one pipelined transaction. */
static void one_batch(PGconn *c, char **room_ids, int rooms, int n, uint64_t *counter)
{
    struct buf ids = {0}, aids = {0}, nums = {0}, lock = {0};
    put(&ids, "{");
    put(&aids, "{");
    put(&nums, "{");
    put(&lock, "{");
    char tmp[64];
    for (int i = 0; i < n; i++) {
        uint64_t k = (*counter)++;
        snprintf(tmp, sizeof tmp, "cplm%020llu", (unsigned long long)k);
        elem(&ids, tmp);
        const char *aid = room_ids[k % (uint64_t)rooms];
        elem(&aids, aid);
        if (i < rooms) {
            elem(&lock, aid);
        }
        snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)k);
        elem(&nums, tmp);
    }
    put(&ids, "}");
    put(&aids, "}");
    put(&nums, "}");
    put(&lock, "}");
    const char *lv[] = {lock.p};
    const char *iv[] = {ids.p, aids.p, nums.p};
    PQsendQueryParams(c, "BEGIN", 0, NULL, NULL, NULL, NULL, 0);
    PQsendQueryParams(c, lock_sql, 1, NULL, lv, NULL, NULL, 0);
    PQsendQueryParams(c, insert_sql, 3, NULL, iv, NULL, NULL, 0);
    PQsendQueryParams(c, "COMMIT", 0, NULL, NULL, NULL, NULL, 0);
    PQpipelineSync(c);
    for (int i = 0; i < 4; i++) {
        PGresult *r;
        while ((r = PQgetResult(c)) != NULL) {
            must(c, r, "batch");
            PQclear(r);
        }
    }
    PGresult *r = PQgetResult(c);
    must(c, r, "sync");
    PQclear(r);
    free(ids.p);
    free(aids.p);
    free(nums.p);
    free(lock.p);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: pg_limit CONNINFO ROOMS BATCH SECONDS\n");
        return 2;
    }
    int rooms = atoi(argv[2]), batch = atoi(argv[3]), seconds = atoi(argv[4]);
    if (rooms < 1 || batch < 1 || batch > MAX_BATCH || seconds < 1 || seconds > 3600) {
        fprintf(stderr, "pg_limit: ROOMS >= 1, BATCH 1..%d, SECONDS 1..3600\n", MAX_BATCH);
        return 2;
    }
    PGconn *c = PQconnectdb(argv[1]);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "pg_limit: %s", PQerrorMessage(c));
        return 1;
    }
    char **room_ids = NULL;
    rooms = prepare_rooms(c, rooms, &room_ids);
    if (PQenterPipelineMode(c) != 1) {
        fprintf(stderr, "pg_limit: no pipeline mode: %s", PQerrorMessage(c));
        return 1;
    }
    int64_t *lat = malloc(sizeof(int64_t) * MAX_LAT);
    size_t n_lat = 0;
    uint64_t counter = 0;
    int64_t t0 = now_us(), end = t0 + (int64_t)seconds * 1000000, t = t0;
    while (t < end && lat != NULL) {
        one_batch(c, room_ids, rooms, batch, &counter);
        int64_t t1 = now_us();
        if (n_lat < MAX_LAT) {
            lat[n_lat++] = t1 - t;
        }
        t = t1;
    }
    double secs = (double)(t - t0) / 1e6;
    qsort(lat, n_lat, sizeof(*lat), cmp_i64);
    printf("batch=%d messages=%llu seconds=%.2f per_s=%.0f commit_p50_ms=%.2f commit_p99_ms=%.2f\n",
           batch, (unsigned long long)counter, secs, (double)counter / secs,
           n_lat ? (double)lat[n_lat / 2] / 1000.0 : 0.0,
           n_lat ? (double)lat[(size_t)((double)n_lat * 0.99)] / 1000.0 : 0.0);
    free(lat);
    for (int i = 0; i < rooms; i++) {
        free(room_ids[i]);
    }
    free(room_ids);
    PQfinish(c);
    return 0;
}
