"""Importing a dbt project as Atlas definitions (``manage.py import_dbt PATH``, issue 19).

``dbtproject`` reads the project's files (``dbt_project.yml``, models, seeds, ``schema.yml``
properties, singular tests, macros) and resolves each node's config as dbt does; ``render``
renders its SQL in a real Jinja2 environment with dbt's context (``ref``, ``source``,
``config``, ``var``, ``is_incremental``, ``this``, ``target``, the project's macros);
``seeds`` types a seed's columns as dbt's seed loader infers them; ``translate`` makes the
Atlas state (``atlas.definitions.state``) and the per-node report of what could not be
translated. The command writes it as a project directory (``atlas plan / apply`` take it) or
applies it.
"""

from .translate import Import, Node, import_project

__all__ = ["Import", "Node", "import_project"]
