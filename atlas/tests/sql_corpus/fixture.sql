-- The differential corpus' dataset: the same typed rows on PostgreSQL and DuckDB.
-- Integers with negatives and zero, numerics, doubles, text with NULLs, '' and a newline, dates, timestamps.
CREATE SCHEMA IF NOT EXISTS chart;
CREATE TABLE chart.ledger (
    id integer NOT NULL,
    qty integer,
    cents bigint,
    price numeric(10, 2),
    ratio double precision,
    name text,
    code text,
    digits text,
    day date,
    ts timestamp,
    ts_tz timestamp with time zone,
    color text
);
INSERT INTO chart.ledger VALUES
    (1, 7, 1250, 12.50, 2.5, 'Alice', 'a_b', '12', DATE '2024-01-31', TIMESTAMP '2024-01-02 10:00:00', TIMESTAMPTZ '2024-01-02 10:00:00+00', 'red'),
    (2, -7, -1999, -3.25, -2.5, 'bob', 'A%B', '-3', DATE '2024-02-29', TIMESTAMP '2024-03-15 23:59:59.25', TIMESTAMPTZ '2024-03-15 23:59:59.25+00', 'blue'),
    (3, 2, 0, 0.05, 0.125, NULL, 'x.y', ' 7 ', DATE '2023-12-31', TIMESTAMP '2024-12-31 00:00:01.5', TIMESTAMPTZ '2024-12-31 00:00:01.5+00', 'red'),
    (4, -3, 101, 100.00, 10000000000, 'Émile Zola', NULL, '0042', NULL, NULL, NULL, NULL),
    (5, NULL, 5, NULL, NULL, '', 'abc123', NULL, DATE '2024-06-15', TIMESTAMP '2024-06-15 12:30:00', TIMESTAMPTZ '2024-06-15 12:30:00+00', 'blue'),
    (6, 0, 2147483648, 99.99, 0.1, 'alice smith', 'ABC-123', '5', DATE '2024-03-01', TIMESTAMP '2024-03-01 00:00:00', TIMESTAMPTZ '2024-03-01 00:00:00+00', 'green'),
    (7, 9, -1, -0.5, 1.0, 'o''brien
line2', 'a\b', NULL, DATE '2020-02-29', TIMESTAMP '2021-07-04 08:15:30', TIMESTAMPTZ '2021-07-04 08:15:30+00', 'red'),
    (8, 1, 3, 1.5, 3.5, 'ZED', '100%', '-0', DATE '2024-12-31', TIMESTAMP '2025-01-01 00:00:00', TIMESTAMPTZ '2025-01-01 00:00:00+00', 'green');
