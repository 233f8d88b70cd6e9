"""Exact decimals in the database: floor areas and money are counted to the cent, never as binary floats."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

from sqlalchemy import Numeric, String
from sqlalchemy.types import TypeDecorator


class ExactDecimal(TypeDecorator):
    """A Decimal with `scale` places: NUMERIC on PostgreSQL; on SQLite, whose NUMERIC columns hold binary
    floats, its text ("89.50"), read back as the same Decimal. A value with more places than the column
    keeps is refused rather than rounded (an area that silently changed would change a vote)."""

    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int = 12, scale: int = 2) -> None:
        super().__init__(precision, scale, asdecimal=True)
        self.precision, self.scale = precision, scale
        self._quantum = Decimal(1).scaleb(-scale)

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(self.precision + 2))
        return dialect.type_descriptor(Numeric(self.precision, self.scale, asdecimal=True))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        exact = self.exact(value)
        return str(exact) if dialect.name == "sqlite" else exact

    def process_result_value(self, value, dialect):
        return None if value is None else Decimal(value).quantize(self._quantum)

    def exact(self, value) -> Decimal:
        """The value as a Decimal of this scale; ValueError if it has more places or is not finite."""
        try:
            number = value if isinstance(value, Decimal) else Decimal(str(value))  # str: 70.1, not 70.0999…
            fixed = number.quantize(self._quantum)
        except InvalidOperation:
            raise ValueError(f"not a decimal number: {value!r}") from None
        if fixed != number or not fixed.is_finite():
            raise ValueError(f"{value!r} has more than {self.scale} decimal places")
        return fixed


def parse_decimal(text: str, places: int = 2) -> Decimal:
    """A plain decimal as people type it in a spreadsheet ("89.5", "1,200.00"); ValueError otherwise."""
    cleaned = text.strip().replace(",", "")
    if not cleaned or not all(c.isdigit() or c == "." for c in cleaned) or cleaned.count(".") > 1:
        raise ValueError(text)
    return ExactDecimal(scale=places).exact(cleaned)
