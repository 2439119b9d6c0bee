/* log.h: logging interface shared by every braid module.
 * Lines go to stderr as "<time> <level> <message>", to the systemd journal (on stderr with a
 * priority prefix, when stderr is the journal's stream), or to syslog; rate-limited variants
 * for per-packet events. */
#ifndef BRAID_LOG_H
#define BRAID_LOG_H

#include <stdint.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* Where lines go: LOG_TO_AUTO is the journal when stderr is connected to it (systemd sets
 * JOURNAL_STREAM), syslog when stderr is closed or /dev/null, else stderr. */
enum log_target { LOG_TO_AUTO = 0, LOG_TO_STDERR, LOG_TO_SYSLOG };
/* Parse "auto", "stderr", "syslog"; -1 on anything else. */
int log_target_parse(const char *s);
void log_set_target(enum log_target t, const char *ident);

void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
/* Parse "error", "warn", "info", "debug"; returns -1 on anything else. */
int log_level_parse(const char *s);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* At most one line per interval for one recurring event; the line says how many were
 * suppressed since the last one. Zero-initialise; interval_us 0 means 10 s. */
struct log_limit {
    uint64_t last_us;
    uint64_t suppressed;
    uint64_t interval_us;
};
void log_limited(struct log_limit *lim, enum log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LOGE(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define LOGW(...) log_msg(LOG_WARN, __VA_ARGS__)
#define LOGI(...) log_msg(LOG_INFO, __VA_ARGS__)
#define LOGD(...)                                                                                  \
    do {                                                                                           \
        if (log_get_level() >= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__);                         \
    } while (0)

#endif
