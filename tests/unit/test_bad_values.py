"""The domain's own checks of values a user gives (over HTTP or the command line), with nothing around them."""

from __future__ import annotations

import pytest

from sync import config
from sync.coupling import check_id
from sync.errors import ConfigurationError, cut, shown
from sync.mappings import builtin_mappings
from sync.model import Side

MAPPINGS = {m.name: m for m in builtin_mappings()}


def changes(**values):
    return config.parse_changes(config.MappingOverride(), values, MAPPINGS["CONTACT"])


@pytest.mark.parametrize("given, minutes", [(15, 15), ("15", 15), (" 15 ", 15), (15.0, 15), (525_600, 525_600)])
def test_minutes_are_whole_numbers_as_json_or_command_line_text(given, minutes):
    assert changes(interval_minutes=given).interval_minutes == minutes


@pytest.mark.parametrize("given", [0, -5, 525_601, 10 ** 300, 1e300, float("inf"), float("nan"), 2.5, True, "1e300",
                                   "²", "fifteen", [15], {"minutes": 15}])
def test_minutes_out_of_range_or_not_whole_are_refused(given):
    with pytest.raises(ConfigurationError, match="inactivity_timeout_minutes must be a whole number of minutes"):
        changes(inactivity_timeout_minutes=given)


def test_match_criteria_are_checked_for_shape():
    assert changes(match={"City": None, "Post Code": {"priority": "1"}}).match == {
        "city|address1_city": {"priority": 0, "case_sensitive": False},
        "postalCode|address1_postalcode": {"priority": 1, "case_sensitive": False}}
    for bad, words in [(5, "match must be a list"), ("City", "match must be a list"), ([None], "by their name"),
                       ({"City": []}, "match options of City"), ({"City": {"order": 1}}, "match options of City"),
                       ({"City": {"priority": -1}}, "match priority of City")]:
        with pytest.raises(ConfigurationError, match=words):
            changes(match=bad)


def test_filters_and_codes_are_text_and_a_filter_has_a_bounded_length():
    with pytest.raises(ConfigurationError, match="crm_filter must be text"):
        changes(crm_filter=["statecode eq 0"])
    with pytest.raises(ConfigurationError, match="a filter has at most 2,000"):
        changes(bc_filter="x" * 2_001)


def test_record_ids_have_the_shape_of_their_side():
    guid = "6F9619FF-8B86-D011-B42D-00CF4FC964FF"
    assert check_id(MAPPINGS["CUSTOMER"], Side.CRM, guid) == guid
    assert check_id(MAPPINGS["PAYMENT TERMS"], Side.CRM, "3") == "3"
    for mapping, side, bad in [("CUSTOMER", Side.BC, "10000"), ("CUSTOMER", Side.CRM, None),
                               ("PAYMENT TERMS", Side.CRM, guid), ("PAYMENT TERMS", Side.CRM, "٣"),
                               ("PAYMENT TERMS", Side.BC, "3")]:
        with pytest.raises(ConfigurationError, match=f"record id in {mapping} is"):
            check_id(MAPPINGS[mapping], side, bad)


def test_quoted_values_are_cut():
    assert cut("short") == "short" and shown("short") == "'short'"
    assert cut("x" * 5_000) == "x" * 100 + "… (5,000 characters)"
