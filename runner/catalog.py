"""The runbook catalog: where runbooks are found, in which order, and which one a name means.

A site grows its own catalog without forking the package. Runbooks are looked for in, in order:

    1. --runbooks DIR            (repeatable, in the order given)
    2. PSRUNNER_RUNBOOKS         (a path list, os.pathsep between folders)
    3. the user's config folder  (platformdirs: ~/.config/psrunner/runbooks on Linux)
    4. the system config folders (platformdirs: /etc/xdg/psrunner/runbooks on Linux)
    5. the built-in runbooks     (runner/runbooks in the package)

In a folder, runbook NAME is `NAME.toml` or `NAME/NAME.toml` (a folder of its own, with its
templates beside it). When two folders hold the same name the first wins; the others are
*shadowed*, and `show` says where the winner came from and what it hides.

Listing is the path people type first, so it reads each file's TOML head only (name, title,
audience, description): it never validates stages or reads templates. A runbook that does
not even parse is listed with its error rather than hiding the rest of the catalog; it fails
properly when someone loads it.

A front end (the CLI, a web portal) builds one `Catalog` and asks it: `entries()`,
`find(name)`, `load(name_or_path)`."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from .errors import InputError, ParamError, RunbookError, closest
from .runbook import Runbook
from .runbook_loader import AUDIENCES, parse, tomllib
from .userfiles import MiB, read_text

ENV_VAR = "PSRUNNER_RUNBOOKS"
BUILTIN = "built-in"
# where each folder of the search path came from, as `show` names it
ORIGINS = ("--runbooks", ENV_VAR, "user", "system", BUILTIN)


@dataclass(frozen=True)
class SearchDir:
    origin: str            # one of ORIGINS
    path: Path | None      # None for the built-ins (package resources)

    def __str__(self) -> str:
        return f"{self.path} ({self.origin})" if self.path else self.origin


@dataclass(frozen=True)
class Entry:
    """One runbook as the catalog lists it: enough to choose it, without loading it."""
    name: str
    title: str
    audiences: tuple[str, ...]
    description: str           # all of it, as written (stripped)
    origin: str
    path: str                  # the file, or "builtin:NAME"
    error: str | None = None   # the TOML could not be read: listed, refused when loaded
    shadows: tuple[str, ...] = ()   # the paths of same-named runbooks further down the path

    def to_dict(self) -> dict[str, Any]:
        d = {"name": self.name, "title": self.title, "audience": ",".join(self.audiences),
             "audiences": list(self.audiences), "description": self.description,
             "origin": self.origin, "source": self.path, "shadows": list(self.shadows)}
        if self.error:
            d["error"] = self.error
        return d


def _split_paths(text: str) -> list[Path]:
    return [Path(p).expanduser() for p in text.split(os.pathsep) if p.strip()]


def search_path(dirs: tuple[str | Path, ...] | list[str | Path] = (),
                environ: Mapping[str, str] | None = None) -> list[SearchDir]:
    """The folders searched, in order. Folders that do not exist are kept (they are simply
    empty), so `show` can say where a runbook of one's own would go."""
    env = os.environ if environ is None else environ
    import platformdirs         # small; only the folder names
    out = [SearchDir("--runbooks", Path(d).expanduser()) for d in dirs]
    out += [SearchDir(ENV_VAR, p) for p in _split_paths(env.get(ENV_VAR, ""))]
    out.append(SearchDir("user", Path(platformdirs.user_config_dir("psrunner", appauthor=False)) / "runbooks"))
    out += [SearchDir("system", Path(p) / "runbooks") for p in
            _split_paths(platformdirs.site_config_dir("psrunner", appauthor=False, multipath=True))]
    out.append(SearchDir(BUILTIN, None))
    return out


def builtin_dir():
    return resources.files("runner") / "runbooks"


def _files_in(d: SearchDir) -> dict[str, Any]:
    """name -> file (a Path, or a package resource for the built-ins) of the runbooks in d."""
    if d.path is None:
        return {p.name[:-5]: p for p in builtin_dir().iterdir() if p.name.endswith(".toml")}
    found: dict[str, Any] = {}
    try:
        children = sorted(d.path.iterdir())
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return found
    for child in children:
        if child.suffix == ".toml" and child.is_file():
            found.setdefault(child.stem, child)
        elif child.is_dir() and (child / f"{child.name}.toml").is_file():
            found.setdefault(child.name, child / f"{child.name}.toml")
    return found


def _label(d: SearchDir, name: str, file: Any) -> str:
    return f"builtin:{name}" if d.path is None else str(Path(file).resolve())


def _head(name: str, text: str) -> tuple[str, tuple[str, ...], str, str | None]:
    """(title, audiences, description, error) from a runbook's TOML, unvalidated."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        return "", (), "", f"not valid TOML: {e}"
    except RecursionError:
        return "", (), "", "not valid TOML: nested too deeply"
    if data.get("name", name) != name:
        return "", (), "", f"the file names runbook {data.get('name')!r}; rename one of the two"
    auds = data.get("audience", "admin")
    auds = (auds,) if isinstance(auds, str) else tuple(a for a in auds if isinstance(a, str)) \
        if isinstance(auds, list) else ()
    return str(data.get("title", "")), auds, str(data.get("description", "")).strip(), None


class Catalog:
    """The runbooks on one search path. Cheap to make; reads folders when asked."""

    def __init__(self, dirs: tuple[str | Path, ...] | list[str | Path] = (),
                 environ: Mapping[str, str] | None = None) -> None:
        self.path = search_path(dirs, environ)

    def _located(self) -> dict[str, list[tuple[SearchDir, Any]]]:
        where: dict[str, list[tuple[SearchDir, Any]]] = {}
        for d in self.path:
            for name, file in _files_in(d).items():
                where.setdefault(name, []).append((d, file))
        return where

    def entries(self, audience: str | None = None) -> list[Entry]:
        """The runbooks a name reaches (first on the path wins), sorted by name; only those
        for `audience` when given."""
        if audience is not None and audience not in AUDIENCES:
            raise ParamError(f"--audience {audience!r} is not an audience", param="--audience",
                             hint="one of: " + ", ".join(AUDIENCES))
        out = []
        for name, hits in sorted(self._located().items()):
            d, file = hits[0]
            try:
                title, auds, desc, error = _head(name, _read(file))
            except InputError as e:
                title, auds, desc, error = "", (), "", e.message
            entry = Entry(name, title, auds, desc, d.origin, _label(d, name, file), error,
                          tuple(_label(o, name, f) for o, f in hits[1:]))
            if audience is None or audience in entry.audiences:
                out.append(entry)
        return out

    def find(self, name: str) -> Entry:
        """The entry `name` means on this path (ParamError naming the choices when none)."""
        hits = self._located().get(name)
        if not hits:
            guess = closest(name, sorted(self._located()))
            raise ParamError(f"no runbook named {name!r}", param="RUNBOOK",
                             hint=f"did you mean {guess}?" if guess else
                             "`psrunner list` shows them all; or give a path to a .toml file")
        d, file = hits[0]
        return Entry(name, "", (), "", d.origin, _label(d, name, file),
                     shadows=tuple(_label(o, name, f) for o, f in hits[1:]))

    def load(self, name_or_path: str) -> Runbook:
        """A runbook by catalog name, by `builtin:NAME` (the built-in even when shadowed), or by
        the path of a .toml file; validated, with `origin` and `shadows` filled in."""
        if name_or_path.startswith("builtin:"):
            name = name_or_path[len("builtin:"):]
            res = builtin_dir() / f"{name}.toml"
            if not res.is_file():
                raise ParamError(f"no built-in runbook named {name!r}", param="RUNBOOK",
                                 hint="built-in runbooks: " + ", ".join(sorted(_files_in(self.path[-1]))))
            return parse(res.read_text(encoding="utf-8"), name_or_path, origin=BUILTIN)
        p = Path(name_or_path)
        if name_or_path.endswith(".toml") or os.sep in name_or_path or p.exists():
            if not p.exists():
                raise ParamError(f"runbook file {name_or_path!r} does not exist", param="RUNBOOK",
                                 hint="give a path to a .toml file, or a name from `psrunner list`")
            return load_file(p)
        entry = self.find(name_or_path)
        if entry.origin == BUILTIN:
            rb = self.load(entry.path)
        else:
            rb = load_file(Path(entry.path), origin=entry.origin)
            if rb.name != entry.name:
                raise RunbookError(f"the file names runbook {rb.name!r}, not {entry.name!r}",
                                   file=entry.path, key="name", hint="make the name and the file name agree")
        return dataclasses.replace(rb, shadows=entry.shadows)


def load_file(path: Path, origin: str = "file") -> Runbook:
    """A runbook from a .toml file; its templates may lie beside it (never outside its folder)."""
    path = path.resolve()
    return parse(_read(path), str(path), origin=origin, folder=path.parent)


def _read(path: Path) -> str:
    """A runbook file's text: a regular UTF-8 file of at most 4 MiB (userfiles.py)."""
    return read_text(path, what="runbook file", input="RUNBOOK", limit=4 * MiB,
                     hint="give a path to a .toml file, or a name from `psrunner list`")


def builtin_names() -> list[str]:
    return sorted(_files_in(SearchDir(BUILTIN, None)))


__all__ = ["BUILTIN", "Catalog", "ENV_VAR", "Entry", "SearchDir", "builtin_names", "load_file",
           "search_path"]
