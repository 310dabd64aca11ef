"""Where the app keeps its state: one data folder, set by TUNELOOP_HOME (default ~/.tuneloop).

It holds the DuckDB file, converted and fine-tuned models, run folders of background jobs,
uploads, and `imports/`: the folder the web app may import from by path (TUNELOOP_IMPORT_DIRS
adds more; see `import_dirs`).
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import time
import unicodedata
from pathlib import Path


def data_dir() -> Path:
    path = Path(os.environ.get("TUNELOOP_HOME", "~/.tuneloop")).expanduser()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def secure_data_dir(path: Path) -> list[str]:
    """Make the data folder private to its owner: no access for group or others (it holds documents,
    chats, password hashes and the cookie-signing secret). Returns one notice per kind of fix
    made, for the console and the admins' sidebar; nothing when all was already private.
    Entries owned by someone else, and symlinks, are left alone."""
    fixed = {"folders": 0, "files": 0}
    uid = os.getuid()
    for root, dirs, files in os.walk(path):
        for name, kind in [(root, "folders")] + [(os.path.join(root, f), "files") for f in files]:
            try:
                info = os.lstat(name)
            except OSError:
                continue
            if stat.S_ISLNK(info.st_mode) or info.st_uid != uid:
                continue
            if stat.S_IMODE(info.st_mode) & 0o077:
                try:
                    os.chmod(name, stat.S_IMODE(info.st_mode) & ~0o077)
                except OSError:
                    continue
                fixed[kind] += 1
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
    return [
        f"Made {n:,} {kind} in the data folder private to their owner (they were readable by "
        "other users of this machine)."
        for kind, n in fixed.items()
        if n
    ]


def db_path() -> Path:
    return data_dir() / "tuneloop.duckdb"


def models_dir() -> Path:
    """Converted and fine-tuned models; TUNELOOP_MODELS may point elsewhere (tests share one
    converted default model across data folders this way)."""
    path = Path(os.environ.get("TUNELOOP_MODELS", data_dir() / "models")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def exports_dir() -> Path:
    path = data_dir() / "exports"
    path.mkdir(exist_ok=True)
    return path


# --- what the web app may import by path -----------------------------------------------------
IMPORT_DIRS_ENV = "TUNELOOP_IMPORT_DIRS"  # more import folders, separated by os.pathsep
SYSTEM_DIRS = (
    "/", "/etc", "/proc", "/sys", "/dev", "/root", "/boot", "/var", "/usr", "/bin", "/sbin",
    "/lib", "/lib32", "/lib64", "/libx32", "/run", "/snap",
)  # fmt: skip
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME = 100  # characters of an uploaded file's saved name


def uploads_dir() -> Path:
    """Where the app saves uploaded files, one fresh folder per upload."""
    path = data_dir() / "uploads"
    path.mkdir(exist_ok=True)
    return path


def import_dirs() -> list[Path]:
    """The folders the web app may import from by path, resolved: `<data>/imports` (created on
    demand), `<data>/uploads` and the folders in TUNELOOP_IMPORT_DIRS. A configured folder that
    is hidden, a system folder (/etc, /var, …) or inside one is left out: see the Import tab."""
    imports = data_dir() / "imports"
    imports.mkdir(exist_ok=True)
    found = [imports.resolve(), uploads_dir().resolve()]
    for text in os.environ.get(IMPORT_DIRS_ENV, "").split(os.pathsep):
        if not text.strip():
            continue
        path = Path(text.strip()).expanduser()
        resolved = path.resolve()
        if not path.is_absolute() or _is_system(resolved) or _is_hidden(resolved.parts[1:]):
            continue
        found.append(resolved)
    return list(dict.fromkeys(found))


def inside_import_dirs(path: Path, dirs: list[Path]) -> Path | None:
    """`path` resolved (symlinks and `..` followed) when it lies in one of `dirs` with no hidden
    part below that folder, else None. Never says whether the path exists."""
    try:
        resolved = path.expanduser().resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return None
    for folder in dirs:
        if resolved.is_relative_to(folder) and not _is_hidden(resolved.relative_to(folder).parts):
            return resolved
    return None


def _is_hidden(parts) -> bool:
    return any(part.startswith(".") for part in parts)


def _is_system(path: Path) -> bool:
    """/ itself, or a system folder or anything in one (as written, and with symlinks followed:
    /lib may be a link to /usr/lib)."""
    if path == Path("/"):
        return True
    return any(
        path.is_relative_to(r) for d in SYSTEM_DIRS[1:] for r in (Path(d), Path(d).resolve())
    )


def new_upload_folder() -> Path:
    """A fresh folder for one upload, `uploads/<timestamp>-<random>`, so uploads of the same
    name never overwrite each other."""
    folder = uploads_dir() / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}"
    folder.mkdir()
    return folder


def safe_file_name(name: str) -> str:
    """A file name safe to write: the last part of `name` only, ASCII letters, digits and
    ._- (accents dropped, anything else becomes _), no leading dot, at most MAX_NAME
    characters, its extension (two for .gz: "a.jsonl.gz") kept."""
    base = str(name).replace("\\", "/").rsplit("/", 1)[-1]
    ascii_name = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode()
    parts = _UNSAFE_NAME.sub("_", ascii_name).lstrip("._-").split(".")
    n_ext = 2 if len(parts) > 2 and parts[-1].lower() == "gz" else min(len(parts) - 1, 1)
    ext = ".".join(parts[len(parts) - n_ext :]) if n_ext else ""
    if len(ext) > 16:  # not a real extension
        ext, n_ext = "", 0
    stem = ".".join(parts[: len(parts) - n_ext])[: MAX_NAME - len(ext) - 1].rstrip("._-")
    return (stem or "upload") + ("." + ext if ext else "")
