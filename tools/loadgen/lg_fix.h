/*
 * lg_fix.h: coach-loadgen's fixtures and exports (libpq, blocking; used
 * before and after a run, never during one).
 *
 * Fixtures: rooms to load, one per line of a tab-separated file:
 *   <roomId> TAB <coach session token> TAB <client session token>
 * (the format bench/chat_bench reads too). lg_fix_setup creates them in a
 * database: per room a coach and a client "User", a "UserSession" each
 * (tokens: 32 bytes of libsodium randombytes, base64url) and an
 * "Appointment" starting now; every id it writes starts with LG_FIX_PREFIX,
 * so lg_fix_cleanup deletes exactly what coach-loadgen created (with the
 * "Session", "Message", "SessionRating" and gateway rows hanging off those
 * appointments). Every statement is parameterized.
 */
#ifndef COACH_LG_FIX_H
#define COACH_LG_FIX_H

#include <stddef.h>
#include <stdio.h>

#include "lg_rec.h"

#define LG_FIX_PREFIX    "clg"
#define LG_FIX_MAX_ROOMS 100000
#define LG_FIX_ID_MAX    128
#define LG_FIX_TOKEN_MAX 128

struct lg_room_fix {
    char room[LG_FIX_ID_MAX];
    char token[2][LG_FIX_TOKEN_MAX]; /* [LG_WHO_COACH], [LG_WHO_CLIENT] */
};

struct lg_fixtures {
    struct lg_room_fix *v;
    size_t n;
};

/* Read a fixtures file (at most LG_FIX_MAX_ROOMS lines). 0, or -EINVAL
 * with err naming file:line, -ENOMEM, -errno. */
int lg_fix_load(const char *path, struct lg_fixtures *out, struct lg_err *err);
void lg_fix_fini(struct lg_fixtures *f);

/* Create n rooms (1..LG_FIX_MAX_ROOMS) of duration_min minutes in the
 * database at conninfo, in one transaction, and write them to the file
 * at path. 0 or negative; err says why. */
int lg_fix_setup(const char *conninfo, size_t n, int duration_min, const char *path,
                 struct lg_err *err);

/* Delete every row coach-loadgen created (ids starting LG_FIX_PREFIX) and
 * what hangs off them, in one transaction. *rows: the rows deleted. */
int lg_fix_cleanup(const char *conninfo, long *rows, struct lg_err *err);

/* Write the session whose "Session".id is session_id as a recording (JSON
 * Lines) to out: its messages in seq order (from coach_message + "Message",
 * or else parsed from the transcript), a typing event before each, the end
 * by the coach and the client's rating when there is one. */
int lg_fix_export(const char *conninfo, const char *session_id, FILE *out, struct lg_err *err);

#endif
