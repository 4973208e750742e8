/*
 * lg_scan.h: a quick look at the frames that make most of a load run's
 * traffic (`ack` and `message`) without building a JSON tree.
 *
 * A strict scanner walks the frame's top-level members, reads the few it
 * needs (type, seq, clientMsgId, from.role) and skips the others; anything
 * it does not fully understand (another type, an escape in a value it
 * reads, a malformed frame) makes it give up, and the caller parses the
 * frame with jansson as before. So it can only be faster, never read a
 * frame differently.
 */
#ifndef COACH_LG_SCAN_H
#define COACH_LG_SCAN_H

#include <stddef.h>
#include <stdint.h>

#define LG_SCAN_CMID_MAX 64

enum lg_scan_type { LG_SCAN_ACK = 1, LG_SCAN_MESSAGE };
enum lg_scan_role { LG_SCAN_ROLE_NONE = 0, LG_SCAN_ROLE_COACH, LG_SCAN_ROLE_CLIENT, LG_SCAN_ROLE_OTHER };

struct lg_scan {
    enum lg_scan_type type;
    int64_t seq;                    /* 0 when absent */
    char cmid[LG_SCAN_CMID_MAX];    /* "" when absent or null */
    enum lg_scan_role from_role;    /* message: from.role */
};

/* 0 with *out filled when s[0..len) is a whole JSON object whose "type" is
 * "ack" or "message"; -1 otherwise (parse it the slow way). */
int lg_scan_frame(const char *s, size_t len, struct lg_scan *out);

#endif
