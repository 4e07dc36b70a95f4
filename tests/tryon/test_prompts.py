"""Prompt checks: cleaning, length limits, blocklist matching with cheap evasions, no over-matching."""

from __future__ import annotations

import pytest

from bot.tryon.errors import PromptRejected
from bot.tryon.prompts import (
    PromptRules,
    check_prompt,
    clean_prompt,
    find_blocked,
    normalise_blocklist_entry,
    normalised_words,
)

BLOCKLIST = ["naked", "latex", "ass", "see through"]


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("  red   coat  ", "red coat"),
        ("red\n\tcoat", "red coat"),
        ("red\u200bcoat\u200d", "redcoat"),  # zero-width space and joiner
        ("\u202eevil\u202c coat", "evil coat"),  # bidi override
        ("red\x00\x07 coat\x7f", "red coat"),  # control characters
        ("\ufeffＲｅｄ　ｃｏａｔ", "Red coat"),  # BOM, fullwidth letters and ideographic space (NFKC)
        ("**bold** _coat_", "**bold** _coat_"),  # markdown is left for the front end to escape
        ("red\u034fcoat", "redcoat"),  # combining grapheme joiner (invisible, but not a format character)
        ("red\u3164 coat\uffa0", "red coat"),  # Hangul fillers: render as nothing
        ("red\u17b4coat\ufe0f", "redcoat"),  # Khmer inherent vowel, variation selector
    ],
)
def test_clean_prompt(raw, cleaned):
    assert clean_prompt(raw) == cleaned


def test_a_good_prompt_passes_cleaned():
    checked = check_prompt("  A red\u200b wool coat\n", PromptRules(blocklist=BLOCKLIST))
    assert checked.text == "A red wool coat" and checked.original == "  A red\u200b wool coat\n"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "prompt_empty"),
        (" \u200b\n ", "prompt_empty"),
        ("ab", "prompt_too_short"),
        ("x" * 301, "prompt_too_long"),
    ],
)
def test_length_refusals_name_the_reason(raw, reason):
    with pytest.raises(PromptRejected) as refused:
        check_prompt(raw)
    assert refused.value.reason == reason
    assert refused.value.message.endswith(".")


def test_limits_are_configurable_and_counted_after_cleaning():
    rules = PromptRules(min_length=5, max_length=10)
    assert check_prompt("  hat\u200b\u200b  s  ", rules).text == "hat s"
    with pytest.raises(PromptRejected, match="at least 5"):
        check_prompt("hat", rules)
    with pytest.raises(PromptRejected, match="at most 10") as refused:
        check_prompt("a" * 11, rules)
    assert refused.value.reason == "prompt_too_long"
    assert check_prompt("a" * 10, rules).text == "a" * 10


@pytest.mark.parametrize(
    ("prompt", "entry"),
    [
        ("a NAKED mannequin", "naked"),
        ("shiny Lätex catsuit", "latex"),  # accents
        ("l a t e x dress", "latex"),  # letter spacing
        ("l.a.t.e.x dress", "latex"),  # punctuation between letters
        ("la\u200btex dress", "latex"),  # zero-width space inside the word
        ("la\u034ftex dress", "latex"),  # combining grapheme joiner inside the word
        ("lat\u3164ex dress", "latex"),  # Hangul filler inside the word
        ("na\u115fked", "naked"),
        ("n4k3d", "naked"),  # leetspeak
        ("big a$$ jeans", "ass"),
        ("ｌａｔｅｘ", "latex"),  # fullwidth
        ("𝐥𝐚𝐭𝐞𝐱 gloves", "latex"),  # mathematical bold letters
        ("lаtех", "latex"),  # Cyrillic а and х mixed into a Latin word
        ("two latexes", "latex"),  # plural
        ("a SEE-THROUGH top", "see through"),  # phrase
        ("see   through\nshirt", "see through"),
    ],
)
def test_blocklist_catches_cheap_evasions(prompt, entry):
    assert find_blocked(prompt, BLOCKLIST) == entry
    with pytest.raises(PromptRejected) as refused:
        check_prompt(prompt, PromptRules(blocklist=BLOCKLIST))
    assert refused.value.reason == "prompt_blocked_word"
    assert refused.value.blocked_entry == entry
    assert entry not in refused.value.message


@pytest.mark.parametrize(
    "prompt",
    [
        "a classy glass-bead bass guitar outfit",  # "ass" inside longer words
        "1920s flapper dress",  # numbers are not leetspeak
        "an 80s tracksuit with 3 stripes",
        "a 2 piece suit",
        "see the coat through the window",  # phrase words not adjacent
        "a t-shirt and jeans",
        "throughput vest",
        "платье",  # real Cyrillic text is not rewritten
    ],
)
def test_blocklist_does_not_over_match(prompt):
    assert find_blocked(prompt, BLOCKLIST) is None
    assert check_prompt(prompt, PromptRules(blocklist=BLOCKLIST)).text == clean_prompt(prompt)


def test_blocklist_entries_are_normalised_like_prompts():
    assert normalise_blocklist_entry("  LÄTEX ") == "latex"
    assert normalise_blocklist_entry("See-Through") == "see through"
    assert normalise_blocklist_entry("n4k3d") == "naked"
    assert normalise_blocklist_entry("\u200b!!") == ""
    assert find_blocked("latex", ["", "!!"]) is None  # empty entries never match
    assert find_blocked("a NAKED look", ["NÄKED"]) == "NÄKED"  # entries stored un-normalised still work


def test_normalised_words():
    assert normalised_words("R e d  Coat, b l u e hat!") == ["red", "coat", "blue", "hat"]
    assert normalised_words("snake_case") == ["snakecase"]
