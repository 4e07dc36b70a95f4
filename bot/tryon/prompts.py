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
- a blocked word anywhere inside such a run ("a f u r coat" -> "afur" contains "fur": the article "a" is a
  single letter too);
- look-alike Cyrillic/Greek/Armenian letters inside words that also contain Latin letters, and whole words
  made only of look-alikes when the prompt also has Latin words ("a ѕеху dress"; an all-Cyrillic prompt is
  left alone, so Russian is never rewritten);
- Latin small capitals ("ꜰᴜʀ"), which NFKC leaves as they are;
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
        "ս": "u", "օ": "o", "ո": "n", "հ": "h", "ց": "g", "զ": "q",
    }
)  # fmt: skip
_LOOKALIKE_LETTERS = frozenset(chr(code) for code in _LOOKALIKES)
# Latin letters in small-capital form: the Latin script itself, so they are undone everywhere.
_SMALL_CAPITALS = str.maketrans(
    {
        "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ꜰ": "f", "ɢ": "g", "ʜ": "h", "ɪ": "i", "ᴊ": "j",
        "ᴋ": "k", "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p", "ʀ": "r", "ꜱ": "s", "ᴛ": "t", "ᴜ": "u",
        "ᴠ": "v", "ᴡ": "w", "ʏ": "y", "ᴢ": "z",
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


def _has_latin(token: str) -> bool:
    return any("a" <= char <= "z" for char in token)


def _normalise_token(token: str, latin_prompt: bool) -> str:
    token = token.translate(_SMALL_CAPITALS)
    letters = [char for char in token if char.isalpha()]
    if _looks_leet(token):
        token = token.translate(_LEET)
    mixed = _has_latin(token) and any(not char.isascii() for char in letters)
    disguised = latin_prompt and bool(letters) and all(char in _LOOKALIKE_LETTERS for char in letters)
    if mixed or disguised:
        token = token.translate(_LOOKALIKES)
    return token.replace("_", "")


def _is_letter(token: str) -> bool:
    return len(token) == 1 and token.isalpha()


def _letter_groups(tokens: list[str]) -> list[list[str]]:
    """Consecutive single-letter tokens in one group, every other token alone: ["r", "e", "d", "coat"] ->
    [["r", "e", "d"], ["coat"]]."""
    groups: list[list[str]] = []
    for token in tokens:
        if _is_letter(token) and groups and _is_letter(groups[-1][-1]):
            groups[-1].append(token)
        else:
            groups.append([token])
    return groups


def _join_spelled_out(tokens: list[str]) -> list[str]:
    """Join runs of two or more single-letter tokens: ["r", "e", "d", "coat"] -> ["red", "coat"]."""
    return ["".join(group) for group in _letter_groups(tokens)]


def _normalised_tokens(text: str) -> list[str]:
    folded = _strip_accents(clean_prompt(text).casefold())
    raw = _TOKEN.findall(folded)
    latin_prompt = any(_has_latin(token.translate(_SMALL_CAPITALS)) for token in raw)
    tokens = [_normalise_token(token, latin_prompt) for token in raw]
    return [token for token in tokens if token]


def normalised_words(text: str) -> list[str]:
    """The words blocklist matching sees (casefolded, accents and evasions undone)."""
    return _join_spelled_out(_normalised_tokens(text))


def _spelled_out_runs(tokens: list[str]) -> list[str]:
    """Each run of two or more single-letter tokens, joined: ["a", "f", "u", "r", "coat"] -> ["afur"]."""
    return ["".join(group) for group in _letter_groups(tokens) if len(group) >= 2]


def normalise_blocklist_entry(entry: str) -> str:
    """How a blocklist entry is stored: its normalised words joined by single spaces ("" if none)."""
    return " ".join(normalised_words(entry))


def _word_matches(word: str, blocked: str) -> bool:
    return word in (blocked, blocked + "s", blocked + "es")


def find_blocked(text: str, blocklist: Iterable[str]) -> str | None:
    """The first blocklist entry the text contains as whole words, or None."""
    tokens = _normalised_tokens(text)
    words = _join_spelled_out(tokens)
    runs = _spelled_out_runs(tokens)
    for entry in blocklist:
        phrase = normalised_words(entry)
        if not phrase:
            continue
        if len(phrase) == 1 and any(phrase[0] in run for run in runs):
            return entry
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
