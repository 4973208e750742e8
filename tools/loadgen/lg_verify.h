/*
 * lg_verify.h: the delivery verifier of one room for coach-loadgen.
 *
 * It learns which seqs were acknowledged (lg_verify_ack) and which seq each
 * member connection received (lg_verify_deliver, from `message` frames and
 * from `joined.history` after a rejoin), and tells at the end whether every
 * acknowledged message reached every member exactly once and in seq order.
 * Seqs at or below the base (the room's lastSeq before the run) are ignored.
 * Pure: no I/O, no clock. One owner. Memory grows with the highest seq seen,
 * up to max_seqs; seqs beyond it are counted as overflow (a failure).
 */
#ifndef COACH_LG_VERIFY_H
#define COACH_LG_VERIFY_H

#include <stddef.h>
#include <stdint.h>

struct lg_verify;

struct lg_verify_result {
    uint64_t acked;      /* distinct acknowledged seqs */
    uint64_t dup_acks;   /* a second ack naming an acked seq for another message */
    uint64_t expected;   /* acked x members: the deliveries owed */
    uint64_t delivered;  /* deliveries of acked seqs (duplicates included) */
    uint64_t lost;       /* (acked seq, member) pairs never delivered */
    uint64_t duplicated; /* deliveries beyond the first of one seq to one member */
    uint64_t reordered;  /* deliveries whose seq was below one already received */
    uint64_t unacked;    /* distinct seqs delivered but never acked (e.g. lost acks) */
    uint64_t overflow;   /* seqs beyond max_seqs: not verified */
};

/* A verifier for n_members connections (1..LG_VERIFY_MAX_MEMBERS) and seqs
 * base+1 .. base+max_seqs. NULL when out of memory or arguments are bad. */
#define LG_VERIFY_MAX_MEMBERS 16
struct lg_verify *lg_verify_new(unsigned n_members, uint64_t base, uint64_t max_seqs);
void lg_verify_free(struct lg_verify *v);

/* seq was acknowledged to one of our connections; key identifies the
 * message (e.g. a hash of its clientMsgId): a second ack of one seq with
 * the same key is a resend's original ack, with another key a duplicate
 * seq. Returns 0, or -ENOMEM. */
int lg_verify_ack(struct lg_verify *v, uint64_t seq, uint64_t key);

/* member received seq. Returns 0, -EINVAL for a bad member, -ENOMEM. */
int lg_verify_deliver(struct lg_verify *v, unsigned member, uint64_t seq);

/* The highest seq member has received (the base if none): its `since`. */
uint64_t lg_verify_last(const struct lg_verify *v, unsigned member);

/* How many acknowledged seqs member has not received yet. */
uint64_t lg_verify_pending(const struct lg_verify *v, unsigned member);

/* Tally everything into *out (overwritten). */
void lg_verify_result(const struct lg_verify *v, struct lg_verify_result *out);

/* Add a's counts into acc. */
void lg_verify_add(struct lg_verify_result *acc, const struct lg_verify_result *a);

/* 1 when r shows no loss, duplicate, reordering, duplicate ack or overflow. */
int lg_verify_ok(const struct lg_verify_result *r);

#endif
