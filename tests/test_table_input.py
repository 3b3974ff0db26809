"""Each kind of bad table data stops `pipeline run` at its start with one line naming the file, the
line where there is one, and the fix; nothing is trained. Rossmann's own definition, on made-up
data of its shape (tests/rossmann_data.py) with one thing broken."""
import pandas as pd
import pytest

from pipeline.cli import main

import rossmann_data

pytestmark = pytest.mark.quick


@pytest.fixture
def data(tmp_path, workdir):
    return rossmann_data.made_up(tmp_path / "rossmann-store-sales")


def edit(path, change) -> None:
    """`change` the CSV at `path` as text: what a user's broken file holds, cell for cell."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    change(table).to_csv(path, index=False)


def put(column, row, value):
    def change(table):
        table.loc[row, column] = value
        return table
    return change


def error(data, capsys, workdir) -> str:
    """The one line `pipeline run` stops with, without its "pipeline: error: "."""
    assert main(["run", "rossmann-store-sales", "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("pipeline: error: "), err
    assert not list((workdir / "data" / "runs").rglob("fold*"))  # said before anything trains (only its failed record)
    return err.strip().removeprefix("pipeline: error: ")


# (file, the change, the line it stops with: {data} the data folder)
CASES = {
    "a join key with no row in the joined table": (
        "store.csv", lambda t: t[t["Store"] != "13"],
        "{data}/train.csv: Store 13 (line 5, 60 lines in all) has no row in {data}/store.csv: download the data again"),
    "a test row's join key with no row": (
        "test.csv", put("Store", 4, "999"),
        "{data}/test.csv: Store 999 (line 6, 1 line in all) has no row in {data}/store.csv: download the data again"),
    "a named column in no file": (
        "store.csv", lambda t: t.drop(columns="Assortment"),
        "{data}: no column 'Assortment' (the definition's `categorical` names it) in train.csv, test.csv, store.csv or "
        "the definition's features; fix its name"),
    "a named column in the test's file only": (
        "train.csv", lambda t: t.drop(columns="SchoolHoliday"),
        "{data}/train.csv: no column 'SchoolHoliday', which test.csv has and the definition names (its `events`); "
        "download the data again, or fix the definition"),
    "no target column": (
        "train.csv", lambda t: t.drop(columns="Sales"),
        "{data}/train.csv: no target column 'Sales' (has Store, DayOfWeek, Date, Customers, Open, Promo, StateHoliday, "
        "SchoolHoliday); fix `target` in the definition"),
    "a target that is text": (
        "train.csv", put("Sales", 3, "lots"),
        "{data}/train.csv: target 'Sales' holds 'lots', not a number, on line 5 (1 line in all); a regression target is a "
        "number on every line: fix those lines, or `target` in the definition"),
    "a target that is missing": (
        "train.csv", put("Sales", 7, ""),
        "{data}/train.csv: target 'Sales' is missing on line 9 (1 line in all); a regression target is a number on every "
        "line: fix those lines, or `target` in the definition"),
    "a negative target learnt as its log1p": (
        "train.csv", put("Sales", 3, "-5"),
        "{data}/train.csv: target 'Sales' is negative on 1 line (e.g. line 5: -5); log1p needs targets >= 0: set "
        "transform=None in the Table, or fix the lines"),
    "a date that is not one": (
        "train.csv", put("Date", 3, "2015-02-30"),
        "{data}/train.csv: Date '2015-02-30' on line 5 is not a date (1 line in all); fix those lines, or `date` in the "
        "definition"),
    "a test date that is not one": (
        "test.csv", put("Date", 0, "soon"),
        "{data}/test.csv: Date 'soon' on line 2 is not a date (1 line in all); fix those lines, or `date` in the definition"),
    "text in a continuous column": (
        "store.csv", put("CompetitionDistance", 2, "far"),
        "{data}/store.csv: continuous column 'CompetitionDistance' holds text ('far'); list it under `categorical`, or "
        "turn it into numbers in `features`"),
    "a test id twice": (
        "test.csv", put("Id", 3, "1"),
        "{data}/test.csv: 1 ids appear more than once (e.g. 1 on line 5); each test row needs an id of its own: download "
        "the data again"),
    "a column the skip rule names only in the test's file": (
        "train.csv", lambda t: t.drop(columns="Open"),
        "{data}/train.csv: the definition's skip rule 'Open == 0 or Sales <= 0' names a column it lacks (name 'Open' is "
        "not defined); fix `skip` in the definition"),
    "a column the known rule names only in the training file": (
        "test.csv", lambda t: t.drop(columns="Open"),
        "{data}/test.csv: the definition's known rule 'Open == 0' names a column it lacks (name 'Open' is not defined); "
        "fix `known` in the definition"),
    "a sample submission listing an id the test lacks": (
        "sample_submission.csv", put("Id", 3, "9999"),
        "{data}/sample_submission.csv: its ids don't match test.csv: 1 ids with no test row (e.g. '9999'); download the "
        "data again, or check `id` in the definition"),
    "a sample submission missing a test row": (
        "sample_submission.csv", lambda t: t.iloc[1:],
        "{data}/sample_submission.csv: its ids don't match test.csv: 1 test rows not listed (e.g. '1'); download the "
        "data again, or check `id` in the definition"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_table_data_is_one_line(data, capsys, workdir, case):
    file, change, said = CASES[case]
    edit(data / file, change)
    assert error(data, capsys, workdir) == said.format(data=data)


# (a change to rossmann's definition, the line it stops with)
DEFINITIONS = {
    "a skip rule naming no column": (
        {'skip="Open == 0 or Sales <= 0"': 'skip="Opened == 0"'},
        "{data}/train.csv: the definition's skip rule 'Opened == 0' names a column it lacks (name 'Opened' is not "
        "defined); fix `skip` in the definition"),
    "a known rule naming no column": (
        {'known={"Open == 0": 0}': 'known={"Open == 0": 0, "Closed == 1": 0}'},
        "{data}/test.csv: the definition's known rule 'Closed == 1' names a column it lacks (name 'Closed' is not "
        "defined); fix `known` in the definition"),
    "a misspelt column": (
        {'"StoreType", "Assortment",': '"StoreType", "Asortment",'},
        "{data}: no column 'Asortment' (the definition's `categorical` names it) in train.csv, test.csv, store.csv "
        "or the definition's features; fix its name (did you mean 'Assortment'?)"),
}


@pytest.mark.parametrize("case", DEFINITIONS)
def test_a_definition_naming_what_the_data_lacks_is_one_line(data, capsys, workdir, tmp_path, monkeypatch, case):
    changes, said = DEFINITIONS[case]
    monkeypatch.setenv("PIPELINE_COMPETITIONS", str(rossmann_data.definition(tmp_path / "defs", changes=changes)))
    assert error(data, capsys, workdir) == said.format(data=data)


def test_the_definitions_features_failing_on_the_data_is_one_line_at_its_line(data, capsys, workdir):
    edit(data / "store.csv", lambda t: t.drop(columns="PromoInterval"))
    line = next(i for i, text in enumerate(rossmann_data.COMPETITION.read_text().splitlines(), 1)
                if 'rows["PromoInterval"]' in text)
    assert error(data, capsys, workdir) == (
        f"{rossmann_data.COMPETITION}:{line}: `features` failed on {data}: KeyError: 'PromoInterval'; a column it "
        f"reads is not in the data: download the data again, or fix `features`")
