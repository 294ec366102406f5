"""Step hooks used by the runner tests (named in settings.ATLAS_STEP_HOOKS)."""

from pipelines.hooks import GateFailed

CALLS: list[tuple[str, str, str | None]] = []


class Recorder:
    def prepare(self, ctx):
        CALLS.append(("prepare", ctx.step.name, ctx.select_sql))
        if ctx.select_sql and "REWRITE_ME" in ctx.select_sql:
            ctx.select_sql = ctx.select_sql.replace("'REWRITE_ME'", "'rewritten'")

    def staged(self, ctx):
        CALLS.append(("staged", ctx.step.name, ctx.staging))

    def published(self, ctx):
        CALLS.append(("published", ctx.step.name, None))

    def failed(self, ctx):
        CALLS.append(("failed", ctx.step.name, str(ctx.error)))


class BlockAggregates:
    def staged(self, ctx):
        if ctx.step.kind == "aggregate":
            rows = ctx.warehouse.row_count(ctx.schema, ctx.staging)
            raise GateFailed(f"blocked {rows} staged rows")
