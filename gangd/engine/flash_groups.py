"""What a job knows about each image group's flash between its steps (the minimal write).

A group is one image's blank check, erase, write and verify. The blank check records which of
its sectors are blank (or only presumed blank, from a sample: the flashloader's refusal to program
an unerased page is then the check); a group that failed once is rewritten whole from then on,
trusting no earlier read.
"""

from __future__ import annotations


class FlashGroups:
    def __init__(self) -> None:
        self._blank: dict[int, list[bool]] = {}  # group -> per sector: blank
        self._presumed: set[int] = set()  # groups whose blank check sampled, not read
        self._rewrite: set[int] = set()  # groups retried after a failure: written whole

    def forget(self, group: int) -> None:
        """Before a group's blank check: nothing known about it."""
        self._blank.pop(group, None)
        self._presumed.discard(group)

    def checked(self, group: int, blank: list[bool], presumed: bool = False) -> None:
        self._blank[group] = blank
        if presumed:
            self._presumed.add(group)
        else:
            self._presumed.discard(group)

    def blank(self, group: int | None) -> list[bool] | None:
        """Per sector, blank or not; None: unknown (erase everything)."""
        return None if group is None else self._blank.get(group)

    def presumed(self, group: int | None) -> bool:
        return group in self._presumed

    def rewrite(self, group: int) -> None:
        """The group failed and runs again: erased and written whole from now on."""
        self._rewrite.add(group)

    def whole(self, group: int | None) -> bool:
        return group in self._rewrite
