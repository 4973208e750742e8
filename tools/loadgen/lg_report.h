/*
 * lg_report.h: coach-loadgen's end-of-run output: a human summary and a
 * JSON document for machines (see docs/loadgen.md for every field).
 */
#ifndef COACH_LG_REPORT_H
#define COACH_LG_REPORT_H

#include <stdio.h>

#include "lg_run.h"

/* Error frames that count as failures: all of them, except rate_limited
 * in the unthrottled mode (which provokes them on purpose). */
uint64_t lg_report_unexpected_errors(const struct lg_run_cfg *cfg, const struct lg_run_result *res);

/* 1 when the run passed: verification clean, nothing unanswered, no
 * unexpected error frame, every room started (unless interrupted; idle:
 * every connection joined). */
int lg_report_ok(const struct lg_run_cfg *cfg, const struct lg_run_result *res);

/* The human summary. */
void lg_report_text(FILE *out, const struct lg_run_cfg *cfg, const struct lg_run_result *res);

/* One JSON object and a newline. 0, or -ENOMEM. */
int lg_report_json(FILE *out, const struct lg_run_cfg *cfg, const struct lg_run_result *res);

#endif
