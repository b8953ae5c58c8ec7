"""Every report field is named once, in facebench/schema.py: no module of facebench/ or
benchmarks/ spells a schema key as a string literal."""

import re
from pathlib import Path

from facebench import schema

REPO = Path(__file__).resolve().parents[1]
#: schema's report keys (its kinds are values, not keys; "kind" also tags records that are not
#: reports, such as an embedding's source or a benchmark's task).
KEYS = sorted(
    value
    for name, value in vars(schema).items()
    if name.isupper() and isinstance(value, str) and value not in (*schema.KINDS, schema.KIND)
)


def test_no_report_key_is_a_literal_outside_schema():
    assert "accuracy_10fold_mean" in KEYS and "learned_threshold" in KEYS
    literal = re.compile("([\"'])(" + "|".join(map(re.escape, KEYS)) + r")\1")
    files = [*(REPO / "facebench").rglob("*.py"), *(REPO / "benchmarks").glob("*.py")]
    found = [
        f"{path.relative_to(REPO)}:{number}: {match.group(0)}"
        for path in files
        if path != REPO / "facebench" / "schema.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        for match in literal.finditer(line)
    ]
    assert not found, "report keys spelled outside facebench/schema.py:\n" + "\n".join(found)


def test_headline_picks_the_pair_report_headline():
    report = {key: float(i) for i, key in enumerate(schema.HEADLINE)} | {"pairs": 6000}
    assert schema.headline(report) == {key: float(i) for i, key in enumerate(schema.HEADLINE)}
    assert schema.headline({}) == dict.fromkeys(schema.HEADLINE)
