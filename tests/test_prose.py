"""Numbers and lists the README states, against where they are generated or measured (the book's Markdown pages
take theirs from recon.sphinx_substitutions at build time; GitHub shows the README as written)."""

import re

import jupytext

from recon import sphinx_substitutions
from recon.config import REPO_ROOT
from recon.book import _assigned_names

README = (REPO_ROOT / "README.md").read_text()
NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))


def _paragraph(start: str) -> str:
    return README[README.index(start):].split("\n\n", 1)[0]


def test_the_readme_lists_every_section():
    listed = re.findall(r"`(\w+)`", _paragraph("Sections:").split(". Subjects")[0])
    assert sorted(listed) == sorted(path.stem for path in NOTEBOOKS)


def test_the_readme_names_every_parameter_of_every_section():
    named = set(re.findall(r"`(\w+)`", _paragraph("Every section is a notebook")))
    for path in NOTEBOOKS:
        cell = next(c for c in jupytext.read(path).cells if "parameters" in c.metadata.get("tags", []))
        assert set(_assigned_names(cell.source)) <= named, path.name


def test_the_readme_states_the_measured_build_and_the_profiles_models():
    facts = sphinx_substitutions.build_facts()
    assert re.search(rf"first build takes about \d+ minutes \({facts['build_book_minutes']} on an Intel Xeon, "
                     rf"AVX512, on {facts['build_date']};", README.replace("\n", " ")), facts
    models = _paragraph("The `nsd` profile runs the same code")
    assert re.findall(r"`([\w.-]+/[\w.-]+)`", models) == sphinx_substitutions.nsd_hub_models()


def test_the_book_pages_take_their_numbers_from_the_substitutions():
    substitutions = sphinx_substitutions.substitutions()
    for page in ("intro.md", "how_built.md", "cluster.md", "nsd_scale.md"):
        used = set(re.findall(r"\{\{ (\w+) \}\}", (REPO_ROOT / "book" / page).read_text()))
        assert used and used <= set(substitutions), (page, used - set(substitutions))


def test_the_readme_states_the_nsd_budget_the_benchmark_wrote():
    facts = sphinx_substitutions.nsd_scale_facts()
    budget = _paragraph("The dry run prints the download's sizes").replace("\n", " ")
    stated = re.search(r"\): ([\d.]+) GB of cache disk .*?, ([\d.]+) GB of host memory and ([\d.]+) GB of GPU memory "
                       r"at peak, and about ([\d.]+) h of GPU time.*the other subjects take about ([\d.]+) h", budget)
    assert stated, budget
    assert stated.groups() == (facts["nsd_disk_gb"], facts["nsd_host_gb"], facts["nsd_gpu_gb"], facts["nsd_gpu_hours"],
                               facts["nsd_gpu_hours_other"])
    fits = _paragraph("One subject fits one GPU of").replace("\n", " ")
    assert f"GPU of {facts['nsd_smallest_card_gb']} GB or more ({facts['nsd_too_small_card_gb']} GB does not" in fits


def test_the_readme_states_the_modelled_size_of_a_subjects_nsd_files():
    facts = sphinx_substitutions.nsd_tree_facts()
    tree = _paragraph("The dry run prints the download's sizes").replace("\n", " ")
    stated = re.search(r"subj01's (\d+) sessions read ([\d.]+) GB of NSD files \(the betas ([\d.]+) GB, the stimuli "
                       r"([\d.]+) GB\), more than the 64 GB cache disk holds by themselves", tree)
    assert stated, tree
    assert stated.groups() == (facts["nsd_tree_sessions"], facts["nsd_tree_gb"], facts["nsd_tree_betas_gb"],
                               facts["nsd_tree_stimuli_gb"])
    assert float(facts["nsd_tree_gb"]) > 64  # what "by themselves" claims


def test_the_readme_names_each_file_of_the_authors_gan_where_the_loader_reads_it():
    from recon import kamitani

    files = _paragraph("The reader needs").replace("\n", " ")
    assert kamitani.ENV_VAR in files
    for path, _ in kamitani.FILES.values():
        folder, _, name = path.partition("/")
        assert f"`{path}`" in files or (f"`{name}`" in files and f"`{folder}/" in files), path
