"""Typed addresses ("3栋2单元501", "3-2-501", "3号楼2单元501室") and the keys they are matched by.

Residents write the same flat many ways; the import stores one canonical spelling (unit "2单元", room
"501") and both sides are compared by their keys: building "3", unit "2", room "501".
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_NUM = r"[0-9]+|[零〇一二两三四五六七八九十]+"
_BUILDING_SUFFIX = r"(?:号楼|号|栋|幢|座|楼)"
_LABELLED = re.compile(
    rf"(?P<b>{_NUM}|[A-Z])\s*{_BUILDING_SUFFIX}\s*"
    rf"(?:(?P<u>{_NUM})\s*单元?\s*)?[-\s]*"
    r"(?P<r>[A-Z]?[0-9]{1,5}[A-Z]?)\s*(?:室|号|房)?$")
_DASHED = re.compile(r"^(?P<b>[0-9]+|[A-Z])\s*[-/_\s]\s*(?:(?P<u>[0-9]+)\s*[-/_\s]\s*)?(?P<r>[0-9]{1,5}[A-Z]?)$")


@dataclass(frozen=True, slots=True)
class Address:
    building: str  # key: "3", "A"
    unit: str  # key: "2", or "" when not given
    room: str  # key: "501"


def normalise(text: str) -> str:
    """Full-width digits and letters to ASCII, dashes to '-', upper case."""
    text = unicodedata.normalize("NFKC", text).upper()
    return re.sub(r"[‐-―－~～]", "-", text).strip()


def cn_number(text: str) -> str:
    """'三' -> '3', '十二' -> '12', '二十' -> '20'; digits unchanged; anything else unchanged."""
    if not text or text.isdigit() or any(ch not in _CN_DIGITS and ch != "十" for ch in text):
        return text
    if "十" in text:
        tens, _, ones = text.partition("十")
        return str((_CN_DIGITS[tens[-1]] if tens else 1) * 10 + (_CN_DIGITS[ones[0]] if ones else 0))
    return "".join(str(_CN_DIGITS[ch]) for ch in text)


def _strip_number(text: str) -> str:
    """A leading zero is not part of the name: '03' and '3' are one building, '0302' and '302' one room."""
    if not text.isdigit():
        return text
    return text.lstrip("0") or "0"


def building_key(name: str) -> str:
    name = re.sub(rf"{_BUILDING_SUFFIX}$", "", normalise(name)).strip()
    return _strip_number(cn_number(name))


def unit_key(unit: str) -> str:
    unit = re.sub(r"单元?$", "", normalise(unit)).strip()
    return _strip_number(cn_number(unit))


def room_key(room: str) -> str:
    return _strip_number(re.sub(r"(?:室|号|房)$", "", normalise(room)).strip())


def canonical_unit(unit: str) -> str:
    """How a unit is stored: '2' and '2单元' both become '2单元'; '' stays ''."""
    key = unit_key(unit)
    return f"{key}单元" if key else ""


def parse_address(text: str) -> Address | None:
    """The building, unit and room in what a resident typed, or None when they are not all there."""
    text = normalise(text)
    m = _DASHED.match(text) or _LABELLED.search(text)
    if not m:
        return None
    return Address(_strip_number(cn_number(m["b"])), _strip_number(cn_number(m["u"] or "")), _strip_number(m["r"]))


def display(building: str, unit: str, room: str) -> str:
    """'3栋2单元501' from the stored spellings."""
    return f"{building}{unit}{room}"
