{% macro signed(amount, kind) -%}
    case when {{ kind }} = 'liability' then -{{ amount }} else {{ amount }} end
{%- endmacro %}

{% macro currency_columns(column) -%}
    {%- for currency in var('currencies') %}
    sum(case when currency = '{{ currency }}' then {{ column }} end) as {{ currency | lower }}_total
    {{- "," if not loop.last }}
    {%- endfor %}
{%- endmacro %}

{% macro kinds() -%}
    {%- set found = {'asset': 1, 'liability': -1} -%}
    {{ return(found) }}
{%- endmacro %}
