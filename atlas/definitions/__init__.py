"""Definitions as code: Atlas's sources, datasets, pipelines, steps and checks as files.

``manage.py atlas export DIR`` writes the database's definitions as a project directory
(``project``), ``plan DIR`` says what ``apply DIR`` would create, change and delete
(``plan``), ``apply`` does it in one transaction. The kinds are the apps' own
(``definition_kinds``, ``specs``); the files' JSON Schema is made from them (``schema``).
"""
