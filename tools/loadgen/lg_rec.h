/*
 * lg_rec.h: recorded coaching sessions for coach-loadgen.
 *
 * A recording is JSON Lines, one event per line, in time order:
 *   {"at_ms": 1200, "who": "coach", "type": "typing", "state": true}
 *   {"at_ms": 4100, "who": "coach", "type": "chat", "text": "Hi Sam"}
 *   {"at_ms": 1199000, "who": "coach", "type": "end"}
 *   {"at_ms": 1210000, "who": "client", "type": "rate", "rating": 5,
 *    "comment": "thanks", "tip": 3}
 * at_ms: the offset from the session's start (0 .. LG_REC_MAX_AT_MS, never
 * decreasing); who: "coach" or "client"; "end" only from the coach, "rate"
 * only from the client. Blank lines and lines starting with '#' are
 * skipped. Unknown members are refused (a typo must not go unnoticed).
 *
 * Parsing is pure (a buffer in, a struct out); lg_rec_load reads a file.
 * Errors carry "file:line: what".
 */
#ifndef COACH_LG_REC_H
#define COACH_LG_REC_H

#include <stddef.h>
#include <stdint.h>

#define LG_REC_MAX_EVENTS  100000
#define LG_REC_MAX_LINE    16384
#define LG_REC_MAX_TEXT    4000
#define LG_REC_MAX_COMMENT 2000
#define LG_REC_MAX_AT_MS   (24LL * 3600 * 1000)
#define LG_REC_MAX_FILE    ((size_t)64 * 1024 * 1024)

enum lg_who { LG_WHO_COACH = 0, LG_WHO_CLIENT = 1 };
enum lg_ev_type { LG_EV_CHAT, LG_EV_TYPING, LG_EV_END, LG_EV_RATE };

struct lg_event {
    int64_t at_ms;
    enum lg_who who;
    enum lg_ev_type type;
    char *text;    /* chat: the text; rate: the comment or NULL. Owned. */
    int state;     /* typing */
    int rating;    /* rate: 1..5 */
    int tip;       /* rate: 0 (none), 1, 3 or 5 */
    unsigned line; /* its line in the file */
};

struct lg_rec {
    char *name; /* the file name, owned */
    struct lg_event *ev;
    size_t n;
    size_t n_chats;
    int64_t length_ms; /* the last event's offset */
};

struct lg_err {
    char msg[512];
};

/* Parse len bytes of buf (JSON Lines) named name. On success *out is a new
 * recording (free it with lg_rec_free) and 0 is returned; on error -EINVAL
 * (err says file:line: why) or -ENOMEM, and *out is untouched. An empty
 * recording (no events) is an error. */
int lg_rec_parse(const char *name, const char *buf, size_t len, struct lg_rec **out,
                 struct lg_err *err);

/* Read and parse the file at path (at most LG_REC_MAX_FILE bytes). */
int lg_rec_load(const char *path, struct lg_rec **out, struct lg_err *err);

void lg_rec_free(struct lg_rec *r);

const char *lg_who_name(enum lg_who who);

#endif
