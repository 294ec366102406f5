"""The pipelines API: sources, datasets, pipelines and steps; runs and step runs."""
