import math

import pytest

from mpibench.store.schema import empty_result
from mpibench.summary import cells, format_table, speedups


def row(model, prompt, threads, e2e, status="ok"):
    return empty_result(model=model, prompt_id=prompt, threads=threads, e2e_s=e2e, decode_tok_s=100 / e2e,
                        generated_tokens=100, status=status)


def test_cells_take_medians_of_successful_runs_only():
    records = [row("m", "pi", 1, 2.0), row("m", "pi", 1, 4.0), row("m", "pi", 1, 3.0),
               row("m", "pi", 1, 99.0, status="failed"), row("m", "pi", 2, 1.5)]
    one, two = cells(records)
    assert (one.threads, one.runs, one.failed, one.medians["e2e_s"]) == (1, 4, 1, 3.0)
    assert speedups([one, two])[("m", "pi", 2)] == pytest.approx(2.0)
    table = format_table([one, two])
    assert "speedup" in table and "2.00" in table


def test_a_cell_with_no_success_has_nan_medians():
    (cell,) = cells([row("m", "pi", 1, 1.0, status="failed")])
    assert math.isnan(cell.medians["e2e_s"])
    assert "-" in format_table([cell])
