/*
 * err.c: store_strerror(), static descriptions of the store's error codes
 * and of the few negative errno values the store returns.
 */
#include <errno.h>

#include "store.h"

const char *store_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
    case STORE_E_UNAVAILABLE:
        return "database unavailable";
    case STORE_E_FULL:
        return "store queue full";
    case STORE_E_SCHEMA:
        return "unexpected database schema";
    case STORE_E_QUERY:
        return "database statement failed";
    case STORE_E_STOPPED:
        return "store stopped";
    case STORE_E_NOTFOUND:
        return "not found";
    case STORE_E_CONFLICT:
        return "already exists";
    case STORE_E_FORBIDDEN:
        return "not allowed";
    case STORE_E_STATE:
        return "not in a state that allows it";
    case -EINVAL:
        return "invalid argument";
    case -ENOMEM:
        return "out of memory";
    case -ETIMEDOUT:
        return "timed out";
    default:
        return "unknown store error";
    }
}
