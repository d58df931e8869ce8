"""Resolution: finding a dataset's files on disk, or downloading them (see :func:`locate`).

Search order (the first folder holding a complete set of files wins):

1. the explicit ``root`` argument (``--data-root`` on the command line): ``root/<folder>``,
   then ``root`` itself. A ``root`` that does not exist is an error (DatasetNotFoundError),
   never a silent fall-back to the other locations (`pyann data fetch --data-root DIR`
   creates DIR first: there it is where the download goes);
2. ``$PYANN_DATA/<folder>``;
3. the user cache ``$XDG_CACHE_HOME/pyann/<folder>`` (default ``~/.cache/pyann/<folder>``);
4. ``../shared/datasets/<folder>`` beside the source checkout pyann runs from (the offline
   copies on the project machines; only when pyann runs from a checkout);
5. system folders, ``/usr/share/datasets/<folder>`` (Debian's dataset-fashion-mnist);
6. with ``allow_unofficial=True`` only: the same roots' folders of known unofficial copies
   (``cifar-10-jpeg``);
7. with ``download=True`` only, and not in offline mode (``$PYANN_OFFLINE`` set to anything
   but ``0``/empty, or ``--offline``): the official mirrors, into ``root/<folder>`` when
   ``root`` is given, else into the user cache.

``<folder>`` is ``mnist``, ``fashion-mnist`` or ``cifar-10``. The files found are then checked
against the official md5s: a mismatch raises :class:`ChecksumError` unless the caller passed
``allow_unofficial=True``. If nothing is found, :class:`DatasetNotFoundError` lists every
location tried and how to fix it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from .checksums import file_md5
from .download import DownloadError, Opener, download_file
from .errors import ChecksumError, DatasetNotFoundError
from .registry import DatasetSpec, FileSpec, Variant, get_spec

__all__ = ["ENV_VAR", "OFFLINE_ENV_VAR", "SYSTEM_DIRS", "CHECKOUT_DIRS", "Located", "cache_dir",
           "search_dirs", "locate", "offline", "describe_source"]

ENV_VAR = "PYANN_DATA"
OFFLINE_ENV_VAR = "PYANN_OFFLINE"
CHECKOUT_LABEL = "../shared/datasets beside the checkout"
# Module-level so that tests (and unusual systems) can replace it.
SYSTEM_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets"),)


def _checkout_dirs() -> tuple[Path, ...]:
    """``<checkout>/../shared/datasets`` when pyann runs from a source checkout (an editable
    install or the repository itself: setup.py beside the package), else nothing."""
    repo = Path(__file__).resolve().parents[2]
    if (repo / "setup.py").is_file() and (repo / "pyann" / "data").is_dir():
        return (repo.parent / "shared" / "datasets",)
    return ()


# Module-level so that tests can replace it (tests/data/conftest.py empties it).
CHECKOUT_DIRS: tuple[Path, ...] = _checkout_dirs()


def offline() -> bool:
    """True when ``$PYANN_OFFLINE`` asks for offline mode (any value but empty or ``0``):
    nothing is downloaded even where ``download=True``."""
    return os.environ.get(OFFLINE_ENV_VAR, "").strip() not in ("", "0")


@dataclass(frozen=True)
class Located:
    """Where a dataset was found and whether its files are the official ones.

    ``folder`` is the dataset folder, ``paths`` maps each file role to its path, ``source``
    says which search location it came from, ``official`` is True when every file matched its
    official md5, and ``notes`` explains each file that did not.
    """

    spec: DatasetSpec
    variant: Variant
    folder: Path
    paths: Mapping[str, Path]
    source: str
    official: bool
    notes: tuple[str, ...] = ()
    downloaded: tuple[Path, ...] = ()

    @property
    def source_path(self) -> Path:
        """The archive for archive variants, otherwise the dataset folder."""
        if "archive" in self.paths:
            return self.paths["archive"]
        first = next(iter(self.paths.values()))
        return first.parent


def cache_dir() -> Path:
    """The user cache for pyann datasets: ``$XDG_CACHE_HOME/pyann`` or ``~/.cache/pyann``."""
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "pyann"


def _roots(root) -> list[tuple[str, Path | None, str]]:
    """(label, root folder or None, reason when None) for each search location, in order."""
    env = os.environ.get(ENV_VAR)
    roots = [
        ("root= argument", Path(root).expanduser() if root is not None else None, "not given"),
        (f"${ENV_VAR}", Path(env).expanduser() if env else None, "not set"),
        ("user cache", cache_dir(), ""),
    ]
    roots += [(CHECKOUT_LABEL, d, "") for d in CHECKOUT_DIRS]
    roots += [("system folder", d, "") for d in SYSTEM_DIRS]
    return roots


def search_dirs(spec: DatasetSpec | str, root=None, *, unofficial: bool = False):
    """The dataset folders to search, in order: a list of (label, folder or None, note).

    With ``unofficial=True`` the folders of known unofficial copies follow the official ones.
    """
    spec = get_spec(spec)
    dirs: list[tuple[str, Path | None, str]] = []
    for label, base, reason in _roots(root):
        if base is None:
            dirs.append((label, None, reason))
            continue
        dirs.append((label, base / spec.folder, ""))
        if label == "root= argument":  # root may also be the dataset folder itself
            dirs.append((label, base, ""))
    if unofficial:
        for label, base, _ in _roots(root):
            if base is not None:
                dirs += [(label, base / f, "unofficial copy") for f in spec.unofficial_folders]
    return dirs


def _complete_variant(spec: DatasetSpec, folder: Path):
    """The first variant whose required files all exist in ``folder``: (variant, paths)."""
    for variant in spec.variants:
        if all((folder / f.path).is_file() for f in variant.required_files):
            paths = {f.role: folder / f.path for f in variant.files if (folder / f.path).is_file()}
            return variant, paths
    return None


def _describe_variant(variant: Variant) -> str:
    names = [f.path for f in variant.required_files]
    if len(names) == 1:
        return names[0]
    parents = {str(Path(n).parent) for n in names}
    if len(parents) == 1 and parents != {"."}:
        return parents.pop() + "/"
    return "{" + ", ".join(names) + "}"


def _incomplete_note(spec: DatasetSpec, folder: Path) -> str:
    """Why an existing folder does not count: which files are missing."""
    for variant in spec.variants:
        required = variant.required_files
        present = [f for f in required if (folder / f.path).is_file()]
        if present:  # a partial copy: name exactly what is missing
            missing = ", ".join(f.path for f in required if f not in present)
            return f"{folder}: incomplete ({variant.name}): missing {missing}"
    expected = " or ".join(_describe_variant(v) for v in spec.variants)
    return f"{folder}: exists but holds none of the files (expected {expected})"


def _check_files(spec: DatasetSpec, variant: Variant, paths: Mapping[str, Path]):
    """(notes, first mismatch) for the files whose md5 is not the official one."""
    notes, first = [], None
    by_role: dict[str, FileSpec] = {f.role: f for f in variant.files}
    for role, path in paths.items():
        fs = by_role[role]
        if fs.md5 is None:
            notes.append(f"{path}: no official md5 is known for this file, so it cannot be "
                         f"verified")
            first = first or (path, None, None)
            continue
        actual = file_md5(path)
        if actual != fs.md5:
            size = path.stat().st_size
            official_size = f", official size {fs.size}" if fs.size else ""
            notes.append(f"{path}: md5 {actual} is not the official {fs.md5} "
                         f"(size {size}{official_size})")
            first = first or (path, fs.md5, actual)
    return tuple(notes), first


def _verified(spec: DatasetSpec, variant: Variant, folder: Path, paths: Mapping[str, Path],
              source: str, allow_unofficial: bool, downloaded=()) -> Located:
    notes, first = _check_files(spec, variant, paths)
    if notes and not allow_unofficial:
        path, expected, actual = first
        raise ChecksumError(
            f"{spec.title}: the files found at {folder} ({source}) are not the official ones:\n"
            + "\n".join(f"  - {n}" for n in notes)
            + f"\nReplace them with the official files (delete them and run `pyann data "
              f"fetch {spec.name}`), or pass allow_unofficial=True to load them "
              f"anyway (their structure is still fully validated).",
            path=path, expected=expected, actual=actual,
        )
    return Located(spec, variant, folder, dict(paths), source, official=not notes,
                   notes=notes, downloaded=tuple(downloaded))


def _download(spec: DatasetSpec, target: Path, opener, progress) -> tuple[Variant, dict, list]:
    """Fetch the missing files of the downloadable variant into ``target``."""
    variant = spec.download_variant
    if variant is None:
        raise DownloadError(f"{spec.title} has no download URL")
    fetched = []
    for fs in variant.required_files:
        dest = target / fs.path
        if not dest.is_file():
            download_file(fs.urls, dest, fs.md5, opener=opener, progress=progress)
            fetched.append(dest)
    paths = {fs.role: target / fs.path for fs in variant.required_files}
    return variant, paths, fetched


def _not_found_message(spec: DatasetSpec, tried: list[str], hints: list[str]) -> str:
    lines = [f"{spec.title} not found. Looked in, in order:"]
    lines += [f"  - {t}" for t in tried]
    lines += hints
    lines.append(
        f"To fix: set ${ENV_VAR} to a folder holding {spec.folder}/, pass root= (--data-root), or "
        f"download it with `pyann data fetch {spec.name}` (or `make data`)."
    )
    return "\n".join(lines)


def _unofficial_hints(spec: DatasetSpec, root) -> list[str]:
    """Point at known unofficial copies that were not searched because the caller did not opt in."""
    hints = []
    for label, folder, note in search_dirs(spec, root, unofficial=True):
        if note == "unofficial copy" and folder is not None and folder.is_dir():
            if _complete_variant(spec, folder) is not None:
                hints.append(f"An unofficial copy of {spec.title} (checksums differ from the "
                             f"official ones) is at {folder}: pass allow_unofficial=True to "
                             f"load it.")
    return hints


def locate(name: str | DatasetSpec, root=None, *, download: bool = False,
           allow_unofficial: bool = False, opener: Opener | None = None,
           progress: bool | None = None) -> Located:
    """Find (and with ``download=True`` fetch) a dataset's files; verify their md5.

    See the module docstring for the search order. ``opener`` replaces
    ``urllib.request.urlopen`` for downloads (tests pass a fake one); ``progress`` forces
    the download progress bar on or off (default: on when stderr is a TTY and tqdm is
    installed).

    Raises :class:`ChecksumError` when the first copy found is not official and
    ``allow_unofficial`` is False, and :class:`DatasetNotFoundError` (listing every location
    tried) when no copy is found.
    """
    spec = get_spec(name)
    if root is not None and not Path(root).expanduser().is_dir():
        raise DatasetNotFoundError(
            f"data root {root} does not exist (given as root= / --data-root); nothing else was "
            f"searched. Pass an existing folder (one that holds {spec.folder}/, or an empty one to "
            f"download into), or leave it out to search ${ENV_VAR}, the user cache and the other "
            f"locations.", tried=[f"root= argument: {root}: no such folder"])
    tried: list[str] = []
    seen: set[Path] = set()
    for label, folder, note in search_dirs(spec, root, unofficial=allow_unofficial):
        if folder is None:
            tried.append(f"{label}: {note}")
            continue
        if folder in seen:
            continue
        seen.add(folder)
        kind = f" ({note})" if note else ""
        if not folder.is_dir():
            tried.append(f"{label}{kind}: {folder}: no such folder")
            continue
        found = _complete_variant(spec, folder)
        if found is None:
            tried.append(f"{label}{kind}: {_incomplete_note(spec, folder)}")
            continue
        variant, paths = found
        return _verified(spec, variant, folder, paths, label, allow_unofficial)

    hints = [] if allow_unofficial else _unofficial_hints(spec, root)
    if download and offline():
        tried.append(f"download: off (offline mode: ${OFFLINE_ENV_VAR} is set)")
    elif download:
        target = (Path(root).expanduser() if root is not None else cache_dir()) / spec.folder
        try:
            variant, paths, fetched = _download(spec, target, opener, progress)
        except DownloadError as exc:
            tried.append(f"download: failed: {exc}")
        else:
            return _verified(spec, variant, target, paths, "download", allow_unofficial, fetched)
    elif offline():
        tried.append(f"download: off (offline mode: ${OFFLINE_ENV_VAR} is set)")
    else:
        tried.append("download: disabled (pass download=True, or run "
                     f"`pyann data fetch {spec.name}`)")
    raise DatasetNotFoundError(_not_found_message(spec, tried, hints), tried=tried)


def describe_source(found) -> str:
    """One line saying where a dataset came from and whether it is the official files: for a
    :class:`Located` (which search location, folder, checksums) or a loaded Dataset (folder,
    official or not). Every command prints it in its header."""
    if isinstance(found, Located):
        title, where = found.spec.title, f"{found.folder} (via {found.source})"
        official = found.official
        how = "downloaded, md5 checked" if found.downloaded else "md5 checked"
    else:
        title, where = getattr(found, "name", "dataset"), getattr(found, "source_path", None)
        official, how = getattr(found, "official", None), "md5 checked"
    if official:
        status = f"official files ({how})"
    elif official is None:
        status = "origin unknown"
    else:
        status = "UNOFFICIAL files (checksums differ from the official ones)"
    return f"data: {title} from {where}: {status}"
