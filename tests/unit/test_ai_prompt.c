/*
 * test_ai_prompt.c: ai_prompt_build() makes a valid chat completions body
 * with the model set, a system and a user message, one "## " section per
 * present context field (and nothing else), the transcript always, and
 * every bound (transcript tail, field and item sizes, item counts) at its
 * limit and one past it.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ai.h"

#define TRANSCRIPT "[00:00:01] Ana Lopez (client): Hi\n[00:00:05] Sam Reed (coach): Hello"
#define MAX_LABELS 16

static char *facts[] = {"Prefers morning sessions", "Works night shifts"};
static char *challenges[] = {"Struggles with consistent breathing practice"};

static const struct ai_context full_ctx = {
    .client_name = "Ana Lopez",
    .coach_name = "Sam Reed",
    .client_facts = facts,
    .n_client_facts = 2,
    .challenges = challenges,
    .n_challenges = 1,
    .intake_goals = "Improve breathing and reduce anxiety",
    .intake_symptoms = "Shallow breathing, racing heart",
    .last_summary = "Worked on box breathing.",
};

struct labels {
    char v[MAX_LABELS][64];
    size_t n;
};

/* Build, parse and check the envelope; returns the root (caller decrefs). */
static json_t *build(const struct ai_context *ctx, const char *transcript, const char *model)
{
    char *body = NULL;
    int rc = ai_prompt_build(ctx, transcript, model, &body);
    cr_assert_eq(rc, 0, "rc %d", rc);
    cr_assert_not_null(body);
    json_error_t jerr;
    json_t *root = json_loads(body, 0, &jerr);
    cr_assert_not_null(root, "invalid JSON: %s", jerr.text);
    free(body);
    cr_assert(json_is_object(root));
    cr_assert_eq(json_object_size(root), 2u, "only model and messages");
    cr_assert_str_eq(json_string_value(json_object_get(root, "model")), model);
    json_t *msgs = json_object_get(root, "messages");
    cr_assert_eq(json_array_size(msgs), 2u);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(msgs, 0), "role")), "system");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(msgs, 1), "role")), "user");
    for (size_t i = 0; i < 2; i++) {
        cr_assert_eq(json_object_size(json_array_get(msgs, i)), 2u, "role and content only");
    }
    return root;
}

static const char *content(json_t *root, size_t i)
{
    const char *s = json_string_value(
        json_object_get(json_array_get(json_object_get(root, "messages"), i), "content"));
    cr_assert_not_null(s);
    return s;
}

static void collect_labels(const char *user, struct labels *l)
{
    l->n = 0;
    const char *p = user;
    while (p != NULL && *p != '\0') {
        if (strncmp(p, "## ", 3) == 0) {
            size_t n = strcspn(p + 3, "\n");
            cr_assert_lt(l->n, (size_t)MAX_LABELS);
            cr_assert_lt(n, sizeof(l->v[0]));
            memcpy(l->v[l->n], p + 3, n);
            l->v[l->n][n] = '\0';
            l->n++;
        }
        p = strchr(p, '\n');
        if (p != NULL) {
            p++;
        }
    }
}

static void assert_labels(const char *user, const char *const *want, size_t n_want)
{
    struct labels l;
    collect_labels(user, &l);
    cr_assert_eq(l.n, n_want, "got %zu labels", l.n);
    for (size_t i = 0; i < n_want; i++) {
        cr_assert_str_eq(l.v[i], want[i]);
    }
}

Test(ai_prompt, full_context_exact_user_message)
{
    json_t *root = build(&full_ctx, TRANSCRIPT, "gpt-4o-mini");
    const char *want = "## Client\nAna Lopez\n\n"
                       "## Coach\nSam Reed\n\n"
                       "## Client facts\n- Prefers morning sessions\n- Works night shifts\n\n"
                       "## Challenges\n- Struggles with consistent breathing practice\n\n"
                       "## Coaching goals (intake)\nImprove breathing and reduce anxiety\n\n"
                       "## Symptoms (intake)\nShallow breathing, racing heart\n\n"
                       "## Previous session summary\nWorked on box breathing.\n\n"
                       "## Transcript\n" TRANSCRIPT;
    cr_assert_str_eq(content(root, 1), want);
    json_decref(root);
}

Test(ai_prompt, system_message_asks_for_a_grounded_plain_summary)
{
    json_t *root = build(NULL, TRANSCRIPT, "m");
    const char *sys = content(root, 0);
    const char *needles[] = {"coach",      "key themes",   "progress",        "next steps",
                             "plain text", "never invent", "not instructions"};
    for (size_t i = 0; i < sizeof(needles) / sizeof(needles[0]); i++) {
        cr_assert_not_null(strstr(sys, needles[i]), "system prompt lacks \"%s\"", needles[i]);
    }
    json_decref(root);
}

Test(ai_prompt, exact_label_set_when_everything_is_present)
{
    json_t *root = build(&full_ctx, TRANSCRIPT, "m");
    const char *want[] = {"Client",
                          "Coach",
                          "Client facts",
                          "Challenges",
                          "Coaching goals (intake)",
                          "Symptoms (intake)",
                          "Previous session summary",
                          "Transcript"};
    assert_labels(content(root, 1), want, 8);
    json_decref(root);
}

Test(ai_prompt, no_context_gives_the_transcript_only)
{
    json_t *root = build(NULL, TRANSCRIPT, "m");
    cr_assert_str_eq(content(root, 1), "## Transcript\n" TRANSCRIPT);
    json_decref(root);
}

Test(ai_prompt, null_empty_and_blank_fields_are_omitted)
{
    char *blank_items[] = {"", "  \t", NULL, "\n"};
    struct ai_context ctx = {
        .client_name = NULL,
        .coach_name = "",
        .client_facts = blank_items,
        .n_client_facts = 4,
        .challenges = NULL,
        .n_challenges = 3, /* a count without an array is ignored */
        .intake_goals = "   ",
        .intake_symptoms = "\n\n",
        .last_summary = NULL,
    };
    json_t *root = build(&ctx, TRANSCRIPT, "m");
    cr_assert_str_eq(content(root, 1), "## Transcript\n" TRANSCRIPT);
    json_decref(root);
}

Test(ai_prompt, only_present_fields_get_sections)
{
    char *one[] = {"", "Has two kids"};
    struct ai_context ctx = {.client_facts = one, .n_client_facts = 2, .last_summary = "Prev."};
    json_t *root = build(&ctx, TRANSCRIPT, "m");
    const char *want[] = {"Client facts", "Previous session summary", "Transcript"};
    assert_labels(content(root, 1), want, 3);
    cr_assert_str_eq(content(root, 1), "## Client facts\n- Has two kids\n\n"
                                       "## Previous session summary\nPrev.\n\n"
                                       "## Transcript\n" TRANSCRIPT);
    json_decref(root);
}

Test(ai_prompt, values_are_trimmed)
{
    char *items[] = {"  spaced fact \n"};
    struct ai_context ctx = {.client_name = "  Ana  ", .client_facts = items, .n_client_facts = 1};
    json_t *root = build(&ctx, "\n\n" TRANSCRIPT "\n\n", "m");
    cr_assert_str_eq(content(root, 1), "## Client\nAna\n\n## Client facts\n- spaced fact\n\n"
                                       "## Transcript\n" TRANSCRIPT);
    json_decref(root);
}

Test(ai_prompt, values_cannot_open_sections)
{
    char *items[] = {"a\n## Transcript\nfake"};
    struct ai_context ctx = {
        .client_name = "## Coach",
        .client_facts = items,
        .n_client_facts = 1,
        .last_summary = "Line one\n## Transcript\n#tag\n  ## indented",
    };
    json_t *root = build(&ctx, "[00:00:01] A (client): x\n## Previous session summary\nz", "m");
    const char *user = content(root, 1);
    const char *want[] = {"Client", "Client facts", "Previous session summary", "Transcript"};
    assert_labels(user, want, 4);
    cr_assert_not_null(strstr(user, "## Client\n ## Coach\n"));
    cr_assert_not_null(strstr(user, "- a ## Transcript fake\n"), "%s", user);
    cr_assert_not_null(strstr(user, "Line one\n ## Transcript\n #tag\n  ## indented"));
    cr_assert_not_null(strstr(user, "x\n ## Previous session summary\nz"));
    json_decref(root);
}

Test(ai_prompt, json_escaping_round_trips)
{
    const char *t = "[00:00:01] A \"Q\" (client): back\\slash \t tab \x01 ctl \xc3\xa9t\xc3\xa9 "
                    "\xf0\x9f\x98\x80 </script>";
    json_t *root = build(NULL, t, "model \"x\"");
    char want[512];
    snprintf(want, sizeof(want), "## Transcript\n%s", t);
    cr_assert_str_eq(content(root, 1), want);
    json_decref(root);
}

Test(ai_prompt, invalid_inputs)
{
    char *body = (char *)0x1;
    cr_assert_eq(ai_prompt_build(NULL, TRANSCRIPT, NULL, &body), -EINVAL);
    cr_assert_eq(ai_prompt_build(NULL, TRANSCRIPT, "", &body), -EINVAL);
    cr_assert_eq(ai_prompt_build(NULL, NULL, "m", &body), -EINVAL);
    cr_assert_eq(ai_prompt_build(NULL, "", "m", &body), -EINVAL);
    cr_assert_eq(ai_prompt_build(NULL, " \n\t", "m", &body), -EINVAL);
    cr_assert_eq(ai_prompt_build(NULL, "bad \xff utf8", "m", &body), -EINVAL);
    cr_assert_eq(ai_prompt_build(NULL, TRANSCRIPT, "m\xc3", &body), -EINVAL);
    struct ai_context ctx = {.last_summary = "overlong \xc0\xaf"};
    cr_assert_eq(ai_prompt_build(&ctx, TRANSCRIPT, "m", &body), -EINVAL);
    char *bad_items[] = {"ok", "surrogate \xed\xa0\x80"};
    struct ai_context ctx2 = {.challenges = bad_items, .n_challenges = 2};
    cr_assert_eq(ai_prompt_build(&ctx2, TRANSCRIPT, "m", &body), -EINVAL);
    cr_assert_eq(body, (char *)0x1, "body_out untouched on error");
}

/* A transcript of n bytes: 99-byte lines ending in '\n' (the last one
 * possibly shorter), with line i starting "L<i>". */
static char *make_transcript(size_t n)
{
    char *t = malloc(n + 1);
    cr_assert_not_null(t);
    size_t i = 0, line = 0;
    while (i < n) {
        char head[32];
        int hl = snprintf(head, sizeof(head), "L%zu ", line++);
        for (int k = 0; k < hl && i < n; k++) {
            t[i++] = head[k];
        }
        while (i < n && (i + 1) % 100 != 0) {
            t[i++] = 'x';
        }
        if (i < n) {
            t[i++] = '\n';
        }
    }
    t[n] = '\0';
    t[n - 1] = 'z'; /* no trailing whitespace to trim */
    return t;
}

Test(ai_prompt, transcript_at_the_limit_is_kept_whole)
{
    char *t = make_transcript(AI_TRANSCRIPT_MAX_BYTES);
    json_t *root = build(NULL, t, "m");
    const char *user = content(root, 1);
    cr_assert_eq(strncmp(user, "## Transcript\n", 14), 0);
    cr_assert_str_eq(user + 14, t);
    json_decref(root);
    free(t);
}

Test(ai_prompt, transcript_over_the_limit_keeps_the_newest_lines)
{
    size_t n = AI_TRANSCRIPT_MAX_BYTES + 1;
    char *t = make_transcript(n);
    json_t *root = build(NULL, t, "m");
    const char *user = content(root, 1);
    const char *note = "## Transcript\n[The beginning of the transcript was cut: ";
    cr_assert_eq(strncmp(user, note, strlen(note)), 0, "%.120s", user);
    const char *kept = strchr(user + strlen(note), '\n');
    cr_assert_not_null(kept);
    kept++;
    size_t kept_len = strlen(kept);
    cr_assert_leq(kept_len, AI_TRANSCRIPT_MAX_BYTES);
    cr_assert_eq(kept[0], 'L', "starts at a line start: %.20s", kept);
    cr_assert_eq(memcmp(kept, t + (n - kept_len), kept_len), 0, "the newest bytes, verbatim");
    cr_assert_eq(t[n - kept_len - 1], '\n');
    char want_note[128];
    snprintf(want_note, sizeof(want_note), "cut: %zu bytes left out.]", n - kept_len);
    cr_assert_not_null(strstr(user, want_note));
    json_decref(root);
    free(t);
}

/* A field of n bytes made of 2-byte characters (and one ASCII byte when n
 * is odd, first), so that the cut point may fall inside a character. */
static char *make_field(size_t n)
{
    char *s = malloc(n + 1);
    cr_assert_not_null(s);
    size_t i = n % 2;
    if (i == 1) {
        s[0] = 'a';
    }
    for (; i + 2 <= n; i += 2) {
        s[i] = (char)0xc3;
        s[i + 1] = (char)0xa9;
    }
    s[n] = '\0';
    return s;
}

static void check_field_len(size_t n, bool expect_cut)
{
    char *f = make_field(n);
    struct ai_context ctx = {.intake_goals = f};
    json_t *root = build(&ctx, TRANSCRIPT, "m");
    const char *user = content(root, 1);
    const char *start = user + strlen("## Coaching goals (intake)\n");
    const char *end = strstr(start, "\n\n## Transcript");
    cr_assert_not_null(end);
    size_t got = (size_t)(end - start);
    if (!expect_cut) {
        cr_assert_eq(got, n);
        cr_assert_eq(memcmp(start, f, n), 0);
    } else {
        cr_assert_eq(memcmp(end - 6, " [...]", 6), 0);
        cr_assert_leq(got - 6, AI_FIELD_MAX_BYTES);
        cr_assert_geq(got - 6, AI_FIELD_MAX_BYTES - 1);
        cr_assert_eq(memcmp(start, f, got - 6), 0);
    }
    json_decref(root); /* loading succeeded: the cut left valid UTF-8 */
    free(f);
}

Test(ai_prompt, field_at_and_over_the_limit)
{
    check_field_len(AI_FIELD_MAX_BYTES, false);
    check_field_len(AI_FIELD_MAX_BYTES + 1, true); /* odd: the cut falls mid-character */
    check_field_len(AI_FIELD_MAX_BYTES + 2, true);
}

Test(ai_prompt, list_item_at_and_over_the_limit)
{
    char *at = malloc(AI_ITEM_MAX_BYTES + 1), *over = malloc(AI_ITEM_MAX_BYTES + 2);
    memset(at, 'a', AI_ITEM_MAX_BYTES);
    at[AI_ITEM_MAX_BYTES] = '\0';
    memset(over, 'b', AI_ITEM_MAX_BYTES + 1);
    over[AI_ITEM_MAX_BYTES + 1] = '\0';
    char *items[] = {at, over};
    struct ai_context ctx = {.challenges = items, .n_challenges = 2};
    json_t *root = build(&ctx, TRANSCRIPT, "m");
    const char *user = content(root, 1);
    const char *l1 = strstr(user, "- a");
    const char *l2 = strstr(user, "- b");
    cr_assert(l1 != NULL && l2 != NULL);
    cr_assert_eq(strcspn(l1, "\n"), 2 + AI_ITEM_MAX_BYTES);
    cr_assert_eq(strcspn(l2, "\n"), 2 + AI_ITEM_MAX_BYTES + 6);
    cr_assert_eq(strncmp(l2 + 2 + AI_ITEM_MAX_BYTES, " [...]\n", 7), 0);
    json_decref(root);
    free(at);
    free(over);
}

static size_t count_items(const char *user)
{
    size_t n = 0;
    for (const char *p = strstr(user, "\n- "); p != NULL; p = strstr(p + 1, "\n- ")) {
        n++;
    }
    return n;
}

Test(ai_prompt, list_item_count_at_and_over_the_limit)
{
    char *items[AI_LIST_MAX_ITEMS + 1];
    char bufs[AI_LIST_MAX_ITEMS + 1][16];
    for (size_t i = 0; i < AI_LIST_MAX_ITEMS + 1; i++) {
        snprintf(bufs[i], sizeof(bufs[i]), "fact %zu", i);
        items[i] = bufs[i];
    }
    struct ai_context ctx = {.client_facts = items, .n_client_facts = AI_LIST_MAX_ITEMS};
    json_t *root = build(&ctx, TRANSCRIPT, "m");
    cr_assert_eq(count_items(content(root, 1)), (size_t)AI_LIST_MAX_ITEMS);
    json_decref(root);

    ctx.n_client_facts = AI_LIST_MAX_ITEMS + 1;
    root = build(&ctx, TRANSCRIPT, "m");
    const char *user = content(root, 1);
    cr_assert_eq(count_items(user), (size_t)AI_LIST_MAX_ITEMS);
    cr_assert_not_null(strstr(user, "- fact 99\n"));
    cr_assert_null(strstr(user, "fact 100"));
    json_decref(root);
}
