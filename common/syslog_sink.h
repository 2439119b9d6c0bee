/* syslog_sink.h: write log lines to syslog(3). priority: a syslog priority number
 * (3 error, 4 warning, 6 info, 7 debug). */
#ifndef BRAID_SYSLOG_SINK_H
#define BRAID_SYSLOG_SINK_H

void syslog_sink_open(const char *ident);
void syslog_sink_write(int priority, const char *line);

#endif
