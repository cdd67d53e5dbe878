"""Every file the services serve or read besides their code is package data (pyproject.toml): the image installs
the package (deploy/Dockerfile) and runs from site-packages, so a file the patterns leave out works from the
repository and is a 404 in production (the tablet's manifest and icons would have been)."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch

from shared.devservers import ROOT


def test_every_file_beside_the_code_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["*"]
    left_out = [
        str(path.relative_to(ROOT))
        for top in ("services", "shared")
        for path in sorted((ROOT / top).rglob("*"))
        if path.is_file()
        and "__pycache__" not in path.parts
        and path.suffix != ".py"
        and path.name != "README.md"  # a service's notes, for its readers, not its running
        and not any(fnmatch(path.name, pattern) for pattern in patterns)
    ]
    assert left_out == [], f"not in the installed package: add their patterns to package-data: {left_out}"
