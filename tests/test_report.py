"""report.html and report.md: their sections on a synthetic results file, then a real run's report in Chromium."""

import html
import re
from pathlib import Path

import pytest

from analysis.report import _md, main, write_report
from helpers import header, mpibench
from mpibench.findings import METHOD, answer_sentences
from mpibench.store.hdf5 import read_results, write_results
from mpibench.store.schema import empty_result

EVIL = '<script>alert("x")</script> & | *'  # text from the data that must reach the page as text
MODEL = "m<b>&"
SECTIONS = ("mpibench report: run r1", "Answers", "Results", "Queries", "Bench tests", "Figures", "Data quality",
            "Tasks that did not succeed", "Tasks whose cores were shared", "Engine configurations", "The run",
            "Hosts", "Models", "Software and MPI", "Launch variables", "Configuration")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
EXTERNAL = re.compile(r"""\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.I)


def _row(index, **kw):
    return empty_result(**{"index": index, "task_id": f"t{index}", "model": MODEL, "hostname": "h", "status": "ok",
                           "answer": "a", "token_ns": [1, 2], **kw})


@pytest.fixture
def results_file(tmp_path):
    """Queries at 1 and 2 threads, one failed query with a hostile error, a llama-bench pp test, and two tasks the
    run never reached."""
    rows = [_row(i, prompt_id="pi", threads=t, repetition=rep, e2e_s=(1 + 0.1 * rep) / t, ttft_s=0.1,
                 decode_tok_s=8 * t, prefill_tok_s=100.0, generated_tokens=8,
                 contended=int(t == 2 and rep == 2), contention_share=0.4 if t == 2 and rep == 2 else 0.0)
            for i, (t, rep) in enumerate((t, rep) for t in (1, 2) for rep in range(3))]
    rows.append(_row(6, prompt_id="pi", threads=2, repetition=3, status="failed", error=EVIL))
    rows += [_row(7 + rep, kind="bench", prompt_id="pp64", threads=1, repetition=rep, e2e_s=0.5 + 0.1 * rep,
                  prefill_tok_s=64 / (0.5 + 0.1 * rep), started_unix=1.7e9) for rep in range(2)]
    head = dict(header(len(rows) + 2), config_toml=f'prompts = ["{EVIL}"]\n', launch={"SLURM_NTASKS": "<2>"},
                models=[dict(header()["models"][0], name=MODEL)])
    path = tmp_path / "run" / "results.h5"
    path.parent.mkdir()
    write_results(path, head, rows)
    return path


def _in_order(text: str, parts) -> None:
    positions = [text.find(p) for p in parts]
    assert -1 not in positions, [p for p, i in zip(parts, positions) if i == -1]
    assert positions == sorted(positions), parts


def test_report_holds_every_section_in_order_with_the_data_escaped(results_file):
    html_path, md_path = write_report(results_file)
    assert (html_path, md_path) == (results_file.parent / "report.html", results_file.parent / "report.md")
    page, md = html_path.read_text(), md_path.read_text()
    _in_order(page, [f">{html.escape(s)}" for s in SECTIONS])
    _in_order(md, [_md(s) for s in SECTIONS])
    for sentence in answer_sentences(read_results(results_file)):
        assert html.escape(sentence) in page and _md(sentence) in md
    assert html.escape(METHOD) in page and _md(METHOD) in md
    assert "<script>" not in page and html.escape(EVIL) in page and "m&lt;b&gt;&amp;" in page
    assert _md(EVIL) in md and r"m\<b\>\&" in md
    assert md.count("<script>") == 1 and '```toml\nprompts = ["<script>' in md  # literal inside a code block
    assert "| model | size | params | backend | threads | test | t/s |" in md  # llama-bench's layout
    assert re.search(r"\| pp64 \| \d+\.\d\d ± \d+\.\d\d \|", md)
    assert re.search(r"\| failed \| 1 \| .*alert.* \|\n\| not recorded \| 2 \| the run ended", md)
    shared = "pi threads=2: 1 of 3 successful runs shared their cores with other work (up to 40 %"
    assert shared in md and shared in page and "Left out of every statistic" not in md
    assert "&lt;2&gt;" in page and "SLURM\\_NTASKS" in md


def test_html_is_self_contained_and_markdown_links_the_figures(results_file, tmp_path):
    html_path, md_path = write_report(results_file, tmp_path / "elsewhere")
    assert html_path.parent == tmp_path / "elsewhere"
    page, md = html_path.read_text(), md_path.read_text()
    assert not EXTERNAL.search(page)
    images = re.findall(r'<img src="([^"]*)"', page)
    assert images and all(src.startswith("data:image/png;base64,") for src in images)
    assert "<link" not in page and "<script" not in page and "@import" not in page
    links = re.findall(r"!\[[^\]]*\]\(([^)]*)\)", md)
    assert len(links) == len(images) and all(link.startswith("plots/") for link in links)
    assert all((md_path.parent / link).is_file() for link in links)


def test_a_run_where_every_task_failed_still_gets_its_report(tmp_path):
    path = tmp_path / "results.h5"
    write_results(path, header(1), [_row(0, prompt_id="pi", threads=1, status="timeout", error="past 5 s")])
    md = write_report(path)[1].read_text()
    assert "no figure: " in md and "| timeout | 1 | past 5 s |" in md


def test_a_bad_file_is_one_line_and_exit_2(tmp_path, capsys):
    assert main([str(tmp_path / "missing.h5")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file" in err


def _playwright():
    """Playwright's sync API and Debian's Chromium, or a failure that says what to install."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is missing: pip install playwright (the test extra); no `playwright install` "
                    "needed, the test drives Debian's chromium")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    return sync_playwright


@pytest.mark.integration
def test_a_real_runs_report_renders_in_chromium(tmp_path):
    sync_playwright = _playwright()
    out = tmp_path / "run"
    proc = mpibench(2, "run", "--models", "smollm2-135m", "--prompts", "pi,weather", "--threads", "1,2",
                    "--repetitions", "2", "--max-tokens", "16", "--no-plots", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    html_path, _ = write_report(out / "results.h5")
    sentences = answer_sentences(read_results(out / "results.h5"))
    errors, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1000, "height": 800})
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("request", lambda request: requests.append(request.url))
        page.goto(html_path.as_uri(), wait_until="load")
        widths = page.eval_on_selector_all("img", "images => images.map(i => i.complete ? i.naturalWidth : 0)")
        text = " ".join(page.inner_text("body").split())
        rows = page.eval_on_selector_all("table tr", "rows => rows.map(r => r.innerText)")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        page.set_viewport_size({"width": 600, "height": 800})  # printed on a narrow page: nothing sticks out
        page.emulate_media(media="print")
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        browser.close()
    assert widths and all(w > 0 for w in widths), widths
    assert sentences and all(" ".join(s.split()) in text for s in sentences)
    assert len([r for r in rows if r.startswith("smollm2-135m")]) == 4  # 2 prompts x 2 thread counts
    assert "Tasks that did not succeed" in text and "Every task succeeded." in text
    assert errors == []
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    assert overflow <= 0
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_the_report_without_contended_runs_says_how_many_it_left_out(results_file):
    html, md = write_report(results_file, exclude_contended=True)
    text = md.read_text()
    assert "Left out of every statistic (--exclude-contended): 1 contended run." in text
    assert "shared their cores" not in text
