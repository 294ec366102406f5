{% macro cents_to_dollars(column, scale=2) -%}
    round({{ column }} / 100.0, {{ scale }})
{%- endmacro %}

{% macro payment_methods() %}
    {{ return(['credit_card', 'coupon', 'bank_transfer', 'gift_card']) }}
{% endmacro %}
