from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo: a seeded synthetic e-commerce data set and one pipeline definition over it.

    An app of its own, on the top floor: it may use every other app (its pipeline
    declares quality checks), and no app depends on it (``manage.py load_demo``).
    """

    name = "demo"
    verbose_name = "Demo data"
