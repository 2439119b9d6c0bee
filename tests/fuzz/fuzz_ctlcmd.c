/* fuzz_ctlcmd.c: libFuzzer target for the control socket's command parser: any line parses to
 * a known command with a valid link name, or fails with a message; never a crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/ctlcmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096) return 0; /* the control socket reads at most a short line */
    char line[4097];
    memcpy(line, data, size);
    line[size] = '\0';
    struct ctlcmd c;
    char err[256];
    err[0] = '\0';
    int rc = ctlcmd_parse(line, &c, err, sizeof err);
    if (rc == -1) {
        if (!err[0]) abort();
        return 0;
    }
    if (rc != 0 || c.kind < CTL_STATUS || c.kind > CTL_LINK) abort();
    if (c.kind == CTL_LINK && (c.link[0] == '\0' || strlen(c.link) >= sizeof c.link)) abort();
    return 0;
}
