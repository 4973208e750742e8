/*
 * lg_report.h: coach-loadgen's end-of-run output: a human summary and a
 * JSON document for machines (see docs/loadgen.md for every field).
 */
#ifndef COACH_LG_REPORT_H
#define COACH_LG_REPORT_H

#include <stdio.h>

#include "lg_run.h"

/* 1 when the run passed: verification clean, nothing unanswered, at least
 * one room started (idle: every connection joined). */
int lg_report_ok(const struct lg_run_cfg *cfg, const struct lg_run_result *res);

/* The human summary. */
void lg_report_text(FILE *out, const struct lg_run_cfg *cfg, const struct lg_run_result *res);

/* One JSON object and a newline. 0, or -ENOMEM. */
int lg_report_json(FILE *out, const struct lg_run_cfg *cfg, const struct lg_run_result *res);

#endif
