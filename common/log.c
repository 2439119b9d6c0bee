/* log.c: logging to stderr with wall-clock time and level (or to the journal or syslog), plus
 * rate-limited lines. Single-threaded: braid runs one event loop per process. */
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>

#include "syslog_sink.h"
#include "util.h"

static enum log_level g_level = LOG_INFO;
static const char *const names[] = {"error", "warn", "info", "debug"};
static const int priorities[] = {3, 4, 6, 7}; /* syslog's err, warning, info, debug */
enum sink { SINK_STDERR, SINK_JOURNAL, SINK_SYSLOG };
static enum sink g_sink = SINK_STDERR;
static const char *const target_names[] = {"auto", "stderr", "syslog"};

int log_target_parse(const char *s)
{
    for (int i = 0; i < (int)ARRAY_LEN(target_names); i++)
        if (strcmp(s, target_names[i]) == 0) return i;
    return -1;
}

/* systemd connects stderr to the journal and says so in JOURNAL_STREAM ("device:inode"). */
static bool stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    struct stat st;
    unsigned long long dev, ino;
    if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(2, &st) != 0) return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/* stderr goes nowhere a person reads: closed, or /dev/null (a daemon started by an init
 * system without the journal). */
static bool stderr_is_lost(void)
{
    struct stat st, null;
    if (fstat(2, &st) != 0) return true;
    return S_ISCHR(st.st_mode) && stat("/dev/null", &null) == 0 && st.st_rdev == null.st_rdev;
}

void log_set_target(enum log_target t, const char *ident)
{
    if (t == LOG_TO_AUTO) t = stderr_is_journal() ? LOG_TO_AUTO
                              : stderr_is_lost()  ? LOG_TO_SYSLOG
                                                  : LOG_TO_STDERR;
    if (t == LOG_TO_SYSLOG) {
        syslog_sink_open(ident);
        g_sink = SINK_SYSLOG;
    } else if (t == LOG_TO_AUTO) {
        g_sink = SINK_JOURNAL;
    } else {
        g_sink = SINK_STDERR;
    }
}

void log_set_level(enum log_level lvl)
{
    g_level = lvl;
}

enum log_level log_get_level(void)
{
    return g_level;
}

int log_level_parse(const char *s)
{
    for (int i = 0; i < (int)ARRAY_LEN(names); i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

static void vlog(enum log_level lvl, const char *suffix, const char *fmt, va_list ap)
{
    if (lvl > g_level) return;
    if (g_sink != SINK_STDERR) {
        char line[1024];
        int n = vsnprintf(line, sizeof line, fmt, ap);
        if (n < 0) return;
        if (g_sink == SINK_SYSLOG) {
            char full[1100];
            snprintf(full, sizeof full, "%s%s", line, suffix ? suffix : "");
            syslog_sink_write(priorities[lvl], full);
        } else { /* the journal reads the priority from the <N> prefix and adds the time */
            fprintf(stderr, "<%d>%s%s\n", priorities[lvl], line, suffix ? suffix : "");
            fflush(stderr);
        }
        return;
    }
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    localtime_r(&tv.tv_sec, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%H:%M:%S", &tm);
    char line[1024];
    int n = vsnprintf(line, sizeof line, fmt, ap);
    if (n < 0) return;
    fprintf(stderr, "%s.%03ld %-5s %s%s\n", ts, (long)(tv.tv_usec / 1000), names[lvl], line,
            suffix ? suffix : "");
    fflush(stderr);
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(lvl, NULL, fmt, ap);
    va_end(ap);
}

void log_limited(struct log_limit *lim, enum log_level lvl, const char *fmt, ...)
{
    uint64_t now = mono_us();
    uint64_t interval = lim->interval_us ? lim->interval_us : 10000000u;
    if (lim->last_us != 0 && now - lim->last_us < interval) {
        lim->suppressed++;
        return;
    }
    char suffix[64] = "";
    if (lim->suppressed)
        snprintf(suffix, sizeof suffix, " (and %llu more like it)",
                 (unsigned long long)lim->suppressed);
    lim->last_us = now ? now : 1;
    lim->suppressed = 0;
    va_list ap;
    va_start(ap, fmt);
    vlog(lvl, suffix, fmt, ap);
    va_end(ap);
}
