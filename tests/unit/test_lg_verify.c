/*
 * test_lg_verify.c: coach-loadgen's delivery verifier (tools/loadgen/
 * lg_verify.h): a clean room, loss, duplicates, reordering, a resend's
 * original ack, a duplicate seq, the base, since, overflow.
 */
#include <criterion/criterion.h>
#include <errno.h>

#include "lg_verify.h"

static struct lg_verify_result run(struct lg_verify *v)
{
    struct lg_verify_result r;
    lg_verify_result(v, &r);
    return r;
}

Test(lg_verify, clean_room)
{
    struct lg_verify *v = lg_verify_new(2, 0, 1000);
    cr_assert_not_null(v);
    for (uint64_t s = 1; s <= 10; s++) {
        cr_assert_eq(lg_verify_ack(v, s, s), 0);
        cr_assert_eq(lg_verify_deliver(v, 0, s), 0);
        cr_assert_eq(lg_verify_deliver(v, 1, s), 0);
    }
    struct lg_verify_result r = run(v);
    cr_assert_eq(r.acked, 10);
    cr_assert_eq(r.expected, 20);
    cr_assert_eq(r.delivered, 20);
    cr_assert_eq(r.lost + r.duplicated + r.reordered + r.dup_acks + r.unacked, 0);
    cr_assert(lg_verify_ok(&r));
    cr_assert_eq(lg_verify_last(v, 1), 10);
    cr_assert_eq(lg_verify_pending(v, 1), 0);
    lg_verify_free(v);
}

Test(lg_verify, loss_is_counted_per_member)
{
    struct lg_verify *v = lg_verify_new(2, 0, 100);
    lg_verify_ack(v, 1, 1);
    lg_verify_ack(v, 2, 2);
    lg_verify_deliver(v, 0, 1);
    lg_verify_deliver(v, 0, 2);
    lg_verify_deliver(v, 1, 2); /* member 1 never got seq 1 */
    struct lg_verify_result r = run(v);
    cr_assert_eq(r.lost, 1);
    cr_assert_eq(lg_verify_pending(v, 1), 1);
    cr_assert_not(lg_verify_ok(&r));
    lg_verify_free(v);
}

Test(lg_verify, duplicate_delivery)
{
    struct lg_verify *v = lg_verify_new(1, 0, 100);
    lg_verify_ack(v, 1, 1);
    lg_verify_deliver(v, 0, 1);
    lg_verify_deliver(v, 0, 1);
    struct lg_verify_result r = run(v);
    cr_assert_eq(r.duplicated, 1);
    cr_assert_eq(r.reordered, 0, "a duplicate is not also a reordering");
    cr_assert_not(lg_verify_ok(&r));
    lg_verify_free(v);
}

Test(lg_verify, reordering)
{
    struct lg_verify *v = lg_verify_new(1, 0, 100);
    lg_verify_ack(v, 1, 1);
    lg_verify_ack(v, 2, 2);
    lg_verify_deliver(v, 0, 2);
    lg_verify_deliver(v, 0, 1);
    struct lg_verify_result r = run(v);
    cr_assert_eq(r.reordered, 1);
    cr_assert_eq(r.lost, 0);
    cr_assert_not(lg_verify_ok(&r));
    lg_verify_free(v);
}

Test(lg_verify, resend_gets_the_original_ack)
{
    struct lg_verify *v = lg_verify_new(1, 0, 100);
    lg_verify_ack(v, 1, 42);
    lg_verify_ack(v, 1, 42); /* the same message acked again: fine */
    lg_verify_deliver(v, 0, 1);
    struct lg_verify_result r = run(v);
    cr_assert_eq(r.dup_acks, 0);
    cr_assert_eq(r.acked, 1);
    cr_assert(lg_verify_ok(&r));
    lg_verify_ack(v, 1, 43); /* another message with the same seq */
    r = run(v);
    cr_assert_eq(r.dup_acks, 1);
    cr_assert_not(lg_verify_ok(&r));
    lg_verify_free(v);
}

Test(lg_verify, base_and_unacked)
{
    struct lg_verify *v = lg_verify_new(2, 100, 100);
    cr_assert_eq(lg_verify_last(v, 0), 100);
    lg_verify_deliver(v, 0, 99);  /* history before the run: ignored */
    lg_verify_ack(v, 100, 1);     /* at the base: ignored */
    lg_verify_deliver(v, 0, 101); /* committed, ack lost */
    lg_verify_deliver(v, 1, 101);
    struct lg_verify_result r = run(v);
    cr_assert_eq(r.acked, 0);
    cr_assert_eq(r.unacked, 1);
    cr_assert(lg_verify_ok(&r), "a delivered message whose ack was lost is not a failure");
    cr_assert_eq(lg_verify_last(v, 0), 101);
    lg_verify_free(v);
}

Test(lg_verify, overflow_and_bad_member)
{
    struct lg_verify *v = lg_verify_new(2, 0, 10);
    cr_assert_eq(lg_verify_ack(v, 10, 1), 0);
    cr_assert_eq(lg_verify_ack(v, 11, 1), 0);
    cr_assert_eq(lg_verify_deliver(v, 2, 1), -EINVAL);
    struct lg_verify_result r = run(v);
    cr_assert_eq(r.overflow, 1);
    cr_assert_not(lg_verify_ok(&r));
    lg_verify_free(v);
    cr_assert_null(lg_verify_new(0, 0, 10));
    cr_assert_null(lg_verify_new(LG_VERIFY_MAX_MEMBERS + 1, 0, 10));
    lg_verify_free(NULL);
}

Test(lg_verify, grows_to_many_seqs)
{
    struct lg_verify *v = lg_verify_new(2, 0, 1u << 20);
    for (uint64_t s = 1; s <= 100000; s++) {
        cr_assert_eq(lg_verify_ack(v, s, s), 0);
        lg_verify_deliver(v, 0, s);
        lg_verify_deliver(v, 1, s);
    }
    struct lg_verify_result r = run(v);
    cr_assert_eq(r.acked, 100000);
    cr_assert(lg_verify_ok(&r));
    lg_verify_free(v);
}
