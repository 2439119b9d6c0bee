/* sched.c: the scheduler registry: the policies by name, and the default one. A new policy is
 * one file (sched_<name>.c) and one line in the table here. */
#include "sched.h"

#include <stdio.h>
#include <string.h>

static const struct sched_ops *const policies[] = {&sched_earliest, &sched_earliest_inorder,
                                                     &sched_weighted};
#define NPOLICIES (sizeof policies / sizeof policies[0])

const struct sched_ops *sched_find(const char *name)
{
    /* The default: earliest arrival, measured ahead of weighted in every throughput and
     * latency scenario (bench/RESULTS.md). */
    if (!name) return &sched_earliest;
    /* "earliest-lowlat" (until 2026-12) is what "earliest" does now: configs naming it work */
    if (strcmp(name, "earliest-lowlat") == 0) return &sched_earliest;
    for (size_t i = 0; i < NPOLICIES; i++)
        if (strcmp(policies[i]->name, name) == 0) return policies[i];
    return NULL;
}

const char *sched_names(void)
{
    static char names[128];
    if (!names[0]) {
        size_t pos = 0;
        for (size_t i = 0; i < NPOLICIES; i++)
            pos += (size_t)snprintf(names + pos, sizeof names - pos, "%s%s", i ? ", " : "",
                                    policies[i]->name);
    }
    return names;
}
