"""The demo pipeline: four e-commerce files to Explore, Chart and Navigate.

It is one pipeline definition like any a user writes — sources, datasets and
steps with SQL — and the engine knows nothing about it.
"""

from __future__ import annotations

from pathlib import Path

from django.db import transaction

from pipelines.models import Dataset, Pipeline, Source, Step

PIPELINE = "ecommerce"

# Dates arrive in several formats; Chart holds one type.
_BIRTH_DATE = """CASE
      WHEN birth_date ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN to_date(birth_date, 'YYYY-MM-DD')
      WHEN birth_date ~ '^[0-9]{2}/[0-9]{2}/[0-9]{4}$' THEN to_date(birth_date, 'DD/MM/YYYY')
      WHEN birth_date ~ '^[0-9]{4}/[0-9]{2}/[0-9]{2}$' THEN to_date(birth_date, 'YYYY/MM/DD')
    END"""
_ORDER_DATE = """CASE
      WHEN order_date ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}' THEN CAST(order_date AS timestamp)
      WHEN order_date ~ '^[0-9]{2}/[0-9]{2}/[0-9]{4} [0-9]{2}:[0-9]{2}$'
        THEN to_timestamp(order_date, 'DD/MM/YYYY HH24:MI')::timestamp
    END"""

STEPS = [
    # (name, kind, output table, source or None, write mode, merge keys, sql)
    ("ingest_customers", "ingest", "customers", "customers", "append", "", ""),
    ("ingest_orders", "ingest", "orders", "orders", "append", "", ""),
    ("ingest_order_items", "ingest", "order_items", "order_items", "append", "", ""),
    ("ingest_payments", "ingest", "payments", "payments", "append", "", ""),
    (
        "refine_customers", "refine", "customers", None, "replace", "",
        f"""WITH typed AS (
  SELECT
    CAST(trim(customer_id) AS bigint) AS customer_id,
    trim(first_name) AS first_name,
    trim(last_name) AS last_name,
    nullif(lower(trim(email)), '') AS email,
    nullif(trim(phone), '') AS phone,
    trim(street_address) AS street_address,
    trim(city) AS city,
    trim(postcode) AS postcode,
    upper(trim(country)) AS country,
    {_BIRTH_DATE} AS birth_date,
    CAST(signup_at AS timestamp) AS signup_at,
    nullif(trim(notes), '') AS notes,
    _ingested_at,
    _row_number
  FROM explore.customers
)
SELECT DISTINCT ON (customer_id)
  customer_id, first_name, last_name, email, phone, street_address, city, postcode, country,
  birth_date, signup_at, notes
FROM typed
ORDER BY customer_id, _ingested_at DESC, _row_number DESC""",
    ),
    (
        "refine_orders", "refine", "orders", None, "replace", "",
        f"""WITH typed AS (
  SELECT
    CAST(trim(order_id) AS bigint) AS order_id,
    CAST(trim(customer_id) AS bigint) AS customer_id,
    {_ORDER_DATE} AS ordered_at,
    nullif(lower(trim(status)), '') AS status,
    upper(trim(currency)) AS currency,
    trim(shipping_city) AS shipping_city,
    _ingested_at,
    _row_number
  FROM explore.orders
)
SELECT DISTINCT ON (order_id) order_id, customer_id, ordered_at, status, currency, shipping_city
FROM typed
ORDER BY order_id, _ingested_at DESC, _row_number DESC""",
    ),
    (
        "refine_order_items", "refine", "order_items", None, "replace", "",
        """WITH typed AS (
  SELECT
    CAST(trim(order_id) AS bigint) AS order_id,
    CAST(trim(line_no) AS integer) AS line_no,
    trim(sku) AS sku,
    trim(product_name) AS product_name,
    CAST(trim(quantity) AS integer) AS quantity,
    CAST(trim(unit_price) AS numeric(12, 2)) AS unit_price,
    _ingested_at,
    _row_number
  FROM explore.order_items
)
SELECT DISTINCT ON (order_id, line_no)
  order_id, line_no, sku, product_name, quantity, unit_price,
  CAST(quantity * unit_price AS numeric(14, 2)) AS line_amount
FROM typed
ORDER BY order_id, line_no, _ingested_at DESC, _row_number DESC""",
    ),
    (
        "refine_payments", "refine", "payments", None, "replace", "",
        """WITH typed AS (
  SELECT
    CAST(payment_id AS bigint) AS payment_id,
    CAST(order_id AS bigint) AS order_id,
    lower(trim(method)) AS method,
    CAST(amount AS numeric(12, 2)) AS amount,
    CAST(paid_at AS timestamp) AS paid_at,
    card_last4,
    _ingested_at,
    _row_number
  FROM explore.payments
)
SELECT DISTINCT ON (payment_id) payment_id, order_id, method, amount, paid_at, card_last4
FROM typed
ORDER BY payment_id, _ingested_at DESC, _row_number DESC""",
    ),
    (
        "daily_revenue", "aggregate", "daily_revenue", None, "replace", "",
        """SELECT
  CAST(date_trunc('day', o.ordered_at) AS date) AS day,
  o.currency,
  count(DISTINCT o.order_id) AS orders,
  sum(i.line_amount) AS revenue
FROM chart.orders AS o
JOIN chart.order_items AS i ON i.order_id = o.order_id
WHERE coalesce(o.status, '') NOT IN ('cancelled', 'returned')
GROUP BY 1, 2
ORDER BY 1, 2""",
    ),
    (
        "customer_lifetime_value", "aggregate", "customer_lifetime_value", None, "replace", "",
        """WITH order_totals AS (
  SELECT order_id, sum(line_amount) AS amount FROM chart.order_items GROUP BY order_id
)
SELECT
  c.customer_id,
  count(o.order_id) AS orders,
  coalesce(sum(t.amount), 0) AS lifetime_value,
  min(o.ordered_at) AS first_order_at,
  max(o.ordered_at) AS last_order_at
FROM chart.customers AS c
LEFT JOIN chart.orders AS o
  ON o.customer_id = c.customer_id AND coalesce(o.status, '') NOT IN ('cancelled', 'returned')
LEFT JOIN order_totals AS t ON t.order_id = o.order_id
GROUP BY c.customer_id""",
    ),
]

DATASETS = {
    ("explore", "customers"): "Customers as received from the shop export.",
    ("explore", "orders"): "Orders as received.",
    ("explore", "order_items"): "Order lines as received.",
    ("explore", "payments"): "Payment events (JSON Lines) as received.",
    ("chart", "customers"): "One row per customer: trimmed, typed, latest version.",
    ("chart", "orders"): "One row per order, typed.",
    ("chart", "order_items"): "One row per order line, with its amount.",
    ("chart", "payments"): "One row per payment, typed.",
    ("navigate", "daily_revenue"): "Revenue and orders per day and currency (cancelled and returned excluded).",
    ("navigate", "customer_lifetime_value"): "Orders and revenue per customer over their lifetime.",
}

SOURCES = {
    "customers": ("customers.csv", "csv"),
    "orders": ("orders.csv", "csv"),
    "order_items": ("order_items.csv", "csv"),
    "payments": ("payments.jsonl", "jsonl"),
}


def dataset_name(layer: str, table: str) -> str:
    return table if layer == "chart" else f"{layer}_{table}"


@transaction.atomic
def install(data_dir: Path) -> Pipeline:
    """Create or update the demo's sources, datasets, pipeline and steps (idempotent)."""
    sources = {
        name: Source.objects.update_or_create(
            name=f"demo_{name}",
            defaults={
                "kind": Source.Kind.PATH,
                "format": fmt,
                "location": str(Path(data_dir) / filename),
                "description": f"Demo {name} file, written by the demo generator.",
            },
        )[0]
        for name, (filename, fmt) in SOURCES.items()
    }
    datasets = {
        (layer, table): Dataset.objects.update_or_create(
            layer=layer, table=table, defaults={"name": dataset_name(layer, table), "description": description}
        )[0]
        for (layer, table), description in DATASETS.items()
    }
    pipeline, _ = Pipeline.objects.update_or_create(
        name=PIPELINE,
        defaults={"description": "Demo e-commerce pipeline: shop exports to daily revenue and customer lifetime value."},
    )
    layer_of = {"ingest": "explore", "refine": "chart", "aggregate": "navigate"}
    for position, (name, kind, table, source, mode, keys, sql) in enumerate(STEPS):
        Step.objects.update_or_create(
            pipeline=pipeline,
            name=name,
            defaults={
                "kind": kind,
                "position": position,
                "source": sources[source] if source else None,
                "output": datasets[(layer_of[kind], table)],
                "sql": sql,
                "write_mode": mode,
                "merge_keys": keys,
                "max_rejected_share": 0.05,
            },
        )
    from pipelines.runner import save_step_inputs

    save_step_inputs(pipeline)
    install_checks(datasets)
    return pipeline


# (layer, table, check name, kind, columns, params, severity)
CHECKS = [
    ("explore", "orders", "order_id_is_a_number", "regex", ["order_id"], {"pattern": "^ *[0-9]+ *$"}, "warn"),
    ("chart", "customers", "one_row_per_customer", "unique", ["customer_id"], {}, "fail"),
    # An address, or its pseudonym once a steward confirms the email finding (hash policy: 64 hex digits).
    ("chart", "customers", "email_shape", "regex", ["email"],
     {"pattern": "^([^@ ]+@[^@ ]+[.][a-z]+|[0-9a-f]{64})$"}, "warn"),
    ("chart", "orders", "one_row_per_order", "unique", ["order_id"], {}, "fail"),
    ("chart", "orders", "status_present", "not_null", ["status"], {}, "drop"),
    ("chart", "orders", "status_known", "accepted_values", ["status"],
     {"values": ["placed", "shipped", "delivered", "cancelled", "returned"]}, "drop"),
    ("chart", "orders", "currency_code", "regex", ["currency"], {"pattern": "^[A-Z]{3}$"}, "fail"),
    ("chart", "order_items", "positive_quantity", "range", ["quantity"], {"min": 1}, "drop"),
    ("chart", "order_items", "order_exists", "referential", ["order_id"], {"dataset": "orders", "column": "order_id"}, "warn"),
    ("chart", "payments", "method_known", "accepted_values", ["method"], {"values": ["card", "paypal", "bank_transfer"]}, "warn"),
    ("navigate", "daily_revenue", "has_rows", "row_count", [], {"min": 1}, "fail"),
    ("navigate", "daily_revenue", "revenue_not_negative", "custom_aggregate", [], {"sql": "min(revenue) >= 0"}, "fail"),
    ("navigate", "customer_lifetime_value", "value_not_negative", "custom_row", [], {"sql": "lifetime_value >= 0"}, "fail"),
]


def install_checks(datasets: dict) -> None:
    """The demo's quality gates: warn in Explore, drop and fail in Chart, fail on bad aggregates."""
    from quality.models import Check

    for layer, table, name, kind, columns, params, severity in CHECKS:
        Check.objects.update_or_create(
            dataset=datasets[(layer, table)],
            name=name,
            defaults={"kind": kind, "columns": columns, "params": params, "severity": severity},
        )
