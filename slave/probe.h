/* probe.h: `braid-slave probe-socks [USER:PASSWORD@]HOST:PORT`: checks that a SOCKS5 proxy can
 * carry a braid link (UDP ASSOCIATE both ways) and measures the round trip through its relay. */
#ifndef BRAID_SLAVE_PROBE_H
#define BRAID_SLAVE_PROBE_H

/* Runs the probe, prints the result on stdout (errors on stderr). Returns the exit status:
 * 0 the proxy works, 1 it does not, 2 bad argument. */
int probe_socks(const char *prog, const char *arg);

#endif
