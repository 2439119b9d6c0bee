/* syslog_sink.c: the syslog(3) end of the log (kept apart from log.h, whose level names
 * <syslog.h> would clash with). */
#include "syslog_sink.h"

#include <syslog.h>

void syslog_sink_open(const char *ident)
{
    openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void syslog_sink_write(int priority, const char *line)
{
    syslog(priority, "%s", line);
}
