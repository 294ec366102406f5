-- The differential corpus (issue 13): operator SQL, PostgreSQL dialect, over chart.ledger (fixture.sql).
-- Each statement runs on PostgreSQL as written and on DuckDB as Atlas transpiles it, with the column
-- types; both must give the same rows, in order, and the same column type families.
-- A statement whose comment says "refused: <text>" must be refused when the step is saved, with a
-- message containing <text>. "error: both" means both engines must fail it.
-- Statements end with ";" ts the end of a line; the comment lines above one describe it.

-- division: integer by integer truncates toward zero
SELECT id, qty / 2 AS half, qty / -2 AS neg_half, -7 / 2 AS lit FROM chart.ledger ORDER BY id;

-- division: bigint cents to whole units (the issue's example)
SELECT id, cents / 100 AS units FROM chart.ledger ORDER BY id;

-- division: numeric by integer stays numeric
SELECT id, price / 4 AS quarter FROM chart.ledger ORDER BY id;

-- division: numeric by numeric
SELECT id, price / 3.0 AS third FROM chart.ledger ORDER BY id;

-- division: double by integer
SELECT id, ratio / 2 AS half FROM chart.ledger ORDER BY id;

-- division: integer by a numeric literal
SELECT id, qty / 2.0 AS half FROM chart.ledger ORDER BY id;

-- division inside an aggregate: sum / count
SELECT color, sum(qty) / count(*) AS mean_int FROM chart.ledger GROUP BY color ORDER BY color;

-- division through a WITH query and a subquery
WITH w AS (SELECT id, qty FROM chart.ledger) SELECT s.id, s.qty / 3 AS third FROM (SELECT * FROM w) s ORDER BY s.id;

-- division by zero fails on both engines
-- error: both
SELECT qty / 0 AS boom FROM chart.ledger;

-- modulo of negatives
SELECT id, qty % 4 AS m, mod(qty, -4) AS m2 FROM chart.ledger ORDER BY id;

-- NULL in || concatenation gives NULL
SELECT id, name || '-' || code AS label FROM chart.ledger ORDER BY id;

-- concat() skips NULLs; concat_ws too
SELECT id, concat(name, '-', code) AS c, concat_ws('/', name, code, color) AS cw FROM chart.ledger ORDER BY id;

-- || with numbers: integer, numeric and double as text
SELECT id, 'q=' || qty AS q, 'p=' || price AS p, 'r=' || ratio AS r FROM chart.ledger ORDER BY id;

-- casts of text to integer (whitespace and leading zeros)
SELECT id, CAST(digits AS integer) AS n, digits::bigint AS b FROM chart.ledger ORDER BY id;

-- text that is no integer fails on both engines (DuckDB would round '12.7' to 13)
-- error: both
SELECT CAST('12.7' AS integer) AS n FROM chart.ledger;

-- casts of text to numeric with precision and scale, to double, to date and timestamp
SELECT id, '12.345'::numeric(6, 2) AS n, '2.5'::double precision AS d, '2024-02-29'::date AS dt, '2024-01-02 03:04:05'::timestamp AS ts FROM chart.ledger WHERE id = 1;

-- casts to text of every family
SELECT id, qty::text AS q, price::text AS p, ratio::text AS r, day::text AS d, ts::text AS t, (qty > 0)::text AS b FROM chart.ledger ORDER BY id;

-- unconstrained numeric: from an integer it is exact
SELECT id, qty::numeric AS n FROM chart.ledger ORDER BY id;

-- unconstrained numeric from text rounds to 3 decimals on DuckDB
-- refused: numeric without precision and scale
SELECT '1.23456'::numeric AS n FROM chart.ledger;

-- numeric and double to integer: half away from zero and half to even
SELECT id, price::integer AS p, ratio::integer AS r FROM chart.ledger WHERE id <> 4 ORDER BY id;

-- date arithmetic: date + integer, date - integer, date - date
SELECT id, day + 1 AS next_day, day - 30 AS month_ago, day - DATE '2024-01-01' AS days FROM chart.ledger ORDER BY id;

-- date and interval: end of month clamps
SELECT id, day + interval '1 month' AS next_month, day - interval '1 year' AS last_year FROM chart.ledger ORDER BY id;

-- timestamp arithmetic and differences
SELECT id, ts + interval '90 minutes' AS later, ts - TIMESTAMP '2024-01-01 00:00:00' AS since, ts_tz + interval '1 day' AS tz_later FROM chart.ledger ORDER BY id;

-- interval arithmetic
SELECT id, interval '1 hour' * qty AS hours, interval '1 day' + interval '2 hours' AS d FROM chart.ledger ORDER BY id;

-- extract is numeric, with the fraction of a second
SELECT id, extract(year FROM day) AS y, extract(month FROM ts) AS m, extract(second FROM ts) AS s, extract(dow FROM day) AS dow FROM chart.ledger ORDER BY id;

-- extract(epoch) of a timestamp
SELECT id, extract(epoch FROM ts) AS e FROM chart.ledger ORDER BY id;

-- date_part is double precision
SELECT id, date_part('year', day) AS y, date_part('doy', ts) AS doy FROM chart.ledger ORDER BY id;

-- to_date with a format, guarded by the text's shape (how refine steps type exported dates)
WITH s AS (SELECT id, CASE WHEN id % 3 = 0 THEN '2024-02-29' WHEN id % 3 = 1 THEN '1999-12-31' ELSE 'not a date' END AS txt FROM chart.ledger) SELECT id, CASE WHEN txt ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN to_date(txt, 'YYYY-MM-DD') END AS d FROM s ORDER BY id;

-- to_timestamp with a day-first format, as a timestamp
WITH s AS (SELECT id, CASE WHEN id % 2 = 0 THEN '29/02/2024 23:59' ELSE '01/12/1999 07:05' END AS txt FROM chart.ledger) SELECT id, to_timestamp(txt, 'DD/MM/YYYY HH24:MI')::timestamp AS t FROM s ORDER BY id;

-- date_trunc of a timestamp is a timestamp, of a date a timestamp with time zone
SELECT id, date_trunc('month', ts) AS m, date_trunc('week', day) AS w FROM chart.ledger ORDER BY id;

-- extract of an interval
SELECT id, extract(day FROM ts - TIMESTAMP '2024-01-01 00:00:00') AS d FROM chart.ledger ORDER BY id;

-- to_char with the formats Atlas knows equal
SELECT id, to_char(ts, 'YYYY-MM-DD HH24:MI:SS') AS t, to_char(day, 'YYYY/MM') AS m FROM chart.ledger ORDER BY id;

-- to_char with month names pads differently
-- refused: to_char format
SELECT to_char(ts, 'Mon DD') AS t FROM chart.ledger;

-- round(numeric): half away from zero
SELECT id, round(price) AS r0, round(price, 1) AS r1, round(-2.5) AS neg FROM chart.ledger ORDER BY id;

-- round(double): half to even
SELECT id, round(ratio) AS r FROM chart.ledger ORDER BY id;

-- round(integer) is double precision on PostgreSQL
SELECT id, round(qty) AS r FROM chart.ledger ORDER BY id;

-- round(double, n) does not exist on PostgreSQL
-- refused: round(double precision, integer) does not exist
SELECT round(ratio, 1) AS r FROM chart.ledger;

-- round(numeric cast of a double, n) is allowed
SELECT id, round(ratio::numeric(20, 6), 1) AS r FROM chart.ledger ORDER BY id;

-- trunc, ceil, floor, abs, sign
SELECT id, trunc(price) AS t, trunc(price, 1) AS t1, ceil(price) AS c, floor(ratio) AS f, abs(qty) AS a, ceil(qty) AS ci FROM chart.ledger ORDER BY id;

-- sqrt, power, ln of numbers
SELECT id, sqrt(abs(ratio)) AS s, power(qty, 2) AS p, sqrt(abs(price)) AS sn FROM chart.ledger WHERE id <> 5 ORDER BY id;

-- LIKE: backslash escapes _ and % by default
SELECT id, code LIKE 'a\_b' AS esc, code LIKE '%\%' AS pct, code LIKE 'A%' AS starts FROM chart.ledger ORDER BY id;

-- LIKE with an explicit ESCAPE
SELECT id, code LIKE 'a#_b' ESCAPE '#' AS esc FROM chart.ledger ORDER BY id;

-- ILIKE and NOT LIKE, with accented letters
SELECT id, name ILIKE 'a%' AS a, name ILIKE 'é%' AS e, name NOT LIKE '%e%' AS no_e FROM chart.ledger ORDER BY id;

-- regex: ~ and ~* and !~
SELECT id, name ~ '^[a-z]+$' AS lower_word, name ~* '^a' AS a, name !~ 'e' AS no_e FROM chart.ledger ORDER BY id;

-- regex: . matches a newline on PostgreSQL
SELECT id, name ~ 'n.l' AS across FROM chart.ledger ORDER BY id;

-- regex: \d and character classes and quantifiers
SELECT id, code ~ '^[A-Za-z]+\d{3}$' AS code_like, code ~ '[-.]' AS punct FROM chart.ledger ORDER BY id;

-- regexp_replace: first match, all matches, case-insensitive, back-references
SELECT id, regexp_replace(name, 'l', 'L') AS first, regexp_replace(name, 'l', 'L', 'g') AS every, regexp_replace(name, 'A', '_', 'gi') AS ci, regexp_replace(code, '([a-z]+)(\d+)', '\2\1') AS swap FROM chart.ledger ORDER BY id;

-- regex: \w is Unicode on PostgreSQL and ASCII on DuckDB
-- refused: the escape \w
SELECT name ~ '^\w+$' AS word FROM chart.ledger;

-- regex: a pattern from a column cannot be checked
-- refused: must be a string literal
SELECT name ~ code AS m FROM chart.ledger;

-- SIMILAR TO reads a regular expression on DuckDB
-- refused: SIMILAR TO
SELECT name SIMILAR TO 'a%' AS m FROM chart.ledger;

-- substring with positions, including before the first character
SELECT id, substring(name FROM 2 FOR 3) AS s, substring(name, 0, 3) AS s0, substr(name, 3) AS rest, substring(name FROM -1 FOR 4) AS neg FROM chart.ledger ORDER BY id;

-- substring FROM a pattern is a regex on PostgreSQL
-- refused: regular-expression substring
SELECT substring(name FROM 'l+') AS s FROM chart.ledger;

-- position, strpos, length
SELECT id, position('l' IN name) AS p, strpos(code, '-') AS sp, length(name) AS n, char_length(code) AS cn FROM chart.ledger ORDER BY id;

-- split_part, with a negative field
SELECT id, split_part(code, '_', 1) AS first, split_part(name, ' ', 2) AS second, split_part(name, ' ', -1) AS last FROM chart.ledger ORDER BY id;

-- left and right, with negative lengths
SELECT id, left(name, 2) AS l, right(name, 3) AS r, left(name, -2) AS all_but, right(name, -1) AS tail FROM chart.ledger ORDER BY id;

-- upper, lower, initcap, with accents
SELECT id, upper(name) AS u, lower(name) AS l, initcap(name) AS i FROM chart.ledger ORDER BY id;

-- trim, btrim, lpad, rpad (pads truncate), replace, repeat, reverse
SELECT id, trim(digits) AS t, btrim(code, 'a') AS b, lpad(color, 5, '*') AS lp, rpad(color, 3, '.') AS rp, replace(code, '-', '+') AS rep, repeat(color, 2) AS rr, reverse(code) AS rv FROM chart.ledger ORDER BY id;

-- translate and md5 and starts_with
SELECT id, translate(code, 'abc', 'xyz') AS tr, md5(color) AS h, starts_with(name, 'a') AS sw FROM chart.ledger ORDER BY id;

-- row_number, rank, dense_rank over a partition
SELECT id, color, row_number() OVER (PARTITION BY color ORDER BY id) AS rn, rank() OVER (ORDER BY color) AS r, dense_rank() OVER (ORDER BY color) AS dr FROM chart.ledger ORDER BY id;

-- running sum with the default frame (ties included), avg over a partition
SELECT id, sum(qty) OVER (ORDER BY color, id) AS running, avg(qty) OVER (PARTITION BY color) AS mean FROM chart.ledger ORDER BY id;

-- lag, lead with defaults, first_value, last_value with a full frame
SELECT id, lag(qty) OVER w AS prev, lead(qty, 1, 0) OVER w AS nxt, first_value(name) OVER w AS first, last_value(name) OVER (ORDER BY id ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS last FROM chart.ledger WINDOW w AS (ORDER BY id) ORDER BY id;

-- ntile, percent_rank, cume_dist
SELECT id, ntile(3) OVER (ORDER BY id) AS tile, percent_rank() OVER (ORDER BY qty) AS pr, cume_dist() OVER (ORDER BY qty) AS cd FROM chart.ledger ORDER BY id;

-- window ORDER BY DESC puts NULLs first on PostgreSQL
SELECT id, row_number() OVER (ORDER BY qty DESC) AS rn FROM chart.ledger ORDER BY id;

-- DISTINCT ON keeps the first row of each group in ORDER BY order
SELECT DISTINCT ON (color) color, id, qty FROM chart.ledger ORDER BY color, qty DESC;

-- aggregate FILTER
SELECT color, count(*) FILTER (WHERE qty > 0) AS positive, sum(price) FILTER (WHERE qty < 0) AS neg_price FROM chart.ledger GROUP BY color ORDER BY color;

-- avg, sum, min, max, count of integers: avg is numeric
SELECT color, avg(qty) AS a, sum(qty) AS s, min(qty) AS mn, max(qty) AS mx, count(qty) AS n FROM chart.ledger GROUP BY color ORDER BY color;

-- avg and sum of numerics and doubles
SELECT color, avg(price) AS ap, sum(price) AS sp, avg(ratio) AS ar, sum(ratio) AS sr FROM chart.ledger GROUP BY color ORDER BY color;

-- stddev and variance of integers are numeric
SELECT stddev(qty) AS sd, variance(qty) AS v, stddev_pop(price) AS sdp FROM chart.ledger;

-- string_agg with ORDER BY and array_agg
SELECT color, string_agg(name, ', ' ORDER BY id) AS names, array_agg(id ORDER BY id) AS ids FROM chart.ledger GROUP BY color ORDER BY color;

-- bool_and, bool_or, count distinct
SELECT bool_and(qty > -10) AS all_big, bool_or(qty > 8) AS any_big, count(DISTINCT color) AS colors FROM chart.ledger;

-- CASE with mixed integer and numeric branches
SELECT id, CASE WHEN qty > 0 THEN qty WHEN qty < 0 THEN price ELSE 0 END AS v, CASE color WHEN 'red' THEN 'R' ELSE 'other' END AS c FROM chart.ledger ORDER BY id;

-- COALESCE and NULLIF, GREATEST and LEAST skip NULLs
SELECT id, coalesce(name, code, 'none') AS n, nullif(qty, 0) AS nz, greatest(qty, 1) AS g, least(price, 50) AS l FROM chart.ledger ORDER BY id;

-- GROUP BY with HAVING
SELECT color, count(*) AS n FROM chart.ledger GROUP BY color HAVING count(*) > 1 ORDER BY color;

-- GROUP BY an expression and an output name
SELECT extract(year FROM day) AS y, count(*) AS n FROM chart.ledger GROUP BY y ORDER BY y;

-- ORDER BY: ASC puts NULLs last, DESC first
SELECT id, qty FROM chart.ledger ORDER BY qty DESC, id;

-- ORDER BY with explicit NULLS FIRST / LAST
SELECT id, name FROM chart.ledger ORDER BY name NULLS FIRST, id DESC NULLS LAST;

-- ORDER BY text (code-point order in a C.UTF-8 database)
SELECT id, code FROM chart.ledger ORDER BY code, id;

-- IN, BETWEEN, IS DISTINCT FROM
SELECT id, qty IN (1, 2, 7) AS i, qty BETWEEN -3 AND 3 AS b, name IS DISTINCT FROM 'bob' AS d FROM chart.ledger ORDER BY id;

-- boolean logic with NULLs
SELECT id, (qty > 0 AND name IS NULL) AS a, (qty > 0 OR name = '') AS o, NOT (qty > 0) AS n FROM chart.ledger ORDER BY id;

-- scalar subquery and EXISTS
SELECT id, (SELECT max(qty) FROM chart.ledger) - qty AS gap, EXISTS (SELECT 1 FROM chart.ledger l2 WHERE l2.qty > l.qty) AS smaller FROM chart.ledger l ORDER BY id;

-- UNION ALL and EXCEPT
SELECT id FROM chart.ledger WHERE qty > 0 UNION ALL SELECT id FROM chart.ledger WHERE qty < 0 EXCEPT SELECT 7 ORDER BY 1;

-- a self join with integer arithmetic across it
SELECT a.id, b.id AS other, (a.qty - b.qty) / 2 AS half_gap FROM chart.ledger a JOIN chart.ledger b ON b.id = a.id + 1 ORDER BY a.id;

-- LEFT JOIN keeps unmatched rows with NULLs
SELECT a.id, b.name FROM chart.ledger a LEFT JOIN chart.ledger b ON b.id = a.qty ORDER BY a.id;

-- integer overflow fails on both engines
-- error: both
SELECT 2147483647 + qty AS o FROM chart.ledger;

-- numeric with too many digits for DuckDB
-- refused: wider than DuckDB's 38 digits
SELECT price::numeric(40, 2) AS p FROM chart.ledger;

-- LIMIT and OFFSET
SELECT id FROM chart.ledger ORDER BY id LIMIT 3 OFFSET 2;

-- a division over a column Atlas cannot type is refused
-- refused: cannot tell the type
SELECT (array_agg(qty ORDER BY id))[1] / 2 AS x FROM chart.ledger;
