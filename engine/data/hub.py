"""Hugging Face datasets as import sources: a dataset name (from the Hub, for users who are
online) or a folder saved with `save_to_disk`, read as a `Table` (engine/data/sources.py) in Arrow
batches. A saved folder whose files point outside it is refused before anything is read."""

from __future__ import annotations

import json
from pathlib import Path

from engine.data.readers import BATCH_ROWS, _first_line, _wanted
from engine.data.sources import ColumnMap, ImportProblem, Table


# --- Hugging Face datasets -----------------------------------------------------------------
def hf_table(path: Path | None, name: str, split: str, confined: bool = False) -> Table:
    """A dataset saved with `save_to_disk` at path, or the hub dataset `name` when path is None.
    `confined` (the web app): a name is looked up on the hub only, never as a local folder, and
    a saved dataset may only read files inside its own folder."""
    import datasets

    if path is None:
        try:
            data = datasets.load_dataset(("hf://datasets/" if confined else "") + name, split=split)
        except Exception as e:  # offline, unknown name, gated, unknown split: all say the same
            raise ImportProblem(
                f"The Hugging Face dataset '{name}' (split '{split}') could not be reached: "
                f"{_first_line(e)}. '{name}' is not a file or folder here either. Check the name, "
                "the split and the internet connection, or save the dataset with save_to_disk "
                "on a connected machine and import that folder."
            ) from None
        label = f"{name}/{split}"
    else:
        if confined:
            _check_saved_files(path)
        try:
            data = datasets.load_from_disk(str(path))
        except Exception as e:  # datasets raises several kinds for a damaged folder
            raise ImportProblem(
                f"{name} is not a readable saved Hugging Face dataset ({_first_line(e)}). Save "
                "it again with save_to_disk."
            ) from None
        label = name
        if isinstance(data, datasets.DatasetDict):
            if split not in data:
                raise ImportProblem(
                    f"{name} has no split '{split}' (splits: {', '.join(data)}). Choose one."
                )
            data, label = data[split], f"{name}/{split}"
    if len(data) == 0:
        raise ImportProblem(f"{label} has no rows.")
    types = {column: _feature_kind(f) for column, f in data.features.items()}

    def rows(mapping: ColumnMap):
        wanted, index = _wanted(mapping), 0
        for batch in data.select_columns(wanted).iter(batch_size=BATCH_ROWS):
            for values in zip(*(batch[c] for c in wanted)):
                where = f"{label}, row index {index}"
                yield f"hf:{label}:{index}", where, dict(zip(wanted, values)), index + 1
                index += 1

    return Table(list(data.column_names), len(data), rows, types)


def _check_saved_files(path: Path) -> None:
    """Refuse a saved dataset whose split names or data files lead outside its folder (a
    crafted state.json could name "../../etc/shadow"), before anything they name is read."""
    root = path.resolve()

    def inside(paths: list[Path]) -> list[Path]:
        if any(not p.resolve().is_relative_to(root) for p in paths):
            raise ImportProblem(
                f"{path.name} is not a readable saved Hugging Face dataset: it names files "
                "outside its folder. Save it again with save_to_disk."
            )
        return paths

    try:
        listing = path / "dataset_dict.json"
        splits = json.loads(listing.read_text())["splits"] if listing.exists() else ["."]
        for folder in inside([path / split for split in splits]):
            state = json.loads((folder / "state.json").read_text())
            inside([folder / d["filename"] for d in state["_data_files"]])
    except ImportProblem:  # a ValueError too: already says what is wrong
        raise
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ImportProblem(
            f"{path.name} is not a readable saved Hugging Face dataset ({type(e).__name__}: "
            f"{e}). Save it again with save_to_disk."
        ) from None


def _feature_kind(feature) -> str:
    import datasets

    if isinstance(feature, datasets.ClassLabel):
        return "number"
    dtype = getattr(feature, "dtype", None) if isinstance(feature, datasets.Value) else None
    if dtype in ("string", "large_string", "string_view"):
        return "text"
    if dtype and dtype.startswith(("int", "uint", "float")):
        return "number"
    return {"bool": "true/false", "null": "empty"}.get(dtype, type(feature).__name__.lower())
