import json

import pytest
from datasets import Dataset

from mindwell.errors import MindwellError
from mindwell.train.data import load_table, require_columns, require_strings, split_rows


def test_group_split_keeps_each_group_on_one_side():
    table = Dataset.from_dict({"q": [i // 3 for i in range(60)], "x": list(range(60))})
    train, val = split_rows(table, 0.2, seed=1, group_column="q")
    train_groups, val_groups = set(train["q"]), set(val["q"])
    assert train_groups and val_groups and not train_groups & val_groups
    assert len(train) + len(val) == 60


def test_a_split_column_is_honoured_and_test_rows_are_never_used():
    table = Dataset.from_dict({"split": ["train", "val", "test", "train"], "x": [1, 2, 3, 4]})
    train, val = split_rows(table, 0.5, seed=0, split_column="split")
    assert train["x"] == [1, 4] and val["x"] == [2]


def test_stratified_split_keeps_every_class_in_validation():
    labels = ["a"] * 40 + ["b"] * 8
    table = Dataset.from_dict({"label": labels})
    _, val = split_rows(table, 0.25, seed=0, stratify_column="label")
    assert sorted(val["label"]) == ["a"] * 10 + ["b"] * 2


def test_missing_columns_name_the_columns_found():
    table = Dataset.from_dict({"questionText": ["q"], "answer": ["a"]})
    with pytest.raises(MindwellError, match="(?s)no column.*answerText.*Columns found: "
                                            "questionText, answer"):
        require_columns(table, ["answerText"], "data.csv")


def test_non_string_text_is_reported_with_its_row():
    table = Dataset.from_dict({"text": ["fine", None]})
    with pytest.raises(MindwellError, match="Row 1 .*NoneType"):
        require_strings(table, "text", "data.csv")


def test_unreadable_empty_and_missing_files(tmp_path):
    with pytest.raises(MindwellError, match="Data file not found"):
        load_table(str(tmp_path / "nope.csv"))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(MindwellError):
        load_table(str(empty))
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "ok"}\n{not json\n')
    with pytest.raises(MindwellError, match="Cannot read the data"):
        load_table(str(broken))
    odd = tmp_path / "data.xlsx"
    odd.write_bytes(b"PK")
    with pytest.raises(MindwellError, match="unknown file type"):
        load_table(str(odd))


def test_jsonl_messages_load(tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    assert load_table(str(path))["messages"][0][0]["content"] == "hi"


def test_a_classify_split_returns_the_training_groups_and_names_a_missing_group_column(
        tmp_path):
    from mindwell.train.classify import load_split
    from mindwell.train.recipe import Recipe

    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"text": f"t{i}", "label": i % 2, "group": f"g{i // 2}"})
                            + "\n" for i in range(40)))
    recipe = Recipe(task="classify", classifier="embedding-svm", model="use-multilingual-v3",
                    data=str(data), group_column="group", validation_fraction=0.25, seed=0)
    split = load_split(recipe)
    assert len(split.train_groups) == len(split.train_texts)
    assert {f"g{int(t[1:]) // 2}" for t in split.train_texts} == set(split.train_groups)
    with pytest.raises(MindwellError, match="no column.*pair"):
        load_split(recipe.model_copy(update={"group_column": "pair"}))
