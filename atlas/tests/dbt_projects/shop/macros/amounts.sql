{# A macro calling another file's macro, and a loop over what that one returns. #}
{% macro amount_per_method(column) -%}
    {%- for method in payment_methods() %}
    sum(case when payment_method = '{{ method }}' then {{ column }} else 0 end) as {{ method }}_amount,
    {%- endfor %}
{%- endmacro %}
