"""The shipped default model on the full shared UTKFace test split (the business gate, and its card)."""
import json
import re

import pytest
from click.testing import CliRunner

from agegate.edge.cli import cli
from agegate.edge.default_model import assets_dir

pytestmark = pytest.mark.slow  # evaluates the shipped model on the whole test split


def test_shipped_int8_meets_gate_and_matches_card(shipped_model, utk_root):
    r = CliRunner().invoke(cli, ["eval", "--model", str(shipped_model), "--data", str(utk_root), "--split", "test",
                                 "--json"])
    assert r.exit_code == 0, r.output
    m = json.loads(r.output)
    assert m["n"] == 2396
    assert m["mae"] < 8.0, "the shipped model breaks the business requirement (MAE < 8)"
    meta = json.loads(shipped_model.with_suffix(".json").read_text())
    assert meta["quantization"] in ("int8", "int8-qat")
    card_mae = meta["metrics"]["test"]["mae"]
    assert abs(m["mae"] - card_mae) <= 0.1, (m["mae"], card_mae)
    card = (assets_dir() / "MODEL_CARD.md").read_text()
    stated = float(re.search(r"int8 test MAE \*\*([0-9.]+)\*\*", card).group(1))
    assert abs(stated - m["mae"]) <= 0.1, (stated, m["mae"])
    assert "non-commercial" in card
