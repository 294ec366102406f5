select * from {{ ref('uses_package') }}
