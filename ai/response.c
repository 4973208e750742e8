/*
 * response.c: reading the endpoint's answers: ai_response_parse() takes
 * the summary out of a chat completions response, ai__error_code_name()
 * takes the (sanitized) error code name out of an error response. jansson
 * stays inside this file.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ai.h"
#include "ai_int.h"

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int ai_response_parse(const char *body, size_t len, char **summary_out)
{
    if (body == NULL) {
        return AI_E_BADRESP;
    }
    json_error_t jerr;
    json_t *root = json_loadb(body, len, 0, &jerr);
    if (root == NULL) {
        return json_error_code(&jerr) == json_error_out_of_memory ? -ENOMEM : AI_E_BADRESP;
    }
    json_t *choices = json_object_get(root, "choices");
    json_t *msg = json_object_get(json_array_get(choices, 0), "message");
    json_t *content = json_object_get(msg, "content");
    int rc = AI_E_BADRESP;
    if (json_is_string(content)) {
        const char *s = json_string_value(content);
        size_t a = 0, b = json_string_length(content);
        while (a < b && is_space(s[a])) {
            a++;
        }
        while (b > a && is_space(s[b - 1])) {
            b--;
        }
        if (b > a) {
            char *out = malloc(b - a + 1);
            if (out == NULL) {
                rc = -ENOMEM;
            } else {
                memcpy(out, s + a, b - a);
                out[b - a] = '\0';
                *summary_out = out;
                rc = 0;
            }
        }
    }
    json_decref(root);
    return rc;
}

static bool is_code_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

int ai__error_code_name(const char *body, size_t len, char *out, size_t cap)
{
    if (cap == 0) {
        return 0;
    }
    out[0] = '\0';
    if (body == NULL || len == 0) {
        return 0;
    }
    json_t *root = json_loadb(body, len, 0, NULL);
    json_t *error = json_object_get(root, "error");
    const char *keys[] = {"code", "type"};
    int found = 0;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]) && !found; i++) {
        const char *v = json_string_value(json_object_get(error, keys[i]));
        if (v != NULL && is_code_name(v) && strlen(v) < cap) {
            memcpy(out, v, strlen(v) + 1);
            found = 1;
        }
    }
    json_decref(root);
    return found;
}
