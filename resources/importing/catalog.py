"""The qualification catalog as both imports look codes up in it."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from resources.models import Qualification


@dataclass
class Catalog:
    """The qualification catalog, keyed by upper-case code (codes match whatever their case)."""

    frame: pd.DataFrame

    @classmethod
    def load(cls) -> Catalog:
        rows = Qualification.objects.values_list("id", "code", "name", "kind", "jurisdictional")
        frame = pd.DataFrame.from_records(
            list(rows), columns=["id", "code", "name", "kind", "jurisdictional"]
        )
        frame["key"] = frame["code"].astype(str).str.upper()
        return cls(frame)

    @property
    def jurisdictional(self) -> dict[str, bool]:
        return dict(zip(self.frame["key"], self.frame["jurisdictional"].astype(bool), strict=True))

    @property
    def codes(self) -> list[str]:
        return [str(code) for code in self.frame["code"]]

    @property
    def ids(self) -> dict[str, int]:
        return dict(zip(self.frame["key"], self.frame["id"], strict=True))
