"""Where templates live, without importing Jinja2: `ps_templates/<family>/<name>.ps1.j2`,
found from a source checkout and from an installed wheel alike (package data)."""

from __future__ import annotations

from importlib import resources

SUFFIXES = (".ps1.j2", ".xml.j2")


def root():
    return resources.files("ps_templates")


def known_templates() -> list[str]:
    out = []
    for family in root().iterdir():
        if family.is_dir() and not family.name.startswith(("_", ".")):
            for f in family.iterdir():
                for suf in SUFFIXES:
                    if f.name.endswith(suf):
                        out.append(f"{family.name}/{f.name[:-len(suf)]}")
    return sorted(out)


def template_exists(template_id: str) -> bool:
    return template_id in known_templates()
