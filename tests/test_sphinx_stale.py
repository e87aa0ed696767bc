"""After an edit of the package's code, a rebuild executes every notebook again (not only those whose text changed)."""


import nbformat
import pytest

sphinx_app = pytest.importorskip("sphinx.application")


def _project(tmp_path, code):
    source = tmp_path / "src"
    source.mkdir()
    nb = nbformat.v4.new_notebook()
    # each execution appends a line to a log beside the project: how many times the notebook ran
    nb.cells = [nbformat.v4.new_code_cell(f"open({str(tmp_path / 'runs.log')!r}, 'a').write('ran\\n')")]
    nbformat.write(nb, source / "page.ipynb")
    (source / "index.md").write_text("# Book\n\n```{toctree}\npage\n```\n")
    (source / "conf.py").write_text(
        "extensions = ['myst_nb', 'recon.sphinx_stale']\n"
        "nb_execution_mode = 'force'\n"
        f"recon_source_folders = [{str(code)!r}]\n"
        "exclude_patterns = ['_build']\n")
    return source


def _build(source, tmp_path):
    app = sphinx_app.Sphinx(str(source), str(source), str(tmp_path / "html"), str(tmp_path / "doctrees"), "html",
                            status=None, warning=None, freshenv=False)
    app.build()
    return (tmp_path / "runs.log").read_text().count("ran")


def test_a_rebuild_after_a_code_edit_executes_the_notebooks_again(tmp_path):
    code = tmp_path / "package"
    code.mkdir()
    module = code / "evaluate.py"
    module.write_text("SCALE = 1\n")
    source = _project(tmp_path, code)
    assert _build(source, tmp_path) == 1
    assert _build(source, tmp_path) == 1  # nothing changed: nothing executed (Sphinx's incremental build)
    module.write_text("SCALE = 2\n")  # an edit of the code the notebook runs, not of the notebook
    assert _build(source, tmp_path) == 2
    assert _build(source, tmp_path) == 2
    (code / "new_module.py").write_text("")
    assert _build(source, tmp_path) == 3


def test_the_book_enables_it():
    from recon.config import REPO_ROOT

    assert "recon.sphinx_stale" in (REPO_ROOT / "_config.yml").read_text().split("extra_extensions:")[1].splitlines()[0]
