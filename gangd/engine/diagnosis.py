"""Why did a flash step fail? A diagnosis by mechanism, over the bootloader protocol alone.

NXP's FlexSPI NOR driver erases and programs at a safe ~30 MHz clock and then, with VerifyWrites on,
reads the range back at the option word's max frequency; 20106 (or 10203 before a program, or
gangd's own verify mismatch) means that read-back differed (docs/FLASHLOADER.md). Two mechanisms make it
differ, and they need opposite remedies:

- the fast read path is marginal on this board (signal integrity, DQS loading, temperature): the
  cells are right, reads at the fast clock are not. Remedy: continue at a lower clock.
- the flash is write-protected (block-protect bits left by an application): the erase or program
  never happened. Remedy: a power cycle clears volatile protection; nothing over USB clears the rest.

The diagnosis re-configures the memory at the safe clock with the same option words, reads the
range back (the reference), and then:
- after a failed erase, a reference that is not blank means the erase did not happen: protected;
- otherwise it steps down the family's clock ladder (133 -> 100 -> 80 -> 60 -> 30 MHz on RT1020)
  and keeps the highest clock whose read equals the reference. The failing clock itself reading
  right means no mechanism was found (an intermittent fault): the step is simply programmed again.
- after a failed write whose read path is fine, a reference still blank twice in one job means the
  programs never happen: protected (a single blank one may be a command that never ran).

What is left untested against hardware: that a real marginal board's wrong reads are random enough
for one read of the range to show them (the simulator's are: `sim/nor_flash.py`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from gangd.config.flexspi import SAFE_CODE, clock_mhz, fallback_codes, max_freq_code, with_max_freq
from gangd.core.results import NO_FAULT, PROTECTED, READ_PATH, Diagnosis

# run(step_name, fn, *args): runs one blocking call on the board under the diagnosis' deadline.
RunStep = Callable[..., Awaitable[Any]]


class FlashDiagnostician:
    """Diagnoses one job's flash failures; remembers what earlier diagnoses of the job saw."""

    def __init__(self, family: str) -> None:
        self.family = family
        self.blank_after_write = 0

    async def diagnose(
        self,
        run: RunStep,
        configure: Callable[[tuple[int, ...]], None],
        read: Callable[[int, int], bytes],
        option_words: tuple[int, ...],
        address: int,
        length: int,
        step: str,
        status: int | None,
    ) -> Diagnosis:
        """Leaves the memory configured at the clock of the returned diagnosis."""
        code = max_freq_code(option_words)
        if code is None:  # an FCFB block: its clock is inside it, there is no ladder to step down
            await run(configure, option_words)
            return Diagnosis(step, status, NO_FAULT, 0, 0, "FCFB configuration: re-configured, no clock ladder")
        failed_mhz = clock_mhz(self.family, code)
        safe_mhz = clock_mhz(self.family, SAFE_CODE)
        await run(configure, with_max_freq(option_words, SAFE_CODE))
        reference = await run(read, address, length)
        blank = reference.count(0xFF) == len(reference)
        where = f"0x{address:08x}+{length}"
        if step == "erase" and not blank:
            first = next(i for i, b in enumerate(reference) if b != 0xFF)
            return Diagnosis(
                step,
                status,
                PROTECTED,
                failed_mhz,
                failed_mhz,
                f"the range {where} still holds data at 0x{address + first:08x} after an erase, "
                f"read at the safe {safe_mhz} MHz clock",
                code,
            )
        chosen, configured = SAFE_CODE, SAFE_CODE
        for candidate in [code, *fallback_codes(self.family, code)]:
            if clock_mhz(self.family, candidate) <= safe_mhz:
                break  # the reference itself was read at the safe clock
            await run(configure, with_max_freq(option_words, candidate))
            configured = candidate
            if await run(read, address, length) == reference:
                chosen = candidate
                break
        if configured != chosen:
            await run(configure, with_max_freq(option_words, chosen))
        mhz = clock_mhz(self.family, chosen)
        if mhz < failed_mhz:
            return Diagnosis(
                step,
                status,
                READ_PATH,
                failed_mhz,
                mhz,
                f"reads of {where} differ at {failed_mhz} MHz and agree at {mhz} MHz: "
                f"the board's fast read path is marginal",
                chosen,
            )
        if step == "write" and blank:
            self.blank_after_write += 1
            if self.blank_after_write >= 2:
                return Diagnosis(
                    step,
                    status,
                    PROTECTED,
                    failed_mhz,
                    failed_mhz,
                    f"the range {where} stays blank after programming, twice, while reads are "
                    f"reliable at {failed_mhz} MHz",
                    code,
                )
        return Diagnosis(
            step,
            status,
            NO_FAULT,
            failed_mhz,
            failed_mhz,
            f"reads of {where} agree at {failed_mhz} MHz and at the safe clock; programming again",
            code,
        )
