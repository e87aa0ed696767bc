"""The book's tables: DataFrames written as the Markdown that numbered ``{table}`` directives hold."""

import math

import pandas as pd

from recon import book
from recon.evaluate import METRICS, paper_table, side_by_side


def test_table1_beside_the_paper_has_16_rows_and_a_paper_column_per_metric():
    lines = book.markdown_table(book.beside_paper(side_by_side(paper_table()))).splitlines()
    header = [cell.strip().replace("\u200b", "") for cell in lines[0].strip("|").split("|")]
    assert header[:2] == ["subject", "method"] and header[2::2] == list(METRICS)
    assert header[3::2] == ["paper"] * len(METRICS)
    rows = lines[2:]
    assert len(rows) == 16
    # each subject is named on its first row only; methods are escaped for Markdown
    assert [r.split("|")[1].strip() for r in rows[:5]] == ["subj01", "", "", "", "subj02"]
    assert rows[0].split("|")[2].strip() == r"\[30\]"
    assert all(len(r.strip("|").split("|")) == 16 for r in rows)


def test_numbers_formats_and_missing_values():
    frame = pd.DataFrame({"r": [0.12345, math.nan], "alpha": [12345.0, 1.0], "name": ["a|b", "*x*"]},
                         index=pd.Index(["z", "c"], name="target"))
    text = book.markdown_table(frame, formats={"alpha": ".3g"})
    assert text.splitlines()[1] == "| --- | ---: | ---: | --- |"
    assert "| z | 0.123 | 1.23e+04 | a\\|b |" in text
    assert "| c | nan | 1 | \\*x\\* |" in text  # a missing value stays visible, for the browser test to catch


def test_mean_sd_is_written_as_the_papers_last_rows():
    summary = book.mean_sd(paper_table())
    assert list(summary.index) == ["[30]", "+T", "+T+G", "+T+G+D"]
    assert summary.loc["[30]", "CLIP(Early)"] == "0.759\u00a0±\u00a00.027"  # no-break spaces
