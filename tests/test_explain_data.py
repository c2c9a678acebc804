"""explanations.toml against spsdk's StatusCode: the data `gangd explain` and failed records read.

Every code spsdk knows is written by hand or falls in a group's ranges (the fallback is for a code a
newer spsdk adds: this test goes red until the code gets a group); no entry names a code spsdk does
not know; every code gangd's recovery table classifies by hand is explained by hand; every field is
well-formed (non-empty text, placeholders that exist, ranges in order).
"""

from __future__ import annotations

import string
import tomllib
from importlib import resources

from spsdk.mboot.error_codes import StatusCode

from gangd.engine import explain as lookup
from gangd.engine import recovery

PLACEHOLDERS = set(lookup._context(lookup.DEFAULT_FAMILY))


def raw() -> dict:
    return tomllib.loads(resources.files("gangd.engine").joinpath(lookup.DATA_FILE).read_text(encoding="utf-8"))


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_every_spsdk_code_has_an_entry_or_a_group() -> None:
    data = lookup.data()
    loose = [m.tag for m in StatusCode if m.tag not in data.codes and not any(g.holds(m.tag) for g in data.groups)]
    assert loose == [], f"spsdk codes with no entry and no group in explanations.toml: {loose}"


def test_no_entry_for_a_code_spsdk_does_not_know() -> None:
    data = lookup.data()
    tags = set(StatusCode.tags())
    assert set(data.codes) - tags == set()
    assert data.success - tags == set()
    assert data.generic - tags == set()
    # The HAB words are the SDP ROM's, not MCU bootloader status codes: they must not shadow one.
    assert set(data.hab) & tags == set()


def test_every_code_gangd_classifies_by_hand_is_explained_by_hand() -> None:
    # The codes in recovery's table are the ones a production line meets: each gets its own words.
    # Those left to their group's words are listed as such in the data (`generic`), on purpose.
    data = lookup.data()
    missing = sorted(set(recovery.STATUS_CLASS) - set(data.codes) - data.generic)
    assert missing == [], f"codes in recovery.STATUS_CLASS without a hand-written entry: {missing}"
    assert data.generic & set(data.codes) == set()  # not both
    assert data.generic <= set(recovery.STATUS_CLASS)


def test_the_line_codes_of_the_docs_are_written_by_hand() -> None:
    # The codes the docs and the simulator talk about (FLASHLOADER.md, the OCOTP driver, 10203).
    for code in (0, 1, 2, 3, 4, 5, 10200, 10203, 20100, 20101, 20102, 20103, 20104, 20105, 20106, 20200, 20201):
        assert code in lookup.data().codes, code


def test_hand_entries_are_well_formed() -> None:
    for code, t in raw()["codes"].items():
        assert set(t) <= {"meaning", "causes", "remedies", "short", "action"}, code
        assert isinstance(t["meaning"], str) and t["meaning"].strip(), code
        assert t["causes"] and t["remedies"], code
        assert t["short"].strip() and "\n" not in t["short"], code
        for text in [t["meaning"], t["short"], *t["causes"], *t["remedies"], t.get("action", "")]:
            assert isinstance(text, str) and text == text.strip(), code
            assert fields(text) <= PLACEHOLDERS, (code, fields(text) - PLACEHOLDERS)


def test_groups_and_classes_are_well_formed() -> None:
    doc = raw()
    for g in doc["groups"]:
        assert set(g) == {"subsystem", "ranges", "cause", "remedy"}
        assert g["subsystem"].strip() and g["cause"].strip() and g["remedy"].strip()
        assert g["ranges"] and all(first <= last for first, last in g["ranges"]), g["subsystem"]
    assert set(doc["class"]) == {recovery.TRANSIENT, recovery.BOARD, recovery.PERMANENT}
    for name, words in doc["class"].items():
        assert fields(words["action"]) <= set(lookup.ACTION_NAMES), name
        assert words["cause"].endswith(".") and words["remedy"].endswith("."), name
    for key, t in doc["hab"].items():
        assert key.startswith("0x") and int(key, 16) > 0xFFFF, key
        assert t["class"] in (*recovery.CLASSES, lookup.NOT_A_FAILURE), key
        assert t["name"] and t["meaning"] and t["action"], key
