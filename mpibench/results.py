"""Reading results from Python: every task of a run as one row, with its answer, token times and scores.

    import mpibench.results
    df = mpibench.results.load("results/<run-id>")      # or .../results.h5
    df[df.model == "smollm2-135m"].groupby("threads").e2e_s.median()

`load` needs pandas (`pip install mpibench[analysis]`); `rows` gives the same rows as dicts without it
(`mpibench export --rows`).
"""

from __future__ import annotations

import math
from pathlib import Path

from mpibench.store.hdf5 import Results, read_results
from mpibench.store.schema import RESULT_COLUMNS

ROW_DEFINITIONS = {
    "run_id": "the run the row belongs to (results files of several runs concatenate)",
    "answer": "the generated text",
    "token_ns": "arrival time of each generated token, ns since the request started",
    "score:<scorer>": "the score (1-10) that scorer gave the row's answer; NaN where it gave none",
    "rationale:<scorer>": "why that scorer gave that score",
}


def rows(results: Results, token_times: bool = True) -> list[dict]:
    """One dict per task, warmups and failed tasks included: run_id, every `results` column, answer, the token
    times (with `token_times`) and each scorer's score:<scorer> and rationale:<scorer>."""
    scorers = sorted({s["scorer"] for s in results.scores})
    scored = {(s["task_id"], s["scorer"]): s for s in results.scores}
    table = []
    for record in results.results:
        row = {"run_id": results.attrs.get("run_id", ""), **{c: record[c] for c, _ in RESULT_COLUMNS},
               "answer": record["answer"]}
        if token_times:
            row["token_ns"] = record["token_ns"]
        for scorer in scorers:
            score = scored.get((record["task_id"], scorer))
            row[f"score:{scorer}"] = score["score"] if score else math.nan
            row[f"rationale:{scorer}"] = score["rationale"] if score else ""
        table.append(row)
    return table


def load(path: str | Path):
    """The run's tasks as a pandas DataFrame, one row per task (see `rows`), strings as str; `path` is a run
    directory or its results.h5."""
    try:
        import pandas
    except ImportError:
        raise ImportError("mpibench.results.load needs pandas: pip install 'mpibench[analysis]'") from None
    return pandas.DataFrame(rows(read_results(path)))
