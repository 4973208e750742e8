/*
 * test_ai_response.c: ai_response_parse() returns the trimmed string at
 * choices[0].message.content and refuses every body that lacks a
 * non-empty one, leaving the output untouched.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ai.h"

static char *parse_ok(const char *body)
{
    char *s = NULL;
    int rc = ai_response_parse(body, strlen(body), &s);
    cr_assert_eq(rc, 0, "rc %d for %s", rc, body);
    cr_assert_not_null(s);
    return s;
}

Test(ai_response, openai_shaped_answer)
{
    const char *body =
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"m\","
        "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
        "\"Key themes: breathing.\\nNext steps: practise daily.\",\"refusal\":null},"
        "\"logprobs\":null,\"finish_reason\":\"stop\"}],"
        "\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":5,\"total_tokens\":15}}";
    char *s = parse_ok(body);
    cr_assert_str_eq(s, "Key themes: breathing.\nNext steps: practise daily.");
    free(s);
}

Test(ai_response, content_is_trimmed_and_unicode_kept)
{
    char *s = parse_ok(
        "{\"choices\":[{\"message\":{\"content\":\"\\n  R\\u00e9sum\\u00e9 \xf0\x9f\x98\x80"
        " \\t\\n\"}}]}");
    cr_assert_str_eq(s, "R\xc3\xa9sum\xc3\xa9 \xf0\x9f\x98\x80");
    free(s);
}

Test(ai_response, only_the_first_choice_counts)
{
    char *s = parse_ok("{\"choices\":[{\"message\":{\"content\":\"first\"}},"
                       "{\"message\":{\"content\":\"second\"}}]}");
    cr_assert_str_eq(s, "first");
    free(s);
    char *out = (char *)0x1;
    const char *b = "{\"choices\":[{\"message\":{\"content\":null}},"
                    "{\"message\":{\"content\":\"second\"}}]}";
    cr_assert_eq(ai_response_parse(b, strlen(b), &out), AI_E_BADRESP);
}

Test(ai_response, length_is_respected)
{
    const char *b = "{\"choices\":[{\"message\":{\"content\":\"x\"}}]}GARBAGE";
    char *s = NULL;
    cr_assert_eq(ai_response_parse(b, strlen(b) - strlen("GARBAGE"), &s), 0);
    cr_assert_str_eq(s, "x");
    free(s);
    char *out = (char *)0x1;
    cr_assert_eq(ai_response_parse(b, strlen(b), &out), AI_E_BADRESP, "trailing garbage");
    cr_assert_eq(ai_response_parse(b, 10, &out), AI_E_BADRESP, "truncated");
    cr_assert_eq(out, (char *)0x1);
}

Test(ai_response, unusable_bodies)
{
    const char *bad[] = {
        "",
        "   ",
        "not json",
        "<html>502 Bad Gateway</html>",
        "null",
        "[]",
        "\"content\"",
        "{}",
        "{\"choices\":null}",
        "{\"choices\":{}}",
        "{\"choices\":[]}",
        "{\"choices\":[null]}",
        "{\"choices\":[{}]}",
        "{\"choices\":[{\"message\":null}]}",
        "{\"choices\":[{\"message\":\"hi\"}]}",
        "{\"choices\":[{\"message\":{}}]}",
        "{\"choices\":[{\"message\":{\"content\":null,\"refusal\":\"no\"}}]}",
        "{\"choices\":[{\"message\":{\"content\":42}}]}",
        "{\"choices\":[{\"message\":{\"content\":[{\"type\":\"text\",\"text\":\"x\"}]}}]}",
        "{\"choices\":[{\"message\":{\"content\":\"\"}}]}",
        "{\"choices\":[{\"message\":{\"content\":\" \\n\\t \"}}]}",
        "{\"choices\":[{\"message\":{\"content\":\"a\\u0000b\"}}]}",
        "{\"choices\":[{\"message\":{\"content\":\"x\"}}]",
        "{\"error\":{\"message\":\"quota\",\"type\":\"insufficient_quota\"}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *out = (char *)0x1;
        cr_assert_eq(ai_response_parse(bad[i], strlen(bad[i]), &out), AI_E_BADRESP, "%s", bad[i]);
        cr_assert_eq(out, (char *)0x1, "untouched");
    }
    char *out = (char *)0x1;
    cr_assert_eq(ai_response_parse(NULL, 0, &out), AI_E_BADRESP);
    const char nul[] = "{\"choices\":[{\"message\":{\"content\":\"x\"}}]}\0";
    cr_assert_eq(ai_response_parse(nul, sizeof(nul) - 1, &out), AI_E_BADRESP, "embedded NUL");
}
