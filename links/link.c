/* link.c: shared part of the link interface: reporting transport state changes upward.
 * Implementations call link_report_state; the owner's state handler sees only changes. */
#include "link.h"

void link_report_state(struct link *l, bool up)
{
    if (l->up == up) return;
    l->up = up;
    if (l->h.state) l->h.state(l->h.ctx, l, up);
}
