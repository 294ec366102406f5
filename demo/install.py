"""The demo's definitions are a project directory (``demo/project/``), applied like any user's.

Sources, datasets, the ``ecommerce`` pipeline with its steps (SQL in ``.sql`` files) and the
checks are YAML files that ``manage.py atlas apply`` reads; ``load_demo`` writes the data files
(generated, never committed) and applies the project, with its sources' relative locations
taken under the directory the files were written to (``ATLAS_DEMO_DIR``).
"""

from __future__ import annotations

from pathlib import Path

from atlas.definitions import plan as plans
from atlas.definitions import project
from atlas.definitions.state import State
from pipelines.confinement import relative_to
from pipelines.models import Pipeline

PROJECT_DIR = Path(__file__).resolve().with_name("project")
PIPELINE = "ecommerce"


def definitions() -> State:
    """The demo project as a state (``atlas.definitions.state``): what tests and benchmarks read."""
    return project.read(PROJECT_DIR)


def step_sql() -> dict[str, str]:
    """Each SQL step of the demo pipeline: its name -> its SELECT."""
    return {key[-1]: values["sql"] for key, values in definitions()["steps"].items() if values.get("sql")}


def install(data_dir: Path) -> Pipeline:
    """Apply the demo project (idempotent); its files are read from ``data_dir``.

    Applied beside whatever else the database defines (nothing it does not name is deleted);
    an edit made since in the admin to a demo definition is set back to the project's.
    """
    with relative_to(data_dir):
        plans.apply(definitions(), prune=False, origin="demo/project")
    return Pipeline.objects.get(name=PIPELINE)
