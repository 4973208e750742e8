/*
 * lg_verify.c: the per-room delivery verifier (see lg_verify.h).
 *
 * DESIGN: one slot per seq above the base, in an array that doubles as the
 * highest seq grows (never past max_seqs): the ack key (0: not acked) and
 * one delivery count per member (saturating at 255). Each member also keeps
 * the highest seq it received, which detects reordering as it happens.
 */
#include "lg_verify.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct lg_slot {
    uint64_t key; /* 0: not acked */
    unsigned char n[LG_VERIFY_MAX_MEMBERS];
};

struct lg_verify {
    unsigned n_members;
    uint64_t base;
    uint64_t max_seqs;
    struct lg_slot *slots; /* [cap], slot i is seq base + 1 + i */
    uint64_t cap;
    uint64_t used; /* highest slot index touched + 1 */
    uint64_t last[LG_VERIFY_MAX_MEMBERS];
    uint64_t dup_acks, reordered, overflow;
};

struct lg_verify *lg_verify_new(unsigned n_members, uint64_t base, uint64_t max_seqs)
{
    if (n_members == 0 || n_members > LG_VERIFY_MAX_MEMBERS || max_seqs == 0) {
        return NULL;
    }
    struct lg_verify *v = calloc(1, sizeof *v);
    if (v == NULL) {
        return NULL;
    }
    v->n_members = n_members;
    v->base = base;
    v->max_seqs = max_seqs;
    for (unsigned m = 0; m < n_members; m++) {
        v->last[m] = base;
    }
    return v;
}

void lg_verify_free(struct lg_verify *v)
{
    if (v == NULL) {
        return;
    }
    free(v->slots);
    free(v);
}

/* The slot of seq, growing the array; NULL for seq at or below the base,
 * beyond max_seqs (counted), or without memory (*rc = -ENOMEM). */
static struct lg_slot *slot_for(struct lg_verify *v, uint64_t seq, int *rc)
{
    *rc = 0;
    if (seq <= v->base) {
        return NULL;
    }
    uint64_t i = seq - v->base - 1;
    if (i >= v->max_seqs) {
        v->overflow++;
        return NULL;
    }
    if (i >= v->cap) {
        uint64_t ncap = v->cap ? v->cap : 64;
        while (ncap <= i) {
            ncap *= 2;
        }
        if (ncap > v->max_seqs) {
            ncap = v->max_seqs;
        }
        struct lg_slot *ns = realloc(v->slots, (size_t)ncap * sizeof *ns);
        if (ns == NULL) {
            *rc = -ENOMEM;
            return NULL;
        }
        memset(ns + v->cap, 0, (size_t)(ncap - v->cap) * sizeof *ns);
        v->slots = ns;
        v->cap = ncap;
    }
    if (i + 1 > v->used) {
        v->used = i + 1;
    }
    return &v->slots[i];
}

int lg_verify_ack(struct lg_verify *v, uint64_t seq, uint64_t key)
{
    int rc;
    if (key == 0) {
        key = 1;
    }
    struct lg_slot *s = slot_for(v, seq, &rc);
    if (s == NULL) {
        return rc;
    }
    if (s->key != 0 && s->key != key) {
        v->dup_acks++;
    }
    if (s->key == 0) {
        s->key = key;
    }
    return 0;
}

int lg_verify_deliver(struct lg_verify *v, unsigned member, uint64_t seq)
{
    int rc;
    if (member >= v->n_members) {
        return -EINVAL;
    }
    struct lg_slot *s = slot_for(v, seq, &rc);
    if (s == NULL) {
        return rc;
    }
    if (seq < v->last[member] && s->n[member] == 0) {
        v->reordered++;
    }
    if (s->n[member] < 255) {
        s->n[member]++;
    }
    if (seq > v->last[member]) {
        v->last[member] = seq;
    }
    return 0;
}

uint64_t lg_verify_last(const struct lg_verify *v, unsigned member)
{
    return member < v->n_members ? v->last[member] : v->base;
}

uint64_t lg_verify_pending(const struct lg_verify *v, unsigned member)
{
    uint64_t n = 0;
    if (member >= v->n_members) {
        return 0;
    }
    for (uint64_t i = 0; i < v->used; i++) {
        if (v->slots[i].key != 0 && v->slots[i].n[member] == 0) {
            n++;
        }
    }
    return n;
}

void lg_verify_result(const struct lg_verify *v, struct lg_verify_result *out)
{
    memset(out, 0, sizeof *out);
    out->dup_acks = v->dup_acks;
    out->reordered = v->reordered;
    out->overflow = v->overflow;
    for (uint64_t i = 0; i < v->used; i++) {
        const struct lg_slot *s = &v->slots[i];
        int any = 0;
        for (unsigned m = 0; m < v->n_members; m++) {
            if (s->n[m] > 0) {
                any = 1;
            }
            if (s->n[m] > 1) {
                out->duplicated += s->n[m] - 1u;
            }
            if (s->key != 0) {
                out->delivered += s->n[m];
                if (s->n[m] == 0) {
                    out->lost++;
                }
            }
        }
        if (s->key != 0) {
            out->acked++;
        } else if (any) {
            out->unacked++;
        }
    }
    out->expected = out->acked * v->n_members;
}

void lg_verify_add(struct lg_verify_result *acc, const struct lg_verify_result *a)
{
    acc->acked += a->acked;
    acc->dup_acks += a->dup_acks;
    acc->expected += a->expected;
    acc->delivered += a->delivered;
    acc->lost += a->lost;
    acc->duplicated += a->duplicated;
    acc->reordered += a->reordered;
    acc->unacked += a->unacked;
    acc->overflow += a->overflow;
}

int lg_verify_ok(const struct lg_verify_result *r)
{
    return r->lost == 0 && r->duplicated == 0 && r->reordered == 0 && r->dup_acks == 0 &&
           r->overflow == 0;
}
