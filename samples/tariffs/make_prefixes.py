"""Writes prefixes.csv, the destination prefixes of the sample German MVNO tariff (deterministic:
running it again gives the same file). Run from anywhere: python samples/tariffs/make_prefixes.py

Prefixes are E.164 digits without '+' (49 Germany). The longest matching prefix decides the group,
so the short ones below are catch-alls: '49' for the rest of Germany, '1'..'9' for the rest of
the world.
"""
from __future__ import annotations

import csv
from pathlib import Path

EU = {"43": "Austria", "32": "Belgium", "359": "Bulgaria", "385": "Croatia", "357": "Cyprus",
      "420": "Czechia", "45": "Denmark", "372": "Estonia", "358": "Finland", "33": "France",
      "30": "Greece", "36": "Hungary", "353": "Ireland", "39": "Italy", "371": "Latvia",
      "370": "Lithuania", "352": "Luxembourg", "356": "Malta", "31": "Netherlands", "48": "Poland",
      "351": "Portugal", "40": "Romania", "421": "Slovakia", "386": "Slovenia", "34": "Spain",
      "46": "Sweden"}
CITIES = {"30": "Berlin", "40": "Hamburg", "69": "Frankfurt am Main", "89": "München", "221": "Köln",
          "211": "Düsseldorf", "711": "Stuttgart", "341": "Leipzig", "351": "Dresden", "511": "Hannover"}


def rows():
    yield "49", "national-fixed", "Germany (other national numbers)"
    for area, city in CITIES.items():
        yield f"49{area}", "national-fixed", city
    for area in range(2000, 9999, 3):  # a sample of four-digit area codes
        if not str(area).startswith(("15", "16", "17", "18", "19")):
            yield f"49{area}", "national-fixed", f"Area 0{area}"
    for block in range(151, 180):
        yield f"49{block}", "national-mobile", f"Mobile 0{block}"
        for digit in range(10):
            yield f"49{block}{digit}", "national-mobile", f"Mobile 0{block} {digit}"
    for service in ("900", "137", "118"):
        yield f"49{service}", "premium", f"Premium 0{service}"
        for digit in range(10):
            yield f"49{service}{digit}", "premium", f"Premium 0{service} {digit}"
    for code, country in EU.items():
        yield code, "eu", country
        for block in range(10, 100):
            yield f"{code}{block}", "eu", f"{country} {block}"
    for digit in range(1, 10):
        yield str(digit), "world", "Rest of the world"


def main() -> Path:
    target = Path(__file__).with_name("prefixes.csv")
    seen = set()
    with target.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["prefix", "destination_group", "description"])
        for prefix, group, description in rows():
            if prefix not in seen:  # e.g. 4930 is both Berlin and a sampled area code: first wins
                seen.add(prefix)
                writer.writerow([prefix, group, description])
    return target


if __name__ == "__main__":
    print(main())
