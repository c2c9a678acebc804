"""The operator's view model: layout, reasons in plain words, and what to do now."""

from __future__ import annotations

from types import SimpleNamespace

from gangd.service.view import default_layout, instruction, split_reason


def test_default_layout_is_a_grid_in_port_order():
    paths = [f"1-1.{n}" for n in range(1, 9)]
    assert default_layout(paths) == [paths[:4], paths[4:]]
    assert default_layout(paths[:3]) == [paths[:3]]
    assert [len(row) for row in default_layout([str(n) for n in range(20)])] == [8, 8, 4]
    assert default_layout([]) == []


def test_a_reason_is_split_from_its_explanation():
    reason = "WriteMemory failed: 10200 (0x27d8) Memory Range Invalid. | 10200: address range outside the memory map"
    assert split_reason(reason) == (
        "WriteMemory failed: 10200 (0x27d8) Memory Range Invalid.",
        "10200: address range outside the memory map",
    )
    assert split_reason("no answer within the 2 s deadline") == ("no answer within the 2 s deadline", None)
    assert split_reason(None) == (None, None)


def test_instructions_say_what_to_do():
    def port(action=None):
        attempts = [SimpleNamespace(action=action)] if action else []
        return SimpleNamespace(label="A3", last_job=SimpleNamespace(attempts=attempts))

    assert instruction("failed", port("ask-operator-to-replug")) == "Replug the board in A3"
    assert instruction("failed", port("none")) == "Take the board out of A3 and put it with the failed boards"
    assert instruction("success", port()) == "Take the board out of A3: programmed"
    assert instruction("idle", port()) == "Plug a board into A3"
    assert instruction("idle", port(), stopping=True) == "gangd is stopping: no new boards"
    assert instruction("disabled", port()).startswith("A3 is disabled")
