"""Outfit prompt checks: cleaning, length limits and a per-guild blocklist matched on normalised words.

Cleaning (what is sent to the platform and shown back): Unicode NFKC, control characters and every character
Unicode calls "default ignorable" (zero-width spaces/joiners, bidi overrides, BOM, but also the combining
grapheme joiner, Hangul fillers and variation selectors, which render as nothing) removed, every run of
whitespace made one space.
The result is plain text; front ends escape markdown themselves.

Matching (never shown): the cleaned text casefolded, accents removed, split into words. A blocklist entry is
one word or a phrase of words and matches whole words only, so "ass" does not match "class". Cheap evasions
are also caught, each chosen because it cannot make an ordinary word match something else:
- letter spacing and punctuation: runs of single letters are joined ("r e d", "r.e.d" -> "red");
- leetspeak, only inside words that mix letters with 0 1 3 4 5 7 @ $ and whose digits don't outnumber
  their letters ("n4k3d" -> "naked", "a$$" -> "ass"; "1920s", "80s" and "2 piece" are left alone);
- look-alike Cyrillic/Greek letters, only inside words that also contain Latin letters;
- plurals: an entry also matches the word with "s" or "es" added.
Not caught, on purpose: repeated letters ("nuuude"; collapsing them turns "good" into "god") and words
hidden inside longer words (that is the "Scunthorpe problem").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from bot.tryon.errors import PromptRejected

DEFAULT_MIN_LENGTH = 3
DEFAULT_MAX_LENGTH = 300

_WHITESPACE = re.compile(r"\s+")
# Word characters plus the symbols leetspeak uses for letters.
_TOKEN = re.compile(r"[\w@$]+")
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
_LOOKALIKES = str.maketrans(
    {
        "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i", "ј": "j",
        "ѕ": "s", "ԁ": "d", "һ": "h", "к": "k", "м": "m", "т": "t", "в": "b", "н": "h",
        "α": "a", "ε": "e", "ο": "o", "ρ": "p", "ι": "i", "κ": "k", "ν": "v", "τ": "t", "υ": "u",
    }
)  # fmt: skip


@dataclass(frozen=True)
class PromptRules:
    """Limits and the guild's blocklist (entries as moderators typed them; normalised here)."""

    min_length: int = DEFAULT_MIN_LENGTH
    max_length: int = DEFAULT_MAX_LENGTH
    blocklist: Collection[str] = ()


@dataclass(frozen=True)
class CheckedPrompt:
    """A prompt that passed: `text` is cleaned (send and display it), `original` what the member typed."""

    text: str
    original: str


# Default_Ignorable_Code_Point (Unicode DerivedCoreProperties) outside category Cf: invisible letters and
# marks that split or pad a word without showing (Python's unicodedata does not expose the property).
_IGNORABLE_NON_FORMAT = re.compile(
    "[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180d\u180f\u3164\ufe00-\ufe0f\uffa0\U000e0100-\U000e01ef]"
)


def _is_invisible(char: str) -> bool:
    # Cc: control characters; Cf: format characters (zero-width space/joiners, bidi controls, BOM, SHY).
    return unicodedata.category(char) in ("Cc", "Cf") or _IGNORABLE_NON_FORMAT.match(char) is not None


def clean_prompt(raw: str) -> str:
    """NFKC, whitespace runs -> one space, control and invisible format characters removed, trimmed."""
    text = unicodedata.normalize("NFKC", raw)
    text = _WHITESPACE.sub(" ", text)  # before removal, so a newline or tab becomes a space
    text = "".join(char for char in text if not _is_invisible(char))
    return _WHITESPACE.sub(" ", text).strip()


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def _looks_leet(token: str) -> bool:
    """A word with letters and leet symbols where digits don't outnumber letters ("n4k3d" yes, "1920s" no)."""
    letters = sum(char.isalpha() for char in token)
    symbols = sum(char in "@$" for char in token)
    digits = sum(char.isdigit() for char in token)
    return letters > 0 and digits + symbols > 0 and digits <= letters + symbols


def _normalise_token(token: str) -> str:
    letters = [char for char in token if char.isalpha()]
    if _looks_leet(token):
        token = token.translate(_LEET)
    if any("a" <= char <= "z" for char in letters) and any(not char.isascii() for char in letters):
        token = token.translate(_LOOKALIKES)
    return token.replace("_", "")


def _join_spelled_out(tokens: list[str]) -> list[str]:
    """Join runs of two or more single-letter tokens: ["r", "e", "d", "coat"] -> ["red", "coat"]."""
    joined: list[str] = []
    run: list[str] = []
    for token in [*tokens, ""]:
        if len(token) == 1 and token.isalpha():
            run.append(token)
            continue
        if len(run) >= 2:
            joined.append("".join(run))
        else:
            joined.extend(run)
        run = []
        if token:
            joined.append(token)
    return joined


def normalised_words(text: str) -> list[str]:
    """The words blocklist matching sees (casefolded, accents and evasions undone)."""
    folded = _strip_accents(clean_prompt(text).casefold())
    tokens = [_normalise_token(token) for token in _TOKEN.findall(folded)]
    return _join_spelled_out([token for token in tokens if token])


def normalise_blocklist_entry(entry: str) -> str:
    """How a blocklist entry is stored: its normalised words joined by single spaces ("" if none)."""
    return " ".join(normalised_words(entry))


def _word_matches(word: str, blocked: str) -> bool:
    return word in (blocked, blocked + "s", blocked + "es")


def find_blocked(text: str, blocklist: Iterable[str]) -> str | None:
    """The first blocklist entry the text contains as whole words, or None."""
    words = normalised_words(text)
    for entry in blocklist:
        phrase = normalised_words(entry)
        if not phrase:
            continue
        size = len(phrase)
        for start in range(len(words) - size + 1):
            window = words[start : start + size]
            if window[:-1] == phrase[:-1] and _word_matches(window[-1], phrase[-1]):
                return entry
    return None


def check_prompt(raw: str, rules: PromptRules = PromptRules()) -> CheckedPrompt:
    """Clean and check a prompt; raise `PromptRejected` whose reason says what was wrong."""
    text = clean_prompt(raw)
    if not text:
        raise PromptRejected("Please describe an outfit: the description was empty.", reason="prompt_empty")
    if len(text) < rules.min_length:
        raise PromptRejected(
            f"That outfit description is too short: please use at least {rules.min_length} characters.",
            reason="prompt_too_short",
        )
    if len(text) > rules.max_length:
        raise PromptRejected(
            f"That outfit description is too long ({len(text)} characters): please use at most "
            f"{rules.max_length}.",
            reason="prompt_too_long",
        )
    blocked = find_blocked(text, rules.blocklist)
    if blocked is not None:
        raise PromptRejected(
            "That outfit description uses a word this server doesn't allow. Please describe it differently.",
            reason="prompt_blocked_word",
            blocked_entry=blocked,
        )
    return CheckedPrompt(text=text, original=raw)
