"""Everything about the package is in pyproject.toml except its package list: the repository's top-level
``sql/`` directory is shipped inside the wheel as package ``pbx_sla.sql`` (migrations as package data, read
with importlib.resources), and pyproject's ``packages.find`` cannot add a package that lives outside
``pbx_sla/``."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["pbx_sla", "pbx_sla.*"]), "pbx_sla.sql", "pbx_sla.sql.repeatable"],
    package_dir={"pbx_sla.sql": "sql"},
)
