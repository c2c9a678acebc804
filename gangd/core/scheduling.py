"""When a finished board is reset: the order of a host controller's enumerations.

Each host controller enumerates one device at a time (gangd/core/bus.py, drivers/usb/core/hub.c
`address0_mutex`, `ADDRESS0_S` each). gangd cannot reorder the kernel's queue; it can only choose
when it asks for an enumeration: a ROM's jump to its flashloader, or a finished board's reset (its
reboot re-enumerates, `usb_reset_and_verify_device()` or a plain reconnect). The line needs the
flashloaders: a board whose flashloader is still in the queue transfers nothing. It does not need
the reboots: the job is done once the reset is acknowledged, and the reboot's enumeration only
tells the station the board came back.

The kernel's queue is first come, first served, and a device asks for its turn when its own boot
is done: a flashloader `boot` after its jump, a reboot `boot` after its reset. So a reset asked
for now comes after every flashloader whose board has already jumped (it asked earlier), and
before those of boards that have not jumped yet: boards admitted to the flashloader stage and
still in their ROM, receiving the flashloader (tens of ms to a few hundred). Hence:

- **A finished board's reset is held while a board on its controller is admitted and still in
  its ROM**: its reboot would take a turn of `ADDRESS0_S` in front of that board's flashloader,
  the enumeration the line needs, while the finished board gains nothing from going first. The
  reset goes once those boards have left their ROM (jumped). Holding for flashloaders already
  jumped would gain nothing (they are ahead anyway) and delay the finished board's done.
- **Unless a board on its root port waits for bandwidth**: the finished board holds one of the
  root port's flashloader slots (gangd/core/bus.py Admission) until it leaves the flashloader, so
  holding it back would hold back the waiting board's jump, the very enumeration the hold is for.
- **A hold is bounded** (our choice): one enumeration's turn (`ADDRESS0_S`) per board awaited
  when the hold begins, plus `HOLD_MARGIN_S`: a board that never jumps (hung in its ROM, pulled
  unseen) must not keep a finished board from its reset for longer than that.

Measured (docs/PERFORMANCE.md, "Scheduling"): with every board plugged at once, all boards jump
before the first one finishes, and the hold never acts; it acts when boards arrive while others
finish (a line in steady flow), where a newcomer's flashloader would otherwise wait behind the
finisher's reboot.

Considered and not kept:
- Taking the bandwidth slot at the flashloader's arrival rather than at the jump: the periodic
  reservation is made when the flashloader's interface is configured, after its enumeration, so a
  board in the kernel's queue reserves nothing yet; but once it has jumped nothing can stop it
  from configuring when its turn comes, and a ninth flashloader on a root port is refused its HID
  interface ("Not enough bandwidth", docs/FLASHLOADER.md "USB"). The slot must be counted from the
  jump: gangd's count is what keeps the bus from refusing.
- Staggered jumps (admitting to the jump only as many boards per controller as can enumerate
  before the others' data phases end): not built. The slot is held from the jump either way (see
  above), and a jump held back is an enumeration asked for later: the queue can only idle sooner.
"""

from __future__ import annotations

HOLD_MARGIN_S = 1.0  # our choice: a board's own boot (0.37 s modelled) and a loaded host's delays


def holds_reset(flashloaders_to_come: int, waiting_for_bandwidth: int) -> bool:
    """Whether a finished board's reset waits: `flashloaders_to_come` boards of its controller are
    admitted and not jumped yet, and no board on its root port waits for the slot it holds."""
    return flashloaders_to_come > 0 and waiting_for_bandwidth == 0


def hold_limit_s(flashloaders_to_come: int, address0_s: float) -> float:
    """The longest a reset is held when it begins with `flashloaders_to_come` awaited, each
    enumerating in `address0_s` (gangd/core/bus.py `ADDRESS0_S`)."""
    return flashloaders_to_come * address0_s + HOLD_MARGIN_S
