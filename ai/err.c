/*
 * err.c: ai_strerror(), static descriptions of the ai module's error codes
 * and of the few negative errno values it returns, and ai__err_set().
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "ai.h"
#include "ai_int.h"

const char *ai_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
    case AI_E_FULL:
        return "ai queue full";
    case AI_E_STOPPED:
        return "ai client stopped";
    case AI_E_TRANSPORT:
        return "no answer from the ai endpoint";
    case AI_E_HTTP:
        return "ai endpoint answered with an error status";
    case AI_E_BADRESP:
        return "ai endpoint answered without a usable summary";
    case AI_E_TOOBIG:
        return "ai endpoint's answer too large";
    case AI_E_CANCELLED:
        return "ai request cancelled";
    case -EINVAL:
        return "invalid argument";
    case -ENOMEM:
        return "out of memory";
    default:
        return "unknown ai error";
    }
}

int ai__err_set(struct ai_err *err, int code, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        (void)vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}
