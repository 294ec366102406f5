WITH typed AS (
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
    CASE
      WHEN birth_date ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN to_date(birth_date, 'YYYY-MM-DD')
      WHEN birth_date ~ '^[0-9]{2}/[0-9]{2}/[0-9]{4}$' THEN to_date(birth_date, 'DD/MM/YYYY')
      WHEN birth_date ~ '^[0-9]{4}/[0-9]{2}/[0-9]{2}$' THEN to_date(birth_date, 'YYYY/MM/DD')
    END AS birth_date,
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
ORDER BY customer_id, _ingested_at DESC, _row_number DESC
