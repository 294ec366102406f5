"""No internal staging name on screen (issue 18, item 7): a staging table is shown as its dataset's staged rows."""

from pipelines.attempts import ingest_staging_name, is_staging, shown_table, transform_staging_name


def test_staging_tables_are_told_from_datasets_and_shown_as_their_dataset():
    for name in (transform_staging_name("orders", "r12a2"), ingest_staging_name("orders", "r3a1", "b0123456789abcdef"),
                 "orders__stg7", "orders__b0123456789abcdef"):
        assert is_staging(f"chart.{name}"), name
        assert shown_table(f"chart.{name}", "chart.orders") == "chart.orders (staged rows, before publishing)"
    for name in ("chart.orders", "chart.order_items", "explore.orders__quarantine", "navigate.r12a2_stats"):
        assert not is_staging(name) and shown_table(name, "chart.orders") == name
