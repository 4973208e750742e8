/*
 * test_lg_rec.c: coach-loadgen's recording parser (tools/loadgen/lg_rec.h):
 * every event type, comments and blank lines, and a clear file:line error
 * for each kind of malformed line; the shipped recordings parse.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lg_rec.h"

static struct lg_rec *parse_ok(const char *text)
{
    struct lg_rec *r = NULL;
    struct lg_err err = {{0}};
    int rc = lg_rec_parse("t.jsonl", text, strlen(text), &r, &err);
    cr_assert_eq(rc, 0, "%s", err.msg);
    return r;
}

/* Parse text, expect -EINVAL and an error starting with want. */
static void parse_bad(const char *text, const char *want)
{
    struct lg_rec *r = (struct lg_rec *)0x1;
    struct lg_err err = {{0}};
    int rc = lg_rec_parse("t.jsonl", text, strlen(text), &r, &err);
    cr_assert_eq(rc, -EINVAL, "accepted: %s", text);
    cr_assert_eq(r, (struct lg_rec *)0x1, "out touched on error");
    cr_assert(strncmp(err.msg, want, strlen(want)) == 0, "error \"%s\", want \"%s...\"", err.msg,
              want);
}

Test(lg_rec, every_event_type)
{
    struct lg_rec *r =
        parse_ok("# a comment\n"
                 "\n"
                 "{\"at_ms\":0,\"who\":\"coach\",\"type\":\"typing\",\"state\":true}\n"
                 "{\"at_ms\":1500,\"who\":\"coach\",\"type\":\"chat\",\"text\":\"Hi \\u00e9\"}\n"
                 "{\"at_ms\":1500,\"who\":\"client\",\"type\":\"chat\",\"text\":\"hello\"}\n"
                 "{\"at_ms\":9000,\"who\":\"coach\",\"type\":\"end\"}\n"
                 "{\"at_ms\":9500,\"who\":\"client\",\"type\":\"rate\",\"rating\":4,"
                 "\"comment\":\"good\",\"tip\":3}\n"
                 "{\"at_ms\":9600,\"who\":\"client\",\"type\":\"rate\",\"rating\":5}");
    cr_assert_eq(r->n, 6);
    cr_assert_eq(r->n_chats, 2);
    cr_assert_eq(r->length_ms, 9600);
    cr_assert_eq(r->ev[0].type, LG_EV_TYPING);
    cr_assert_eq(r->ev[0].state, 1);
    cr_assert_eq(r->ev[0].line, 3);
    cr_assert_str_eq(r->ev[1].text, "Hi \xc3\xa9");
    cr_assert_eq(r->ev[2].who, LG_WHO_CLIENT);
    cr_assert_eq(r->ev[3].type, LG_EV_END);
    cr_assert_eq(r->ev[4].rating, 4);
    cr_assert_eq(r->ev[4].tip, 3);
    cr_assert_str_eq(r->ev[4].text, "good");
    cr_assert_eq(r->ev[5].tip, 0);
    cr_assert_null(r->ev[5].text);
    lg_rec_free(r);
}

Test(lg_rec, malformed_lines_name_file_and_line)
{
    const char *ok = "{\"at_ms\":0,\"who\":\"coach\",\"type\":\"chat\",\"text\":\"hi\"}\n";
    char buf[512];
    struct {
        const char *line;
        const char *err;
    } cases[] = {
        {"not json", "t.jsonl:2: not a JSON object"},
        {"[1,2]", "t.jsonl:2: not a JSON object"},
        {"{\"at_ms\":-1,\"who\":\"coach\",\"type\":\"end\"}", "t.jsonl:2: \"at_ms\""},
        {"{\"at_ms\":1.5,\"who\":\"coach\",\"type\":\"end\"}", "t.jsonl:2: \"at_ms\""},
        {"{\"who\":\"coach\",\"type\":\"end\"}", "t.jsonl:2: \"at_ms\""},
        {"{\"at_ms\":1,\"who\":\"admin\",\"type\":\"end\"}", "t.jsonl:2: \"who\""},
        {"{\"at_ms\":1,\"who\":\"coach\",\"type\":\"shout\"}", "t.jsonl:2: \"type\""},
        {"{\"at_ms\":1,\"who\":\"coach\",\"type\":\"chat\"}", "t.jsonl:2: a chat needs"},
        {"{\"at_ms\":1,\"who\":\"coach\",\"type\":\"chat\",\"text\":\"\"}",
         "t.jsonl:2: a chat needs"},
        {"{\"at_ms\":1,\"who\":\"coach\",\"type\":\"chat\",\"text\":\"  \"}",
         "t.jsonl:2: a chat's"},
        {"{\"at_ms\":1,\"who\":\"coach\",\"type\":\"chat\",\"text\":7}", "t.jsonl:2: a chat needs"},
        {"{\"at_ms\":1,\"who\":\"coach\",\"type\":\"typing\"}", "t.jsonl:2: a typing event"},
        {"{\"at_ms\":1,\"who\":\"client\",\"type\":\"end\"}", "t.jsonl:2: only the coach"},
        {"{\"at_ms\":1,\"who\":\"coach\",\"type\":\"rate\",\"rating\":5}",
         "t.jsonl:2: only the client"},
        {"{\"at_ms\":1,\"who\":\"client\",\"type\":\"rate\",\"rating\":6}",
         "t.jsonl:2: \"rating\""},
        {"{\"at_ms\":1,\"who\":\"client\",\"type\":\"rate\",\"rating\":5,\"tip\":2}",
         "t.jsonl:2: \"tip\""},
        {"{\"at_ms\":1,\"who\":\"client\",\"type\":\"rate\",\"rating\":5,\"comment\":1}",
         "t.jsonl:2: \"comment\""},
        {"{\"at_ms\":1,\"who\":\"coach\",\"type\":\"end\",\"text\":\"x\"}",
         "t.jsonl:2: \"text\" does not belong"},
        {"{\"at_ms\":1,\"who\":\"coach\",\"type\":\"end\",\"colour\":1}",
         "t.jsonl:2: unknown member"},
        {"{\"at_ms\":1,\"at_ms\":2,\"who\":\"coach\",\"type\":\"end\"}", "t.jsonl:2: not a JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        (void)snprintf(buf, sizeof buf, "%s%s\n", ok, cases[i].line);
        parse_bad(buf, cases[i].err);
    }
}

Test(lg_rec, time_goes_forward)
{
    parse_bad("{\"at_ms\":10,\"who\":\"coach\",\"type\":\"end\"}\n"
              "# comment\n"
              "{\"at_ms\":9,\"who\":\"coach\",\"type\":\"end\"}\n",
              "t.jsonl:3: \"at_ms\" 9 goes back in time");
}

Test(lg_rec, empty_and_oversized)
{
    parse_bad("", "t.jsonl:0: no events");
    parse_bad("# only a comment\n\n", "t.jsonl:2: no events");
    size_t n = LG_REC_MAX_TEXT + 100;
    char *big = malloc(n + 100);
    cr_assert_not_null(big);
    int k = snprintf(big, n + 100, "{\"at_ms\":0,\"who\":\"coach\",\"type\":\"chat\",\"text\":\"");
    memset(big + k, 'a', LG_REC_MAX_TEXT + 1);
    (void)snprintf(big + k + LG_REC_MAX_TEXT + 1, 10, "\"}");
    parse_bad(big, "t.jsonl:1: a chat needs");
    free(big);
}

Test(lg_rec, load_reports_missing_file)
{
    struct lg_rec *r = NULL;
    struct lg_err err = {{0}};
    cr_assert_neq(lg_rec_load("/nonexistent/x.jsonl", &r, &err), 0);
    cr_assert(strstr(err.msg, "/nonexistent/x.jsonl") != NULL, "%s", err.msg);
}

/* The recordings shipped in tools/sessions parse, are about 20 minutes
 * long, and end with the coach's end and the client's rating. */
Test(lg_rec, shipped_recordings)
{
    /* NOLINTNEXTLINE(concurrency-mt-unsafe): Criterion runs each test in its own process */
    const char *src = getenv("COACH_SOURCE_DIR");
    cr_assert_not_null(src, "COACH_SOURCE_DIR is set by ctest");
    const char *names[] = {"breathing", "anxiety", "onboarding-followup"};
    for (size_t i = 0; i < 3; i++) {
        char path[1024];
        (void)snprintf(path, sizeof path, "%s/tools/sessions/%s.jsonl", src, names[i]);
        struct lg_rec *r = NULL;
        struct lg_err err = {{0}};
        cr_assert_eq(lg_rec_load(path, &r, &err), 0, "%s", err.msg);
        cr_assert(r->n >= 60 && r->n <= 120, "%s: %zu events", names[i], r->n);
        cr_assert(r->length_ms >= 18 * 60000LL && r->length_ms <= 22 * 60000LL, "%s", names[i]);
        cr_assert_eq(r->ev[r->n - 2].type, LG_EV_END);
        cr_assert_eq(r->ev[r->n - 1].type, LG_EV_RATE);
        lg_rec_free(r);
    }
}
