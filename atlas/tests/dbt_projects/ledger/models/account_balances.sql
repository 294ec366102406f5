{{ config(meta={'atlas_layer': 'navigate'}) }}

select
    account_code,
    kind,
    {{ currency_columns('signed_amount') }},
    count(*) as entries,
    {%- for kind, sign in kinds().items() | sort %}
    sum(case when kind = '{{ kind }}' then {{ sign }} else 0 end) as {{ kind }}_sign{{ "," if not loop.last }}
    {%- endfor %}
from {{ ref('int_entries_enriched') }}
group by account_code, kind
