/* script.h: braid-emu's commands ("blackhole up for 3s", "set down rate=2mbit", "rebind", ...)
 * as sent on the control socket, and event scripts ("at 5s <command>", one per line). */
#ifndef BRAID_EMU_SCRIPT_H
#define BRAID_EMU_SCRIPT_H

#include <stddef.h>
#include <stdint.h>

#include "shaper.h"

enum emu_cmd_kind {
    EMU_CMD_BLACKHOLE, /* blackhole DIR [for TIME] */
    EMU_CMD_CLEAR,     /* clear DIR: end a blackhole */
    EMU_CMD_SET,       /* set DIR key=value... */
    EMU_CMD_REBIND,    /* rebind: new upstream socket (new source port) */
    EMU_CMD_STATS,     /* stats: reply with JSON (control socket only) */
    EMU_CMD_QUIT,      /* quit */
};

#define EMU_DIR_UP 1u
#define EMU_DIR_DOWN 2u
#define EMU_DIR_BOTH 3u

struct emu_cmd {
    enum emu_cmd_kind kind;
    unsigned dirs;        /* EMU_DIR_* (blackhole, clear, set) */
    uint64_t for_ns;      /* blackhole: duration, 0 = until cleared */
    struct emu_spec spec; /* set */
};

/* Parse one command (no "at"). Returns 0, or -1 with a message in err saying what is expected. */
int emu_cmd_parse(const char *line, struct emu_cmd *out, char *err, size_t errlen);
void emu_cmd_free(struct emu_cmd *c);

struct emu_event {
    uint64_t at_ns; /* from the emulator's start */
    unsigned line;
    struct emu_cmd cmd;
};

struct emu_script {
    struct emu_event *ev; /* sorted by time; lines with the same time keep their order */
    size_t n;
};

/* Parse script text ("at TIME COMMAND" per line; '#' starts a comment). name is used in
 * messages: "name:line: what is wrong; what is expected". Returns 0 or -1. */
int emu_script_parse(const char *text, size_t len, const char *name, struct emu_script *out,
                     char *err, size_t errlen);
int emu_script_load(const char *path, struct emu_script *out, char *err, size_t errlen);
void emu_script_free(struct emu_script *s);

#endif
