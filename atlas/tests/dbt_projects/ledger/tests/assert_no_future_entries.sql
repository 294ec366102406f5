select id, entry_date
from {{ ref('entries') }}
where entry_date > date '2030-01-01'
