{#- Adapter differences in types and date handling, one macro each. -#}

{#- Money and quantities: exact decimals, the scale the tap loads them with (38, 18). -#}
{% macro money(expression) -%}
  cast({{ expression }} as {{ adapter.dispatch('money_type', 'partner_billing')() }})
{%- endmacro %}

{% macro default__money_type() %}numeric(38, 18){% endmacro %}
{% macro snowflake__money_type() %}number(38, 18){% endmacro %}
{% macro duckdb__money_type() %}decimal(38, 18){% endmacro %}

{#- An amount for display, rounded half away from zero to cents. -#}
{% macro cents(expression) -%}
  cast(round({{ expression }}, 2) as {{ adapter.dispatch('cents_type', 'partner_billing')() }})
{%- endmacro %}

{% macro default__cents_type() %}numeric(20, 2){% endmacro %}
{% macro snowflake__cents_type() %}number(20, 2){% endmacro %}
{% macro duckdb__cents_type() %}decimal(20, 2){% endmacro %}

{#- The first day of a YYYYMM billing month, as a date. -#}
{% macro month_start(expression) %}
  {{ return(adapter.dispatch('month_start', 'partner_billing')(expression)) }}
{% endmacro %}

{% macro default__month_start(expression) %}to_date({{ expression }}, 'YYYYMM'){% endmacro %}
{% macro duckdb__month_start(expression) %}cast(strptime({{ expression }}, '%Y%m') as date){% endmacro %}

{#- The UTC calendar date of one of the tap's date-time columns. -#}
{% macro utc_date(expression) %}
  {{ return(adapter.dispatch('utc_date', 'partner_billing')(expression)) }}
{% endmacro %}

{#- target-postgres loads date-time as timestamp without time zone, in UTC. -#}
{% macro default__utc_date(expression) %}cast({{ expression }} as date){% endmacro %}
{#- target-snowflake loads date-time as TIMESTAMP_TZ: convert to UTC first. -#}
{% macro snowflake__utc_date(expression) %}to_date(convert_timezone('UTC', {{ expression }})){% endmacro %}
{#- From target-jsonl the value is ISO 8601 text in UTC (the tap writes +00:00): its date part. -#}
{% macro duckdb__utc_date(expression) %}
  {%- if partner_billing.jsonl_dir() == '' -%}cast({{ expression }} as date)
  {%- else -%}cast(substr({{ expression }}, 1, 10) as date){%- endif -%}
{% endmacro %}

{#- A boolean column: JSON text 'true'/'false' from the files, a boolean in a table. -#}
{% macro boolean(expression) -%}
  cast({{ expression }} as boolean)
{%- endmacro %}
